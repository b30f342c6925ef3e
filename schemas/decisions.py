"""Decision traces (rules → `decisions.v1` → events service): why each rule did what it did.

The rules service publishes one `Decision` per event it evaluates, keyed by the event's subject.
It lists every live rule whose event-type glob (`on`, or one of `cancel_on`) matched the event:
whether it matched, and if not (or if it did nothing) why, with the notification ids it planned
and the reminder timers it cancelled. It carries ids and reasons only, never message content,
so the events service keeps it after the event's content is purged.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from schemas.events import EventRef


class Reason(StrEnum):
    """Why a rule whose event type matched sent nothing (or less than it could)."""

    SOURCE_MISMATCH = "source_mismatch"
    """The rule only takes events from another source."""
    CONDITION_FALSE = "condition_false"
    """The rule's CEL condition is false for this event."""
    CONDITION_ERROR = "condition_error"
    """The rule's CEL condition could not be evaluated (a missing field, a wrong type)."""
    CANCELLED_BEFORE_TRIGGER = "cancelled_before_trigger"
    """A cancelling event at or after this trigger was processed first: nothing scheduled."""
    SUPERSEDED = "superseded"
    """A newer trigger already scheduled this rule's reminders for the subject."""
    OFFSETS_PAST = "offsets_past"
    """Every reminder offset had already passed (they are skipped, never sent late)."""
    FAILED = "failed"
    """The notification could not be composed (missing template, template or deadline error)."""


class RuleDecision(BaseModel):
    """One rule's decision about one event."""

    rule: str
    version: int
    role: Literal["trigger", "cancel"] = Field(
        description="trigger: the event type matched `on`; cancel: it matched `cancel_on`"
    )
    matched: bool = Field(description="source and condition held (always true for cancel)")
    reason: Reason | None = Field(default=None, description="why nothing (or less) was planned")
    detail: str | None = None
    notifications: list[str] = Field(
        default_factory=list, description="ids of the notifications sent now or scheduled"
    )
    skipped: list[str] = Field(
        default_factory=list, description="reminder offsets skipped because their time passed"
    )
    cancelled: list[str] = Field(
        default_factory=list, description="ids of the pending reminders this event cancelled"
    )


class Decision(BaseModel):
    """Everything the rule engine decided for one event (`decisions.v1`, keyed by subject)."""

    event: EventRef
    at: datetime
    rules: list[RuleDecision] = Field(default_factory=list)
