"""The size of an event as it goes to the broker, checked before it may join a group."""

from __future__ import annotations

from collections.abc import Sequence

from common.kafka import record_size
from common.problems import Problem
from services.events.flows import Incoming
from services.events.intake.claims import wire_message


def record_too_large(limit: int, errors: list[dict[str, str]]) -> Problem:
    """413: an event whose record would be larger than the broker accepts."""
    return Problem(
        413,
        "Event too large",
        f"an event may take at most {limit} bytes as sent to the broker (its JSON with every "
        "non-ASCII character written as \\uXXXX)",
        kind="too-large",
        errors=errors or None,
    )


def check_record_sizes(
    incoming: Sequence[Incoming], topic: str, limit: int, *, batch: bool
) -> None:
    """413 for a request with an event whose record would exceed `limit` bytes.

    The limit is on the record as produced: canonical JSON writes every non-ASCII character
    as `\\uXXXX`, so 400,000 "ñ" (800 KB of UTF-8) take 2.4 MB on the broker."""
    errors: list[dict[str, str]] = []
    for index, item in enumerate(incoming):
        if len(item.value or b"") + 4 * len(item.event.subject) + 1024 <= limit:
            continue  # the common case: clearly under, no record to build
        size = record_size(wire_message(topic, {}, item.event.subject, item.value))
        if size > limit:
            path = f"[{index}]" if batch else ""
            errors.append({"path": path, "message": f"{size} bytes as sent; at most {limit}"})
    if errors:
        raise record_too_large(limit, errors)
