"""The CloudEvent envelope that agencies publish, with Avisa's `data.citizen` (CONTRACT.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from schemas import validators

Phone = Annotated[str, AfterValidator(validators.e164)]
Email = Annotated[str, AfterValidator(validators.email)]
LocaleTag = Annotated[str, AfterValidator(validators.locale)]
TimeZoneName = Annotated[str, AfterValidator(validators.timezone)]
NonEmpty = Annotated[str, Field(min_length=1, max_length=512)]


class Citizen(BaseModel):
    """The person a notification is for, as the agency knows them."""

    model_config = ConfigDict(extra="allow")

    id: NonEmpty
    name: str | None = None
    phone: Phone | None = None
    email: Email | None = None
    locale: LocaleTag | None = None
    timezone: TimeZoneName | None = None


class EventData(BaseModel):
    """The event's `data`: the citizen plus whatever fields the agency's event type carries."""

    model_config = ConfigDict(extra="allow")

    citizen: Citizen


class CloudEvent(BaseModel):
    """A CloudEvents 1.0 event in structured JSON form, with the attributes Avisa requires."""

    model_config = ConfigDict(extra="allow")

    specversion: str
    id: NonEmpty
    source: NonEmpty
    type: NonEmpty
    subject: NonEmpty
    time: datetime | None = None
    datacontenttype: str | None = None
    dataschema: str | None = None
    data: EventData

    @field_validator("specversion")
    @classmethod
    def _only_1_0(cls, value: str) -> str:
        if value != "1.0":
            raise ValueError(f"specversion must be '1.0', not '{value}'")
        return value

    @field_validator("time")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("time needs a UTC offset, like 2026-11-29T10:00:00Z")
        return value

    def with_time(self, received_at: datetime) -> CloudEvent:
        """Return the event with `time` set to `received_at` when the agency left it out."""
        if self.time is not None:
            return self
        return self.model_copy(update={"time": received_at.astimezone(UTC)})

    def to_wire(self) -> dict[str, Any]:
        """The structured-mode JSON object, as published on `events.v1`."""
        return self.model_dump(mode="json", exclude_none=True)


class EventRef(BaseModel):
    """Enough of an event to find it again: its (source, id) key, type and subject."""

    source: str
    id: str
    type: str
    subject: str
