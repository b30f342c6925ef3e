"""The background loop base: a busy round is followed at once by the next, an idle or failed
one by a wait that `poke()` and `stop()` cut short, and a failed round is logged and retried."""

from __future__ import annotations

import logging
import queue
import threading

from common.runtime import Loop

HOUR = 3600.0  # a wait no test could sit out: only poke() or stop() ends it in time


class Scripted(Loop):
    """Plays rounds from a script ("busy", "idle" or "fail", then "idle" forever) and notes
    each round in `seen` and each wait it starts in `waits`."""

    def __init__(self, *script: str, idle_s: float = HOUR, failed_s: float = HOUR) -> None:
        super().__init__(interval_s=idle_s)
        self._script = iter(script)
        self._failed_s = failed_s
        self.seen: list[str] = []
        self.waits: queue.Queue[str] = queue.Queue()

    def round(self) -> bool:
        step = next(self._script, "idle")
        self.seen.append(step)
        if step == "fail":
            raise RuntimeError("the database is down")
        return step == "busy"

    def idle_wait(self) -> float:
        self.waits.put("idle")
        return super().idle_wait()

    def failed_wait(self) -> float:
        self.waits.put("failed")
        return self._failed_s


def timeouts_of(loop: Loop, *, stop_after: int) -> list[float | None]:
    """Run `loop` in this thread with its waits counted, not slept; stop after `stop_after`."""
    timeouts: list[float | None] = []

    def wait(timeout: float | None = None) -> bool:
        timeouts.append(timeout)
        if len(timeouts) == stop_after:
            loop.stop()
        return False

    loop._wake.wait = wait  # type: ignore[method-assign]
    loop.run()
    return timeouts


def started(loop: Loop) -> threading.Thread:
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    return thread


def test_a_busy_round_is_followed_at_once_and_an_idle_or_failed_one_by_its_wait(caplog):
    loop = Scripted("busy", "busy", "idle", "fail", "busy", "idle", idle_s=1.5, failed_s=7.0)
    with caplog.at_level(logging.ERROR, logger="common.runtime"):
        timeouts = timeouts_of(loop, stop_after=3)
    assert loop.seen == ["busy", "busy", "idle", "fail", "busy", "idle"]
    assert timeouts == [1.5, 7.0, 1.5]
    [failure] = [r for r in caplog.records if r.getMessage() == "loop round failed; will retry"]
    assert failure.exc_info is not None and "database is down" in str(failure.exc_info[1])


def test_a_loop_stopped_before_it_runs_does_no_round():
    loop = Scripted("busy")
    loop.stop()
    loop.run()
    assert loop.seen == []
    assert loop.stopping


def test_stop_ends_a_wait_at_once_and_no_round_follows():
    loop = Scripted("idle")
    thread = started(loop)
    assert loop.waits.get(timeout=10) == "idle"
    assert not loop.stopping
    loop.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert loop.seen == ["idle"]


def test_stop_ends_the_wait_after_a_failed_round():
    loop = Scripted("fail")
    thread = started(loop)
    assert loop.waits.get(timeout=10) == "failed"
    loop.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert loop.seen == ["fail"]


def test_poke_cuts_a_wait_short():
    loop = Scripted("idle", "idle")
    thread = started(loop)
    assert loop.waits.get(timeout=10) == "idle"
    loop.poke()
    assert loop.waits.get(timeout=10) == "idle"  # the second round ran: the hour was cut
    assert loop.seen == ["idle", "idle"]
    loop.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()


class PokedDuringItsRound(Scripted):
    def round(self) -> bool:
        if not self.seen:
            self.poke()  # e.g. a row committed while the round was reading
        return super().round()


def test_a_poke_during_a_round_makes_the_next_round_start_at_once():
    loop = PokedDuringItsRound("idle", "idle")
    thread = started(loop)
    assert loop.waits.get(timeout=10) == "idle"
    assert loop.waits.get(timeout=10) == "idle"
    loop.stop()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert loop.seen == ["idle", "idle"]
