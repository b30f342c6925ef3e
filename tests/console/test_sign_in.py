"""Signing in: email, password and security code; the slowdown; sessions that end."""

from __future__ import annotations

from datetime import timedelta

from services.console.models import StaffSession
from services.console.security import SESSION_COOKIE
from tests.console.conftest import db_session, parse, post_form, sign_in


def labels_of(html: str) -> list[str]:
    page = parse(html)
    return [" ".join(label.itertext()).strip() for label in page.iter("label")]


def error_messages(html: str) -> list[str]:
    page = parse(html)
    return [
        " ".join(p.itertext()).replace("Error:", "").strip()
        for p in page.iter("p")
        if "govuk-error-message" in (p.get("class") or "")
    ]


def test_the_sign_in_page_asks_for_email_password_then_security_code(client):
    page = client.get("/sign-in", headers={"Accept-Language": "en"})
    assert page.status_code == 200
    assert labels_of(page.text) == ["Email address", "Password", "Security code"]
    assert "Sign in" in page.text


def test_a_staff_member_signs_in_with_a_totp_code_and_sees_sign_out(client, account):
    person = account(role="admin")
    answer = sign_in(client, person)
    assert answer.status_code == 303 and answer.headers["location"] == "/"
    cookie = answer.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = client.get("/", headers={"Accept-Language": "en"})
    assert home.status_code == 200 and "Sign out" in home.text
    assert person.email in home.text


def test_a_wrong_security_code_is_refused_beside_the_field(client, account):
    person = account()
    wrong = str((int(person.code()) + 1) % 1_000_000).zfill(6)
    answer = sign_in(client, person, code=wrong)
    assert answer.status_code == 422
    assert "El código de seguridad no es correcto o ha caducado" in error_messages(answer.text)
    assert 'href="#code"' in answer.text  # the error summary points at the field
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_wrong_password_says_so_without_telling_which_part_was_wrong(client, account):
    person = account()
    person.password = "not the password"
    answer = sign_in(client, person)
    assert answer.status_code == 422
    assert error_messages(answer.text) == ["El correo electrónico o la contraseña no son correctos"]


def test_empty_fields_are_named(client):
    answer = post_form(client, "/sign-in", "/sign-in", {"email": "", "password": ""})
    assert answer.status_code == 422
    assert error_messages(answer.text) == ["Escriba su correo electrónico", "Escriba su contraseña"]


def test_five_failures_in_a_row_slow_the_account_down_and_say_so(client, account):
    person = account()
    good_password = person.password
    person.password = "wrong"
    for _ in range(4):
        assert "Espere" not in sign_in(client, person).text
    fifth = sign_in(client, person)
    assert "Demasiados intentos fallidos. Espere 30 segundos" in fifth.text
    person.password = good_password
    locked = sign_in(client, person)  # even the right password waits its turn
    assert locked.status_code == 422 and "Demasiados intentos fallidos" in locked.text
    assert client.get("/", follow_redirects=False).status_code == 303


def test_sign_out_ends_the_session_on_the_server(client, account):
    sign_in(client, account())
    stolen = client.cookies.get(SESSION_COOKIE)
    assert post_form(client, "/", "/sign-out", {}, follow_redirects=False).status_code == 303
    client.cookies.set(SESSION_COOKIE, stolen)  # the old cookie, replayed
    assert client.get("/", follow_redirects=False).headers["location"] == "/sign-in?next=/"


def test_a_session_idle_for_30_minutes_ends(client, account, settings):
    sign_in(client, account())
    assert client.get("/", follow_redirects=False).status_code == 200
    with db_session(settings.database_url) as db, db.begin():
        for row in db.query(StaffSession):
            row.last_seen_at = row.last_seen_at - timedelta(minutes=31)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_session_ends_8_hours_after_sign_in_even_when_used(client, account, settings):
    sign_in(client, account())
    with db_session(settings.database_url) as db, db.begin():
        for row in db.query(StaffSession):
            row.created_at = row.created_at - timedelta(hours=8, minutes=1)
    assert client.get("/", follow_redirects=False).status_code == 303


def test_a_disabled_account_cannot_sign_in(client, account, settings):
    from services.console import staff
    from services.console.web import utcnow

    person = account()
    with db_session(settings.database_url) as db, db.begin():
        staff.disable(session=db, email=person.email, now=utcnow())
    assert sign_in(client, person).status_code == 422


def test_a_form_without_its_csrf_token_is_refused(client, account):
    person = account()
    answer = client.post(
        "/sign-in",
        data={"email": person.email, "password": person.password, "code": person.code()},
    )
    assert answer.status_code == 400
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")


def test_after_sign_in_the_page_asked_for_opens(client, account):
    first = client.get("/audit", follow_redirects=False)
    assert first.headers["location"] == "/sign-in?next=/audit"
    token_page = client.get(first.headers["location"])
    assert 'name="next" value="/audit"' in token_page.text
    person = account()
    answer = post_form(
        client,
        "/sign-in?next=/audit",
        "/sign-in",
        {
            "email": person.email,
            "password": person.password,
            "code": person.code(),
            "next": "/audit",
        },
        follow_redirects=False,
    )
    assert answer.headers["location"] == "/audit"


def test_next_never_leads_off_the_site(client, account):
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        person = account()  # a code signs in once: one account for each try
        data = {
            "email": person.email,
            "password": person.password,
            "code": person.code(),
            "next": target,
        }
        answer = post_form(client, "/sign-in", "/sign-in", data, follow_redirects=False)
        assert answer.headers["location"] == "/", target
        client.cookies.clear()


def test_a_security_code_signs_in_once(client, account):
    person = account()
    code = person.code()
    assert sign_in(client, person, code=code).status_code == 303
    client.cookies.clear()
    replayed = sign_in(client, person, code=code)
    assert replayed.status_code == 422
    assert "El código de seguridad no es correcto o ha caducado" in error_messages(replayed.text)
