"""Delivery decisions, free of I/O: which channels to try, how long to wait, what to publish."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from schemas.notifications import Channel, NotificationRequest, Status, StatusChange
from services.notifier import quiet
from services.notifier.clients import errors
from services.notifier.preferences import Recipient

NO_CONTACT = "no contact"
EXPIRED = "expired"
OPTED_OUT = "opted out"
TOPIC_OPTED_OUT = "topic opted out"
QUIET_HOURS = "quiet hours"
CAPPED = "daily SMS cap reached"
NO_CONTENT = "no content for any channel the citizen can receive"


@dataclass(frozen=True, slots=True)
class Plan:
    """The channels to try in order, a time to defer to, or the final status when there is
    nothing to try."""

    channels: tuple[Channel, ...] = ()
    final: Status | None = None
    detail: str | None = None
    defer_until: datetime | None = None


@dataclass(slots=True)
class ChannelResult:
    """How one channel ended: sent with a provider reference, or failed with a reason; or
    `in_doubt`: the provider may have the message (its answer was lost), left to
    reconciliation, which settles it and resumes the notification."""

    channel: Channel
    sent: bool
    at: datetime
    reference: str | None = None
    detail: str | None = None
    in_doubt: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """The notification's final status after every channel tried."""

    status: Status
    channel: Channel | None
    detail: str | None
    sent: tuple[ChannelResult, ...] = field(default=())


def has_content(request: NotificationRequest, channel: Channel) -> bool:
    content = request.content.sms if channel is Channel.SMS else request.content.email
    return content is not None


def request_recipient(request: NotificationRequest) -> Recipient:
    """The recipient as the request alone describes it: no directory, no quiet hours."""
    return Recipient(
        citizen_id=request.citizen.id,
        phone=request.citizen.phone,
        email=request.citizen.email,
        locale=request.locale,
        zone=ZoneInfo("UTC"),
        quiet=None,
    )


def ordered_channels(
    channels: Sequence[Channel], preferred: Sequence[Channel] | None
) -> tuple[Channel, ...]:
    """The request's channels (each once), in the citizen's preferred order when given;
    channels the citizen did not rank keep the request's order after the ranked ones."""
    wanted = list(dict.fromkeys(channels))
    if preferred:
        rank = {channel: index for index, channel in enumerate(preferred)}
        wanted.sort(key=lambda channel: rank.get(channel, len(rank)))
    return tuple(wanted)


def plan_delivery(
    request: NotificationRequest,
    *,
    now: datetime,
    recipient: Recipient | None = None,
    sms_sent_today: int = 0,
    sms_daily_cap: int | None = None,
) -> Plan:
    """What to do with `request` now: the channels to try in order, a time to defer it to,
    or a final status. Expiry and opt-outs bind everyone (a topic's opt-out only the
    non-critical: a critical notice cannot be turned off by topic); a critical notification bypasses
    quiet hours and the frequency cap."""
    person = recipient or request_recipient(request)
    if request.not_after is not None and now > request.not_after:
        return Plan(final=Status.SUPPRESSED, detail=EXPIRED)
    if not request.critical and request.topic in person.opted_out_topics:
        return Plan(final=Status.SUPPRESSED, detail=TOPIC_OPTED_OUT)
    usable = usable_channels(request, person)
    if not usable.channels or request.critical:
        return usable
    until = quiet.next_allowed(now, person.zone, person.quiet)
    if until > now:
        return _defer(request, until, QUIET_HOURS)
    channels = usable.channels
    if sms_daily_cap is not None and sms_sent_today >= sms_daily_cap and Channel.SMS in channels:
        return _over_cap(request, person, channels, now=now, cap=sms_daily_cap)
    return usable


def usable_channels(request: NotificationRequest, person: Recipient) -> Plan:
    """The channels in order that the citizen did not opt out of, has an address for and the
    request has content for; or why there are none (opt-outs first: they always win)."""
    allowed = [
        c for c in ordered_channels(request.channels, person.order) if c not in person.opted_out
    ]
    if not allowed:
        return Plan(final=Status.SUPPRESSED, detail=OPTED_OUT)
    reachable = [c for c in allowed if person.contact(c)]
    if not reachable:
        return Plan(final=Status.SUPPRESSED, detail=NO_CONTACT)
    usable = tuple(c for c in reachable if has_content(request, c))
    if not usable:
        return Plan(final=Status.FAILED, detail=NO_CONTENT)
    return Plan(channels=usable)


