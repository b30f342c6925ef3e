"""Parked provider reports: a report about an attempt still `sending` once `reports.settle`'s
bound has passed (we crashed mid-call, or have not recorded the answer yet) is stored here and
answered 2xx, because Twilio does not retry a status callback we fail. It is applied through
`reports.apply`, as if it had come late, once its attempt is resolved:

- by the reconciler, right after it resolves a crashed attempt and resumes its notification
  (the changes join the ones the scheduler publishes, in order);
- by `ParkedReports.run` every second, for attempts that finish normally: it waits until the
  notification's delivery has ended and status.v1 has its latest status (a bounded wait), so
  a late `delivered` never overtakes the `sent` it follows.

A report parked for an attempt that never reached the provider is dropped (logged); rows
older than `keep` are purged. Replays were deduplicated before parking (provider events).

A SendGrid event that changes nothing we track (`processed`, `deferred`, ...) about an attempt
still `sending` is parked too, as evidence without a report: it proves SendGrid accepted the
email, which the reconciler cannot otherwise know (`reconcile`, `evidence_for`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.orm import Session

from common.runtime import Loop
from schemas.notifications import Status
from services.notifier import repository
from services.notifier.delivery.admission import Defaults
from services.notifier.models import Attempt, Notification, ParkedReport
from services.notifier.reports import apply as reports
from services.notifier.reports.apply import Applied, Report, WebhookContext

log = logging.getLogger(__name__)


def park(
    *,
    session: Session,
    attempt: Attempt,
    reference: str | None,
    report: Report | None,
    now: datetime,
) -> None:
    """Keep `report` about `attempt` (still `sending`) until the attempt is resolved; with no
    report, keep only the evidence that the provider has the message under `reference`."""
    session.add(
        ParkedReport(
            attempt_id=attempt.id,
            provider=attempt.provider,
            channel=attempt.channel,
            reference=reference or None,
            notification_id=attempt.notification_id,
            report=_EVIDENCE
            if report is None
            else {
                "delivered": report.delivered,
                "code": report.code,
                "reason": report.reason,
                "fallback": report.fallback,
            },
            received_at=now,
        )
    )
    session.flush()
    log.warning(
        "provider report parked until its send is resolved",
        extra={"notification_id": attempt.notification_id, "provider": attempt.provider},
    )


_EVIDENCE = {"evidence": True}


def evidence_for(session: Session, attempt: Attempt) -> list[str]:
    """The provider references parked for `attempt` (reports and bare evidence alike), oldest
    first: each says the provider accepted a message for it while it was `sending`."""
    query = (
        select(ParkedReport.reference)
        .where(ParkedReport.attempt_id == attempt.id, ParkedReport.reference.is_not(None))
        .order_by(ParkedReport.id)
    )
    return [reference for reference in session.scalars(query) if reference]


def report_of(row: ParkedReport) -> Report | None:
    """The report as it was parked (pure); None for bare evidence."""
    data = row.report
    if data.get("evidence"):
        return None
    return Report(
        delivered=bool(data["delivered"]),
        code=data.get("code"),
        reason=data.get("reason"),
        fallback=bool(data.get("fallback", True)),
    )


class Verdict(Enum):
    WAIT = "wait"
    DROP = "drop"
    APPLY = "apply"


def target_of(session: Session, row: ParkedReport) -> Attempt | None:
    """The attempt the report is about now: the one holding its reference (as for a late
    report), else the attempt it was parked for."""
    if row.reference:
        found = repository.attempt_by_reference(
            session=session, provider=row.provider, reference=row.reference
        )
        if found is not None:
            return found
    return session.get(Attempt, row.attempt_id)


def verdict(
    session: Session, row: ParkedReport, target: Attempt | None, *, now: datetime, wait: timedelta
) -> Verdict:
    """Whether the report can apply to `target` now. With a `wait`, the notification must also
    have finished its delivery and had its status published, for at most `wait` after the
    attempt was resolved (the reconciler passes none: it publishes the changes in order)."""
    if target is None:
        return Verdict.DROP  # the attempt's notification is gone
    if target.status == repository.SENDING:
        return Verdict.WAIT
    if target.status == "failed" and target.provider_reference is None:
        # Reconciled as never sent (or refused at the call): the report cannot be about it.
        return Verdict.DROP
    if wait and now - repository.utc(target.at) < wait:
        notification = session.get(Notification, target.notification_id)
        if notification is not None and _unsettled(notification, target):
            return Verdict.WAIT
    return Verdict.APPLY


def _unsettled(notification: Notification, attempt: Attempt) -> bool:
    """Delivery still running, or status.v1 not told the notification's latest status."""
    delivering = notification.status == Status.QUEUED and attempt.status == "sent"
    return delivering or notification.published_status != notification.status


