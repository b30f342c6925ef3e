"""`avisa keys create|list|revoke` against the events service: a key's whole life via the CLI."""

from __future__ import annotations

import json
import uuid
from contextlib import nullcontext

import pytest

from avisa import cli
from tests.events.conftest import ADMIN_KEY, STRUCTURED, make_event


class Authorized:
    """The app's test client with the key the CLI would send (`--key`)."""

    def __init__(self, client, key: str) -> None:
        self.client = client
        self.auth = {"Authorization": f"Bearer {key}"}

    def __getattr__(self, method: str):
        call = getattr(self.client, method)
        return lambda *args, headers=None, **kwargs: call(
            *args, headers={**self.auth, **(headers or {})}, **kwargs
        )


@pytest.fixture
def run(shared_client, monkeypatch, capsys):
    """Run `avisa ARGS...`: its exit code, stdout and stderr."""
    monkeypatch.setattr(
        cli, "_client", lambda url, key: nullcontext(Authorized(shared_client, key or "none"))
    )

    def invoke(*args: str) -> tuple[object, str, str]:
        with pytest.raises(SystemExit) as exited:
            cli.main([*args, "--key", ADMIN_KEY])
        out, err = capsys.readouterr()
        return exited.value.code, out, err

    return invoke


def publish(client, key: str, source: str) -> int:
    response = client.post(
        "/v1/events",
        content=json.dumps(make_event(source=source)),
        headers={"Authorization": f"Bearer {key}", "Content-Type": STRUCTURED},
    )
    return response.status_code


def test_a_key_is_created_listed_and_revoked_with_the_cli(run, shared_client):
    agency = f"cli-{uuid.uuid4().hex[:6]}"

    code, key, note = run("keys", "create", "--agency", agency, "--name", "Agencia CLI")
    key = key.strip()
    assert code == 0
    assert key.startswith("avk_")
    assert "shown only once" in note
    assert publish(shared_client, key, agency) == 202

    code, listing, _ = run("keys", "list", "--agency", agency)
    assert code == 0
    (listed,) = json.loads(listing)["keys"]
    assert listed["prefix"] == key[4:12]
    assert listed["revoked_at"] is None
    assert key not in listing

    assert run("keys", "revoke", "--agency", agency, key[4:12])[0] == 0
    assert publish(shared_client, key, agency) == 401
    (listed,) = json.loads(run("keys", "list", "--agency", agency)[1])["keys"]
    assert listed["revoked_at"] is not None

    code, _, error = run("keys", "revoke", "--agency", agency, key[4:12])
    assert code == 1
    assert "404" in error or "not found" in error.lower()


def test_a_second_key_for_an_existing_agency_and_a_refused_call(run):
    agency = f"cli-{uuid.uuid4().hex[:6]}"
    first = run("keys", "create", "--agency", agency)[1].strip()
    second = run("keys", "create", "--agency", agency)[1].strip()
    assert first != second
    listing = json.loads(run("keys", "list", "--agency", agency)[1])["keys"]
    assert sorted(k["prefix"] for k in listing) == sorted([first[4:12], second[4:12]])

    code, _, error = run("keys", "create", "--agency", "Not A Slug")
    assert code == 2
    assert error.startswith("avisa: create agency Not A Slug: 422")


def test_an_admin_key_is_printed_fresh_and_not_stored(run):
    code, first, note = run("keys", "create", "--admin")
    second = run("keys", "create", "--admin")[1]
    assert code == 0
    assert first.strip() != second.strip()
    assert len(first.strip()) >= 32
    assert "AVISA_ADMIN_KEY" in note
