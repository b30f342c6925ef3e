"""Settings of the events service (environment variables with the `AVISA_` prefix)."""

from __future__ import annotations

from common.settings import CommonSettings


class Settings(CommonSettings):
    """Common settings plus the limits and timings of the agency gateway."""

    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    duplicate_wait_s: float = 5.0
    stale_pending_s: float = 60.0
    key_cache_ttl_s: float = 5.0
    retry_after_s: int = 5
