import re
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from schemas.notifications import NotificationRequest
from services.rules import timers
from services.rules.main import create_app, migrate
from tests.rules.factories import ADMIN, event_body, rule_body, template_body


def put(client, kind, body, object_id=None, **headers):
    object_id = object_id or body["id"]
    return client.put(f"/v1/{kind}/{object_id}", json=body, headers={**ADMIN, **headers})


def errors_of(response):
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    return {e["path"]: e["message"] for e in response.json()["errors"]}


def test_create_read_update_delete_with_versions_and_audit(client):
    assert put(client, "templates", template_body()).json() == {
        "id": "licencia-renovacion",
        "version": 1,
        "changed": True,
    }
    created = put(client, "rules", rule_body(), **{"Avisa-Actor": "lucia"})
    assert created.json() == {"id": "licencia-aviso", "version": 1, "changed": True}

    got = client.get("/v1/rules/licencia-aviso", headers=ADMIN).json()
    assert got["version"] == 1 and got["updated_by"] == "admin:lucia"
    assert got["document"]["on"] == "license.expiring"
    assert got["document"]["critical"] is False  # defaults are stored spelled out

    updated = put(client, "rules", rule_body(description="nuevo texto"))
    assert updated.json() == {"id": "licencia-aviso", "version": 2, "changed": True}
    listed = client.get("/v1/rules", headers=ADMIN).json()["items"]
    assert [(r["id"], r["version"]) for r in listed] == [("licencia-aviso", 2)]

    assert client.delete("/v1/rules/licencia-aviso", headers=ADMIN).status_code == 204
    assert client.get("/v1/rules/licencia-aviso", headers=ADMIN).status_code == 404
    assert client.delete("/v1/rules/licencia-aviso", headers=ADMIN).status_code == 404

    recreated = put(client, "rules", rule_body())
    assert recreated.json()["version"] == 4  # versions continue after a deletion
    versions = client.get("/v1/rules/licencia-aviso/versions", headers=ADMIN).json()["items"]
    assert [(v["version"], v["deleted"]) for v in versions] == [
        (1, False),
        (2, False),
        (3, True),
        (4, False),
    ]
    assert versions[1]["document"]["description"] == "nuevo texto"
    assert versions[0]["changed_by"] == "admin:lucia"

    audit = client.get("/v1/audit", headers=ADMIN).json()["items"]
    assert [(a["action"], a["kind"], a["object_id"], a["version"]) for a in audit] == [
        ("create", "rule", "licencia-aviso", 4),
        ("delete", "rule", "licencia-aviso", 3),
        ("update", "rule", "licencia-aviso", 2),
        ("create", "rule", "licencia-aviso", 1),
        ("create", "template", "licencia-renovacion", 1),
    ]
    only_templates = client.get("/v1/audit?kind=template", headers=ADMIN).json()["items"]
    assert [a["object_id"] for a in only_templates] == ["licencia-renovacion"]
    page = client.get(f"/v1/audit?limit=2&before={audit[1]['seq']}", headers=ADMIN).json()
    assert [a["version"] for a in page["items"]] == [2, 1]


def test_putting_the_same_document_twice_is_idempotent(client):
    put(client, "templates", template_body())
    first = put(client, "rules", rule_body())
    body = rule_body()
    del body["id"]  # the id may come from the URL alone
    body["critical"] = False  # a default spelled out is the same document
    second = put(client, "rules", body, object_id="licencia-aviso")
    assert first.json() == second.json() | {"changed": True}
    assert second.json()["changed"] is False
    assert put(client, "templates", template_body()).json()["changed"] is False
    assert len(client.get("/v1/audit", headers=ADMIN).json()["items"]) == 2
    assert len(client.get("/v1/rules/licencia-aviso/versions", headers=ADMIN).json()["items"]) == 1


@pytest.mark.parametrize(
    ("fields", "path"),
    [
        ({"template": "no-such-template"}, "template"),
        ({"when": "data.category =="}, "when"),
        ({"when": "data.items.exists(x, x > 1)"}, "when"),
        ({"when": 'citizen.id == "x"'}, "when"),
        ({"expires_after": "dos días"}, "expires_after"),
        ({"id": "Not_A_Slug"}, "id"),
        ({"channels": ["pigeon"]}, "channels[0]"),
        (
            {"schedule": {"relative_to": "data.x", "offsets": ["-P7D"], "calendar": "ES-XX"}},
            "schedule.calendar",
        ),
        (
            {"schedule": {"relative_to": "data.x", "offsets": ["-P7D"], "calendar": "ZZ"}},
            "schedule.calendar",
        ),
    ],
)
def test_bad_rules_are_422_naming_the_field(client, fields, path):
    put(client, "templates", template_body())
    body = rule_body(**fields)
    response = put(client, "rules", body, object_id=body["id"])
    assert path in errors_of(response)
    assert client.get("/v1/audit", headers=ADMIN).json()["items"][0]["kind"] == "template"


