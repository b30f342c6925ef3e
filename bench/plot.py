"""PNG plots of a benchmark's time series (matplotlib, from the `bench` extra)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def _pyplot() -> Any:
    """matplotlib's pyplot drawing to files only; imported here, as only `make bench` has it."""
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    return importlib.import_module("matplotlib.pyplot")


def plot_immediate(result: Mapping[str, Any], path: Path) -> Path:
    """Throughput (events accepted, messages at the providers) and 202 → SMS latency per
    second of the end-to-end run."""
    plt = _pyplot()
    s = result["series"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(s["second"], s["events_accepted"], label="events accepted (202) /s", color="grey")
    ruled = s.get("requests_on_notifications_topic")
    if ruled:
        top.plot(range(len(ruled)), ruled, label="requests on notifications.v1 /s", alpha=0.7)
    top.plot(s["second"], s["messages_at_providers"], label="SMS + email at providers /s")
    top.set_ylabel("per second")
    top.set_ylim(bottom=0)
    top.legend(loc="upper right")
    top.set_title(_title(result))
    bottom.plot(s["second"], s["latency_p50"], label="p50")
    bottom.plot(s["second"], s["latency_p99"], label="p99")
    bottom.axhline(1.0, color="red", linestyle=":", label="goal p99 1 s")
    bottom.set_ylabel("202 → SMS at provider (s)")
    bottom.set_xlabel("seconds since the first POST")
    bottom.legend(loc="upper left")
    return _save(fig, plt, path)


def plot_reminders(result: Mapping[str, Any], path: Path) -> Path:
    """Timers fired per second and their lateness, around the minute they were due in."""
    plt = _pyplot()
    s = result["series"]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    top.plot(s["second"], s["due"], label="due /s", color="grey")
    top.plot(s["second"], s["fired"], label="fired (on notifications.v1) /s")
    top.set_ylabel("timers per second")
    top.set_ylim(bottom=0)
    top.legend(loc="upper right")
    top.set_title(
        f"{result['timers']} reminders due within {result['window_s']:.0f} s, "
        f"{result['database']}, rules replicas {result['rules_replicas']}, "
        f"{result.get('pending', 0)} pending"
    )
    bottom.plot(s["second"], s["lateness_p50"], label="p50")
    bottom.plot(s["second"], s["lateness_max"], label="max")
    bottom.axhline(1.0, color="red", linestyle=":", label="goal 1 s")
    bottom.set_ylabel("lateness of timers fired that second (s)")
    bottom.set_xlabel("seconds since the first timer was due")
    bottom.legend(loc="upper left")
    return _save(fig, plt, path)


def plot_scale(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    """Messages/s and p99 latency for each replica count."""
    plt = _pyplot()
    labels = [f"rules×{r['replicas']['rules']}\nnotifier×{r['replicas']['notifier']}" for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.bar(labels, [r["provider_messages_per_s"] for r in rows])
    left.set_ylabel("SMS + email at providers /s")
    right.bar(labels, [r["latency_s"]["p99"] for r in rows], color="tab:orange")
    right.set_ylabel("p99 202 → SMS (s)")
    fig.suptitle("replicas on PostgreSQL (consumer groups share the partitions)")
    return _save(fig, plt, path)


def _title(result: Mapping[str, Any]) -> str:
    paced = result.get("paced_events_per_s")
    load = f"paced at {paced:.0f} events/s" if paced else f"batches of {result['batch']}, unpaced"
    return (
        f"{result['events']} events ({load}), {result.get('database', '')}: "
        f"{result['provider_messages_per_s']:.0f} messages/s, "
        f"p99 {result['latency_s']['p99']:.2f} s"
    )


def _save(fig: Any, plt: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
