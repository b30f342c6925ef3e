"""`avisa staff add|list|disable` on the console's own tables."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import pyotp

from services.console import repository, staff
from tests.console.conftest import db_session


def avisa(database_url: str, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {"AVISA_DATABASE_URL": database_url, "AVISA_ENV": "production", "PATH": "/usr/bin"}
    return subprocess.run(
        [sys.executable, "-m", "avisa", "staff", *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_staff_add_reads_the_password_and_prints_a_totp_uri(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    added = avisa(
        url,
        "add",
        "--email",
        "Lucia@Example.es",
        "--role",
        "editor",
        "--agency",
        "dgt",
        stdin="a long pass phrase\n",
    )
    assert added.returncode == 0, added.stderr
    uri = added.stdout.strip()
    assert uri.startswith("otpauth://totp/")
    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    with db_session(url) as db:
        member = repository.staff_by_email(session=db, email="lucia@example.es")
        assert (member.role, member.agency_id) == ("editor", "dgt")
        assert staff.password_matches(member.password_hash, "a long pass phrase")
        assert "a long pass phrase" not in member.password_hash
        now = datetime.now(UTC)
        code = pyotp.TOTP(secret).at(now)
        assert staff.code_step(member.totp_secret, code, at=now, after=None) is not None

    listed = avisa(url, "list")
    assert listed.stdout.split() == ["lucia@example.es", "editor", "dgt", "active"]

    disabled = avisa(url, "disable", "--email", "lucia@example.es")
    assert disabled.returncode == 0
    assert avisa(url, "list").stdout.split()[-1] == "disabled"


def test_staff_add_refuses_a_duplicate_an_editor_without_agency_and_an_empty_password(tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}"
    assert (
        avisa(url, "add", "--email", "a@example.es", "--role", "admin", stdin="pw\n").returncode
        == 0
    )
    twice = avisa(url, "add", "--email", "a@example.es", "--role", "admin", stdin="pw\n")
    assert twice.returncode == 2 and "already has an account" in twice.stderr
    editor = avisa(url, "add", "--email", "e@example.es", "--role", "editor", stdin="pw\n")
    assert editor.returncode == 2 and "--agency" in editor.stderr
    empty = avisa(url, "add", "--email", "v@example.es", "--role", "viewer", stdin="\n")
    assert empty.returncode == 2 and "empty" in empty.stderr
    unknown = avisa(url, "disable", "--email", "nobody@example.es")
    assert unknown.returncode == 2
