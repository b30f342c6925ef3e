"""The decision trace of one event (pure): what each rule whose event type matched decided.

The consumer feeds a `Trace` as it evaluates an event and publishes `decision()` on
`decisions.v1`. Only ids and reasons go in, never rendered content (the trace outlives it).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Literal

from schemas.decisions import Decision, Reason, RuleDecision
from schemas.events import CloudEvent
from services.rules.flows import CompiledRule, Matches, Planned, event_ref
from services.rules.reminders import ReminderPlan

Role = Literal["trigger", "cancel"]
DETAIL_LENGTH = 300


def _why_missed(compiled: CompiledRule, reason: Reason, event: CloudEvent) -> str:
    if reason is Reason.SOURCE_MISMATCH:
        return f"the event source '{event.source}' is not '{compiled.rule.source}'"
    return "the condition is false for this event"


class Trace:
    """Collects the decisions of the rules about one event, one entry per rule and role."""

    def __init__(self, event: CloudEvent, *, at: datetime) -> None:
        self._event = event
        self._at = at
        self._entries: dict[tuple[str, Role], RuleDecision] = {}

    def _entry(self, compiled: CompiledRule, role: Role = "trigger") -> RuleDecision:
        key = (compiled.rule.id, role)
        entry = self._entries.get(key)
        if entry is None:
            entry = RuleDecision(
                rule=compiled.rule.id, version=compiled.version, role=role, matched=True
            )
            self._entries[key] = entry
        return entry

    def _nothing(self, entry: RuleDecision, reason: Reason, detail: str | None) -> None:
        entry.reason = reason
        entry.detail = detail[:DETAIL_LENGTH] if detail else None

    def matches(self, matches: Matches) -> None:
        """Record which rules the event triggered, and why the others did not."""
        for compiled in matches.rules:
            self._entry(compiled)
        for compiled, reason in matches.misses:
            entry = self._entry(compiled)
            entry.matched = False
            self._nothing(entry, reason, _why_missed(compiled, reason, self._event))
        for compiled, error in matches.errors:
            entry = self._entry(compiled)
            entry.matched = False
            self._nothing(entry, Reason.CONDITION_ERROR, error)

    def immediate(self, planned: Planned) -> None:
        """Record what an immediate rule planned: a request to send, or its failure."""
        if planned.request is not None:
            entry = self._entries.get((planned.request.rule.id, "trigger"))
            if entry is not None:
                entry.notifications.append(planned.request.id)
        elif planned.failure is not None and planned.failure.rule is not None:
            entry = self._entries.get((planned.failure.rule, "trigger"))
            if entry is not None:
                self._nothing(entry, Reason.FAILED, planned.failure.detail)

    def failed(self, compiled: CompiledRule, detail: str) -> None:
        self._nothing(self._entry(compiled), Reason.FAILED, detail)

    def reminders(
        self,
        plan: ReminderPlan,
        *,
        scheduled: Iterable[str],
        cancelled: Iterable[str],
        reason: Reason | None,
        detail: str | None,
    ) -> None:
        """Record what a reminder rule stored, skipped (past offsets) and replaced."""
        entry = self._entry(plan.compiled)
        entry.notifications += scheduled
        entry.cancelled += cancelled
        entry.skipped += [r.request.step for r in plan.reminders if r.past]
        if reason is not None:
            self._nothing(entry, reason, detail)
        elif plan.reminders and not plan.ahead:
            self._nothing(entry, Reason.OFFSETS_PAST, "every reminder's time had passed")

    def cancelled(self, compiled: CompiledRule, ids: Iterable[str]) -> None:
        """Record the pending reminders a `cancel_on` rule cancelled for the event's subject."""
        self._entry(compiled, "cancel").cancelled += ids

    def decision(self) -> Decision:
        rules = sorted(self._entries.values(), key=lambda e: (e.rule, e.role))
        return Decision(event=event_ref(self._event), at=self._at, rules=rules)
