"""The rule engine's in-memory view of the live rules and templates.

Re-read from the database when older than the refresh interval or after this process's admin
API changed something, so a change reaches every running replica within a few seconds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from schemas.rules import Rule, Template
from services.rules import repository
from services.rules.errors import ConditionError
from services.rules.flows import CompiledRule

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The live rules (conditions compiled) and every template, as of one read."""

    rules: list[CompiledRule] = field(default_factory=list)
    templates: dict[str, Template] = field(default_factory=dict)


class RuleBook:
    """A refreshed-on-demand snapshot of the rules; safe to invalidate from other threads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        *,
        refresh_interval_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sessions = sessions
        self._interval = refresh_interval_s
        self._clock = clock
        self._snapshot = Snapshot()
        self._loaded_at: float | None = None
        self._stale = threading.Event()
        self._lock = threading.Lock()

    def invalidate(self) -> None:
        """Make the next `snapshot()` re-read the database (the admin API changed something)."""
        self._stale.set()

    def snapshot(self) -> Snapshot:
        """The current snapshot, re-read first when it is too old or was invalidated."""
        with self._lock:
            due = self._loaded_at is None or self._clock() - self._loaded_at >= self._interval
            if due or self._stale.is_set():
                self._stale.clear()
                self._snapshot = self._load(self._snapshot)
                self._loaded_at = self._clock()
            return self._snapshot

    def _load(self, previous: Snapshot) -> Snapshot:
        known = {(c.rule.id, c.version): c for c in previous.rules}
        with self._sessions() as session:
            rule_rows, template_rows = repository.live_documents(session=session)
        rules = []
        for document, version in rule_rows:
            compiled = known.get((str(document.get("id")), version)) or _compile(document, version)
            if compiled is not None:
                rules.append(compiled)
        templates = {}
        for document in template_rows:
            try:
                template = Template.model_validate(document)
            except ValidationError:
                log.error("stored template is invalid", extra={"template": document.get("id")})
                continue
            templates[template.id] = template
        return Snapshot(rules=sorted(rules, key=lambda c: c.rule.id), templates=templates)


def _compile(document: dict[str, object], version: int) -> CompiledRule | None:
    try:
        return CompiledRule.build(Rule.model_validate(document), version)
    except (ValidationError, ConditionError) as error:
        log.error(
            "stored rule is invalid", extra={"rule": document.get("id"), "error": str(error)[:500]}
        )
        return None
