"""The in-memory agency keys of services that do not own the keys table (keys.v1)."""

from __future__ import annotations

from datetime import UTC, datetime

from common.auth import KeyRing, hash_key
from schemas.keys import KeyRecord

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def record(key: str, *, agency: str = "dgt", revoked: bool = False) -> KeyRecord:
    return KeyRecord(
        agency_id=agency, prefix=key[4:12], key_hash=hash_key(key), revoked=revoked, at=NOW
    )


def test_a_published_key_maps_its_hash_to_its_agency():
    ring = KeyRing()
    ring.apply(record("avk_one", agency="dgt"))
    ring.apply(record("avk_two", agency="sepe"))
    assert ring(hash_key("avk_one")) == "dgt"
    assert ring(hash_key("avk_two")) == "sepe"
    assert ring(hash_key("avk_unknown")) is None


def test_revocation_is_final_even_if_an_older_record_arrives_late():
    ring = KeyRing()
    ring.apply(record("avk_one"))
    ring.apply(record("avk_one", revoked=True))
    assert ring(hash_key("avk_one")) is None
    ring.apply(record("avk_one"))  # another replica's older snapshot, published late
    assert ring(hash_key("avk_one")) is None and len(ring) == 0


def test_new_keys_are_letters_and_digits_so_their_prefix_never_reads_as_an_option():
    from common.auth import KEY_PREFIX, new_key

    keys = {new_key() for _ in range(2000)}
    assert len(keys) == 2000
    for key in keys:
        body = key.removeprefix(KEY_PREFIX)
        assert key.startswith(KEY_PREFIX) and len(body) == 43 and body.isalnum()
