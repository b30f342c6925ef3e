"""Content retention: event payloads are purged after a while; ids, hashes and the trace stay."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from common import retention
from services.events import flows, repository


class ContentPurger(retention.ContentPurger):
    """Every `interval_s`, replaces old events' payloads by their envelope (no `data`)."""

    noun = "event"

    def purge_batch(self, session: Session, *, before: datetime, now: datetime, limit: int) -> int:
        events = repository.events_to_purge(session=session, before=before, limit=limit)
        for event in events:
            event.payload = flows.envelope_only(event.payload)
            event.purged_at = now
        return len(events)
