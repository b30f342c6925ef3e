"""Taking on a consumer batch at once: which requests are new, their `queued` rows, and what
delivery needs to know about their citizens - a handful of statements per batch instead of
several per request."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from schemas.notifications import Channel, NotificationRequest
from services.notifier import agency_preferences, directory, repository
from services.notifier.preferences import Recipient, contacts, recipient
from services.notifier.quiet import QuietHours

# A citizen's local day began at most this long ago (a 25-hour DST day, with room to spare).
_LONGEST_DAY = timedelta(hours=26)


@dataclass(frozen=True, slots=True)
class Defaults:
    """What applies when neither the directory nor the event says otherwise."""

    zone: str = "Europe/Madrid"
    locale: str = "es"
    quiet: QuietHours | None = None
    sms_daily_cap: int | None = None


@dataclass(frozen=True, slots=True)
class Taken:
    """A request this batch recorded as `queued` (so no attempt of it can exist yet), with
    its recipient and the citizen's counted SMS of the last day as they were at admission."""

    request: NotificationRequest
    at: datetime
    person: Recipient
    sms_times: tuple[datetime, ...] = ()

    def sms_sent_since(self, since: datetime) -> int:
        return sum(1 for at in self.sms_times if at >= since)


@dataclass(slots=True)
class Admitted:
    """The requests of a batch that were new and are now `queued`, by notification id; the
    rest (seen before, or taken on by another consumer meanwhile) go one by one."""

    taken: dict[str, Taken] = field(default_factory=dict)


def take_on(
    requests: Sequence[NotificationRequest],
    *,
    sessions: repository.SessionFactory,
    defaults: Defaults,
    now: datetime,
) -> Admitted:
    """Insert the new requests of a batch in `queued`, in one transaction, and load their
    citizens' directory rows, address opt-outs and (when a cap applies) recent SMS."""
    with sessions() as session:
        known = repository.existing_ids(session=session, notification_ids=[r.id for r in requests])
    fresh = [r for r in requests if r.id not in known]
    if not fresh:
        return Admitted()
    try:
        with sessions.begin() as session:
            repository.insert_notifications(session=session, requests=fresh, now=now)
    except IntegrityError:  # another consumer took one on between our read and insert
        return Admitted()
    return Admitted({t.request.id: t for t in _recipients(fresh, sessions, defaults, now)})


def _recipients(
    fresh: Sequence[NotificationRequest],
    sessions: repository.SessionFactory,
    defaults: Defaults,
    now: datetime,
) -> list[Taken]:
    capped = [r.citizen.id for r in fresh if not r.critical]
    with sessions() as session:
        people = recipients(session=session, requests=fresh, defaults=defaults)
        times = (
            repository.sms_times_since(
                session=session,
                citizen_ids=list(dict.fromkeys(capped)),
                since=now - _LONGEST_DAY,
            )
            if capped and defaults.sms_daily_cap is not None
            else {}
        )
    return [
        Taken(
            request=request,
            at=now,
            person=people[request.id],
            sms_times=tuple(times.get(request.citizen.id, ())),
        )
        for request in fresh
    ]


def recipients(
    *, session: Session, requests: Sequence[NotificationRequest], defaults: Defaults
) -> dict[str, Recipient]:
    """Who each request goes to, by notification id: the citizen as the directory (layered
    with the request's agency's preferences) and the event describe them, with the channels
    whose address is on the opt-out list. The one place a `Recipient` is built: a batch's
    admission, a single delivery and a fallback all come here."""
    citizen_ids = list(dict.fromkeys(r.citizen.id for r in requests))
    shared = directory.preferences_of(session=session, citizen_ids=citizen_ids)
    layers = agency_preferences.layers_of(session=session, citizen_ids=citizen_ids)
    rows = {
        r.id: agency_preferences.layered(
            shared.get(r.citizen.id),
            layers.get((r.citizen.id, agency_preferences.agency_of(r.event.source))),
        )
        for r in requests
    }
    addresses = {r.id: contacts(r, rows[r.id]) for r in requests}  # directory's, else event's
    wanted = list(dict.fromkeys(a for found in addresses.values() for a in found.values()))
    blocked = directory.opted_out_addresses(session=session, addresses=wanted)
    people = {}
    for request in requests:
        opted: set[Channel] = {
            channel
            for channel, address in addresses[request.id].items()
            if (channel.value, address) in blocked
        }
        people[request.id] = recipient(
            request,
            rows[request.id],
            opted_out_addresses=opted,
            default_zone=defaults.zone,
            default_locale=defaults.locale,
            default_quiet=defaults.quiet,
        )
    return people
