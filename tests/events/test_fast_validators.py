"""The intake's cheap paths for plain phones and emails give the libraries' own answers.

`validators.plain_email` lets the intake skip `validate_email` for addresses it would return
unchanged, and `e164` skips `phonenumbers.parse` for "+digits" numbers it would take as
written; these tests hold both to the full path, on edge cases and on generated values.
"""

from __future__ import annotations

import phonenumbers
import pytest
from email_validator import EmailNotValidError, validate_email
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas import validators


def library(value: str) -> str | None:
    """What email-validator itself says: the normalized address, or None when invalid."""
    try:
        return validate_email(value, check_deliverability=False).normalized
    except EmailNotValidError:
        return None


def agrees(value: str) -> None:
    expected = library(value)
    if validators.plain_email(value):
        assert expected == value, value
    try:
        answer: str | None = validators.email.__wrapped__(value)
    except ValueError:
        answer = None
    assert answer == expected, value


@pytest.mark.parametrize(
    "value",
    [
        "ana@example.es",
        "ana.maria+avisa@mail.example.es",
        "o'brien@example.ie",
        "x@a.io",
        "a!#$%&'*+/=?^_`{|}~-z@example.es",
        "a" * 64 + "@" + "b" * 63 + ".es",
    ],
)
def test_plain_addresses_skip_the_library_and_keep_its_answer(value: str) -> None:
    assert validators.plain_email(value)
    agrees(value)


@pytest.mark.parametrize(
    "value",
    [
        "Info@example.es",  # RFC 2142 name: lower-cased by the library
        "ana@Example.ES",  # upper-case domain: lower-cased
        "ana@xn--bcher-kva.example",  # Punycode
        "ana@ab--cd.example.es",  # reserved label form
        "ana@a--b.es",
        "ana@example.local",  # special-use names
        "ana@mail.test",
        "ana@sub.arpa",
        "ana@localhost",
        "ana@example.123",  # top-level domain must end with a letter
        "ana@example.es1",
        "ana@-example.es",
        "ana@example-.es",
        "ana@example..es",
        ".ana@example.es",
        "ana.@example.es",
        "an..a@example.es",
        '"ana"@example.es',
        "Ana <ana@example.es>",
        "ana@example.es ",
        " ana@example.es",
        "ana@@example.es",
        "ana",
        "",
        "ana@",
        "@example.es",
        "anä@example.es",
        "ana@exämple.es",
        "ana@" + "b" * 64 + ".es",  # label too long
        "a" * 201 + "@" + "b" * 50 + ".es",  # 255 characters: too long
        "ana@[127.0.0.1]",
    ],
)
def test_other_addresses_go_to_the_library(value: str) -> None:
    assert not validators.plain_email(value)
    agrees(value)


LOCAL = st.text(alphabet="aZ09._+-'!\"\\ @<>()[],;:ä", min_size=0, max_size=12)
LABEL = st.text(alphabet="az09-_AZ.ä ", min_size=0, max_size=10)
DOMAIN = st.lists(LABEL, min_size=1, max_size=4).map(".".join)
ADDRESS = st.one_of(
    st.builds(lambda local, domain: f"{local}@{domain}", LOCAL, DOMAIN),
    st.text(alphabet="aZ09.@-_+\"' <>", max_size=20),
    st.builds(
        lambda local, domain, tld: f"{local}@{domain}.{tld}",
        st.from_regex(r"[a-z0-9._+-]{1,10}", fullmatch=True),
        st.from_regex(r"[a-z0-9-]{1,10}", fullmatch=True),
        st.sampled_from(["es", "com", "local", "test", "arpa", "invalid", "onion", "x1", "1"]),
    ),
)


@settings(max_examples=600, deadline=None)
@given(ADDRESS)
def test_generated_addresses_get_the_library_answer(value: str) -> None:
    agrees(value)


