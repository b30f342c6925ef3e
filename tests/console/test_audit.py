"""The audit page: who (the staff member's email), what and when; filters by object and person."""

from __future__ import annotations

import uuid

from tests.console.conftest import sign_in
from tests.console.pages import check_page, text_of
from tests.events.conftest import ADMIN
from tests.rules.factories import template_body


def change_template(backends, template_id: str, actor: str) -> None:
    body = template_body(id=template_id)
    body["locales"]["es"]["sms"] += f" {uuid.uuid4().hex[:4]}"
    answer = backends.rules.put(
        f"/v1/templates/{template_id}", json=body, headers={**ADMIN, "Avisa-Actor": actor}
    )
    assert answer.is_success


def test_the_audit_names_the_staff_member_and_filters_by_object_and_person(
    client, account, backends
):
    first, second = (f"t-{uuid.uuid4().hex[:6]}" for _ in range(2))
    change_template(backends, first, "ana@example.es")
    change_template(backends, first, "berta@example.es")
    change_template(backends, second, "ana@example.es")
    sign_in(client, account())

    page = check_page(
        client.get(f"/audit?object=template/{first}", headers={"Accept-Language": "en"}),
        language="en",
    )
    rows = [text_of(row) for row in page.iter("tr")][1:]
    assert len(rows) == 2
    assert "berta@example.es" in rows[0] and "update" in rows[0]  # newest first
    assert "ana@example.es" in rows[1] and "create" in rows[1]
    assert "admin" not in " ".join(rows).replace("@", " ")  # the person, not "admin key"

    by_person = client.get(f"/audit?object={first}&person=berta").text
    assert "berta@example.es" in by_person and "ana@example.es" not in by_person


def test_an_unknown_object_lists_nothing(client, account):
    sign_in(client, account())
    page = client.get("/audit?object=rule/none-such")
    assert page.status_code == 200 and "Ningún cambio coincide." in page.text


def test_each_change_shows_what_it_changed_and_links_to_its_diff(client, account, backends):
    template_id = f"t-{uuid.uuid4().hex[:6]}"
    change_template(backends, template_id, "ana@example.es")
    change_template(backends, template_id, "berta@example.es")
    sign_in(client, account())

    page = check_page(
        client.get(f"/audit?object=template/{template_id}", headers={"Accept-Language": "en"}),
        language="en",
    )
    newest = [text_of(row) for row in page.iter("tr")][1]
    assert "locales.es" in newest  # the field the update changed
    links = [a.get("href") for a in page.iter("a") if "diff" in (a.get("href") or "")]
    assert links == [f"/templates/{template_id}/diff?from=1&to=2"]
    assert "Compare with version 1" in newest


def test_the_events_services_changes_are_filtered_by_object(client, account, backends):
    mine, other = (f"ag-{uuid.uuid4().hex[:6]}" for _ in range(2))
    for agency in (mine, other):
        created = backends.events.post(
            "/v1/agencies",
            json={"id": agency, "name": agency},
            headers={**ADMIN, "Avisa-Actor": "ana@example.es"},
        )
        assert created.status_code == 201, created.text
    sign_in(client, account())

    for wanted in (mine, f"agency/{mine}"):
        page = client.get(f"/audit?object={wanted}").text
        assert mine in page and other not in page, wanted