def settle_one(
    session: Session,
    row: ParkedReport,
    *,
    now: datetime,
    wait: timedelta,
    defaults: Defaults,
) -> Applied | None:
    """Apply (or drop) one parked report in the caller's transaction; None to keep waiting."""
    target = target_of(session, row)
    decided = verdict(session, row, target, now=now, wait=wait)
    if decided is Verdict.WAIT:
        return None
    session.delete(row)
    report = report_of(row)
    if report is None:
        return Applied()  # bare evidence: it served the reconciler, if it was needed at all
    if decided is Verdict.DROP or target is None:
        log.warning(
            "parked provider report dropped: its message never reached the provider",
            extra={"notification_id": row.notification_id, "provider": row.provider},
        )
        return Applied()
    applied = reports.apply(
        session=session, attempt=target, report=report, now=now, defaults=defaults
    )
    log.info(
        "parked provider report applied",
        extra={"notification_id": target.notification_id, "provider": row.provider},
    )
    return applied


def _locked(session: Session, *where: ColumnElement[bool], limit: int) -> list[ParkedReport]:
    """Parked rows, oldest first, that no other notifier instance is settling (PostgreSQL)."""
    query = (
        select(ParkedReport)
        .where(*where)
        .order_by(ParkedReport.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return list(session.scalars(query))


def settle_for(
    *,
    sessions: repository.SessionFactory,
    notification_ids: Iterable[str],
    now: datetime,
    defaults: Defaults,
) -> dict[str, Applied]:
    """Apply the reports parked for these notifications whose attempts are resolved, committed;
    what each produced, for the caller to publish (the reconciler's path)."""
    out: dict[str, Applied] = {}
    for nid in notification_ids:
        with sessions.begin() as session:
            parked_here = _locked(session, ParkedReport.notification_id == nid, limit=100)
            for row in parked_here:
                applied = settle_one(session, row, now=now, wait=timedelta(0), defaults=defaults)
                if applied is not None:
                    out.setdefault(nid, Applied()).add(applied)
    return out


class ParkedReports(Loop):
    """Applies parked reports whose attempts finished, publishing before each commit (like a
    webhook); purges rows older than `keep`. Run in a `Worker`."""

    def __init__(
        self,
        context: WebhookContext,
        *,
        interval_s: float = 1.0,
        keep: timedelta = timedelta(days=7),
        wait: timedelta = timedelta(seconds=60),
        purge_every: timedelta = timedelta(hours=1),
        batch: int = 100,
    ) -> None:
        super().__init__(interval_s=interval_s)
        self._context = context
        self._keep = keep
        self._wait = wait
        self._purge_every = purge_every
        self._batch = batch
        self._next_purge: datetime | None = None

    def round(self) -> bool:
        """`tick()`, then wait `interval_s` however many it settled: one round an interval."""
        self.tick()
        return False

    def round_failed(self, error: Exception) -> None:
        log.exception("parked reports round failed; will retry")

    def tick(self) -> int:
        """One round: purge when due, then apply what can apply; how many were settled."""
        now = self._context.clock()
        if self._next_purge is None or now >= self._next_purge:
            self._next_purge = now + self._purge_every
            self.purge(before=now - self._keep)
        return self.drain()

    def drain(self) -> int:
        """Settle the parked reports whose attempts are resolved, each in its own transaction."""
        query = (
            select(ParkedReport.id)
            .join(Attempt, Attempt.id == ParkedReport.attempt_id)
            .where(Attempt.status != repository.SENDING)
            .order_by(ParkedReport.id)
            .limit(self._batch)
        )
        with self._context.sessions() as session:
            ids = list(session.scalars(query))
        return sum(self._settle(parked_id) for parked_id in ids)

    def _settle(self, parked_id: int) -> bool:
        context = self._context
        with context.sessions.begin() as session:
            rows = _locked(session, ParkedReport.id == parked_id, limit=1)
            if not rows:
                return False  # settled meanwhile, or another instance holds it
            applied = settle_one(
                session, rows[0], now=context.clock(), wait=self._wait, defaults=context.defaults
            )
            if applied is None:
                return False
            context.publish(applied)
        return True

    def purge(self, *, before: datetime) -> int:
        """Drop parked reports received before `before` (their attempt never resolved)."""
        with self._context.sessions.begin() as session:
            done = session.execute(delete(ParkedReport).where(ParkedReport.received_at < before))
        count = int(getattr(done, "rowcount", 0) or 0)
        if count:
            log.warning("stale parked provider reports purged", extra={"count": count})
        return count
