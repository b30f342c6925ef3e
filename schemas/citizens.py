"""Citizen records (citizens.v1): what the notifier tells the rules service about a citizen's
stored preferences - only the zone and locale reminders are planned and rendered in, never an
address."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel


class CitizenRecord(BaseModel):
    """A citizen's preferred zone and locale (None: no preference), keyed on the compacted
    topic by citizen id. A newer `updated_at` replaces an older record."""

    citizen_id: str
    timezone: str | None = None
    locale: str | None = None
    updated_at: datetime
