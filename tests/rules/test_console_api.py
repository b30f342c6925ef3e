"""The rules API extensions the staff console uses: pending reminders per rule, CEL errors
placed by line and column, checks and tries of unsaved documents, the reasons reminders move,
live previews of unsaved templates, versions with diffs and restore, and the audit's filters."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session
from starlette.testclient import TestClient

from common.db import make_engine
from common.db import migrate as migrate_database
from schemas.notifications import NotificationRequest
from services.rules import timers
from services.rules.config import Settings
from services.rules.main import MIGRATIONS, VERSION_TABLE, create_app, migrate
from tests.rules.factories import ADMIN, event_body, rule_body, template_body

SCHEDULE = {
    "relative_to": "data.expires_on",
    "offsets": ["-P30D", "-P7D", "-P1D"],
    "at": "09:00",
    "calendar": "ES",
}


@pytest.fixture
def client(database_url: str) -> Iterator[TestClient]:
    settings = Settings(
        database_url=database_url,
        env="development",
        admin_key=None,
        kafka_bootstrap="127.0.0.1:1",
        rules_consumer_enabled=False,
        default_locale="es",
        default_timezone="Europe/Madrid",
    )
    migrate(settings)
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def put(client: TestClient, kind: str, body: dict[str, Any], **headers: str) -> Any:
    response = client.put(f"/v1/{kind}/{body['id']}", json=body, headers={**ADMIN, **headers})
    assert response.status_code == 200, response.text
    return response.json()


def problem_errors(response: Any) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    errors: list[dict[str, Any]] = response.json()["errors"]
    return errors


def store_timers(client: TestClient, rule_id: str, count: int, *, state: str = "pending") -> None:
    moment = datetime(2026, 11, 29, 10, tzinfo=UTC)
    with client.app.state.sessions() as db, db.begin():  # type: ignore[attr-defined]
        for _ in range(count):
            request = NotificationRequest.model_validate(
                {
                    "id": str(uuid.uuid4()),
                    "event": {"source": "dgt", "id": "e1", "type": "t", "subject": "s/1"},
                    "rule": {"id": rule_id, "version": 1},
                    "citizen": {"id": "ES-1"},
                    "channels": ["sms"],
                    "content": {"sms": {"body": "hola"}},
                    "locale": "es",
                    "scheduled_for": "2027-06-11T07:00:00Z",
                    "step": "-P1D",
                }
            )
            row = timers.timer_row(request, subject="s/1", event_time=moment, now=moment)
            row.state = state
            db.add(row)


def test_rules_list_their_pending_reminders_and_last_change(client):
    put(client, "templates", template_body())
    put(client, "rules", rule_body(), **{"Avisa-Actor": "ana@example.es"})
    put(client, "rules", rule_body(id="otra-regla"))
    store_timers(client, "licencia-aviso", 3)
    store_timers(client, "licencia-aviso", 2, state="fired")
    store_timers(client, "otra-regla", 1)

    listed = client.get("/v1/rules", headers=ADMIN).json()["items"]

    assert [(r["id"], r["pending_reminders"]) for r in listed] == [
        ("licencia-aviso", 3),
        ("otra-regla", 1),
    ]
    assert listed[0]["updated_by"] == "admin:ana@example.es"
    assert listed[0]["updated_at"].startswith(str(datetime.now(UTC).year))
    one = client.get("/v1/rules/licencia-aviso", headers=ADMIN).json()
    assert one["pending_reminders"] == 3  # what disabling it would cancel
    assert client.get("/v1/rules/nope", headers=ADMIN).status_code == 404


def test_a_bad_condition_is_placed_by_line_and_column(client):
    put(client, "templates", template_body())
    body = rule_body(when='data.category == "B" &&\n  citizen.id == "x"')
    response = client.put("/v1/rules/licencia-aviso", json=body, headers=ADMIN)
    [error] = problem_errors(response)
    assert (error["path"], error["line"], error["column"]) == ("when", 2, 3)
    assert "line 2, column 3" in error["message"]
    syntax = client.put(
        "/v1/rules/licencia-aviso", json=rule_body(when="data.category =="), headers=ADMIN
    )
    [error] = problem_errors(syntax)
    assert (error["line"], error["column"]) == (1, 17)
    other = client.put("/v1/rules/licencia-aviso", json=rule_body(template="nope"), headers=ADMIN)
    assert "line" not in problem_errors(other)[0]  # only placed where there is a place


def test_a_rule_is_checked_without_being_saved(client):
    put(client, "templates", template_body())
    fresh = client.post("/v1/rules/licencia-aviso/check", json=rule_body(), headers=ADMIN)
    assert fresh.status_code == 200, fresh.text
    assert fresh.json()["version"] == 1 and fresh.json()["changed"] is True
    assert fresh.json()["document"]["critical"] is False  # the stored form, defaults spelled out
    assert client.get("/v1/rules/licencia-aviso", headers=ADMIN).status_code == 404
    assert client.get("/v1/audit", headers=ADMIN).json()["items"][0]["kind"] == "template"

    put(client, "rules", rule_body())
    store_timers(client, "licencia-aviso", 2)
    same = client.post("/v1/rules/licencia-aviso/check", json=rule_body(), headers=ADMIN).json()
    assert (same["version"], same["changed"], same["would_cancel"]) == (1, False, 0)
    disabling = client.post(
        "/v1/rules/licencia-aviso/check", json=rule_body(enabled=False), headers=ADMIN
    ).json()
    assert (disabling["version"], disabling["would_cancel"]) == (2, 2)

    bad = client.post(
        "/v1/rules/licencia-aviso/check", json=rule_body(when="data.x =="), headers=ADMIN
    )
    assert problem_errors(bad)[0]["path"] == "when"
    template = client.post(
        "/v1/templates/licencia-renovacion/check",
        json=template_body(es={"sms": "Hola {{ citizen.nmae }}"}),
        headers=ADMIN,
    )
    assert "locales.es.sms" in {e["path"] for e in problem_errors(template)}
    fine = client.post(
        "/v1/templates/licencia-renovacion/check", json=template_body(), headers=ADMIN
    ).json()
    assert (fine["version"], fine["changed"]) == (1, False)


def test_reminders_say_their_zone_and_why_they_moved(client):
    put(client, "templates", template_body())
    put(client, "rules", rule_body(id="licencia-renovacion", schedule=SCHEDULE))
    event = event_body(expires_on="2027-06-14")  # a Monday: -P1D lands on Sunday 13

    tried = client.post("/v1/rules/licencia-renovacion/test", json=event, headers=ADMIN).json()

    planned = {p["step"]: p for p in tried["notifications"]}
    assert planned["-P1D"]["zone"] == "Europe/Madrid"
    assert planned["-P1D"]["local_time"] == "2027-06-11T09:00:00+02:00"
    assert planned["-P1D"]["moves"] == [
        {"from": "2027-06-13", "to": "2027-06-12", "reason": "weekend", "holiday": None},
        {"from": "2027-06-12", "to": "2027-06-11", "reason": "weekend", "holiday": None},
    ]
    assert planned["-P7D"]["moves"] == []  # Monday 7 June is a business day
    epiphany = event_body(expires_on="2027-01-13")  # -P7D is 6 January
    tried = client.post("/v1/rules/licencia-renovacion/test", json=epiphany, headers=ADMIN)
    [move] = {p["step"]: p for p in tried.json()["notifications"]}["-P7D"]["moves"]
    assert move == {"from": "2027-01-06", "to": "2027-01-05", "reason": "holiday",
                    "holiday": "Epifanía del Señor"}  # fmt: skip
    english = client.post(
        "/v1/rules/licencia-renovacion/test?language=en", json=epiphany, headers=ADMIN
    )
    [move] = {p["step"]: p for p in english.json()["notifications"]}["-P7D"]["moves"]
    assert move["holiday"] == "Epiphany"
    bad = client.post(
        "/v1/rules/licencia-renovacion/test?language=<b>", json=epiphany, headers=ADMIN
    )
    assert problem_errors(bad)[0]["path"] == "language"


def test_an_unsaved_rule_is_tried_against_an_event(client):
    put(client, "templates", template_body())
    rule = rule_body(id="borrador", schedule=SCHEDULE, when='data.category == "B"')
    body = {"rule": rule, "event": event_body(category="B", expires_on="2027-06-14")}

    tried = client.post("/v1/rules/test", json=body, headers=ADMIN)

    assert tried.status_code == 200, tried.text
    result = tried.json()
    assert (result["rule"], result["version"], result["matches"]) == ("borrador", 1, True)
    assert [p["step"] for p in result["notifications"]] == ["-P30D", "-P7D", "-P1D"]
    assert "14 de junio de 2027" in result["notifications"][0]["content"]["sms"]["body"]
    assert client.get("/v1/rules/borrador", headers=ADMIN).status_code == 404  # not saved

    no = {"rule": rule, "event": event_body(category="C")}
    assert (
        "condition is false"
        in client.post("/v1/rules/test", json=no, headers=ADMIN).json()["reason"]
    )
    draft_template = template_body(es={"sms": "Borrador para {{ citizen.name }}"})
    draft_template["locales"]["es"].update(email_subject="Asunto", email_text="Texto")
    with_template = {"rule": {**rule, "schedule": None}, "event": body["event"],
                     "template": draft_template}  # fmt: skip
    [now] = client.post("/v1/rules/test", json=with_template, headers=ADMIN).json()["notifications"]
    assert now["content"]["sms"]["body"] == "Borrador para Ana"

    broken = {"rule": {**rule, "when": "data.category =="}, "event": body["event"]}
    [error] = problem_errors(client.post("/v1/rules/test", json=broken, headers=ADMIN))
    assert (error["path"], error["line"], error["column"]) == ("rule.when", 1, 17)
    store_timers(client, "borrador", 1)  # subject s/1, source dgt, stored before the event
    renewal = {
        "rule": {**rule, "cancel_on": ["license.renewed"]},
        "event": event_body(type="license.renewed", subject="s/1", time="2026-12-01T10:00:00Z"),
    }
    would = client.post("/v1/rules/test", json=renewal, headers=ADMIN).json()
    assert [c["rule"] for c in would["cancels"]] == ["borrador"]  # the draft's own cancel_on
    bad_event = {"rule": rule, "event": event_body(citizen={"phone": "612"})}
    errors = problem_errors(client.post("/v1/rules/test", json=bad_event, headers=ADMIN))
    assert "event.data.citizen.phone" in {e["path"] for e in errors}
    no_template = {"rule": {**rule, "template": "nope"}, "event": body["event"]}
    errors = problem_errors(client.post("/v1/rules/test", json=no_template, headers=ADMIN))
    assert {e["path"] for e in errors} == {"rule.template"}


def test_an_unsaved_template_is_previewed_field_by_field(client):
    sms = "Hola {{ citizen.name }}, tu cita en Tráfico es el {{ data.expires_on | fecha }}"
    template = template_body(
        es={
            "sms": sms,
            "email_subject": "Cita {{ data.expires_on | fecha }}",
            "email_text": "Hola {{ citizen.nmae }} y {{ data.oficina.nombre }}",
        }
    )
    body = {"template": template, "event": event_body()}

    response = client.post("/v1/templates/preview", json=body, headers=ADMIN)

    assert response.status_code == 200, response.text
    preview = response.json()
    es = preview["locales"]["es"]
    assert es["sms"]["body"] == "Hola Ana, tu cita en Tráfico es el 15 de enero de 2027"
    assert (es["sms"]["encoding"], es["sms"]["segments"]) == ("UCS-2", 1)
    assert es["sms"]["ucs2_characters"] == ["á"]
    assert es["email"]["subject"] == "Cita 15 de enero de 2027"
    assert es["email"]["text"] is None  # this text failed; the others still show
    assert [e["path"] for e in preview["errors"]] == ["locales.es.email_text"]
    assert preview["undefined"] == [
        {"path": "locales.es.email_text", "variable": "citizen.nmae"},
        {"path": "locales.es.email_text", "variable": "data.oficina"},
    ]
    assert client.get("/v1/templates/licencia-renovacion", headers=ADMIN).status_code == 404


def test_a_template_preview_knows_the_notification_variables(client):
    template = template_body(es={"sms": "Aviso {{ notification.step }} {{ notification.nada }}"})
    body = {"template": template, "event": event_body()}
    preview = client.post("/v1/templates/preview", json=body, headers=ADMIN).json()
    assert preview["undefined"] == [{"path": "locales.es.sms", "variable": "notification.nada"}]
    assert preview["locales"]["es"]["sms"] is None


def test_a_template_preview_without_an_event_uses_a_sample(client):
    template = template_body(es={"sms": "Hola {{ citizen.name }} {{ data.anything }}"})
    preview = client.post("/v1/templates/preview", json={"template": template}, headers=ADMIN)
    assert preview.status_code == 200, preview.text
    assert preview.json()["locales"]["es"]["sms"]["body"].startswith("Hola Ana")
    assert preview.json()["errors"] == [] and preview.json()["undefined"] == []


def test_a_draft_that_is_not_a_template_is_422(client):
    not_template = {"template": {"locales": "es"}, "event": event_body()}
    errors = problem_errors(client.post("/v1/templates/preview", json=not_template, headers=ADMIN))
    assert errors[0]["path"].startswith("template.locales")
    bad_tag = {"template": template_body(xx_bad={"sms": "hola"}), "event": event_body()}
    answer = client.post("/v1/templates/preview", json=bad_tag, headers=ADMIN).json()
    assert [e["path"] for e in answer["errors"]] == ["locales.xx_bad"]


def test_versions_are_read_one_by_one_compared_and_restored(client):
    put(client, "templates", template_body())
    put(client, "rules", rule_body(description="primera"))
    put(client, "rules", rule_body(description="segunda", channels=["sms"]))
    put(client, "rules", rule_body(description="tercera", enabled=False))

    second = client.get("/v1/rules/licencia-aviso/versions/2", headers=ADMIN).json()
    assert second["document"]["description"] == "segunda"
    assert client.get("/v1/rules/licencia-aviso/versions/9", headers=ADMIN).status_code == 404
    diff = client.get("/v1/rules/licencia-aviso/diff?from=1&to=3", headers=ADMIN).json()
    assert {c["path"]: (c["op"], c["old"], c["new"]) for c in diff["changes"]} == {
        "description": ("changed", "primera", "tercera"),
        "enabled": ("changed", True, False),
    }
    assert "\n-description: primera\n" in diff["unified"]
    assert "\n+description: tercera\n" in diff["unified"]
    latest = client.get("/v1/rules/licencia-aviso/diff?from=2", headers=ADMIN).json()
    assert latest["to_version"] == 3
    assert "channels" in {c["path"] for c in latest["changes"]}

    restored = client.post(
        "/v1/rules/licencia-aviso/versions/1/restore",
        headers={**ADMIN, "Avisa-Actor": "ana@example.es"},
    )
    assert restored.json() == {"id": "licencia-aviso", "version": 4, "changed": True}
    current = client.get("/v1/rules/licencia-aviso", headers=ADMIN).json()
    assert current["document"]["description"] == "primera" and current["version"] == 4
    [entry] = client.get("/v1/audit?limit=1", headers=ADMIN).json()["items"]
    assert (entry["action"], entry["person"], entry["version"]) == ("restore", "ana@example.es", 4)
    template = client.get("/v1/templates/licencia-renovacion/versions/1", headers=ADMIN)
    assert template.json()["document"]["locales"]["es"]["sms"]
    unchanged = client.get("/v1/templates/licencia-renovacion/diff?from=1&to=1", headers=ADMIN)
    assert unchanged.json()["changes"] == [] and unchanged.json()["unified"] == ""


def test_a_restore_that_no_longer_fits_is_422(client):
    put(client, "templates", template_body())
    put(client, "templates", template_body(id="otra"))
    put(client, "rules", rule_body(template="otra"))
    put(client, "rules", rule_body())
    assert client.delete("/v1/rules/licencia-aviso", headers=ADMIN).status_code == 204
    assert client.delete("/v1/templates/otra", headers=ADMIN).status_code == 204
    response = client.post("/v1/rules/licencia-aviso/versions/1/restore", headers=ADMIN)
    assert {e["path"] for e in problem_errors(response)} == {"template"}
    deleted_back = client.post("/v1/rules/licencia-aviso/versions/2/restore", headers=ADMIN)
    assert deleted_back.json()["version"] == 4  # a deleted rule comes back as a new version


def test_the_audit_is_filtered_by_object_and_person_with_each_diff(client):
    lucia = {"Avisa-Actor": "lucia@example.es"}
    put(client, "templates", template_body(), **lucia)
    put(client, "rules", rule_body(), **lucia)
    put(client, "rules", rule_body(description="cambiada"), **{"Avisa-Actor": "pablo"})
    put(client, "rules", rule_body(id="otra-regla"), **lucia)

    by_object = client.get("/v1/audit?object=rule/licencia-aviso", headers=ADMIN).json()
    assert [(e["version"], e["person"]) for e in by_object["items"]] == [
        (2, "pablo"),
        (1, "lucia@example.es"),
    ]
    update, create = by_object["items"]
    assert update["changes"] == [
        {"path": "description", "op": "changed", "old": "", "new": "cambiada"}
    ]
    assert {c["path"] for c in create["changes"]} >= {"id", "on", "channels"}
    assert all(c["op"] == "added" for c in create["changes"])

    by_person = client.get("/v1/audit?actor=lucia@example.es", headers=ADMIN).json()["items"]
    assert [e["object_id"] for e in by_person] == ["otra-regla", "licencia-aviso",
                                                   "licencia-renovacion"]  # fmt: skip
    recorded = client.get("/v1/audit?actor=admin:pablo", headers=ADMIN).json()["items"]
    assert [e["version"] for e in recorded] == [2]

    first = client.get("/v1/audit?limit=3", headers=ADMIN).json()
    assert len(first["items"]) == 3 and first["next_before"] == first["items"][-1]["seq"]
    rest = client.get(f"/v1/audit?limit=3&before={first['next_before']}", headers=ADMIN).json()
    assert [e["object_id"] for e in rest["items"]] == ["licencia-renovacion"]
    assert rest["next_before"] is None
    bad = client.get("/v1/audit?object=licencia-aviso", headers=ADMIN)
    assert problem_errors(bad) == [
        {"path": "object", "message": "expected rule/<id> or template/<id>"}
    ]


@pytest.mark.parametrize(
    "path",
    [
        "/v1/audit?before=99999999999999999999",
        "/v1/audit?object=rule/" + "x" * 200,
        "/v1/audit?actor=" + "a" * 300,
        "/v1/rules/x/versions/99999999999",
        "/v1/rules/x/diff?from=0",
        "/v1/rules/x/diff",
    ],
)
def test_hostile_queries_are_422_problems(client, path):
    response = client.get(path, headers=ADMIN)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"


def test_large_but_valid_numbers_find_nothing(client):
    assert client.get("/v1/audit?before=2147483647", headers=ADMIN).json()["items"] == []
    assert client.get("/v1/rules/x/versions/2147483647", headers=ADMIN).status_code == 404
    assert client.get("/v1/rules/x/diff?from=1&to=2", headers=ADMIN).status_code == 404


def test_pending_counts_read_the_pending_index_alone(tmp_path):
    """Counting must not grow with every timer ever fired: on SQLite (no statistics to guide
    it) the count's statement reads the partial index of pending timers, covering: never the
    table, nor the index of every timer's rule."""
    url = f"sqlite:///{tmp_path / 'plan.db'}"
    migrate_database(url, script_location=MIGRATIONS, version_table=VERSION_TABLE)
    engine = make_engine(url)
    statements: list[tuple[str, Any]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def seen(_conn, _cursor, statement, parameters, _context, _many):  # type: ignore[no-untyped-def]
        statements.append((statement, parameters))

    try:
        with Session(engine) as db:
            for rule_id in (None, "licencia-aviso"):
                statements.clear()
                assert timers.pending_counts(session=db, rule_id=rule_id) == {}
                [(statement, parameters)] = statements
                plan = db.connection().exec_driver_sql(
                    f"EXPLAIN QUERY PLAN {statement}", parameters
                )
                details = " ".join(str(row[-1]) for row in plan)
                assert "COVERING INDEX ix_rules_timers_pending" in details, details
    finally:
        engine.dispose()
