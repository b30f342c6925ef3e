"""Where delivery writes what happened: through the journal, grouped with the other delivery
threads' writes (`JournalRecorder`), the one recorder.

An attempt is durable (`sending`) before `begin_attempt` returns, so the provider is never
called for something a crash would forget; the rest is durable once `wait` returns."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, update

from schemas.notifications import Status
from services.notifier import repository
from services.notifier.delivery.journal import Journal
from services.notifier.models import Attempt, Base, Deferral, Notification

# Core statements: executed many at a time on the journal's connection, no ORM in between.
_ATTEMPTS = Base.metadata.tables[Attempt.__tablename__]
_NOTIFICATIONS = Base.metadata.tables[Notification.__tablename__]
_attempts = _ATTEMPTS.c
_notifications = _NOTIFICATIONS.c

ADD_ATTEMPT = insert(_ATTEMPTS).returning(_attempts.id, sort_by_parameter_order=True)
FINISH_ATTEMPT = (
    update(_ATTEMPTS)
    .where(_attempts.id == bindparam("b_id"), _attempts.status == repository.SENDING)
    .values(
        status=bindparam("b_status"),
        provider_reference=bindparam("b_reference"),
        error_code=bindparam("b_code"),
        error_detail=bindparam("b_detail"),
        at=bindparam("b_at"),
    )
)
DOUBT_ATTEMPT = (
    update(_ATTEMPTS)
    .where(_attempts.id == bindparam("b_id"), _attempts.status == repository.SENDING)
    .values(error_code=repository.IN_DOUBT, error_detail=bindparam("b_detail"))
)
SET_STATUS = (
    update(_NOTIFICATIONS)
    .where(_notifications.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        channel=bindparam("b_channel"),
        detail=bindparam("b_detail"),
        updated_at=bindparam("b_at"),
    )
)
ADD_DEFERRAL = insert(Base.metadata.tables[Deferral.__tablename__])


class JournalRecorder:
    """Writes of one delivery, or of one consumer batch, through the journal. Only
    `begin_attempt` waits for its commit; the rest are queued, and `wait` (before anything
    is published or committed to Kafka) returns once all of them are durable, or raises the
    first that failed.

    `defer` inserts the deferral: delivery never has one to move (a batch's requests are new,
    and `resume` deletes a notification's deferral before carrying it on)."""

    def __init__(self, journal: Journal) -> None:
        self._journal = journal
        self._errors: list[BaseException] = []

    def begin_attempt(
        self, *, notification_id: str, channel: str, provider: str, now: datetime
    ) -> int:
        params = {
            "notification_id": notification_id,
            "channel": channel,
            "provider": provider,
            "status": repository.SENDING,
            "provider_reference": None,
            "error_code": None,
            "error_detail": None,
            "at": now,
        }
        return int(self._journal.write(ADD_ATTEMPT, params).result())

    def finish_attempt(
        self,
        *,
        attempt_id: int,
        sent: bool,
        now: datetime,
        reference: str | None,
        error_code: str | None,
        error_detail: str | None,
    ) -> None:
        self._queue(
            FINISH_ATTEMPT,
            {
                "b_id": attempt_id,
                "b_status": "sent" if sent else "failed",
                "b_reference": reference,
                "b_code": error_code,
                "b_detail": error_detail,
                "b_at": now,
            },
        )

    def doubt_attempt(self, *, attempt_id: int, detail: str) -> None:
        """The call's answer was lost after the request went out: the attempt stays `sending`,
        marked for the reconciler to settle soon (`repository.IN_DOUBT`)."""
        self._queue(DOUBT_ATTEMPT, {"b_id": attempt_id, "b_detail": detail})

    def set_status(
        self,
        *,
        notification_id: str,
        status: Status,
        now: datetime,
        detail: str | None = None,
        channel: str | None = None,
    ) -> None:
        self._queue(
            SET_STATUS,
            {
                "b_id": notification_id,
                "b_status": status.value,
                "b_channel": channel,
                "b_detail": detail,
                "b_at": now,
            },
        )

    def defer(
        self, *, notification_id: str, until: datetime, reason: str, detail: str, now: datetime
    ) -> None:
        self.set_status(
            notification_id=notification_id, status=Status.DEFERRED, now=now, detail=detail
        )
        self._queue(
            ADD_DEFERRAL,
            {
                "notification_id": notification_id,
                "due_at": until,
                "reason": reason,
                "state": "pending",
                "claimed_at": None,
            },
        )

    def wait(self) -> None:
        """Block until every queued write is committed; raise the first one that failed."""
        self._journal.barrier().result()
        if self._errors:
            raise self._errors[0]

    def _queue(self, statement: Any, params: dict[str, Any]) -> None:
        self._journal.queue(statement, params, errors=self._errors)
