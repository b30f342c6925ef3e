"""Settings of the events service (environment variables with the `AVISA_` prefix)."""

from __future__ import annotations

from pydantic import Field

from common.kafka import MAX_REQUEST_BYTES
from common.settings import CommonSettings


class Settings(CommonSettings):
    """Common settings plus the limits and timings of the agency gateway."""

    max_body_bytes: int = 1024 * 1024
    max_batch: int = 1000
    # The largest events.v1 record (value, key, headers, framing) the intake produces, checked
    # on the record itself: under the producer's max_request_size and Kafka's default
    # message.max.bytes (both 1 MiB), so the broker never refuses a record it was given.
    max_record_bytes: int = Field(default=1_000_000, gt=0, le=MAX_REQUEST_BYTES)
    duplicate_wait_s: float = 5.0
    stale_pending_s: float = 60.0
    key_cache_ttl_s: float = 5.0
    retry_after_s: int = 5

    # Group commit of the intake: requests queued together share one claim transaction, one
    # acknowledged produce and one `accepted` update. A group holds up to this many events;
    # this many groups may be publishing at once. One: what arrives while a group publishes
    # waits for its ack and goes out as one bigger group, which on SQLite gave single POSTs
    # 9-38 % more per CPU-second and a lower p50 than two (PostgreSQL and batches: no change
    # beyond the noise; docs/benchmarks.md, sixth round).
    ingest_group_events: int = Field(default=2000, gt=0)
    ingest_groups_in_flight: int = Field(default=1, gt=0)

    # How long a thread may hold Python's GIL while others wait for it (Python's default is
    # 5 ms). The intake runs several threads (event loop, claim, a publisher for each group
    # in flight, kafka-python's sender) on few cores; at 5 ms they forced each other off the
    # GIL so often that batch ingest spent about a tenth of its CPU on the switching (measured
    # with two publishers; docs/benchmarks.md). Re-measured with one group in flight (issue
    # 17, three alternating pairs of `.venv/bin/python -m bench.ingest_events --posts 10000
    # --batches 30`, AVISA_GIL_SWITCH_INTERVAL_S=0.005 against this default): per CPU-second
    # within noise (+1 % single, +2 % batch), single POSTs +10 % wall-clock and a lower p99
    # in each pair. Kept for the latency; the first to drop if it ever costs anything.
    gil_switch_interval_s: float = Field(default=0.05, gt=0, le=1)

    # Allocations between two collections of the cyclic garbage collector's youngest
    # generation (Python's default is 700). A batch of 500 events keeps thousands of objects
    # alive while it is validated, so at 700 the collector kept walking them and promoting
    # them into older generations that it then walked again: batch ingest per CPU-second
    # +1 to +24 % (six alternating pairs, docs/benchmarks.md). Re-measured with one group in
    # flight (issue 17, three alternating pairs of `.venv/bin/python -m bench.ingest_events
    # --posts 10000 --batches 30`, AVISA_GC_YOUNG_THRESHOLD=700 against this default): per
    # CPU-second +12 % single POSTs and +9 % batch events, every pair. Still pays.
    gc_young_threshold: int = Field(default=20_000, ge=700)

    # Uvicorn worker processes: each is a whole replica (its own producer, consumers in the
    # shared groups, leased callbacks, its own token buckets: a key's rate is per process).
    events_workers: int = Field(default=1, gt=0)

    # Rate limits: an in-process token bucket per key (so per replica), and a daily cap per
    # agency counted in the database (so across replicas). Agencies may have their own values.
    requests_per_minute: int = Field(default=3000, gt=0)
    daily_events: int = Field(default=250_000, gt=0)
    limits_cache_ttl_s: float = 5.0

    # Agency callbacks: the callback sender's timings and when a failing endpoint is suspended.
    callback_timeout_s: float = 5.0
    callback_backoff_base_s: float = 1.0
    callback_backoff_max_s: float = 600.0
    callback_max_attempts: int = 20
    callback_suspend_after_s: float = 3600.0
    callback_poll_s: float = 1.0
    callback_batch: int = 100
    # Callbacks to loopback, private, link-local and reserved addresses are refused (at the PUT
    # and at every connection) unless this is true: tests, and receivers on the premises.
    callback_allow_private: bool = False

    # Content retention: event payloads are purged after this, the decision trace is kept.
    content_retention_days: float = Field(default=7.0, ge=0)
    purge_interval_s: float = 600.0
    purge_batch: int = 500

    event_types_cache_ttl_s: float = 5.0