def parsed(value: str) -> str | None:
    """The full path: phonenumbers' parse, validity and E.164 form (None when refused)."""
    try:
        number = phonenumbers.parse(value, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def same_phone(value: str) -> None:
    try:
        answer: str | None = validators.e164.__wrapped__(value)
    except ValueError:
        answer = None
    expected = parsed(value) if validators._E164.match(value) else None
    assert answer == expected, value
    if validators._plain_e164(value) is not None:
        assert expected == value, value


@pytest.mark.parametrize(
    "value",
    [
        "+34600111222",  # Spain, mobile
        "+34912345678",  # Spain, fixed line
        "+14155552671",  # NANPA: one code, many regions
        "+447911123456",  # United Kingdom
        "+390612345678",  # Italy: a leading zero
        "+79123456789",  # Russia: national prefix 8
        "+5215512345678",  # Mexico: the old mobile 1
        "+541112345678",  # Argentina: national prefix rewriting
        "+8613812345678",  # China
        "+80012345678",  # non-geographic (freephone)
        "+882123456789",  # non-geographic (networks)
        "+34600111",  # too short for Spain
        "+346001112223",  # too long for Spain
        "+99912345678",  # unassigned code
        "+2901234567",  # Saint Helena: short numbers
        "+34600111222\n",  # `$` matches before a final newline
        "+3460011122\u0662",  # a non-ASCII digit
    ],
)
def test_phone_edge_cases_get_the_library_answer(value: str) -> None:
    same_phone(value)


CODES = sorted(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)


@settings(max_examples=1500, deadline=None)
@given(st.sampled_from(CODES), st.from_regex(r"[0-9]{1,14}", fullmatch=True))
def test_generated_numbers_get_the_library_answer(code: int, rest: str) -> None:
    same_phone(f"+{code}{rest}"[:16])


def test_every_region_and_kind_of_number_gets_the_library_answer() -> None:
    """Each region's example number of each kind, and its neighbours in the last digits:
    mostly valid numbers, so the cheap path is exercised, not only its refusals."""
    taken = 0
    for region in sorted(phonenumbers.SUPPORTED_REGIONS | {"001"}):
        for kind in phonenumbers.PhoneNumberType.values():
            if region == "001":
                examples = [
                    phonenumbers.example_number_for_non_geo_entity(code)
                    for code in phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS
                ]
            else:
                examples = [phonenumbers.example_number_for_type(region, kind)]
            for example in filter(None, examples):
                written = phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164)
                for last in range(0, 100, 7):
                    value = f"{written[:-2]}{last:02d}"
                    same_phone(value)
                    taken += validators._plain_e164(value) is not None
    assert taken > 10_000


SINGLE_REGION = [code for code in CODES if validators._single_region(code) is not None]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(SINGLE_REGION), st.from_regex(r"[1-9][0-9]{1,13}", fullmatch=True))
def test_the_cheap_validity_check_is_the_librarys(code: int, national: str) -> None:
    """For a code of one region, the general description plus any kind decides validity
    exactly as `is_valid_number` does (a false "invalid" would only cost the full path, but a
    false "valid" would let a bad number in)."""
    number = phonenumbers.PhoneNumber(country_code=code, national_number=int(national))
    assert validators._valid_number(code, national) == phonenumbers.is_valid_number(number)


def test_valid_numbers_of_one_region_codes_take_the_cheap_check() -> None:
    """Each single-region code's example numbers of every kind are valid by the cheap check."""
    checked = 0
    for code in SINGLE_REGION:
        regions = phonenumbers.COUNTRY_CODE_TO_REGION_CODE[code]
        for kind in phonenumbers.PhoneNumberType.values():
            if regions[0] == phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY:
                example = phonenumbers.example_number_for_non_geo_entity(code)
            else:
                example = phonenumbers.example_number_for_type(regions[0], kind)
            if example is None or not phonenumbers.is_valid_number(example):
                continue
            national = phonenumbers.national_significant_number(example)
            if national.startswith("0"):
                continue
            assert validators._valid_number(code, national), (code, kind, national)
            checked += 1
    assert checked > 1000
