"""Agency key records (keys.v1): what the events service tells other services about the
agency keys it owns, so they can verify them without reading its tables."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class KeyRecord(BaseModel):
    """One agency key, keyed on the compacted topic by its hash: the stored SHA-256 of the
    key (`common.auth.hash_key`), never the key itself. Revocation is final."""

    agency_id: str
    prefix: str
    key_hash: str
    revoked: bool = False
    at: datetime