def _over_cap(
    request: NotificationRequest,
    person: Recipient,
    usable: tuple[Channel, ...],
    *,
    now: datetime,
    cap: int,
) -> Plan:
    # Our choice for the frequency cap: SMS is dropped from the plan and the other channels
    # carry the message; when SMS was the only one, the message is deferred to the start of
    # the citizen's next local day (then past their quiet hours), never dropped - unless it
    # would expire first, then it is suppressed as expired. The reason is recorded either way.
    rest = tuple(c for c in usable if c is not Channel.SMS)
    reason = f"{CAPPED} ({cap} SMS a day)"
    if rest:
        return Plan(channels=rest, detail=f"sms skipped: {reason}")
    tomorrow = quiet.next_local_day(now, person.zone)
    return _defer(request, quiet.next_allowed(tomorrow, person.zone, person.quiet), reason)


def _defer(request: NotificationRequest, until: datetime, reason: str) -> Plan:
    if request.not_after is not None and until > request.not_after:
        return Plan(final=Status.SUPPRESSED, detail=f"{EXPIRED} before the {reason} end")
    return Plan(defer_until=until, detail=reason)


def opts_out(channel: Channel, error_code: str | None) -> bool:
    """A provider error saying the recipient unsubscribed with the provider itself (Twilio
    21610, after STOP; see `clients.errors`): record the opt-out on our side too."""
    return channel is Channel.SMS and errors.is_twilio_opt_out(error_code)


def should_continue(request: NotificationRequest, results: list[ChannelResult]) -> bool:
    """`first` stops at the first channel that sent; `all` tries every usable channel."""
    return request.delivery == "all" or not any(r.sent for r in results)


def outcome(results: list[ChannelResult], note: str | None = None) -> Outcome:
    """Sent when any channel sent (the first one names it), else failed with every reason;
    `note` (why the plan left a channel out, e.g. the SMS cap) is kept in the detail."""
    sent = tuple(r for r in results if r.sent)
    if sent:
        return Outcome(Status.SENT, sent[0].channel, note, sent)
    reasons = "; ".join(f"{r.channel.value}: {r.detail}" for r in results) or "nothing was tried"
    return Outcome(Status.FAILED, None, f"{reasons}; {note}" if note else reasons)


def backoff_delay(
    retry: int, *, base_s: float, cap_s: float, retry_after: float | None, jitter: float
) -> float:
    """Seconds before retry number `retry` (1, 2, …): "full jitter", a uniform draw in
    [0, min(cap_s, base_s·2^(retry-1))), at least the provider's `Retry-After`, never more
    than `cap_s`. `jitter` is the draw's fraction, a number in [0, 1).

    A Retry-After beyond `cap_s` is still honoured: `sending.ChannelSender` waits it in full
    when it fits the channel's time limit (else the channel is exhausted at once), and the
    sender's token bucket pauses every call to that provider until it has passed."""
    ceiling = min(cap_s, base_s * 2.0 ** (retry - 1))
    return min(cap_s, max(ceiling * jitter, retry_after or 0.0))


# Unicode bidirectional controls: embeddings and overrides (U+202A-U+202E), isolates
# (U+2066-U+2069) and the marks (U+200E, U+200F, U+061C). In a subject or an SMS they can make
# text read differently from what it is ("Trojan Source" style: a link or an amount reversed).
_BIDI_CONTROLS = dict.fromkeys(
    [*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x200E, 0x200F, 0x061C]
)


def strip_bidi_controls(text: str) -> str:
    """`text` without Unicode bidirectional control characters (pure)."""
    return text.translate(_BIDI_CONTROLS)


def unsubscribe_headers(public_url: str, token: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe headers for every email."""
    return {
        "List-Unsubscribe": f"<{public_url.rstrip('/')}/unsubscribe/{token}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def status_change(
    request: NotificationRequest,
    status: Status,
    *,
    at: datetime,
    channel: Channel | None = None,
    detail: str | None = None,
    provider_reference: str | None = None,
    scheduled_for: datetime | None = None,
) -> StatusChange:
    """The status.v1 message for one change of `request`'s status; a deferral carries the
    time it will go as `scheduled_for`."""
    return StatusChange(
        notification_id=request.id,
        event=request.event,
        rule=request.rule.id,
        status=status,
        channel=channel,
        at=at,
        detail=detail,
        provider_reference=provider_reference,
        scheduled_for=scheduled_for or request.scheduled_for,
    )


def final_changes(
    request: NotificationRequest, result: Outcome, *, at: datetime
) -> list[StatusChange]:
    """One `sent` per channel that sent (each with the outcome's detail, e.g. why SMS was
    skipped), or the one failed/suppressed change."""
    if result.status is Status.SENT:
        return [
            status_change(
                request,
                Status.SENT,
                at=r.at,
                channel=r.channel,
                detail=result.detail,
                provider_reference=r.reference,
            )
            for r in result.sent
        ]
    return [status_change(request, result.status, at=at, detail=result.detail)]
