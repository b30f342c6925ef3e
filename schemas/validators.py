"""Field validators shared by the contracts: E.164 phones, emails, BCP 47 locales, IANA zones."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import email_validator
import phonenumbers
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import ATEXT, CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH
from phonenumbers import PhoneMetadata, phonenumberutil

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_MIN_NSN = phonenumberutil._MIN_LENGTH_FOR_NSN
_MAX_NSN = phonenumberutil._MAX_LENGTH_FOR_NSN
_BCP47 = re.compile(r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$")

# Validating a phone number or an email address costs about as much as the rest of an event's
# validation; agencies send many events about the same citizens, so results are remembered
# (invalid values raise, and are not).
_REMEMBERED = 65_536


@lru_cache(maxsize=_REMEMBERED)
def e164(value: str) -> str:
    """Return the number if it is a valid E.164 phone number, else raise ValueError."""
    if not _E164.match(value):
        raise ValueError(f"'{value}' is not an E.164 number; write it like +34600111222")
    plain = _plain_e164(value)
    if plain is not None:
        return plain
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"'{value}' is not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"'{value}' is not a valid phone number for its country code")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


# `phonenumbers.parse` spends most of its time normalising free-form input ("Tel: (0)6 ...");
# for ASCII "+digits" that is the identity, so the country code is split off and the number
# checked directly. Whatever parse would change (a national prefix, Italian leading zeros) or
# reject, and every error, takes the full path (tests/events/test_fast_validators.py holds the
# two to the same answers).
_PLAIN_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_COUNTRY_CODES = {str(code): code for code in phonenumbers.COUNTRY_CODE_TO_REGION_CODE}
_NUMBER_KINDS = (  # every kind `is_valid_number` accepts; mobile first, the commonest by far
    "mobile",
    "fixed_line",
    "premium_rate",
    "toll_free",
    "shared_cost",
    "voip",
    "personal_number",
    "pager",
    "uan",
    "voicemail",
)

_Desc = tuple[tuple[int, ...], "re.Pattern[str]"]
"""A number description's possible lengths (empty: any) and national number pattern."""


def _desc(number_desc: phonenumbers.PhoneNumberDesc | None) -> _Desc | None:
    if number_desc is None or not number_desc.national_number_pattern:
        return None
    pattern = re.compile(number_desc.national_number_pattern)
    return tuple(number_desc.possible_length or ()), pattern


def _matches(national: str, desc: _Desc) -> bool:
    """`phonenumberutil._is_number_matching_desc`, on a description prepared once."""
    lengths, pattern = desc
    return (not lengths or len(national) in lengths) and pattern.fullmatch(national) is not None


@cache
def _single_region(country_code: int) -> tuple[_Desc, tuple[_Desc, ...]] | None:
    """For a country code served by one region: its general description and each kind's.

    `is_valid_number` then holds a number valid when it matches the general description and
    any kind (the order it tries them in only decides which kind it reports). Codes shared by
    several regions (+1, +7, +44...) need the region found first: None, the library decides."""
    regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE.get(country_code, ())
    if len(regions) != 1:
        return None
    region = regions[0]
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None or (
        region != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY
        and metadata.country_code != country_code
    ):
        return None
    general = _desc(metadata.general_desc)
    if general is None:
        return None
    kinds = (_desc(getattr(metadata, kind)) for kind in _NUMBER_KINDS)
    return general, tuple(kind for kind in kinds if kind is not None)


def _country_code(digits: str) -> tuple[int, str]:
    """`phonenumberutil._extract_country_code` for ASCII digits not starting with 0."""
    for size in (1, 2, 3):
        code = _COUNTRY_CODES.get(digits[:size])
        if code is not None:
            return code, digits[size:]
    return 0, digits


def _plain_e164(value: str) -> str | None:
    """`e164(value)` for a valid number that parse would take as written; None: ask parse."""
    if not _PLAIN_E164.fullmatch(value):
        return None
    country_code, national = _country_code(value[1:])
    if country_code == 0 or national[:1] == "0" or len(national) < _MIN_NSN:
        return None
    region = phonenumbers.region_code_for_country_code(country_code)
    metadata = PhoneMetadata.metadata_for_region_or_calling_code(country_code, region)
    if metadata is None:
        return None
    _, stripped, _ = phonenumberutil._maybe_strip_national_prefix_carrier_code(national, metadata)
    if stripped != national or len(national) > _MAX_NSN:
        return None
    return value if _valid_number(country_code, national) else None


def _valid_number(country_code: int, national: str) -> bool:
    """`is_valid_number` for the number with that code and national number (no leading 0)."""
    descs = _single_region(country_code)
    if descs is None:
        number = phonenumbers.PhoneNumber(country_code=country_code, national_number=int(national))
        return bool(phonenumbers.is_valid_number(number))
    general, kinds = descs
    return _matches(national, general) and any(_matches(national, kind) for kind in kinds)


# Addresses that email-validator accepts unchanged, recognised without its general path (which
# costs as much as the rest of an event's validation): an ASCII dot-atom local part and a
# lower-case ASCII host name of two labels or more ending in a letter. Everything else, and so
# every error, still goes through `validate_email` (tests/events/test_fast_validators.py holds the
# two to the same answers).
_LABEL = r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
_PLAIN_EMAIL = re.compile(rf"[{ATEXT}]+(?:\.[{ATEXT}]+)*@{_LABEL}(?:\.{_LABEL})+\Z")
_LABEL_MAX = 63
_SPECIAL_USE = tuple("." + name for name in email_validator.SPECIAL_USE_DOMAIN_NAMES)


def plain_email(value: str) -> bool:
    """True when `validate_email(value).normalized` is `value` itself, decided cheaply; False
    means "ask email-validator", not "invalid"."""
    if len(value) > EMAIL_MAX_LENGTH or not value[-1:].isalpha() or not _PLAIN_EMAIL.match(value):
        return False
    local, _, domain = value.partition("@")
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES or "--" in domain:
        return False  # lower-cased (RFC 2142) / Punycode or reserved label forms
    if any(len(label) > _LABEL_MAX for label in domain.split(".")):
        return False
    return not ("." + domain).endswith(_SPECIAL_USE)


@lru_cache(maxsize=_REMEMBERED)
def email(value: str) -> str:
    """Return the normalized address if it is a valid email, else raise ValueError."""
    if plain_email(value):
        return value
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError as error:
        raise ValueError(f"'{value}' is not a valid email address: {error}") from None


@cache
def locale(value: str) -> str:
    """Return the tag if it is a BCP 47 language tag Babel knows, else raise ValueError."""
    if not _BCP47.match(value):
        raise ValueError(f"'{value}' is not a BCP 47 language tag like 'es' or 'es-ES'")
    try:
        Locale.parse(value, sep="-")
    except (UnknownLocaleError, ValueError):
        raise ValueError(f"'{value}' is not a known language") from None
    return value


@cache
def _zones() -> frozenset[str]:
    return frozenset(available_timezones())


def timezone(value: str) -> str:
    """Return the name if it is an IANA time zone, else raise ValueError."""
    if value in _zones():
        return value
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"'{value}' is not an IANA time zone like 'Europe/Madrid'") from None
    return value
