"""The notifier under generated input: schemathesis over its own OpenAPI (as the admin and as an
agency), then hypothesis over what only a signature lets in - signed Twilio forms and signed
SendGrid bodies of any shape, lone surrogates and huge numbers included. Never a 5xx, and
every error is problem+json. Bounded and derandomized."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.events.test_openapi_fuzz import check, fuzz, operations
from tests.notifier import test_citizens
from tests.notifier.test_agency_preferences import agency_key
from tests.notifier.test_citizens import sendgrid_post, twilio_post
from tests.notifier.test_delivery import ADMIN

notifier = test_citizens.notifier  # the fixture

BOUNDED = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("role", ["agency", "admin"])
def test_generated_requests_never_get_a_5xx_and_errors_are_problems(notifier, role):
    client, _ = notifier
    auth = ADMIN if role == "admin" else agency_key(client, "dgt")
    checked = []
    for operation in operations(client):
        fuzz(client, operation, auth)
        checked.append(operation.label)
    assert "PUT /v1/citizens/{citizen_id}/preferences" in checked


# Text as hostile senders write it: any code point, lone surrogates included.
ANY_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=40)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    ANY_TEXT,
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
FIELDS = ["sg_event_id", "event", "sg_message_id", "notification_id", "status", "reason"]
EVENT = st.fixed_dictionaries(
    {},
    optional={
        **dict.fromkeys(FIELDS, JSON),
        "event": st.sampled_from(["bounce", "dropped", "delivered", "spamreport"]) | JSON,
        "timestamp": JSON | st.just(10**400),
    },
)


def test_signed_sendgrid_bodies_of_any_shape_never_get_a_5xx(notifier):
    client, _ = notifier

    @BOUNDED
    @given(body=st.lists(EVENT, max_size=4) | JSON)
    def exercise(body):
        answer = sendgrid_post(client, [], raw=json.dumps(body))
        check(answer, "POST /v1/providers/sendgrid/events")

    exercise()


FORM_TEXT = st.text(st.characters(codec="utf-8"), max_size=60)
PHONES = st.sampled_from(["+34600111222", "+34600999888", "12345"])
SIDS = st.text("0123456789abcdef", min_size=32, max_size=32).map(lambda digits: "SM" + digits)
FORM = st.fixed_dictionaries(
    {"MessageSid": st.one_of(SIDS, SIDS, FORM_TEXT), "From": st.one_of(PHONES, FORM_TEXT)},
    optional={
        "SmsSid": FORM_TEXT,
        "MessageStatus": st.sampled_from(["delivered", "undelivered", "failed"]) | FORM_TEXT,
        "ErrorCode": FORM_TEXT | st.just("21610") | st.just("9" * 5000),
        "To": FORM_TEXT,
        "Body": st.sampled_from(["STOP", "START", "AYUDA"]) | FORM_TEXT,
    },
)


@pytest.mark.parametrize("path", ["/v1/providers/twilio/inbound", "/v1/providers/twilio/status"])
def test_signed_twilio_forms_of_any_content_never_get_a_5xx(notifier, path):
    client, _ = notifier

    @BOUNDED
    @given(form=FORM, n=st.none() | FORM_TEXT)
    def exercise(form, n):
        target = f"{path}?{urlencode({'n': n})}" if n is not None else path
        check(twilio_post(client, target, form), f"POST {path}")

    exercise()
