"""Bearer keys: the admin key, and agency keys stored hashed (verified through a lookup)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Request

from common.problems import Problem
from common.settings import DEV_ADMIN_KEY, DEV_AGENCY_KEY
from schemas.keys import KeyRecord

KEY_PREFIX = "avk_"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an admin, or an agency bound to one agency id."""

    role: Literal["admin", "agency"]
    agency_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def may_publish_for(self, source: str) -> bool:
        if self.is_admin:
            return True
        agency = self.agency_id or ""
        return source == agency or source.startswith(f"{agency}/")


# Letters and digits only: a prefix starting with "-" would read as an option on the command
# line (`avisa keys revoke --agency X <prefix>`). 43 of them carry 256 bits, as token_urlsafe(32).
_KEY_ALPHABET = string.ascii_letters + string.digits


def new_key() -> str:
    """A fresh random key, shown once to whoever creates it."""
    return KEY_PREFIX + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(43))


def hash_key(key: str) -> str:
    """The stored form of a key; keys are high-entropy, so a plain SHA-256 is enough."""
    return hashlib.sha256(key.encode()).hexdigest()


def bearer_key(request: Request) -> str | None:
    """The key of an `Authorization: Bearer <key>` header (scheme in any case); None without."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    key = key.strip()
    return key if scheme.lower() == "bearer" and key else None


AgencyLookup = Callable[[str], str | None]
"""Maps a key's hash to its agency id, or None when no live key has that hash."""


class KeyRing:
    """An `AgencyLookup` for services that do not own the keys table: the key records the
    events service publishes on keys.v1 (`common.keyfeed` applies them), held in memory.

    Revocation is final: a late copy of an older record (another replica's snapshot) never
    brings a revoked key back."""

    def __init__(self) -> None:
        self._agencies: dict[str, str] = {}
        self._revoked: set[str] = set()
        self._lock = threading.Lock()

    def apply(self, record: KeyRecord) -> None:
        """Learn one key record (a new key, or a revocation)."""
        with self._lock:
            if record.revoked:
                self._revoked.add(record.key_hash)
                self._agencies.pop(record.key_hash, None)
            elif record.key_hash not in self._revoked:
                self._agencies[record.key_hash] = record.agency_id

    def __call__(self, key_hash: str) -> str | None:
        with self._lock:
            return self._agencies.get(key_hash)

    def __len__(self) -> int:
        with self._lock:
            return len(self._agencies)


DEVELOPMENT_KEY_HASHES = frozenset(hash_key(key) for key in (DEV_ADMIN_KEY, DEV_AGENCY_KEY))


class Authenticator:
    """Resolves `Authorization: Bearer <key>` to a Principal, or raises a 401 Problem.

    Outside development the fixed development keys (`dev-admin-key`, `demo-agency-key`) are
    refused whatever the key tables or the key feed hold: a database made by `make run` and
    then served in production must not let the published demo key in."""

    def __init__(
        self,
        admin_key: str,
        agency_lookup: AgencyLookup | None = None,
        *,
        development: bool = False,
    ) -> None:
        self._admin_key = admin_key
        self._lookup = agency_lookup
        self._refused = frozenset[str]() if development else DEVELOPMENT_KEY_HASHES

    def is_admin_key(self, key: str) -> bool:
        """True for the admin key (compared in constant time)."""
        return hmac.compare_digest(key.encode(), self._admin_key.encode())

    def refuses(self, key_hash: str) -> bool:
        """True for a key refused whatever it maps to (a development key in production)."""
        return key_hash in self._refused

    def principal(self, request: Request) -> Principal:
        key = bearer_key(request)
        if key is None:
            raise Problem(
                401,
                "Unauthorized",
                "send 'Authorization: Bearer <key>'",
                kind="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self._refused and hash_key(key) in self._refused:
            raise Problem(
                401,
                "Unauthorized",
                "development keys are refused outside development mode",
                kind="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if self.is_admin_key(key):
            return Principal(role="admin")
        agency = self._lookup(hash_key(key)) if self._lookup is not None else None
        if agency is None:
            raise Problem(
                401,
                "Unauthorized",
                "the key is unknown or revoked",
                kind="unauthorized",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return Principal(role="agency", agency_id=agency)


def require_admin(principal: Principal) -> Principal:
    if not principal.is_admin:
        raise Problem(403, "Forbidden", "this needs the admin key", kind="forbidden")
    return principal
