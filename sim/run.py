"""One simulation run: every case's actions on one virtual timeline, then the invariants.

The loop jumps the virtual clock to the next thing that can happen (an agency event, a
preference change, a fault, a due timer, a deferred delivery, the end of a stall) and there
runs the rule engine, the scheduler's rounds and the notifier, in that order.
"""

from __future__ import annotations

import bisect
import heapq
import json
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from schemas.notifications import Channel, NotificationRequest
from services.notifier.quiet import QuietHours
from sim.cases import Case, Stall, deadline_end, generate, in_quiet, quiet_end, reminders_of
from sim.world import Citizen, Send, World

START = datetime(2026, 1, 1, tzinfo=UTC)
SECOND = timedelta(seconds=1)


@dataclass
class Result:
    seed: int
    cases: int
    failures: dict[int, list[str]] = field(default_factory=dict)
    sends: int = 0
    traces: dict[int, str] = field(default_factory=dict)  # failing case -> its trace


def _event(case: Case, event_id: str, kind: str, at: datetime, **data: Any) -> dict[str, Any]:
    citizen: dict[str, Any] = {"id": case.citizen_id, "name": "Ana", "phone": "+34600000000"}
    if case.has_email:
        citizen["email"] = f"c{case.index}@example.es"
    citizen.update(locale="es", timezone=case.zone)
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "dgt",
        "type": kind,
        "subject": case.subject,
        "time": at.isoformat().replace("+00:00", "Z"),
        "data": {"citizen": citizen, **data},
    }


class Timeline:
    """Actions at virtual times, in time order (ties in the order they were added)."""

    def __init__(self) -> None:
        self._heap: list[tuple[datetime, int, Callable[[], None]]] = []
        self._seq = 0

    def at(self, moment: datetime, action: Callable[[], None]) -> None:
        heapq.heappush(self._heap, (moment, self._seq, action))
        self._seq += 1

    def next_time(self) -> datetime | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, now: datetime) -> None:
        while self._heap and self._heap[0][0] <= now:
            heapq.heappop(self._heap)[2]()


def _plan(world: World, timeline: Timeline, case: Case) -> None:
    events = world.topics.events
    citizen = Citizen(zone=ZoneInfo(case.zone), email=case.has_email)
    if case.quiet:
        citizen.quiet = QuietHours(*case.quiet)
    world.citizens[case.citizen_id] = citizen

    def publish(body: dict[str, Any]) -> Callable[[], None]:
        value = json.dumps(body).encode()

        def append() -> None:
            world.bus.append(events, case.subject, value, world.clock())

        return append

    opening = _event(
        case, f"open-{case.index}", case.event_type, case.opened, expires_on=str(case.expires_on)
    )
    if case.engine_crash:
        timeline.at(case.opened, lambda: setattr(world.engine, "crash_next", True))
    timeline.at(case.opened, publish(opening))
    if case.duplicate:  # the producer's retry: the same record twice on the bus
        timeline.at(case.opened, publish(opening))
    if case.extension:
        at, day = case.extension
        body = _event(case, f"ext-{case.index}", case.event_type, at, expires_on=str(day))
        timeline.at(at, publish(body))
    if case.cancel_at:
        timeline.at(
            case.cancel_at,
            publish(_event(case, f"renew-{case.index}", "license.renewed", case.cancel_at)),
        )
    if case.stop_at:
        timeline.at(case.stop_at, lambda: citizen.opted_out.add(Channel.SMS))
    if case.move:
        moved_at, zone = case.move
        timeline.at(moved_at, lambda: setattr(citizen, "zone", ZoneInfo(zone)))
    if case.lose_answer:
        world.notifier.lose_answer.add(case.subject)
    if case.scheduler_crash:
        due = reminders_of(case.expires_on, ZoneInfo(case.zone))[0][1]
        timeline.at(
            due - timedelta(milliseconds=1), lambda: setattr(world.producer, "crash_next", True)
        )
    if case.stall:
        stall = case.stall

        def stop() -> None:
            current = world.engine.stalled_until
            world.engine.stalled_until = max(current, stall.end) if current else stall.end

        timeline.at(stall.start, stop)
    if case.scheduler_down:
        down = case.scheduler_down

        def crash() -> None:
            current = world.scheduler_down_until
            world.scheduler_down_until = max(current, down.end) if current else down.end
            world.scheduler = world.restarted_scheduler()

        timeline.at(down.start, crash)


