"""Citizen preferences: the API document, and merging the directory with an event's data.

The directory (what the citizen or an admin told us) wins over the event for contact details,
locale and zone; the event fills what the directory lacks. Opt-outs, from the directory or
recorded against an address (STOP, unsubscribe), always win: `critical` never overrides them.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from schemas.events import Email, LocaleTag, Phone, TimeZoneName
from schemas.notifications import Channel, NotificationRequest
from schemas.rules import Slug
from services.notifier.models import Preferences
from services.notifier.quiet import QuietHours, parse_hhmm


def _hhmm(value: str) -> str:
    parse_hhmm(value)
    return value.strip()


HHMM = Annotated[str, AfterValidator(_hhmm)]


class QuietHoursDoc(BaseModel):
    """Local wall-clock window with no non-critical messages; may cross midnight."""

    model_config = ConfigDict(extra="forbid")

    start: HHMM
    end: HHMM


class PreferencesDoc(BaseModel):
    """`GET/PUT /v1/citizens/{id}/preferences`: PUT replaces the whole document."""

    model_config = ConfigDict(extra="forbid")

    channels: list[Channel] | None = None
    opt_out: list[Channel] = []
    quiet_hours: QuietHoursDoc | None = None
    timezone: TimeZoneName | None = None
    locale: LocaleTag | None = None
    phone: Phone | None = None
    email: Email | None = None
    # Topics (rule `topic` slugs) the citizen does not want; critical notices still go.
    opt_out_topics: list[Slug] = Field([], max_length=100)

    @field_validator("channels", "opt_out")
    @classmethod
    def _no_repeats(cls, value: list[Channel] | None) -> list[Channel] | None:
        if value is not None and len(set(value)) != len(value):
            raise ValueError("each channel may appear only once")
        return value


class PreferencesView(PreferencesDoc):
    """What GET and PUT answer: the document, plus who last replaced it through the API
    (`admin`, `agency:<id>` or `citizen`, from the preference page) and when, and (for an
    agency) the opt-outs it cannot undo. These are read-only: a PUT may send them back (a
    read-modify-write) and they are ignored."""

    changed_by: str | None = Field(None, json_schema_extra={"readOnly": True})
    changed_at: datetime | None = Field(None, json_schema_extra={"readOnly": True})
    # Shown to an agency: opt-outs the citizen (STOP, unsubscribe) or the admin recorded,
    # which apply to its notifications whatever its own `opt_out` says.
    opt_out_locked: list[Channel] = Field([], json_schema_extra={"readOnly": True})


def to_doc(row: Preferences | None) -> PreferencesView:
    """The stored preferences as the API shows them; an empty document when there are none."""
    if row is None:
        return PreferencesView()
    quiet = (
        QuietHoursDoc(start=row.quiet_start, end=row.quiet_end)
        if row.quiet_start is not None and row.quiet_end is not None
        else None
    )
    changed_at = row.changed_at
    return PreferencesView.model_construct(
        channels=[Channel(c) for c in row.channels] if row.channels is not None else None,
        opt_out=[Channel(c) for c in row.opt_out],
        quiet_hours=quiet,
        timezone=row.timezone,
        locale=row.locale,
        phone=row.phone,
        email=row.email,
        opt_out_topics=list(row.opt_out_topics or []),
        changed_by=row.changed_by,
        changed_at=changed_at.replace(tzinfo=UTC)
        if changed_at and not changed_at.tzinfo
        else changed_at,
    )


@dataclass(frozen=True, slots=True)
class Recipient:
    """Who a notification goes to, after merging the directory with the event."""

    citizen_id: str
    phone: str | None
    email: str | None
    locale: str
    zone: ZoneInfo
    quiet: QuietHours | None
    order: tuple[Channel, ...] | None = None
    opted_out: frozenset[Channel] = frozenset()
    opted_out_topics: frozenset[str] = frozenset()

    def contact(self, channel: Channel) -> str | None:
        return self.phone if channel is Channel.SMS else self.email


def contacts(request: NotificationRequest, row: Preferences | None) -> dict[Channel, str]:
    """The address per channel: the directory's, else the event's."""
    phone = (row.phone if row else None) or request.citizen.phone
    email = (row.email if row else None) or request.citizen.email
    found = {Channel.SMS: phone, Channel.EMAIL: email}
    return {channel: address for channel, address in found.items() if address}


def _zone(name: str | None, default: str) -> ZoneInfo:
    try:
        return ZoneInfo(name or default)
    except (ValueError, KeyError):  # validated on the way in; a stale name must not stop delivery
        return ZoneInfo(default)


def recipient(
    request: NotificationRequest,
    row: Preferences | None,
    *,
    opted_out_addresses: Collection[Channel] = (),
    default_zone: str,
    default_locale: str,
    default_quiet: QuietHours | None,
) -> Recipient:
    """Merge the directory row (may be None) with the request's citizen.

    `opted_out_addresses` names the channels whose address is on the opt-out list."""
    found = contacts(request, row)
    quiet = default_quiet
    if row is not None and row.quiet_start is not None and row.quiet_end is not None:
        quiet = QuietHours(parse_hhmm(row.quiet_start), parse_hhmm(row.quiet_end))
    opted = {Channel(c) for c in (row.opt_out if row else [])} | set(opted_out_addresses)
    return Recipient(
        citizen_id=request.citizen.id,
        phone=found.get(Channel.SMS),
        email=found.get(Channel.EMAIL),
        locale=(row.locale if row else None)
        or request.citizen.locale
        or request.locale
        or default_locale,
        zone=_zone((row.timezone if row else None) or request.citizen.timezone, default_zone),
        quiet=quiet,
        order=tuple(Channel(c) for c in row.channels) if row and row.channels else None,
        opted_out=frozenset(opted),
        opted_out_topics=frozenset(row.opt_out_topics or []) if row else frozenset(),
    )
