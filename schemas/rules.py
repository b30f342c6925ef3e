"""Rule and template documents, the same schema over the API and in YAML files (CONTRACT.md)."""

from __future__ import annotations

import re
from datetime import time
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from schemas.durations import parse_duration
from schemas.notifications import Channel

_SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError(
            f"'{value}' is not a slug: lowercase letters, digits and dashes, "
            "like licencia-renovacion"
        )
    return value


def _duration(value: str) -> str:
    parse_duration(value)
    return value


Slug = Annotated[str, AfterValidator(_slug)]
DurationText = Annotated[str, AfterValidator(_duration)]


class Schedule(BaseModel):
    """When reminders fire, relative to a date or datetime field of the event."""

    model_config = ConfigDict(extra="forbid")

    relative_to: str = Field(min_length=1)
    offsets: list[DurationText] = Field(min_length=1, max_length=50)
    at: str | None = None
    calendar: str | None = None

    @field_validator("at")
    @classmethod
    def _local_time(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            time.fromisoformat(value)
        except ValueError:
            raise ValueError(f"'{value}' is not a local time like 09:00") from None
        return value


class Rule(BaseModel):
    """An admin-editable rule: which events, under what condition, what to send and when."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: Slug
    description: str = ""
    enabled: bool = True
    on: str = Field(min_length=1)
    source: str | None = None
    when: str | None = None
    schedule: Schedule | None = None
    cancel_on: list[str] = Field(default_factory=list)
    channels: list[Channel] = Field(
        default_factory=lambda: [Channel.SMS, Channel.EMAIL], min_length=1
    )
    delivery: Literal["first", "all"] = "first"
    template: Slug
    critical: bool = False
    expires_after: DurationText | None = None
    # What kind of notice this is, for the citizen's preference page: a slug the citizen may
    # turn off (unless `critical`), and its name per locale (BCP 47 tag → label).
    topic: Slug | None = None
    topic_labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("topic_labels")
    @classmethod
    def _labels(cls, value: dict[str, str]) -> dict[str, str]:
        for tag, label in value.items():
            if not label.strip() or len(label) > 100:
                raise ValueError(f"the label for '{tag}' must have 1 to 100 characters")
        return value


class LocaleTemplate(BaseModel):
    """The texts of one template in one locale; Jinja2 syntax, rendered in a sandbox."""

    model_config = ConfigDict(extra="forbid")

    sms: str | None = None
    email_subject: str | None = None
    email_text: str | None = None
    email_html: str | None = None


class Template(BaseModel):
    """A template with its texts per locale (BCP 47 tag → texts)."""

    model_config = ConfigDict(extra="forbid")

    id: Slug
    description: str = ""
    locales: dict[str, LocaleTemplate] = Field(min_length=1)
