"""Delivery decisions, free of I/O: which channels to try, how long to wait, what to publish."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from schemas.notifications import Channel, NotificationRequest, Status, StatusChange

TERMINAL = frozenset({Status.SENT, Status.FAILED, Status.SUPPRESSED})
NO_CONTACT = "no contact"


@dataclass(frozen=True, slots=True)
class Plan:
    """The channels to try in order, or the final status when there is nothing to try."""

    channels: tuple[Channel, ...] = ()
    final: Status | None = None
    detail: str | None = None


@dataclass(slots=True)
class ChannelResult:
    """How one channel ended: sent with a provider reference, or failed with a reason."""

    channel: Channel
    sent: bool
    at: datetime
    reference: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The notification's final status after every channel tried."""

    status: Status
    channel: Channel | None
    detail: str | None
    sent: tuple[ChannelResult, ...] = field(default=())


def contact_for(request: NotificationRequest, channel: Channel) -> str | None:
    """The citizen's address on `channel`, if the request carries one."""
    return request.citizen.phone if channel is Channel.SMS else request.citizen.email


def has_content(request: NotificationRequest, channel: Channel) -> bool:
    content = request.content.sms if channel is Channel.SMS else request.content.email
    return content is not None


def plan_delivery(request: NotificationRequest, *, now: datetime) -> Plan:
    """The usable channels in the request's order; suppressed or failed when there are none."""
    if request.not_after is not None and now > request.not_after:
        return Plan(final=Status.SUPPRESSED, detail="expired")
    wanted = tuple(dict.fromkeys(request.channels))
    reachable = [c for c in wanted if contact_for(request, c)]
    usable = tuple(c for c in reachable if has_content(request, c))
    if usable:
        return Plan(channels=usable)
    if not reachable:
        return Plan(final=Status.SUPPRESSED, detail=NO_CONTACT)
    return Plan(final=Status.FAILED, detail="no content for any channel the citizen can receive")


def should_continue(request: NotificationRequest, results: list[ChannelResult]) -> bool:
    """`first` stops at the first channel that sent; `all` tries every usable channel."""
    return request.delivery == "all" or not any(r.sent for r in results)


def outcome(results: list[ChannelResult]) -> Outcome:
    """Sent when any channel sent (the first one names it), else failed with every reason."""
    sent = tuple(r for r in results if r.sent)
    if sent:
        return Outcome(Status.SENT, sent[0].channel, None, sent)
    reasons = "; ".join(f"{r.channel.value}: {r.detail}" for r in results) or "nothing was tried"
    return Outcome(Status.FAILED, None, reasons)


def backoff_delay(
    retry: int, *, base_s: float, cap_s: float, retry_after: float | None, jitter: float
) -> float:
    """Seconds before retry number `retry` (1, 2, …): exponential with jitter, at least the
    provider's `Retry-After`, never more than `cap_s`. `jitter` is a number in [0, 1)."""
    exponential = base_s * 2.0 ** (retry - 1) * (0.5 + jitter / 2)
    return min(cap_s, max(exponential, retry_after or 0.0))


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
) -> StatusChange:
    """The status.v1 message for one change of `request`'s status."""
    return StatusChange(
        notification_id=request.id,
        event=request.event,
        rule=request.rule.id,
        status=status,
        channel=channel,
        at=at,
        detail=detail,
        provider_reference=provider_reference,
        scheduled_for=request.scheduled_for,
    )


def final_changes(
    request: NotificationRequest, result: Outcome, *, at: datetime
) -> list[StatusChange]:
    """One `sent` per channel that sent, or the one failed/suppressed change."""
    if result.status is Status.SENT:
        return [
            status_change(
                request, Status.SENT, at=r.at, channel=r.channel, provider_reference=r.reference
            )
            for r in result.sent
        ]
    return [status_change(request, result.status, at=at, detail=result.detail)]
