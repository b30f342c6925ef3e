"""Settings of the rules service."""

from __future__ import annotations

from pydantic import Field

from common.settings import CommonSettings


class Settings(CommonSettings):
    """`AVISA_*` environment variables; the rules-only ones start with `AVISA_RULES_`."""

    rules_refresh_interval_s: float = 2.0
    """How stale the consumer's in-memory rules may get before they are re-read."""

    kafka_max_message_bytes: int = Field(1_000_000, ge=10_000)
    """The largest notification request the rule engine publishes or stores; a bigger one is a
    `failed` notification of its rule and its event goes to the dead-letter topic. Keep it
    below the broker's `message.max.bytes` (Kafka's default is about 1 MiB)."""

    rules_template_max_bytes: int = Field(65_536, ge=1)
    """The largest template text (SMS, email subject, text or HTML) a template may save."""

    rules_template_max_steps: int = Field(100_000, ge=1)
    """Loop iterations and calls one text may take to render (at save and for each event);
    a text over it fails to render: 422 at save, a `failed` notification for an event."""

    rules_template_max_seconds: float = Field(1.0, gt=0)
    """The longest one text may take to render, at save and for each event."""

    rules_consumer_enabled: bool = True
    """False runs only the admin API (no rule engine consumer in this process)."""

    rules_scheduler_enabled: bool = True
    """False runs no reminder scheduler, no status relay and no withdrawal worker in this
    process (another replica sends the timers, cancels those of rules disabled here and relays
    their statuses)."""

    rules_scheduler_batch_size: int = 500
    """How many due timers one scheduler round claims and publishes together."""

    rules_scheduler_max_sleep_s: float = 1.0
    """The longest the scheduler sleeps between rounds (it wakes earlier for a due timer)."""

    rules_scheduler_waits_for_consumer: bool = True
    """A reminder due at T fires only once the rule engine processed every event accepted
    before T on its subject's partition (a cancel still in `events.v1` must win). False: fire
    at T whatever the consumer's lag (a cancel accepted just before may come too late)."""

    rules_consumer_progress_interval_s: float = Field(0.2, gt=0)
    """How often an idle rule engine records that it has no lag (the scheduler's watermark):
    about the most a reminder is late when nothing is behind."""

    rules_withdrawal_chunk: int = Field(1000, ge=1)
    """How many timers of a disabled or deleted rule one background transaction cancels."""

    content_retention_days: float = Field(7.0, ge=0)
    """`AVISA_CONTENT_RETENTION_DAYS` (shared with the other services): the rendered texts and
    addresses of timers that fired, were cancelled or expired longer ago are purged."""

    purge_interval_s: float = Field(600.0, gt=0)
    purge_batch: int = Field(500, ge=1)