def test_the_url_and_body_ids_must_agree(client):
    put(client, "templates", template_body())
    assert "id" in errors_of(put(client, "rules", rule_body(), object_id="otra-regla"))


def test_bad_templates_are_422_naming_the_text(client):
    response = put(client, "templates", template_body(es={"sms": "Hola {{ citizen.nmae }}"}))
    assert "nmae" in errors_of(response)["locales.es.sms"]
    response = put(client, "templates", template_body(es={"sms": "{{ ''.__class__ }}"}))
    assert "unsafe" in errors_of(response)["locales.es.sms"]


def test_a_template_in_use_cannot_lose_texts_or_be_deleted(client):
    put(client, "templates", template_body())
    put(client, "rules", rule_body())
    response = put(client, "templates", template_body(es={"sms": "Hola"}))
    assert "locales.es.email_subject" in errors_of(response)
    deleted = client.delete("/v1/templates/licencia-renovacion", headers=ADMIN)
    assert deleted.status_code == 409
    assert "licencia-aviso" in deleted.json()["detail"]
    client.delete("/v1/rules/licencia-aviso", headers=ADMIN)
    assert client.delete("/v1/templates/licencia-renovacion", headers=ADMIN).status_code == 204


def test_not_json_is_422_problem(client):
    response = client.put(
        "/v1/rules/x", content=b"{not json", headers={**ADMIN, "content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/rules"),
        ("GET", "/v1/rules/x"),
        ("PUT", "/v1/rules/x"),
        ("DELETE", "/v1/rules/x"),
        ("GET", "/v1/rules/x/versions"),
        ("GET", "/v1/templates"),
        ("PUT", "/v1/templates/x"),
        ("DELETE", "/v1/templates/x"),
        ("GET", "/v1/audit"),
    ],
)
def test_admin_key_is_required(client, method, path):
    body: dict[str, Any] = {"json": {}} if method == "PUT" else {}
    missing = client.request(method, path, **body)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    wrong = client.request(method, path, headers={"Authorization": "Bearer nope"}, **body)
    assert wrong.status_code == 401


def test_agency_keys_are_forbidden(settings):
    from common.auth import Authenticator

    migrate(settings)
    app = create_app(settings)
    app.state.authenticator = Authenticator("dev-admin-key", lambda _hash: "demo", development=True)
    agency = {"Authorization": "Bearer demo-agency-key"}
    with TestClient(app) as client:
        put(client, "templates", template_body())
        put(client, "rules", rule_body())
        paths = client.get("/openapi.json").json()["paths"]
        routes = [
            (method.upper(), path)
            for path, operations in paths.items()
            if path.startswith("/v1/")
            for method in operations
        ]
        answers = {
            (method, path): client.request(
                method,
                re.sub(r"\{[a-z_]+\}", "licencia-aviso", path).replace(
                    "templates/licencia-aviso", "templates/licencia-renovacion"
                ),
                headers=agency,
                json=event_body() if method in ("POST", "PUT") else None,
            )
            for method, path in routes
        }
        still = client.get("/v1/rules/licencia-aviso", headers=ADMIN)
    assert len(routes) >= 13  # rules 5, templates 5, test, preview, audit
    for route, response in answers.items():
        assert response.status_code == 403, (route, response.text)
        assert response.json()["type"] == "urn:avisa:problem:forbidden"
    assert still.json()["version"] == 1  # nothing an agency sent changed anything


