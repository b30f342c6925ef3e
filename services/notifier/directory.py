"""Queries on the citizen directory: preferences and address opt-outs (session as keyword)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from schemas.notifications import Channel
from services.notifier.models import AddressOptOut, Preferences
from services.notifier.preferences import PreferencesDoc


def get_preferences(*, session: Session, citizen_id: str) -> Preferences | None:
    return session.get(Preferences, citizen_id)


def preferences_of(*, session: Session, citizen_ids: Sequence[str]) -> dict[str, Preferences]:
    """The directory rows of these citizens (those that have one), by citizen id."""
    found: dict[str, Preferences] = {}
    for start in range(0, len(citizen_ids), 500):
        chunk = citizen_ids[start : start + 500]
        query = select(Preferences).where(Preferences.citizen_id.in_(chunk))
        found.update((row.citizen_id, row) for row in session.scalars(query))
    return found


def opted_out_addresses(*, session: Session, addresses: Sequence[str]) -> set[tuple[str, str]]:
    """The (channel, address) pairs on the opt-out list among these addresses."""
    found: set[tuple[str, str]] = set()
    for start in range(0, len(addresses), 500):
        chunk = addresses[start : start + 500]
        query = select(AddressOptOut.channel, AddressOptOut.address).where(
            AddressOptOut.address.in_(chunk)
        )
        found.update((channel, address) for channel, address in session.execute(query))
    return found


def _blank(citizen_id: str, now: datetime) -> Preferences:
    return Preferences(citizen_id=citizen_id, channels=None, opt_out=[], updated_at=now)


def put_preferences(
    *, session: Session, citizen_id: str, doc: PreferencesDoc, now: datetime
) -> Preferences:
    """Replace the citizen's preferences with `doc` (creating the row when there is none)."""
    row = session.get(Preferences, citizen_id)
    if row is None:
        row = _blank(citizen_id, now)
        session.add(row)
    row.channels = [c.value for c in doc.channels] if doc.channels is not None else None
    row.opt_out = [c.value for c in doc.opt_out]
    row.quiet_start = doc.quiet_hours.start if doc.quiet_hours else None
    row.quiet_end = doc.quiet_hours.end if doc.quiet_hours else None
    row.timezone, row.locale = doc.timezone, doc.locale
    row.phone, row.email = doc.phone, doc.email
    row.opt_out_topics = list(doc.opt_out_topics)
    row.updated_at = now
    session.flush()
    return row


def _set_opt_out(row: Preferences, channel: Channel, opted_out: bool, now: datetime) -> bool:
    current = set(row.opt_out)
    wanted = current | {channel.value} if opted_out else current - {channel.value}
    if wanted == current:
        return False
    row.opt_out = sorted(wanted)
    row.updated_at = now
    return True


def opt_out_citizen(*, session: Session, citizen_id: str, channel: Channel, now: datetime) -> bool:
    """Record that the citizen wants nothing more on `channel`; False when already so."""
    row = session.get(Preferences, citizen_id)
    if row is None:
        row = _blank(citizen_id, now)
        session.add(row)
    changed = _set_opt_out(row, channel, True, now)
    session.flush()
    return changed


def set_phone_opt_out(
    *, session: Session, phone: str, opted_out: bool, now: datetime, source: str = "sms-keyword"
) -> int:
    """STOP/START by phone (or a provider's opt-out, `source` naming it): the address list,
    and every directory entry with that number. Returns how many directory entries changed."""
    if opted_out:
        add_address_opt_out(
            session=session, channel=Channel.SMS, address=phone, source=source, now=now
        )
    else:
        session.execute(
            delete(AddressOptOut).where(
                AddressOptOut.channel == Channel.SMS.value, AddressOptOut.address == phone
            )
        )
    rows = session.scalars(select(Preferences).where(Preferences.phone == phone))
    changed = sum(_set_opt_out(row, Channel.SMS, opted_out, now) for row in rows)
    session.flush()
    return changed


def add_address_opt_out(
    *, session: Session, channel: Channel, address: str, source: str, now: datetime
) -> None:
    if session.get(AddressOptOut, (channel.value, address)) is None:
        session.add(AddressOptOut(channel=channel.value, address=address, source=source, at=now))
        session.flush()


def opted_out_channels(*, session: Session, addresses: Mapping[Channel, str]) -> set[Channel]:
    """The channels whose address (of those given) is on the opt-out list."""
    found: set[Channel] = set()
    for channel, address in addresses.items():
        if session.get(AddressOptOut, (channel.value, address)) is not None:
            found.add(channel)
    return found
