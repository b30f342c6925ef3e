"""The citizen preference page: its tokens, the link in every email, the page and its form
(CSRF, validation, rate limit), and topic opt-outs applied by the notifier."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest

from schemas.notifications import PREFERENCES_URL_PLACEHOLDER, Channel, Status
from services.notifier import citizen_choices, citizen_links, citizen_page, flows, tokens
from services.notifier.preferences import Recipient
from tests.notifier import test_citizens
from tests.notifier.factories import make_request
from tests.notifier.test_citizens import preferences
from tests.notifier.test_delivery import final, make_settings, running, send, status_changes

NOW = datetime(2026, 12, 8, 12, 0, tzinfo=UTC)
KEYS = tokens.TokenKeys(b"k" * 32)
NINETY_DAYS = timedelta(days=90)
FORM_TOKEN = re.compile(r'name="form_token" value="([^"]+)"')
LINK = re.compile(r"(http://127\.0\.0\.1:8003/preferences/[A-Za-z0-9._-]+)")

notifier = test_citizens.notifier  # the fixture


def page_token(citizen_id: str = "ES-1", *, keys=KEYS, now=NOW) -> str:
    return tokens.sign(keys, purpose=tokens.PREFERENCES, subject=citizen_id, now=now)


def refusal(token: str, *, now=NOW) -> tokens.Refusal:
    with pytest.raises(tokens.TokenRefused) as refused:
        tokens.verify(KEYS, token, purpose=tokens.PREFERENCES, max_age=NINETY_DAYS, now=now)
    return refused.value.reason


def test_a_preferences_token_names_its_citizen_until_it_expires():
    token = page_token("ES-1")
    claims = tokens.verify(
        KEYS, token, purpose=tokens.PREFERENCES, max_age=NINETY_DAYS, now=NOW + timedelta(days=89)
    )
    assert claims.subject == "ES-1"
    assert refusal(token, now=NOW + timedelta(days=91)) is tokens.Refusal.EXPIRED


def test_a_tampered_token_or_one_moved_to_another_citizen_is_refused():
    version, payload, mac = page_token("ES-1").split(".")
    other_payload = page_token("ES-2").split(".")[1]
    assert refusal(f"{version}.{other_payload}.{mac}") is tokens.Refusal.INVALID
    assert refusal(f"{version}.{payload}.{mac[:-2]}AA") is tokens.Refusal.INVALID
    unsubscribe = tokens.sign(KEYS, purpose=tokens.UNSUBSCRIBE, subject="ES-1", now=NOW)
    assert refusal(unsubscribe) is tokens.Refusal.INVALID  # another purpose's token


def test_an_opted_out_topic_is_suppressed_unless_critical():
    request = make_request().model_copy(update={"topic": "citas"})
    person = Recipient(
        citizen_id="ES-12345678Z",
        phone="+34600111222",
        email="ana@example.es",
        locale="es",
        zone=ZoneInfo("Europe/Madrid"),
        quiet=None,
        opted_out_topics=frozenset({"citas"}),
    )
    plan = flows.plan_delivery(request, now=NOW, recipient=person)
    assert (plan.final, plan.detail) == (Status.SUPPRESSED, "topic opted out")
    critical = request.model_copy(update={"critical": True})
    assert flows.plan_delivery(critical, now=NOW, recipient=person).channels
    other = request.model_copy(update={"topic": "renovaciones"})
    assert flows.plan_delivery(other, now=NOW, recipient=person).channels


def test_emails_end_with_the_link_and_placeholders_become_it():
    url = "https://avisa.example/preferences/t"
    text = citizen_links.email_text(f"Mira {PREFERENCES_URL_PLACEHOLDER}", url, "en")
    assert text == f"Mira {url}\n\nManage my notifications: {url}\n"
    html = citizen_links.email_html("<html><body><p>Hola</p></body></html>", url, "es-ES")
    assert html == (
        f'<html><body><p>Hola</p><p><a href="{url}">Gestionar mis avisos</a></p></body></html>'
    )


def test_the_form_turns_off_what_is_unticked_and_stop_all_turns_off_everything():
    form = {"channel": ["email"], "first": ["email"], "topic": ["citas"], "language": ["en"]}
    choices = citizen_choices.parse_form(form, topics=["citas", "renovaciones"])
    assert choices.order == (Channel.EMAIL, Channel.SMS)
    assert (set(choices.off), set(choices.topics_off)) == ({Channel.SMS}, {"renovaciones"})
    assert (choices.language, choices.quiet) == ("en", None)
    stop = citizen_choices.parse_form({**form, "stop_all": ["yes"]}, topics=["citas"])
    assert (set(stop.off), set(stop.topics_off)) == (set(Channel), {"citas"})
    with pytest.raises(citizen_choices.FormInvalid) as invalid:
        citizen_choices.parse_form({**form, "quiet_start": ["25:00"]}, topics=[])
    assert invalid.value.field_name == "quiet_start"


def test_the_rate_limit_allows_a_budget_a_minute_per_token():
    clock = [0.0]
    limit = citizen_page.RateLimit(2, clock=lambda: clock[0])
    assert [limit.allow("a"), limit.allow("a"), limit.allow("a"), limit.allow("b")] == [
        True,
        True,
        False,
        True,
    ]
    clock[0] = 61.0
    assert limit.allow("a")


def delivered(settings, request):
    send(settings, request)
    changes = status_changes(settings, lambda cs: final(cs, request.id))
    return [c for c in changes if c.notification_id == request.id][-1]


def topical(topic: str, *, channels=("sms", "email"), critical=False, **kwargs):
    labels = {"citas": {"es": "Citas", "en": "Appointments"}}.get(topic, {"es": topic.title()})
    return make_request(channels=channels, **kwargs).model_copy(
        update={"topic": topic, "topic_labels": labels, "critical": critical}
    )


def test_the_email_link_opens_the_page_and_saving_turns_a_topic_off(notifier, providers):
    client, settings = notifier
    assert delivered(settings, topical("citas", channels=("email",))).status is Status.SENT
    [mail] = providers.sendgrid_requests()
    text, html = (c["value"] for c in mail["body"]["content"])
    url = LINK.search(text).group(1)  # type: ignore[union-attr]
    assert "Gestionar mis avisos" in text and f'href="{url}"' in html
    path = url.removeprefix(settings.public_url)

    page = client.get(path)
    assert page.status_code == 200 and 'lang="es"' in page.text
    assert "Referrer-Policy" in page.headers and "frame-ancestors 'none'" in page.text + str(
        page.headers
    )
    assert "Guardar preferencias" in page.text and ">Citas<" in page.text
    english = client.get(f"{path}?lang=en")
    assert "Save preferences" in english.text and ">Appointments<" in english.text

    form = {"channel": ["email"], "first": ["email"], "language": "en", "quiet_start": ""}
    assert client.post(path, data=form).status_code == 403  # no form token: nothing saved
    assert preferences(client)["changed_by"] is None
    form["form_token"] = unescape(FORM_TOKEN.search(page.text).group(1))  # type: ignore[union-attr]
    saved = client.post(path, data=form)
    assert saved.status_code == 200 and "Preferences saved" in saved.text

    stored = preferences(client)
    assert stored["changed_by"] == "citizen" and stored["opt_out_topics"] == ["citas"]
    assert (stored["channels"], stored["opt_out"], stored["locale"]) == (
        ["email", "sms"],
        ["sms"],
        "en",
    )
    suppressed = delivered(settings, topical("citas"))
    assert (suppressed.status, suppressed.detail) == (Status.SUPPRESSED, "topic opted out")
    critical = delivered(settings, topical("citas", critical=True, channels=("email",)))
    assert critical.status is Status.SENT
    other = delivered(settings, topical("renovaciones"))
    assert (other.status, other.channel) == (Status.SENT, Channel.EMAIL)


def test_a_bad_field_shows_the_form_again_naming_it(notifier):
    client, settings = notifier
    token = page_token("ES-12345678Z", keys=settings.token_keys(), now=datetime.now(UTC))
    path = f"/preferences/{token}"
    page = client.get(path)
    token = unescape(FORM_TOKEN.search(page.text).group(1))  # type: ignore[union-attr]
    answer = client.post(path, data={"form_token": token, "quiet_start": "25:00"})
    assert answer.status_code == 400 and 'role="alert"' in answer.text
    assert 'href="#quiet_start"' in answer.text
    assert preferences(client)["changed_by"] is None


def test_a_tampered_or_expired_link_explains_how_to_get_a_new_one(notifier):
    client, settings = notifier
    keys = settings.token_keys()
    token = page_token("ES-12345678Z", keys=keys, now=datetime.now(UTC))
    tampered = client.get(f"/preferences/{token[:-2]}{'AA' if not token.endswith('AA') else 'BB'}")
    assert tampered.status_code == 404 and "enlace nuevo" in tampered.text
    old = page_token("ES-12345678Z", keys=keys, now=datetime.now(UTC) - timedelta(days=91))
    expired = client.get(f"/preferences/{old}?lang=en")
    assert expired.status_code == 410 and "This link has expired" in expired.text
    assert client.post(f"/preferences/{old}", data={}).status_code == 410


@pytest.fixture
def strict_notifier(broker, topic_prefix, database_url, tmp_path):
    settings = make_settings(
        broker, topic_prefix, database_url, tmp_path, preferences_rate_per_minute=2
    )
    with running(settings) as client:
        yield client, settings


def test_a_link_used_too_often_gets_a_429_page(strict_notifier):
    client, settings = strict_notifier
    token = page_token("ES-12345678Z", keys=settings.token_keys(), now=datetime.now(UTC))
    answers = [client.get(f"/preferences/{token}").status_code for _ in range(3)]
    assert answers == [200, 200, 429]
    limited = client.post(f"/preferences/{token}", data={})
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "60"
    assert "Demasiados intentos" in limited.text
    other = page_token("ES-2", keys=settings.token_keys(), now=datetime.now(UTC))
    assert client.get(f"/preferences/{other}").status_code == 200  # the budget is per link


def test_the_page_says_sms_stop_holds_until_start(notifier):
    client, settings = notifier
    delivered(settings, topical("citas", channels=("email",)))
    assert test_citizens.twilio_post(
        client, test_citizens.INBOUND, test_citizens.inbound("+34600111222", "STOP")
    ).is_success
    token = page_token("ES-12345678Z", keys=settings.token_keys(), now=datetime.now(UTC))
    page = client.get(f"/preferences/{token}?lang=en")
    assert "You replied STOP to our text messages: reply START" in page.text


def test_critical_notices_are_listed_as_not_optional_and_get_no_checkbox(notifier):
    client, settings = notifier
    delivered(settings, topical("plazos", critical=True, channels=("email",)))
    delivered(settings, topical("citas", channels=("email",)))
    token = page_token("ES-12345678Z", keys=settings.token_keys(), now=datetime.now(UTC))
    page = client.get(f"/preferences/{token}").text
    cannot = page.split("Avisos que no se pueden desactivar", 1)[1]
    assert "<li>Plazos</li>" in cannot and 'value="plazos"' not in page
    assert 'value="citas"' in page
