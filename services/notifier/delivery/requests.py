"""Carrying out one notification request: record it, send it through the providers, and say
which status changes to publish. The consumer calls this; the decisions live in `flows`."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from schemas.notifications import Channel, NotificationRequest, Status, StatusChange
from services.notifier import flows, quiet, repository, tokens
from services.notifier.clients import Senders
from services.notifier.delivery import admission, sending
from services.notifier.delivery.admission import Admitted, Defaults, Taken
from services.notifier.delivery.journal import Journal
from services.notifier.delivery.recording import JournalRecorder
from services.notifier.models import Notification
from services.notifier.preferences import Recipient

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(slots=True)
class Result:
    """What processing one request produced: status changes to publish, and whether it failed."""

    changes: list[StatusChange] = field(default_factory=list)
    failed: str | None = None
    request: NotificationRequest | None = None


class Deliverer:
    """Takes a notification request from `queued` to `deferred`, `sent`, `failed` or
    `suppressed`; safe to call from several threads (one session per step).

    Every write of a delivery goes through `journal` (a `JournalRecorder`): a consumer batch
    shares one recorder (`deliver_taken`, the caller waits), while `process` and `resume`
    use one of their own and wait for it, so what they did is durable when they return."""

    def __init__(
        self,
        *,
        sessions: sessionmaker[Session],
        journal: Journal,
        senders: Senders,
        public_url: str,
        token_keys: tokens.TokenKeys,
        policy: sending.RetryPolicy | None = None,
        defaults: Defaults | None = None,
        clock: Callable[[], datetime] = utcnow,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
        settles_in_doubt: frozenset[Channel] = frozenset(),
    ) -> None:
        self._sessions = sessions
        self._defaults = defaults or Defaults()
        self._clock = clock
        self._journal = journal
        self._sending = sending.ChannelSender(
            sessions=sessions,
            senders=senders,
            public_url=public_url,
            token_keys=token_keys,
            policy=policy or sending.RetryPolicy(),
            clock=clock,
            sleep=sleep,
            rng=rng or random.Random(),  # noqa: S311 - jitter, not security
            settles_in_doubt=settles_in_doubt,
        )

    def process(self, request: NotificationRequest) -> Result:
        """Deliver `request` unless it was already taken on; a redelivery sends nothing twice."""
        with self._sessions() as session:
            existing = repository.get_notification(session=session, notification_id=request.id)
        if existing is not None:
            return self._replay(request, existing)
        now = self._clock()
        try:
            with self._sessions.begin() as session:
                repository.insert_notification(session=session, request=request, now=now)
        except IntegrityError:  # another consumer took it on between our read and insert
            return Result()
        result = Result([flows.status_change(request, Status.QUEUED, at=now)])
        self._deliver(request, result)
        return result

    def take_on(self, requests: list[NotificationRequest]) -> Admitted:
        """Record a batch's new requests as `queued` at once (see `admission.take_on`)."""
        return admission.take_on(
            requests, sessions=self._sessions, defaults=self._defaults, now=self._clock()
        )

    def deliver_taken(
        self, taken: Taken, recorder: JournalRecorder, *, sms_extra: int = 0
    ) -> Result:
        """Deliver a request `take_on` recorded, writing through `recorder`; `sms_extra`
        counts the citizen's SMS sent since admission (earlier requests of the batch)."""
        request = taken.request
        result = Result([flows.status_change(request, Status.QUEUED, at=taken.at)])
        now = self._clock()
        since = quiet.local_day_start(now, taken.person.zone)
        sent_today = taken.sms_sent_since(since) + sms_extra
        self._carry_out(request, result, taken.person, sent_today, recorder, fresh=True)
        return result

    def resume(self, notification_id: str) -> Result:
        """Carry on with a deferred notification whose time came, or one a crash interrupted
        (after reconciliation); does nothing for one that already reached a final status."""
        now = self._clock()
        with self._sessions.begin() as session:
            row = repository.get_notification(session=session, notification_id=notification_id)
            if row is None or row.status not in (Status.DEFERRED, Status.QUEUED):
                repository.delete_deferral(session=session, notification_id=notification_id)
                return self._unpublished(row)
            request = NotificationRequest.model_validate(row.request)
            result = Result(request=request)
            if row.status == Status.DEFERRED:
                repository.set_status(
                    session=session, notification_id=row.id, status=Status.QUEUED, now=now
                )
                result.changes.append(flows.status_change(request, Status.QUEUED, at=now))
            repository.delete_deferral(session=session, notification_id=notification_id)
        self._deliver(request, result)
        return result

    def address(self, request: NotificationRequest, channel: Channel) -> str | None:
        """Where `request` goes on `channel` (directory first, then the event)."""
        person, _ = self._recipient(request, self._clock())
        return person.contact(channel)

    def _unpublished(self, row: Notification | None) -> Result:
        """A finished notification's last change, when status.v1 never acknowledged it."""
        if row is None or row.published_status == row.status:
            return Result()
        request = NotificationRequest.model_validate(row.request)
        return Result(self._stored_changes(request, row, Status(row.status)), request=request)

    def _replay(self, request: NotificationRequest, row: Notification) -> Result:
        """Republish what status.v1 never acknowledged; resume only what cannot duplicate."""
        result = Result()
        if row.published_status is None:
            result.changes.append(
                flows.status_change(request, Status.QUEUED, at=repository.utc(row.created_at))
            )
        status = Status(row.status)
        if status is Status.QUEUED:
            with self._sessions() as session:
                pending = repository.sending_attempts(session=session, notification_id=row.id)
            if not pending:  # every call finished: channels already sent are not sent again
                self._deliver(request, result)
            else:  # crashed mid-call: the reconciler asks the provider before anything else
                log.warning("notification left mid-delivery", extra={"notification_id": row.id})
            return result
        if row.published_status != row.status:
            result.changes += self._stored_changes(request, row, status)
        return result

    def _stored_changes(
        self, request: NotificationRequest, row: Notification, status: Status
    ) -> list[StatusChange]:
        at = repository.utc(row.updated_at)
        if status is Status.DEFERRED:
            with self._sessions() as session:
                deferral = repository.get_deferral(session=session, notification_id=row.id)
            due = repository.utc(deferral.due_at) if deferral else None
            return [
                flows.status_change(request, status, at=at, detail=row.detail, scheduled_for=due)
            ]
        if status is not Status.SENT:
            return [flows.status_change(request, status, at=at, detail=row.detail)]
        with self._sessions() as session:
            sent = repository.sent_attempts(session=session, notification_id=row.id)
        return [
            flows.status_change(
                request,
                Status.SENT,
                at=repository.utc(a.at),
                channel=Channel(a.channel),
                detail=row.detail,
                provider_reference=a.provider_reference,
            )
            for a in sent
        ]

    def _recipient(self, request: NotificationRequest, now: datetime) -> tuple[Recipient, int]:
        """The citizen as the directory and the event describe them, and today's SMS count."""
        with self._sessions() as session:
            person = admission.recipients(
                session=session, requests=[request], defaults=self._defaults
            )[request.id]
            sent_today = repository.count_sms_since(
                session=session,
                citizen_id=request.citizen.id,
                since=quiet.local_day_start(now, person.zone),
            )
        return person, sent_today

    def _deliver(self, request: NotificationRequest, result: Result) -> None:
        """Deliver a request that may have attempts already; durable when this returns."""
        person, sent_today = self._recipient(request, self._clock())
        recorder = JournalRecorder(self._journal)
        self._carry_out(request, result, person, sent_today, recorder, fresh=False)
        recorder.wait()

    def _carry_out(
        self,
        request: NotificationRequest,
        result: Result,
        person: Recipient,
        sent_today: int,
        recorder: JournalRecorder,
        *,
        fresh: bool,
    ) -> None:
        """Plan and carry out; `fresh` when no attempt of the request can exist yet."""
        now = self._clock()
        plan = flows.plan_delivery(
            request,
            now=now,
            recipient=person,
            sms_sent_today=sent_today,
            sms_daily_cap=self._defaults.sms_daily_cap,
        )
        if plan.defer_until is not None:
            self._defer(request, plan.defer_until, plan.detail or "deferred", result, recorder)
            return
        if plan.final is not None:
            outcome = flows.Outcome(plan.final, None, plan.detail)
        else:
            results: list[flows.ChannelResult] = []
            for channel in plan.channels:
                if not flows.should_continue(request, results):
                    break
                results.append(self._channel(request, channel, person, recorder, fresh=fresh))
                if results[-1].in_doubt:
                    return  # stays `queued`: the reconciler settles the send, then resumes
            outcome = flows.outcome(results, note=plan.detail)  # e.g. why SMS was skipped
        self._finish(request, outcome, result, recorder)

    def _defer(
        self,
        request: NotificationRequest,
        until: datetime,
        reason: str,
        result: Result,
        recorder: JournalRecorder,
    ) -> None:
        now = self._clock()
        detail = f"{reason}; goes at {until.isoformat()}"
        recorder.defer(
            notification_id=request.id, until=until, reason=reason, detail=detail, now=now
        )
        result.changes.append(
            flows.status_change(
                request, Status.DEFERRED, at=now, detail=detail, scheduled_for=until
            )
        )
        log.info(
            "notification deferred",
            extra={"notification_id": request.id, "until": until.isoformat(), "reason": reason},
        )

    def _finish(
        self,
        request: NotificationRequest,
        outcome: flows.Outcome,
        result: Result,
        recorder: JournalRecorder,
    ) -> None:
        now = self._clock()
        recorder.set_status(
            notification_id=request.id,
            status=outcome.status,
            now=now,
            detail=outcome.detail,
            channel=outcome.channel.value if outcome.channel else None,
        )
        result.changes += flows.final_changes(request, outcome, at=now)
        if outcome.status is Status.FAILED:
            result.failed = outcome.detail
        log.info(
            "notification %s",
            outcome.status.value,
            extra={
                "notification_id": request.id,
                "channel": outcome.channel,
                "detail": outcome.detail,
            },
        )

    def _channel(
        self,
        request: NotificationRequest,
        channel: Channel,
        person: Recipient,
        recorder: JournalRecorder,
        *,
        fresh: bool,
    ) -> flows.ChannelResult:
        """A channel that already got this notification out is never called again."""
        if not fresh:
            with self._sessions() as session:
                done = repository.sent_attempt_on(
                    session=session, notification_id=request.id, channel=channel
                )
            if done is not None:  # `failed` here: accepted, then undelivered (fallback.py)
                sent = done.status != "failed"
                at, reference = repository.utc(done.at), done.provider_reference
                return flows.ChannelResult(channel, sent, at, reference, done.error_detail)
        return self._sending.send(request, channel, person, recorder)