def simulate(seed: int, count: int, *, plant: str = "", partitions: int = 4) -> Result:
    """Run `count` cases of `seed`; the same arguments give the same run, step for step."""
    cases = generate(seed, count, START)
    with tempfile.TemporaryDirectory(prefix="avisa-sim-") as workdir:
        world = World(Path(workdir), START - timedelta(days=1), partitions=partitions, plant=plant)
        try:
            timeline = Timeline()
            for case in cases:
                _plan(world, timeline, case)
            _drive(world, timeline)
            return _judge(seed, cases, world)
        finally:
            world.close()


def _drive(world: World, timeline: Timeline) -> None:
    clock = world.clock
    while True:
        now = clock.now
        timeline.run_until(now)  # actions planned for before the start (early faults) run now
        candidates = [timeline.next_time(), world.notifier.next_wake()]
        due = world.next_due()
        if due is not None and due > now:
            candidates.append(due)
        candidates += [
            world.engine.stalled_until,
            world.engine.restart_at,
            world.scheduler_down_until,
        ]
        upcoming = [c for c in candidates if c is not None and c > now]
        if not upcoming:
            break
        clock.now = min(upcoming)
        timeline.run_until(clock.now)
        world.engine.step()
        world.fire()
        world.notifier.step()


@dataclass(frozen=True, slots=True)
class Due:
    """One planned reminder of a case, with what may stop it."""

    where: str
    accepted: datetime  # when the event that planned it was accepted
    due: datetime
    end: datetime  # its deadline: nothing after
    replaced: datetime | None  # an extension accepted then re-planned the case
    cancel: datetime | None  # a renewal accepted then cancels it


class Stalls:
    """Intervals when a process did nothing (merged), for 'was it down between these times'."""

    def __init__(self, stalls: list[Stall]) -> None:
        merged: list[list[datetime]] = []
        for s in sorted(stalls, key=lambda s: s.start):
            if merged and s.start <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], s.end)
            else:
                merged.append([s.start, s.end])
        self._starts = [m[0] for m in merged]
        self._ends = [m[1] for m in merged]

    def during(self, start: datetime, end: datetime) -> bool:
        i = bisect.bisect_right(self._starts, end) - 1
        return i >= 0 and self._ends[i] >= start

    def end_at(self, moment: datetime) -> datetime:
        """When the engine runs again if it is stalled at `moment`, else `moment`."""
        i = bisect.bisect_right(self._starts, moment) - 1
        return self._ends[i] if i >= 0 and self._ends[i] > moment else moment


@dataclass(frozen=True, slots=True)
class Lags:
    """When the engine lagged, when the scheduler was down, and when either was."""

    engine: Stalls
    scheduler: Stalls
    either: Stalls


def _judge(seed: int, cases: list[Case], world: World) -> Result:
    result = Result(seed=seed, cases=len(cases), sends=len(world.notifier.sends))
    stalls = Lags(
        engine=Stalls([c.stall for c in cases if c.stall]),
        scheduler=Stalls([c.scheduler_down for c in cases if c.scheduler_down]),
        either=Stalls([s for c in cases for s in (c.stall, c.scheduler_down) if s]),
    )
    sends: dict[str, list[Send]] = defaultdict(list)
    for send in world.notifier.sends:
        sends[send.notification_id].append(send)
    published: dict[tuple[str, str | None], list[tuple[NotificationRequest, datetime]]] = (
        defaultdict(list)
    )
    for request, at in world.published:
        published[(request.event.id, request.step)].append((request, at))
    for case in cases:
        problems = check(case, stalls, sends, published)
        if problems:
            result.failures[case.index] = problems
            result.traces[case.index] = _trace(case, world, published, sends)
    return result


def _trace(
    case: Case,
    world: World,
    published: dict[tuple[str, str | None], list[tuple[NotificationRequest, datetime]]],
    sends: dict[str, list[Send]],
) -> str:
    """The case, and what the system did for it: publications, decisions, sends."""
    lines = [case.describe()]
    for (event_id, step), pubs in sorted(published.items(), key=lambda item: str(item[0])):
        if not event_id.endswith(f"-{case.index}"):
            continue
        for _request, at in pubs:
            lines.append(f"  published {event_id} {step} at {at:%Y-%m-%d %H:%M:%S.%f}Z")
        nid = pubs[0][0].id
        lines += [f"  notifier {line}" for line in world.traces.get(nid, [])]
        for send in sends.get(nid, []):
            lines.append(
                f"  sent {step} by {send.channel.value} at {send.at:%Y-%m-%d %H:%M:%S.%f}Z"
            )
    return "\n".join(lines)


