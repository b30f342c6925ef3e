"""Citizens' preferred zone and locale, as the notifier publishes them on citizens.v1, held in
memory: reminders are planned in the event's zone, else the citizen's preferred zone, else the
default; templates render in the event's locale, else the preferred one, else the default."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from common.keyfeed import CompactedFeed
from schemas.citizens import CitizenRecord
from schemas.events import CloudEvent


@dataclass(frozen=True, slots=True)
class Preference:
    """What the citizen told the notifier about zone and locale (None: nothing)."""

    timezone: str | None
    locale: str | None
    updated_at: datetime


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment


class CitizenDirectory:
    """Citizen id -> `Preference`; a record older than the one held is ignored (a replica's
    late snapshot must not undo a newer change). Thread-safe."""

    def __init__(self) -> None:
        self._known: dict[str, Preference] = {}
        self._lock = threading.Lock()

    def apply(self, record: CitizenRecord) -> None:
        """Learn one record (unless a newer one is held)."""
        moment = _utc(record.updated_at)
        with self._lock:
            held = self._known.get(record.citizen_id)
            if held is not None and held.updated_at > moment:
                return
            self._known[record.citizen_id] = Preference(record.timezone, record.locale, moment)

    def get(self, citizen_id: str) -> Preference | None:
        with self._lock:
            return self._known.get(citizen_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._known)


def zone_name(event: CloudEvent, preference: Preference | None, default: str) -> str:
    """The zone to plan in: the event's, else the citizen's preference, else `default`."""
    citizen = event.data.citizen
    return citizen.timezone or (preference.timezone if preference else None) or default


def wanted_locale(event: CloudEvent, preference: Preference | None) -> str | None:
    """The locale to render in before the default: the event's, else the preference's."""
    return event.data.citizen.locale or (preference.locale if preference else None)


class CitizenFeed(CompactedFeed):
    """Reads citizens.v1 from the beginning into `directory`, then follows it; run in a
    `Worker`. Until `caught_up`, reminders of citizens not read yet use the default zone."""

    def __init__(
        self,
        bootstrap_servers: Sequence[str],
        topic: str,
        directory: CitizenDirectory,
        *,
        poll_ms: int = 200,
    ) -> None:
        super().__init__(
            bootstrap_servers,
            topic,
            lambda value: directory.apply(CitizenRecord.model_validate_json(value)),
            poll_ms=poll_ms,
        )
