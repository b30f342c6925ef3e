"""Signed tokens for links we send citizens: purpose-scoped, expiring, with key rotation.

A token names a purpose (`unsubscribe`, later `preferences`), a subject (the citizen id), an
optional detail (the channel) and the time it was issued. Its MAC is keyed per purpose (a
key derived from `AVISA_TOKEN_SECRET` and the purpose's name), so a token of one purpose is
never valid as another, even before the purpose inside it is compared. Verification tries
the current secret, then `AVISA_TOKEN_SECRET_PREVIOUS`: rotate by moving the old secret
there and keeping it for as long as tokens live. Expiry is checked against the verifier's
`max_age`, so shortening the setting shortens the life of tokens already sent.

Tokens of the first scheme (no version, keyed from the admin key, no expiry) are accepted
only for unsubscribing and only until `AVISA_TOKEN_LEGACY_UNTIL` (unset: never), so an
operator upgrading a live system can keep old emails' one-click links working for a while
(`legacy_unsubscribe`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

UNSUBSCRIBE = "unsubscribe"
PREFERENCES = "preferences"
_VERSION = "v2"
_MAC_BYTES = 16
_CLOCK_SKEW = timedelta(minutes=5)  # issued by a replica whose clock runs a little ahead
_MAX_TOKEN = 4096  # characters; anything longer is not ours


class Refusal(StrEnum):
    """Why a token was refused: a citizen is told differently."""

    INVALID = "invalid"
    EXPIRED = "expired"


class TokenRefused(Exception):
    """The token is not genuine (or not for this purpose), or has expired."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenKeys:
    """The secret that signs, and the previous ones still accepted for verification."""

    current: bytes
    previous: tuple[bytes, ...] = ()

    @classmethod
    def of(cls, current: str, previous: str | None = None) -> TokenKeys:
        return cls(current.encode(), (previous.encode(),) if previous else ())


@dataclass(frozen=True, slots=True)
class Claims:
    """What a genuine, unexpired token says."""

    purpose: str
    subject: str
    detail: str
    issued_at: datetime


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _purpose_key(secret: bytes, purpose: str) -> bytes:
    return hmac.new(secret, f"avisa-token-{_VERSION}:{purpose}".encode(), hashlib.sha256).digest()


def _mac(secret: bytes, purpose: str, payload: bytes) -> bytes:
    return hmac.new(_purpose_key(secret, purpose), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def sign(keys: TokenKeys, *, purpose: str, subject: str, detail: str = "", now: datetime) -> str:
    """A URL-safe token for `purpose` naming `subject` (and `detail`), issued `now`."""
    payload = json.dumps([purpose, int(now.timestamp()), subject, detail]).encode()
    return f"{_VERSION}.{_b64(payload)}.{_b64(_mac(keys.current, purpose, payload))}"


def verify(
    keys: TokenKeys, token: str, *, purpose: str, max_age: timedelta, now: datetime
) -> Claims:
    """The token's claims when it is genuine, for `purpose` and younger than `max_age`;
    otherwise `TokenRefused` saying whether it is invalid or expired."""
    version, _, rest = token.partition(".")
    encoded, _, mac = rest.partition(".")
    if version != _VERSION or len(token) > _MAX_TOKEN:
        raise TokenRefused(Refusal.INVALID)
    try:
        payload, given = _unb64(encoded), _unb64(mac)
    except (ValueError, binascii.Error):
        raise TokenRefused(Refusal.INVALID) from None
    if not any(
        hmac.compare_digest(given, _mac(secret, purpose, payload))
        for secret in (keys.current, *keys.previous)
    ):
        raise TokenRefused(Refusal.INVALID)
    claims = _claims(payload)
    if claims.purpose != purpose or claims.issued_at > now + _CLOCK_SKEW:
        raise TokenRefused(Refusal.INVALID)
    if now - claims.issued_at > max_age:
        raise TokenRefused(Refusal.EXPIRED)
    return claims


def _claims(payload: bytes) -> Claims:
    """The claims in a payload our MAC vouches for (so its shape is ours)."""
    try:
        purpose, issued, subject, detail = json.loads(payload)
        issued_at = datetime.fromtimestamp(int(issued), UTC)
    except (ValueError, TypeError, OverflowError, OSError):
        raise TokenRefused(Refusal.INVALID) from None
    return Claims(str(purpose), str(subject), str(detail), issued_at)


def legacy_unsubscribe_secret(admin_key: str) -> bytes:
    """The first scheme's key, derived from the admin key (kept to verify old links only)."""
    return hmac.new(admin_key.encode(), b"avisa-unsubscribe-v1", hashlib.sha256).digest()


def legacy_unsubscribe(secret: bytes, token: str) -> tuple[str, str] | None:
    """`(citizen_id, channel)` of a genuine first-scheme token, else None."""
    encoded, _, mac = token.partition(".")
    try:
        payload, given = _unb64(encoded), _unb64(mac)
    except (ValueError, binascii.Error):
        return None
    expected = hmac.new(secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if not hmac.compare_digest(given, expected):
        return None
    citizen_id, separator, channel = payload.decode(errors="replace").partition("\x1f")
    return (citizen_id, channel) if separator else None
