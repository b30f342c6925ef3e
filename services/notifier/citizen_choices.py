"""What the citizen preference page shows and saves: who writes to the citizen (from their
notifications), and the citizen's own choices as the shared preferences layer.

The page's choices are the shared layer of `agency_preferences` (the same row the admin
sets), marked `changed_by: citizen`, so they apply to every agency's notifications and win
over what any agency set. Contact details and zone are kept as they were: the page never
shows or changes an address. SMS STOP is an opt-out of the address (`AddressOptOut`), which
the page cannot undo: only START does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from schemas.notifications import Channel
from services.notifier import directory
from services.notifier.agency_preferences import agency_of
from services.notifier.models import Notification, Preferences
from services.notifier.quiet import parse_hhmm

CHANGED_BY = "citizen"
LANGUAGES = ("es", "en")
_RECENT = 500  # notifications looked at to say who writes to the citizen


@dataclass(frozen=True, slots=True)
class Topic:
    """A kind of notice the citizen receives: its slug, its label per locale, and whether
    any of its rules is critical (then it cannot be turned off)."""

    slug: str
    labels: Mapping[str, str]
    critical: bool = False

    def label(self, lang: str) -> str:
        return self.labels.get(lang) or next(iter(self.labels.values()), self.slug)


@dataclass(slots=True)
class Senders:
    """Who writes to the citizen: agencies, topics (by slug), and the critical notices."""

    agencies: list[str] = field(default_factory=list)
    topics: dict[str, Topic] = field(default_factory=dict)
    critical: list[Topic] = field(default_factory=list)  # by topic, else by rule id
    locale: str | None = None  # of the latest notification
    phone: str | None = None  # the latest one a notification carried (to tell about STOP)


def senders_of(*, session: Session, citizen_id: str) -> Senders:
    """Agencies and topics of the citizen's recent notifications, newest first."""
    query = (
        select(Notification.event_source, Notification.request, Notification.rule_id)
        .where(Notification.citizen_id == citizen_id)
        .order_by(Notification.created_at.desc())
        .limit(_RECENT)
    )
    found = Senders()
    for source, request, rule_id in session.execute(query):
        _add(found, agency_of(source), request or {}, rule_id)
    return found


def _add(found: Senders, agency: str, request: Mapping[str, object], rule_id: str) -> None:
    if agency not in found.agencies:
        found.agencies.append(agency)
    if found.locale is None and isinstance(request.get("locale"), str):
        found.locale = str(request["locale"])
    citizen = request.get("citizen")
    if found.phone is None and isinstance(citizen, dict) and isinstance(citizen.get("phone"), str):
        found.phone = citizen["phone"]
    critical = bool(request.get("critical"))
    slug = request.get("topic")
    labels = request.get("topic_labels")
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    if isinstance(slug, str) and slug:
        known = found.topics.get(slug)
        merged = {**labels, **(known.labels if known else {})}
        found.topics[slug] = Topic(slug, merged, critical or bool(known and known.critical))
    if critical:
        name = slug if isinstance(slug, str) and slug else rule_id
        if all(known.slug != name for known in found.critical):
            found.critical.append(Topic(name, labels, True))


@dataclass(frozen=True, slots=True)
class Choices:
    """What the form says, validated: channels in order of preference with those turned
    off, topics turned off, language and quiet hours (both or neither)."""

    order: tuple[Channel, ...]
    off: frozenset[Channel]
    topics_off: frozenset[str]
    language: str
    quiet: tuple[str, str] | None


class FormInvalid(Exception):
    """The form cannot be saved: the field and the message key saying why."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field_name = field_name
        self.message = message


def parse_form(form: Mapping[str, Sequence[str]], *, topics: Sequence[str]) -> Choices:
    """The choices in a submitted form; `topics` are the slugs the page offered (others
    are ignored, a topic can only be turned off from a page that offered it)."""
    first = _one(form, "first") or Channel.SMS.value
    if first not in (Channel.SMS.value, Channel.EMAIL.value):
        raise FormInvalid("first", "Choose which channel goes first")
    order = (Channel(first), *(c for c in Channel if c.value != first))
    wanted = set(form.get("channel", []))
    off = {c for c in Channel if c.value not in wanted}
    kept = set(form.get("topic", []))
    topics_off = {slug for slug in topics if slug not in kept}
    if _one(form, "stop_all"):
        off, topics_off = set(Channel), set(topics)
    language = _one(form, "language") or LANGUAGES[0]
    if language not in LANGUAGES:
        raise FormInvalid("language", "Choose a language")
    return Choices(order, frozenset(off), frozenset(topics_off), language, _quiet(form))


def _one(form: Mapping[str, Sequence[str]], name: str) -> str:
    values = form.get(name) or [""]
    return values[0].strip()


def _quiet(form: Mapping[str, Sequence[str]]) -> tuple[str, str] | None:
    start, end = _one(form, "quiet_start"), _one(form, "quiet_end")
    if not start and not end:
        return None
    for name, value in (("quiet_start", start), ("quiet_end", end)):
        try:
            parse_hhmm(value)
        except ValueError:
            raise FormInvalid(name, "Enter a time like 21:00") from None
    return (start, end)


def save(*, session: Session, citizen_id: str, choices: Choices, now: datetime) -> Preferences:
    """Write the choices as the citizen's shared preferences (`changed_by: citizen`)."""
    row = directory.get_preferences(session=session, citizen_id=citizen_id)
    if row is None:
        row = Preferences(citizen_id=citizen_id, channels=None, opt_out=[], updated_at=now)
        session.add(row)
    row.channels = [c.value for c in choices.order]
    row.opt_out = sorted(c.value for c in choices.off)
    row.opt_out_topics = sorted(choices.topics_off)
    row.locale = choices.language
    row.quiet_start, row.quiet_end = choices.quiet or (None, None)
    row.updated_at = row.changed_at = now
    row.changed_by = CHANGED_BY
    session.flush()
    return row
