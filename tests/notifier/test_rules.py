"""Pure citizen rules: quiet hours (DST, across midnight), opt-outs, cap, expiry, keywords."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.notifications import Channel, Status
from services.notifier import flows, keywords, quiet
from services.notifier.delivery.ratelimit import TokenBucket
from services.notifier.preferences import PreferencesDoc, Recipient
from services.notifier.reports import sendgrid as sendgrid_events
from services.notifier.reports import twilio as twilio_events
from services.notifier.reports.apply import Report, attempt_transition, notification_transition
from tests.notifier.factories import make_request

MADRID = ZoneInfo("Europe/Madrid")
NIGHT = quiet.QuietHours(time(21, 0), time(8, 0))


def person(**overrides) -> Recipient:
    options = {
        "citizen_id": "ES-1",
        "phone": "+34600111222",
        "email": "ana@example.es",
        "locale": "es",
        "zone": MADRID,
        "quiet": NIGHT,
    } | overrides
    return Recipient(**options)


def test_quiet_hours_across_midnight_end_next_morning_local():
    evening = datetime(2026, 11, 29, 21, 30, tzinfo=UTC)  # 22:30 in Madrid
    assert quiet.next_allowed(evening, MADRID, NIGHT) == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    early = datetime(2026, 11, 30, 5, 0, tzinfo=UTC)  # 06:00 in Madrid
    assert quiet.next_allowed(early, MADRID, NIGHT) == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    noon = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)
    assert quiet.next_allowed(noon, MADRID, NIGHT) == noon


@pytest.mark.parametrize(
    ("now", "expected"),
    [  # the night the clocks go forward (08:00 CEST = 06:00Z) and back (08:00 CET = 07:00Z)
        (datetime(2026, 3, 28, 21, 30, tzinfo=UTC), datetime(2026, 3, 29, 6, 0, tzinfo=UTC)),
        (datetime(2026, 10, 24, 21, 30, tzinfo=UTC), datetime(2026, 10, 25, 7, 0, tzinfo=UTC)),
    ],
)
def test_quiet_hours_end_at_local_eight_across_dst(now, expected):
    assert quiet.next_allowed(now, MADRID, NIGHT) == expected


def test_a_window_ending_inside_a_dst_gap_ends_at_the_transition():
    window = quiet.QuietHours(time(1, 0), time(2, 30))  # 02:30 does not exist on 2026-03-29
    now = datetime(2026, 3, 29, 0, 10, tzinfo=UTC)  # 01:10 CET
    assert quiet.next_allowed(now, MADRID, window) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)


ZONES = st.sampled_from(
    ["Europe/Madrid", "America/New_York", "Australia/Lord_Howe", "Atlantic/Canary", "UTC"]
)
MINUTES = st.integers(0, 24 * 60 - 1).map(lambda m: time(m // 60, m % 60))


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    zone=ZONES,
    start=MINUTES,
    end=MINUTES,
)
def test_next_allowed_is_the_first_instant_outside_the_window(now, zone, start, end):
    tz, window = ZoneInfo(zone), quiet.QuietHours(start, end)
    allowed = quiet.next_allowed(now, tz, window)
    assert allowed >= now
    assert allowed - now <= timedelta(hours=26)
    assert not window.contains(allowed.astimezone(tz).time())
    if allowed > now:  # minimal: a second earlier it was still quiet
        assert window.contains((allowed - timedelta(seconds=1)).astimezone(tz).time())


def test_opt_out_wins_even_for_critical_notifications():
    request = make_request(channels=("sms", "email")).model_copy(update={"critical": True})
    plan = flows.plan_delivery(
        request,
        now=datetime(2026, 11, 30, 11, tzinfo=UTC),
        recipient=person(opted_out=frozenset({Channel.SMS})),
    )
    assert plan.channels == (Channel.EMAIL,)
    everything = person(opted_out=frozenset({Channel.SMS, Channel.EMAIL}))
    plan = flows.plan_delivery(
        request, now=datetime(2026, 11, 30, 11, tzinfo=UTC), recipient=everything
    )
    assert (plan.final, plan.detail) == (Status.SUPPRESSED, "opted out")


def test_the_citizens_channel_order_wins_over_the_requests():
    plan = flows.plan_delivery(
        make_request(channels=("sms", "email")),
        now=datetime(2026, 11, 30, 11, tzinfo=UTC),
        recipient=person(order=(Channel.EMAIL,)),
    )
    assert plan.channels == (Channel.EMAIL, Channel.SMS)


def test_quiet_hours_defer_and_critical_bypasses_them():
    night = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
    plan = flows.plan_delivery(make_request(), now=night, recipient=person())
    assert (plan.defer_until, plan.detail) == (datetime(2026, 11, 30, 7, tzinfo=UTC), "quiet hours")
    urgent = make_request().model_copy(update={"critical": True})
    assert flows.plan_delivery(urgent, now=night, recipient=person()).channels


def test_a_deferral_past_not_after_is_suppressed_as_expired():
    night = datetime(2026, 11, 29, 22, 0, tzinfo=UTC)
    request = make_request(not_after=night + timedelta(hours=1))
    plan = flows.plan_delivery(request, now=night, recipient=person())
    assert plan.final is Status.SUPPRESSED and plan.detail.startswith("expired")


def test_expired_requests_are_suppressed():
    now = datetime(2026, 11, 30, 11, tzinfo=UTC)
    plan = flows.plan_delivery(make_request(not_after=now - timedelta(seconds=1)), now=now)
    assert (plan.final, plan.detail) == (Status.SUPPRESSED, "expired")


def test_over_the_cap_sms_falls_to_email_or_defers_to_the_next_morning():
    noon = datetime(2026, 11, 30, 11, tzinfo=UTC)
    both = flows.plan_delivery(
        make_request(), now=noon, recipient=person(), sms_sent_today=3, sms_daily_cap=3
    )
    assert both.channels == (Channel.EMAIL,) and "cap" in (both.detail or "")
    only_sms = flows.plan_delivery(
        make_request(channels=("sms",)),
        now=noon,
        recipient=person(),
        sms_sent_today=3,
        sms_daily_cap=3,
    )
    assert only_sms.defer_until == datetime(2026, 12, 1, 7, tzinfo=UTC)  # next day, after 08:00
    assert "daily SMS cap" in (only_sms.detail or "")
    under = flows.plan_delivery(
        make_request(channels=("sms",)),
        now=noon,
        recipient=person(),
        sms_sent_today=2,
        sms_daily_cap=3,
    )
    assert under.channels == (Channel.SMS,)
    critical = make_request(channels=("sms",)).model_copy(update={"critical": True})
    assert flows.plan_delivery(
        critical, now=noon, recipient=person(), sms_sent_today=9, sms_daily_cap=3
    ).channels == (Channel.SMS,)


def test_twilio_21610_records_an_sms_opt_out():
    assert flows.opts_out(Channel.SMS, "21610")
    assert not flows.opts_out(Channel.SMS, "21211")


@pytest.mark.parametrize(
    ("body", "action", "answers"),
    [
        ("STOP", keywords.Action.OPT_OUT, False),
        (" baja ", keywords.Action.OPT_OUT, True),
        ("Cancelar.", keywords.Action.OPT_OUT, True),
        ("start", keywords.Action.OPT_IN, False),
        ("ALTA", keywords.Action.OPT_IN, True),
        ("ayuda", keywords.Action.HELP, True),
        ("HELP", keywords.Action.HELP, True),
        ("\tStop!\n", keywords.Action.OPT_OUT, False),
        ("Bajá", keywords.Action.OPT_OUT, True),
        ("\u00a0CANCELÁR ", keywords.Action.OPT_OUT, True),
        ("Álta", keywords.Action.OPT_IN, True),
        ("¡Ayúda!", keywords.Action.HELP, True),
        ("help?", keywords.Action.HELP, True),
    ],
)
def test_sms_keywords(body, action, answers):
    found = keywords.classify(body)
    assert found is not None and found.action is action
    assert (found.answer is not None) is answers


def test_other_sms_are_not_keywords():
    assert keywords.classify("hola, ¿qué tal?") is None
    assert keywords.classify("stop it now") is None  # only a message that is the keyword
    assert keywords.classify("") is None


def test_delivered_is_never_moved_back():
    assert attempt_transition("delivered", Report(delivered=False)) is None
    assert attempt_transition("sent", Report(delivered=True)) == "delivered"
    assert attempt_transition("failed", Report(delivered=False)) is None
    assert notification_transition("delivered", Report(delivered=False)) is None
    assert notification_transition("sent", Report(delivered=False)) is Status.FAILED


@pytest.mark.parametrize(
    "doc",
    [
        {"channels": ["sms", "fax"]},
        {"opt_out": ["sms", "sms"]},
        {"quiet_hours": {"start": "25:00", "end": "08:00"}},
        {"timezone": "Mars/Olympus"},
        {"phone": "612345678"},
        {"email": "not-an-email"},
        {"locale": "??"},
    ],
)
def test_invalid_preferences_are_refused(doc):
    with pytest.raises(ValueError):
        PreferencesDoc.model_validate(doc)


def test_the_token_bucket_waits_for_a_token():
    clock = [0.0]
    waits: list[float] = []
    bucket = TokenBucket(2.0, burst=1, clock=lambda: clock[0], sleep=waits.append)
    bucket.acquire()
    bucket.acquire()
    assert waits == [pytest.approx(0.5)]


@pytest.mark.parametrize(
    ("event", "fallback", "reason"),
    [
        ({"event": "bounce", "reason": "550 no such user", "status": "5.1.1"}, True, "bounced"),
        ({"event": "dropped", "reason": "Bounced Address"}, True, "dropped"),
        ({"event": "spamreport"}, False, "reported as spam"),
    ],
)
def test_sendgrid_bounce_dropped_and_spam_fail_the_email_with_why(event, fallback, reason):
    report = sendgrid_events.event_report(event)
    assert report is not None and report.delivered is False and report.fallback is fallback
    assert report.reason is not None and report.reason.startswith(reason)
    assert event.get("reason", reason) in report.reason


def test_sendgrid_deferred_processed_and_opens_change_nothing():
    for kind in ("processed", "deferred", "open", "click"):
        assert sendgrid_events.event_report({"event": kind}) is None
    assert sendgrid_events.event_report({"event": "delivered"}) == Report(delivered=True)


def test_twilio_status_callbacks_map_to_reports():
    assert twilio_events.status_report("delivered", "") == Report(delivered=True)
    undelivered = twilio_events.status_report("undelivered", "30003")
    assert undelivered == Report(
        delivered=False, code="30003", reason="unreachable destination handset"
    )
    assert twilio_events.status_report("FAILED", "") == Report(delivered=False, reason="failed")
    for status in ("queued", "sending", "sent", "accepted", "read"):
        assert twilio_events.status_report(status, "") is None
