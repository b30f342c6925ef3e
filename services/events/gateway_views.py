"""Request and response bodies of callbacks, limits and event types."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, field_validator

from services.events.callbacks.targets import url_error


class CallbackIn(BaseModel):
    url: str = Field(max_length=2048, description="http(s) URL; https outside development")
    secret: str = Field(
        min_length=16, max_length=256, description="signs each POST; never shown again"
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        error = url_error(value)
        if error is not None:
            raise ValueError(error)
        return value


class CallbackOut(BaseModel):
    """The endpoint and its health; the secret is never shown."""

    agency_id: str
    url: str
    state: str = Field(description="active, or suspended after failing for too long")
    failures: int = Field(description="failed attempts since the last success")
    failing_since: datetime | None
    last_error: str | None
    last_success_at: datetime | None
    suspended_at: datetime | None
    pending: int = Field(description="status changes waiting to be delivered")
    updated_at: datetime


class LimitsIn(BaseModel):
    """Omitted or null values fall back to the service's defaults."""

    requests_per_minute: int | None = Field(default=None, gt=0, le=1_000_000)
    daily_events: int | None = Field(default=None, gt=0, le=1_000_000_000)


class LimitsOut(BaseModel):
    agency_id: str
    requests_per_minute: int
    daily_events: int
    used_today: int
    custom: bool


class EventTypeOut(BaseModel):
    agency_id: str
    type: str
    json_schema: dict[str, Any] = Field(serialization_alias="schema")
    created_at: datetime
    updated_at: datetime


class EventTypeList(BaseModel):
    event_types: list[EventTypeOut]


class AgencySummary(BaseModel):
    """An agency as the console lists it."""

    id: str
    name: str
    created_at: datetime
    live_keys: int = Field(description="keys not revoked")
    callback_state: str | None = Field(
        description="active or suspended; null when the agency has no callback"
    )


class AgencyList(BaseModel):
    agencies: list[AgencySummary]