def test_operations_endpoints(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 503  # no broker on port 1
    assert ready.json()["checks"] == {"database": "ok", "broker": "down"}
    assert client.get("/metrics").status_code == 200
    assert "/v1/rules/{rule_id}" in client.get("/openapi.json").json()["paths"]


def test_template_preview_renders_every_locale_with_sms_length(client):
    put(client, "templates", template_body())
    response = client.post(
        "/v1/templates/licencia-renovacion/preview", json=event_body(), headers=ADMIN
    )
    assert response.status_code == 200, response.text
    locales = response.json()["locales"]
    assert set(locales) == {"es", "en"}
    assert "15 de enero de 2027" in locales["es"]["sms"]["body"]
    assert locales["es"]["sms"]["encoding"] == "GSM-7"
    assert locales["es"]["sms"]["segments"] == 1
    assert locales["en"]["email"]["subject"] == "Your licence expires on January 15, 2027"
    assert locales["es"]["sms"]["ucs2_characters"] == []


def test_template_preview_names_the_characters_that_force_ucs2(client):
    sms = (
        "Hola {{ citizen.name }}: tu cita en Tráfico es el {{ data.expires_on | fecha }}. Avísanos"
    )
    put(client, "templates", template_body(es={"sms": sms}))
    response = client.post(
        "/v1/templates/licencia-renovacion/preview", json=event_body(), headers=ADMIN
    )
    assert response.status_code == 200, response.text
    preview = response.json()["locales"]["es"]["sms"]
    assert preview["encoding"] == "UCS-2"
    assert preview["ucs2_characters"] == ["á", "í"]
    assert preview["characters"] == len(preview["body"])
    assert preview["body"] == "Hola Ana: tu cita en Tráfico es el 15 de enero de 2027. Avísanos"
    assert (preview["characters"], preview["segments"]) == (64, 1)


def test_preview_errors_are_422(client):
    put(client, "templates", template_body(es={"sms": "{{ data.amount | numero }}"}))
    failing = client.post(
        "/v1/templates/licencia-renovacion/preview", json=event_body(), headers=ADMIN
    )
    assert "locales.es.sms" in errors_of(failing)
    bad_event = event_body(citizen={"phone": "612"})
    invalid = client.post(
        "/v1/templates/licencia-renovacion/preview", json=bad_event, headers=ADMIN
    )
    assert "data.citizen.phone" in errors_of(invalid)
    missing = client.post("/v1/templates/nope/preview", json=event_body(), headers=ADMIN)
    assert missing.status_code == 404


def test_rule_test_says_whether_it_matches_and_what_it_would_send(client):
    put(client, "templates", template_body())
    put(client, "rules", rule_body(when='data.category == "B"'))
    yes = client.post(
        "/v1/rules/licencia-aviso/test", json=event_body(category="B"), headers=ADMIN
    ).json()
    assert yes["matches"] is True and yes["reason"] is None
    [planned] = yes["notifications"]
    assert planned["channels"] == ["sms", "email"]
    assert "15 de enero de 2027" in planned["content"]["sms"]["body"]
    assert planned["not_after"] == "2026-12-01T10:00:00Z"
    no = client.post(
        "/v1/rules/licencia-aviso/test", json=event_body(category="C"), headers=ADMIN
    ).json()
    assert no["matches"] is False and "condition is false" in no["reason"]
    assert no["notifications"] == []
    other = client.post(
        "/v1/rules/licencia-aviso/test", json=event_body(type="tax.due"), headers=ADMIN
    ).json()
    assert "tax.due" in other["reason"]


def test_rule_test_plans_reminders_and_says_what_it_would_cancel(client):
    put(client, "templates", template_body())
    schedule = {
        "relative_to": "data.expires_on",
        "offsets": ["-P30D", "-P7D", "-P1D"],
        "at": "09:00",
        "calendar": "ES",
    }
    rule = rule_body(id="licencia-renovacion", schedule=schedule, cancel_on=["license.renewed"])
    put(client, "rules", rule)
    far = event_body(expires_on="2027-06-14", time="2026-11-29T10:00:00Z")
    result = client.post("/v1/rules/licencia-renovacion/test", json=far, headers=ADMIN).json()
    assert result["matches"] is True
    planned = {p["step"]: p for p in result["notifications"]}
    assert list(planned) == ["-P30D", "-P7D", "-P1D"]
    # 14 Jun 2027 is a Monday: the day before is a Sunday, so the reminder goes on Friday
    assert planned["-P1D"]["local_time"] == "2027-06-11T09:00:00+02:00"
    assert planned["-P1D"]["scheduled_for"] == "2027-06-11T07:00:00Z"
    assert planned["-P1D"]["not_after"] == "2027-06-14T22:00:00Z"
    assert "14 de junio de 2027" in planned["-P7D"]["content"]["sms"]["body"]
    assert not any(p["skipped"] for p in planned.values())  # the test clock is today
    past = client.post(
        "/v1/rules/licencia-renovacion/test",
        json=event_body(expires_on="2020-01-15"),
        headers=ADMIN,
    ).json()
    assert all(p["skipped"] for p in past["notifications"])

    # a stored timer for this subject is what a license.renewed event would cancel
    request = NotificationRequest.model_validate(
        {
            "id": "0b5c7a48-2d5e-4a0c-9c31-3f6a3c1d2e10",
            "event": {
                "source": "dgt",
                "id": "e1",
                "type": "license.expiring",
                "subject": "license/B-12345678",
            },
            "rule": {"id": "licencia-renovacion", "version": 1},
            "citizen": {"id": "ES-12345678Z"},
            "channels": ["sms"],
            "content": {"sms": {"body": "hola"}},
            "locale": "es",
            "scheduled_for": "2027-06-11T07:00:00Z",
            "step": "-P1D",
        }
    )
    stored_at = datetime(2026, 11, 29, 10, tzinfo=UTC)
    with client.app.state.sessions() as db, db.begin():  # type: ignore[attr-defined]
        db.add(
            timers.timer_row(
                request, subject="license/B-12345678", event_time=stored_at, now=stored_at
            )
        )
    renewed = event_body(type="license.renewed", time="2026-12-01T10:00:00Z")
    would = client.post("/v1/rules/licencia-renovacion/test", json=renewed, headers=ADMIN).json()
    assert would["matches"] is False
    assert [(c["id"], c["step"]) for c in would["cancels"]] == [(request.id, "-P1D")]
    elsewhere = event_body(type="license.renewed", subject="license/other")
    assert (
        client.post("/v1/rules/licencia-renovacion/test", json=elsewhere, headers=ADMIN).json()[
            "cancels"
        ]
        == []
    )
