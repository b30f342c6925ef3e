"""SMS length: GSM-7 or UCS-2 encoding, and how many segments a text takes."""

from __future__ import annotations

from dataclasses import dataclass

_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = set("^{}\\[~]|€\f")
_GSM = frozenset(_GSM_BASIC | _GSM_EXTENDED)


@dataclass(frozen=True, slots=True)
class SmsLength:
    """`forced_by`: the distinct characters outside GSM-7, in order of first appearance."""

    encoding: str
    characters: int
    segments: int
    forced_by: tuple[str, ...] = ()


def sms_length(text: str) -> SmsLength:
    """GSM-7 when every character fits (extension characters count twice), else UCS-2."""
    forced_by = tuple(dict.fromkeys(c for c in text if c not in _GSM))
    if not forced_by:
        units = sum(2 if c in _GSM_EXTENDED else 1 for c in text)
        single, multi, encoding = 160, 153, "GSM-7"
    else:
        units = sum(2 if ord(c) > 0xFFFF else 1 for c in text)  # UTF-16 code units
        single, multi, encoding = 70, 67, "UCS-2"
    segments = 1 if units <= single else -(-units // multi)
    return SmsLength(encoding=encoding, characters=units, segments=segments, forced_by=forced_by)
