"""Crash reconciliation: attempts left `sending` (the process died between recording the
attempt and recording the provider's answer) are resolved before anything is sent again.

- Twilio can be asked: a message for that number with that body around the time the attempt
  began means it went (the attempt becomes `sent` with its SID); none means it never left (the
  attempt becomes `failed`, and delivery resumes and sends it). Another notification with the
  same text to the same number matches too: a SID already recorded on another attempt is
  never taken as ours.
- SendGrid cannot be asked, but it tells: with its signed event webhook posting `processed`
  events and `AVISA_SENDGRID_EVENT_WAIT_S` set (`email_evidence_wait`), any event about the
  email that came while the attempt was `sending` (parked as evidence, `parked.evidence_for`)
  means SendGrid accepted it (the attempt becomes `sent` with that message id); none within the
  wait after the attempt began means it never left (the attempt becomes `failed` and delivery
  resumes and sends it). The attempt stays `sending` until one or the other.
- Without that wait, and for the development providers (outbox files): the attempt is taken
  as sent, because sending the same notification twice is worse than not knowing the
  provider's reference. To keep that guess right, an attempt is recorded only once its call
  can go at once (the rate-limit wait comes before it, `sending.ChannelSender`): the guess
  is wrong only for a crash in the moments between the record's commit and the request
  leaving.

Provider reports that came while such an attempt was `sending` were parked (`parked`): once
the attempt is resolved and its notification resumed, they apply, and their changes join the
resumed notification's, so the scheduler publishes them in order after its `sent`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta

from sqlalchemy import select

from schemas.notifications import Channel, NotificationRequest
from services.notifier import flows, repository
from services.notifier.clients.base import DeliveryError, SmsLookup
from services.notifier.delivery.admission import Defaults
from services.notifier.delivery.requests import Deliverer, Result
from services.notifier.models import Attempt
from services.notifier.reports import parked
from services.notifier.reports.apply import Applied

log = logging.getLogger(__name__)

_CLOCK_SLACK = timedelta(minutes=2)  # provider clocks and ours differ a little
# A call accepted later than this after its attempt began cannot be that attempt's: the call
# times out long before (AVISA_PROVIDER_TIMEOUT_S), the slack covers the clocks.
_CALL_WINDOW = timedelta(minutes=5)
_PAGE = 100


class Reconciler:
    """Resolves stale `sending` attempts, then resumes their notifications."""

    def __init__(
        self,
        *,
        sessions: repository.SessionFactory,
        deliverer: Deliverer,
        sms_lookup: SmsLookup | None,
        after_s: float,
        clock: Callable[[], datetime],
        defaults: Defaults | None = None,
        email_evidence_wait: timedelta | None = None,
        doubt_after_s: float = 15.0,
    ) -> None:
        self._sessions = sessions
        self._defaults = defaults or Defaults()
        self._deliverer = deliverer
        self._lookup = sms_lookup
        self._after = timedelta(seconds=after_s)
        self._clock = clock
        self._evidence_wait = email_evidence_wait
        self._doubt_after = timedelta(seconds=doubt_after_s)

    def run_once(self, *, doubts_only: bool = False) -> dict[str, Result]:
        """Resolve every attempt stale by now (`doubts_only`: those whose answer was lost);
        the resumed notifications' results by id."""
        resolved: set[str] = set()
        for attempt in self._stale(doubts_only=doubts_only):
            if self._resolve(attempt):
                resolved.add(attempt.notification_id)
        results = {nid: self._deliverer.resume(nid) for nid in sorted(resolved)}
        settled = parked.settle_for(
            sessions=self._sessions,
            notification_ids=sorted(resolved),
            now=self._clock(),
            defaults=self._defaults,
        )
        for nid, applied in settled.items():
            _merge(results[nid], applied)
        return results

    def _stale(self, *, doubts_only: bool) -> Iterator[Attempt]:
        """Every stale attempt, page by page: those left unresolved (an email awaiting
        SendGrid's events, a lookup that failed) never hide the ones after them. An attempt
        in doubt is taken sooner than a crashed one: its call is known to have ended."""
        now = self._clock()
        before = None if doubts_only else now - self._after
        doubted_before, after_id = now - self._doubt_after, 0
        while True:
            with self._sessions() as session:
                page = repository.stale_sending(
                    session=session,
                    before=before,
                    doubted_before=doubted_before,
                    after_id=after_id,
                    limit=_PAGE,
                )
            yield from page
            if len(page) < _PAGE:
                return
            after_id = page[-1].id

    def _request(self, notification_id: str) -> NotificationRequest | None:
        with self._sessions() as session:
            row = repository.get_notification(session=session, notification_id=notification_id)
            if row is None or row.purged_at is not None:
                return None  # the retention purge skips notifications with attempts in flight
            return NotificationRequest.model_validate(row.request)

    def _resolve(self, attempt: Attempt) -> bool:
        request = self._request(attempt.notification_id)
        if request is None:
            return False
        channel = Channel(attempt.channel)
        if attempt.provider == "twilio" and self._lookup is not None:
            try:
                reference = self._look_up(request, attempt)
            except DeliveryError as error:  # ask again on the next round
                log.warning(
                    "reconciliation lookup failed",
                    extra={"notification_id": request.id, "error": str(error)},
                )
                return False
            found = reference is not None
            detail = "reconciled: found at twilio" if found else "reconciled: never reached twilio"
        elif attempt.provider == "sendgrid" and self._evidence_wait is not None:
            decided = self._by_evidence(attempt, self._evidence_wait)
            if decided is None:
                return False  # no event yet, and still within the wait
            found, reference, detail = decided
        else:
            found, reference = True, None
            detail = f"reconciled: {attempt.provider} cannot be asked; assumed sent, not resent"
        with self._sessions.begin() as session:
            repository.finish_attempt(
                session=session,
                attempt_id=attempt.id,
                sent=found,
                now=self._clock(),
                reference=reference,
                error_code=None if found else "lost",
                error_detail=detail,
            )
        log.warning(
            "attempt reconciled",
            extra={"notification_id": request.id, "channel": channel.value, "sent": found},
        )
        return True

    def _by_evidence(
        self, attempt: Attempt, wait: timedelta
    ) -> tuple[bool, str | None, str] | None:
        """Sent when SendGrid reported on the email (an event parked for the attempt whose
        message id no other attempt holds), unsent once `wait` has passed without one, None
        (undecided) before."""
        with self._sessions() as session:
            evidence = parked.evidence_for(session, attempt)
        taken = self._recorded(evidence, attempt)
        reference = next((ref for ref in evidence if ref not in taken), None)
        if reference is not None:
            return True, reference, "reconciled: sendgrid reported it"
        if self._clock() - repository.utc(attempt.at) < wait:
            return None
        waited = f"{wait.total_seconds():g} s"
        return False, None, f"reconciled: no sendgrid event within {waited}: never reached sendgrid"

    def _look_up(self, request: NotificationRequest, attempt: Attempt) -> str | None:
        assert self._lookup is not None
        to = self._deliverer.address(request, Channel.SMS)
        # As sent: `sending.call_provider` strips bidirectional controls from the body.
        body = flows.strip_bidi_controls(request.content.sms.body) if request.content.sms else None
        if not to or body is None:
            return None
        began = repository.utc(attempt.at)
        found = self._lookup.find_sent(
            to=to, body=body, since=began - _CLOCK_SLACK, until=began + _CALL_WINDOW
        )
        taken = self._recorded(found, attempt)
        return next((sid for sid in found if sid not in taken), None)

    def _recorded(self, references: list[str], attempt: Attempt) -> set[str]:
        """Which of `references` other attempts already hold (same text, same number)."""
        if not references:
            return set()
        query = select(Attempt.provider_reference).where(
            Attempt.provider == attempt.provider,
            Attempt.provider_reference.in_(references),
            Attempt.id != attempt.id,
        )
        with self._sessions() as session:
            return {ref for ref in session.scalars(query) if ref is not None}


def _merge(result: Result, applied: Applied) -> None:
    """Parked reports' changes after the resumed notification's own (published in order)."""
    result.changes += applied.changes
    for request, why in applied.failed:
        result.failed, result.request = why, request
