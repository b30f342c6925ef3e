"""What an agency may see and set of a citizen's preferences: its own layer, nothing else.

An agency key reads and changes only what that agency set (`AgencyPreferences`) or what its
own events carried for the citizen (the latest notification of its events); another agency's
settings, the admin's and the citizen's own are never shown to it. What it sets applies only
to notifications of its own events, so no agency can redirect another's messages. Opt-outs
the citizen (STOP, unsubscribe) or the admin recorded apply to its notifications too, are
shown to it as `opt_out_locked` (apart from its own `opt_out`), and cannot be undone by it.
A citizen it has neither set anything for nor sent anything to is unknown to it: 404,
whether or not others know them."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from schemas.notifications import Channel
from services.notifier import directory
from services.notifier.models import AgencyPreferences, Notification, Preferences
from services.notifier.preferences import PreferencesDoc, PreferencesView, QuietHoursDoc


def agency_of(source: str) -> str:
    """The agency an event source belongs to: `dgt` for `dgt` and `dgt/madrid`."""
    return source.split("/", 1)[0]


def _of_agency(agency_id: str) -> Any:
    return or_(
        Notification.event_source == agency_id,
        Notification.event_source.startswith(f"{agency_id}/", autoescape=True),
    )


def layered(shared: Preferences | None, layer: AgencyPreferences | None) -> Preferences | None:
    """The row delivery uses for one agency's notification: the shared row's values first,
    the agency's where the shared row has none, every opt-out of both (a transient row)."""
    if layer is None:
        return shared
    if shared is None:
        shared = Preferences(citizen_id=layer.citizen_id, channels=None, opt_out=[])
    quiet = (shared.quiet_start, shared.quiet_end)
    if None in quiet:
        quiet = (layer.quiet_start, layer.quiet_end)
    return Preferences(
        citizen_id=layer.citizen_id,
        channels=shared.channels if shared.channels is not None else layer.channels,
        opt_out=sorted(set(shared.opt_out or []) | set(layer.opt_out)),
        opt_out_topics=list(shared.opt_out_topics or []),
        quiet_start=quiet[0],
        quiet_end=quiet[1],
        timezone=shared.timezone or layer.timezone,
        locale=shared.locale or layer.locale,
        phone=shared.phone or layer.phone,
        email=shared.email or layer.email,
        updated_at=shared.updated_at or layer.changed_at,
    )


def layers_of(
    *, session: Session, citizen_ids: Sequence[str]
) -> dict[tuple[str, str], AgencyPreferences]:
    """Every agency layer of these citizens, by (citizen id, agency id)."""
    found: dict[tuple[str, str], AgencyPreferences] = {}
    for start in range(0, len(citizen_ids), 500):
        chunk = citizen_ids[start : start + 500]
        query = select(AgencyPreferences).where(AgencyPreferences.citizen_id.in_(chunk))
        found.update(((r.citizen_id, r.agency_id), r) for r in session.scalars(query))
    return found


def _carried(session: Session, citizen_id: str, agency_id: str) -> dict[str, Any] | None:
    """The citizen as the agency's latest event carried them, if it sent any."""
    query = (
        select(Notification.request)
        .where(Notification.citizen_id == citizen_id, _of_agency(agency_id))
        .order_by(Notification.created_at.desc())
        .limit(1)
    )
    request = session.scalars(query).first()
    if request is None:
        return None
    citizen: dict[str, Any] = request.get("citizen") or {}
    return citizen


def _locked(session: Session, shared: Preferences | None, view: PreferencesView) -> list[Channel]:
    """Opt-outs the agency cannot undo: the shared row's, and its addresses' (STOP)."""
    locked = {Channel(c) for c in (shared.opt_out if shared else [])}
    addresses = {Channel.SMS: view.phone, Channel.EMAIL: view.email}
    known = {channel: address for channel, address in addresses.items() if address}
    locked |= directory.opted_out_channels(session=session, addresses=known)
    return sorted(locked)


def view(*, session: Session, citizen_id: str, agency_id: str) -> PreferencesView | None:
    """What the agency sees; None when the citizen is unknown to it."""
    layer = session.get(AgencyPreferences, (citizen_id, agency_id))
    carried = _carried(session, citizen_id, agency_id)
    if layer is None and carried is None:
        return None
    own = layer or AgencyPreferences(citizen_id=citizen_id, agency_id=agency_id, opt_out=[])
    event = carried or {}
    quiet = (
        QuietHoursDoc(start=own.quiet_start, end=own.quiet_end)
        if own.quiet_start and own.quiet_end
        else None
    )
    found = PreferencesView.model_construct(
        channels=[Channel(c) for c in own.channels] if own.channels is not None else None,
        opt_out=[Channel(c) for c in own.opt_out],
        quiet_hours=quiet,
        timezone=own.timezone or event.get("timezone"),
        locale=own.locale or event.get("locale"),
        phone=own.phone or event.get("phone"),
        email=own.email or event.get("email"),
        changed_by=f"agency:{agency_id}" if layer is not None else None,
        changed_at=_utc(layer.changed_at) if layer is not None else None,
        opt_out_locked=[],
    )
    shared = directory.get_preferences(session=session, citizen_id=citizen_id)
    found.opt_out_locked = _locked(session, shared, found)
    return found


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def put(
    *, session: Session, citizen_id: str, agency_id: str, doc: PreferencesDoc, now: datetime
) -> None:
    """Replace the agency's own layer for the citizen with `doc` (its opt-outs are its own;
    the citizen's stay whatever `doc` says)."""
    row = session.get(AgencyPreferences, (citizen_id, agency_id))
    if row is None:
        row = AgencyPreferences(citizen_id=citizen_id, agency_id=agency_id)
        session.add(row)
    row.channels = [c.value for c in doc.channels] if doc.channels is not None else None
    row.opt_out = [c.value for c in doc.opt_out]
    row.quiet_start = doc.quiet_hours.start if doc.quiet_hours else None
    row.quiet_end = doc.quiet_hours.end if doc.quiet_hours else None
    row.timezone, row.locale = doc.timezone, doc.locale
    row.phone, row.email = doc.phone, doc.email
    row.changed_at = now
    session.flush()
