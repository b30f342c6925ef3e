"""Field validators shared by the contracts: E.164 phones, emails, BCP 47 locales, IANA zones."""

from __future__ import annotations

import re
from functools import cache, lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import phonenumbers
from babel import Locale, UnknownLocaleError
from email_validator import EmailNotValidError, validate_email

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")
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
    try:
        parsed = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException as error:
        raise ValueError(f"'{value}' is not a phone number: {error}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(f"'{value}' is not a valid phone number for its country code")
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


@lru_cache(maxsize=_REMEMBERED)
def email(value: str) -> str:
    """Return the normalized address if it is a valid email, else raise ValueError."""
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