def check(
    case: Case,
    stalls: Lags,
    sends: dict[str, list[Send]],
    published: dict[tuple[str, str | None], list[tuple[NotificationRequest, datetime]]],
) -> list[str]:
    """Every invariant of the issue, for one case; the broken ones, in words."""
    zone = ZoneInfo(case.zone)
    plans = [(f"open-{case.index}", case.opened, case.expires_on)]
    if case.extension:
        plans.append((f"ext-{case.index}", *case.extension))
    problems: list[str] = []
    for k, (event_id, accepted, expires_on) in enumerate(plans):
        end = deadline_end(expires_on, zone)
        replaced = plans[k + 1][1] if k + 1 < len(plans) else None
        for step, due in reminders_of(expires_on, zone):
            pubs = published.get((event_id, step), [])
            ids = {request.id for request, _ in pubs}
            got = [s for nid in ids for s in sends.get(nid, [])]
            where = f"{event_id} {step} due {due:%Y-%m-%d %H:%M:%S}Z"
            cancel = case.cancel_at if case.cancel_at and case.cancel_at > accepted else None
            reminder = Due(where, accepted, due, end, replaced, cancel)
            problems += _forbidden(case, reminder, pubs, got)
            expected_at = _expected_at(case, stalls, reminder)
            if expected_at is None:
                continue
            if len(got) != 1:
                problems.append(
                    f"{where}: expected once at {expected_at:%H:%M:%S}Z, sent {len(got)}"
                )
            elif not expected_at <= got[0].at <= expected_at + SECOND:
                late = (got[0].at - expected_at).total_seconds()
                problems.append(
                    f"{where}: expected at {expected_at:%Y-%m-%d %H:%M:%S}Z, sent {late:+.3f} s"
                )
    return problems


def _forbidden(
    case: Case,
    reminder: Due,
    pubs: list[tuple[NotificationRequest, datetime]],
    got: list[Send],
) -> list[str]:
    where, due, end = reminder.where, reminder.due, reminder.end
    cancel, replaced = reminder.cancel, reminder.replaced
    problems = []
    if len(got) > 1:
        problems.append(f"{where}: sent {len(got)} times")
    for _, published_at in pubs:
        if published_at >= end:
            problems.append(
                f"{where}: published at {published_at:%Y-%m-%d %H:%M:%S}Z, after its deadline"
            )
    for send in got:
        at = f"sent at {send.at:%Y-%m-%d %H:%M:%S.%f}Z"
        if send.at >= end:
            problems.append(f"{where}: {at}, after its deadline")
        if send.at < due:
            problems.append(f"{where}: {at}, before it was due")
        if cancel is not None and cancel < due:
            problems.append(f"{where}: {at}, after a cancel accepted at {cancel:%H:%M:%S.%f}Z")
        if replaced is not None and replaced < due:
            problems.append(f"{where}: {at}, after its deadline was extended")
        if send.channel is Channel.SMS and case.stop_at is not None and send.at >= case.stop_at:
            problems.append(f"{where}: {at} by SMS after STOP")
        if (
            not send.critical
            and case.quiet
            and in_quiet(send.at, _zone_at(case, send.at), case.quiet)
        ):
            problems.append(f"{where}: {at}, inside quiet hours")
    return problems


def _zone_at(case: Case, moment: datetime) -> ZoneInfo:
    if case.move and moment >= case.move[0]:
        return ZoneInfo(case.move[1])
    return ZoneInfo(case.zone)


def _expected_at(case: Case, stalls: Lags, reminder: Due) -> datetime | None:
    """When the reminder must be sent (within a second), or None when it need not be sent:
    it must not, or a race within a second or the engine's lag makes either outcome right."""
    due, end = reminder.due, reminder.end
    if _waived(case, stalls, reminder):
        return None
    # The watermark passes `due` once the engine runs at or after it; then the scheduler fires
    # as soon as it is up.
    expected = stalls.scheduler.end_at(stalls.engine.end_at(due))
    if case.move and due - SECOND <= case.move[0] <= expected + timedelta(days=1):
        return None
    if (
        case.quiet
        and not case.critical
        and in_quiet(expected, _zone_at(case, expected), case.quiet)
    ):
        expected = quiet_end(expected, _zone_at(case, expected), case.quiet)
    if expected >= end - SECOND:
        return None
    stop = case.stop_at
    if stop is not None and (not case.has_email and stop <= expected + SECOND):
        return None
    if stop is not None and abs(stop - expected) <= SECOND:
        return None
    return expected


def _waived(case: Case, stalls: Lags, reminder: Due) -> bool:
    """Whether the reminder was past when planned, or a cancel or extension came in the
    second around its due time or while the engine lagged (either outcome is right)."""
    due = reminder.due
    if due <= stalls.engine.end_at(reminder.accepted) + SECOND:
        return True
    return any(
        stop is not None and (stop < due + SECOND or stalls.either.during(due, stop))
        for stop in (reminder.cancel, reminder.replaced)
    )
