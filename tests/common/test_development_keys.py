"""Outside development the fixed development keys are refused, whatever maps them to a role."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from common.auth import Authenticator, KeyRing, hash_key
from common.problems import Problem
from common.settings import DEV_ADMIN_KEY, DEV_AGENCY_ID, DEV_AGENCY_KEY
from schemas.keys import KeyRecord


def request_with(key: str) -> Request:
    headers = [(b"authorization", f"Bearer {key}".encode())]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def ring_with_demo_key() -> KeyRing:
    """What the notifier learns from keys.v1 when the events database was made by `make run`."""
    ring = KeyRing()
    record = KeyRecord.model_validate(
        {
            "key_hash": hash_key(DEV_AGENCY_KEY),
            "agency_id": DEV_AGENCY_ID,
            "prefix": "demo-age",
            "at": "2026-01-01T00:00:00Z",
        }
    )
    ring.apply(record)
    return ring


@pytest.mark.parametrize("key", [DEV_AGENCY_KEY, DEV_ADMIN_KEY])
def test_production_refuses_the_development_keys_even_when_they_are_known(key):
    authenticator = Authenticator(DEV_ADMIN_KEY, ring_with_demo_key(), development=False)

    with pytest.raises(Problem) as refused:
        authenticator.principal(request_with(key))

    assert refused.value.status == 401
    assert authenticator.refuses(hash_key(key))


def test_development_accepts_them():
    authenticator = Authenticator(DEV_ADMIN_KEY, ring_with_demo_key(), development=True)

    assert authenticator.principal(request_with(DEV_AGENCY_KEY)).agency_id == DEV_AGENCY_ID
    assert authenticator.principal(request_with(DEV_ADMIN_KEY)).is_admin
