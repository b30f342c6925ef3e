"""Group commit: writes from the delivery threads go through one writer thread, which runs
everything queued meanwhile in one transaction (one `executemany` per statement).

Why: every provider call needs its `sending` attempt durable before the call and its answer
recorded after it. One transaction per write made the send threads queue for the connection
pool and (SQLite) for the write lock; grouped, a round of 32 calls costs one commit."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.sql import Executable

log = logging.getLogger(__name__)


class JournalClosed(Exception):
    """The journal was closed before this write was committed."""


class WriteResult:
    """How one write ended, once it did: a bare lock rather than a `Future` (whose condition
    variable cost more than the write itself, one per provider call)."""

    __slots__ = ("_error", "_lock", "_result")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()  # released by the writer when the write has ended
        self._result: Any = None
        self._error: BaseException | None = None

    def resolve(self, result: Any, error: BaseException | None = None) -> None:
        self._result, self._error = result, error
        self._lock.release()

    def result(self) -> Any:
        """Block until the write ended; its result, or raise what undid it."""
        with self._lock:
            pass
        if self._error is not None:
            raise self._error
        return self._result


@dataclass(slots=True)
class _Write:
    """One execution to run; `outcome` (waited on) or `errors` (not) hears how it ended. With
    no statement it is a barrier: it ends when everything queued before it has."""

    statement: Executable | None
    params: dict[str, Any]
    returns: bool = False
    outcome: WriteResult | None = None
    errors: list[BaseException] | None = None

    def done(self, result: Any) -> None:
        if self.outcome is not None:
            self.outcome.resolve(result)

    def failed(self, error: BaseException) -> None:
        if self.outcome is not None:
            self.outcome.resolve(None, error)
        if self.errors is not None:
            self.errors.append(error)


_STOP = object()


class Journal:
    """Queue writes from any thread; each is committed with whatever else is queued.

    Writes commit in the order they were queued (one writer), so a thread that waits for
    one knows that every write it queued before is durable too."""

    def __init__(self, engine: Engine, *, max_group: int = 2000) -> None:
        self._engine = engine
        self._max_group = max_group
        self._queue: queue.SimpleQueue[_Write | object] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="notifier-journal", daemon=True)
        self._thread.start()

    def write(self, statement: Executable, params: dict[str, Any]) -> WriteResult:
        """Queue one execution of `statement`; the result resolves once it is committed, to
        the first column of the row the statement returns (None when it returns none)."""
        outcome = WriteResult()
        self._put(_Write(statement, params, returns=True, outcome=outcome))
        return outcome

    def queue(
        self, statement: Executable, params: dict[str, Any], *, errors: list[BaseException]
    ) -> None:
        """Queue one execution nobody waits for; an error that undoes it goes to `errors`.
        Params have the same keys for the same statement (they run as one executemany)."""
        self._put(_Write(statement, params, errors=errors))

    def barrier(self) -> WriteResult:
        """Resolves once every write queued before it is committed or failed."""
        outcome = WriteResult()
        self._put(_Write(None, {}, outcome=outcome))
        return outcome

    @property
    def name(self) -> str:
        return self._thread.name

    @property
    def dead(self) -> bool:
        """The writer stopped though nobody closed the journal: every write would hang."""
        return not self._closed and not self._thread.is_alive()

    def close(self) -> None:
        """Commit what is queued, then stop the writer."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _put(self, write: _Write) -> None:
        if self._closed:
            write.failed(JournalClosed("the journal is closed"))
        else:
            self._queue.put(write)

    def _run(self) -> None:
        stopping = False
        while not stopping:
            group: list[_Write] = []
            item = self._queue.get()
            while True:
                if item is _STOP:
                    stopping = True
                    break
                assert isinstance(item, _Write)
                group.append(item)
                if len(group) >= self._max_group:
                    break
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            if group:
                self._commit(group)

    def _commit(self, group: Sequence[_Write]) -> None:
        try:
            with self._engine.begin() as connection:
                results = _execute(connection, group)
        except Exception as error:
            self._undone(group, error)
            return
        for write, result in zip(group, results, strict=True):
            write.done(result)

    def _undone(self, group: Sequence[_Write], error: Exception) -> None:
        """A group's transaction failed: one bad write must not fail its neighbours, so when
        there were several each goes again on its own."""
        several = sum(1 for w in group if w.statement is not None) > 1
        if several:
            log.warning("grouped write failed; retrying one by one", extra={"error": repr(error)})
        for write in group:
            if write.statement is None:
                write.done(None)
            elif several:
                self._commit([write])
            else:
                write.failed(error)


def _execute(connection: Connection, group: Sequence[_Write]) -> list[Any]:
    """Run the group one statement at a time (executemany), results in the group's order."""
    by_statement: dict[int, list[int]] = {}
    for index, write in enumerate(group):
        if write.statement is not None:
            by_statement.setdefault(id(write.statement), []).append(index)
    results: list[Any] = [None] * len(group)
    for indexes in by_statement.values():
        first = group[indexes[0]]
        assert first.statement is not None
        params = [group[i].params for i in indexes]
        outcome = connection.execute(first.statement, params)
        if first.returns:
            for i, row in zip(indexes, outcome.all(), strict=True):
                results[i] = row[0]
    return results
