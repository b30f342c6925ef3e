"""Content retention in the notifier: a notification final for longer than the retention period
keeps its id, status, attempts, provider references and error codes, and loses its texts and
addresses; what reads it afterwards (the API, provider webhooks, fallback) keeps working."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from schemas.notifications import NotificationRequest
from services.notifier.config import Settings
from services.notifier.retention import ContentPurger, purged_request
from tests.notifier.factories import make_request
from tests.notifier.test_citizens import deliver
from tests.notifier.test_delivery import ADMIN, status_changes, statuses
from tests.notifier.test_fallback import dead_letters, notifier, twilio_status  # noqa: F401

PHONE, EMAIL, BODY = "+34600111222", "ana@example.es", "Hola Ana, tu permiso caduca pronto"


def purger(client, *, days_later: float) -> ContentPurger:
    later = datetime.now(UTC) + timedelta(days=days_later)
    return ContentPurger(
        client.app.state.sessions,
        retention=timedelta(days=7),
        interval_s=60,
        batch=1,  # several rounds, to cover the batching too
        clock=lambda: later,
    )


def view_of(client, request) -> dict:
    response = client.get(f"/v1/notifications/{request.id}", headers=ADMIN)
    assert response.status_code == 200
    return response.json()


def test_a_purged_request_still_reads_as_a_request_without_content():
    request = make_request()
    stored = purged_request(request.model_dump(mode="json"))
    parsed = NotificationRequest.model_validate(stored)
    assert (parsed.id, parsed.event, parsed.rule, parsed.channels) == (
        request.id,
        request.event,
        request.rule,
        request.channels,
    )
    assert parsed.citizen.model_dump(exclude_none=True) == {"id": request.citizen.id}
    assert parsed.content.sms is None and parsed.content.email is None
    assert not {PHONE, EMAIL, BODY, "Ana"} & set(json.dumps(stored).split('"'))


def test_final_notifications_lose_their_content_after_retention_and_webhooks_still_apply(
    notifier,  # noqa: F811
    providers,
):
    client, settings = notifier
    request = make_request(channels=("sms", "email"), delivery="first")
    other = make_request(channels=("email",))
    deliver(settings, request)
    deliver(settings, other)
    [sms] = providers.twilio_requests()
    before = view_of(client, request)
    assert before["request"]["content"]["sms"]["body"] == BODY

    assert purger(client, days_later=6).purge() == 0  # not yet past retention
    assert view_of(client, request) == before
    assert purger(client, days_later=8).purge() == 2
    assert purger(client, days_later=9).purge() == 0  # nothing twice

    after = view_of(client, request)
    text = json.dumps(after)
    assert PHONE not in text and EMAIL not in text and BODY not in text
    assert after["request"]["citizen"] == {"id": request.citizen.id}
    assert after["request"]["content"] == {}
    assert (after["id"], after["status"], after["channel"]) == (request.id, "sent", "sms")
    kept = [(a["channel"], a["status"], a["provider_reference"]) for a in after["attempts"]]
    assert kept == [("sms", "sent", sms["sid"])]

    # a late failure report still applies, but nothing is left to fall back with
    twilio_status(client, request, sms["sid"], "undelivered", "30003")
    changes = status_changes(settings, lambda cs: ("failed", "sms") in statuses(cs, request.id))
    assert statuses(changes, request.id)[-1] == ("failed", "sms")
    failed = view_of(client, request)
    assert failed["status"] == "failed"
    assert [(a["status"], a["error_code"]) for a in failed["attempts"]] == [("failed", "30003")]
    assert len(providers.sendgrid_requests()) == 1  # only `other`'s email: no fallback
    [dead] = dead_letters(settings, request)
    assert PHONE.encode() not in dead.value and BODY.encode() not in dead.value


def test_the_notifier_reads_the_shared_retention_setting(monkeypatch):
    monkeypatch.delenv("AVISA_CONTENT_RETENTION_DAYS", raising=False)
    assert Settings().content_retention_days == 7
    monkeypatch.setenv("AVISA_CONTENT_RETENTION_DAYS", "30")
    assert Settings().content_retention_days == 30
