"""`make bench`: the whole system as real processes against a raw kafka-python baseline.

Starts Tansu, fake providers (own process, optional latency), the three services; posts
events in batches from this process (as fast as ingest answers, or paced with `--rate`) and
measures SMS + email messages/s at the providers and the latency from each event's 202 to its
SMS reaching the provider, with the CPU each process used. Prints a table, writes JSON and a
PNG plot (throughput and latency per second) to bench/results/.

    .venv/bin/python -m bench --events 2000 [--rate 300] [--database-url postgresql]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from bench.baseline import two_hop_baseline
from bench.e2e import run_immediate
from bench.plot import plot_immediate
from bench.system import ROOT, THROUGHPUT_ENV, Stack, running_stack, start_fakes

__all__ = ["ROOT", "THROUGHPUT_ENV", "apply_rules", "main", "results_path", "start_fakes"]


def results_path(kind: str, suffix: str) -> Path:
    out = ROOT / "bench/results"
    out.mkdir(parents=True, exist_ok=True)
    return out / f"{kind}-{time.strftime('%Y%m%dT%H%M%S')}.{suffix}"


def apply_rules(stack: Stack, folder: str = "examples") -> None:
    applied = stack.system.avisa("rules", "apply", "-f", folder, "--url", stack.url("rules"))
    assert applied.returncode == 0, applied.stderr


def run(args: argparse.Namespace) -> dict[str, Any]:
    env = dict(item.split("=", 1) for item in args.env)
    with running_stack(
        database_url=args.database_url, latency_ms=args.latency_ms, extra_env=env
    ) as stack:
        baseline = two_hop_baseline(stack.bootstrap, args.baseline_messages)
        apply_rules(stack)
        load_before = os.getloadavg()
        result = run_immediate(
            stack,
            events=args.events,
            batch=args.batch,
            rate=args.rate,
            timeout=args.timeout,
            profile_to=Path(args.profile) if args.profile else None,
        )
    result.update(
        database="postgresql" if args.database_url else "sqlite",
        provider_latency_ms=args.latency_ms,
        baseline=baseline,
        ratio_messages_to_two_hop=result["provider_messages_per_s"] / baseline["two_hop_per_s"],
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
        settings={**THROUGHPUT_ENV, **env},
    )
    return result


def report(result: dict[str, Any], path: Path, png: Path) -> str:
    latency = result["latency_s"]
    baseline = result["baseline"]
    paced = result["paced_events_per_s"]
    cpu = ", ".join(f"{k} {v:.2f}" for k, v in sorted(result["cpu_ms_per_message"].items()))
    return "\n".join(
        [
            f"end to end: {result['events']} events ({result['provider_messages']} messages), "
            f"{result['database']}, provider latency {result['provider_latency_ms']} ms, "
            + (f"paced at {paced:.0f} events/s" if paced else f"batches of {result['batch']}"),
            f"  ingest:                         {result['ingest_events_per_s']:9.0f} events/s",
            f"  SMS + email at the providers:   {result['provider_messages_per_s']:9.0f} /s",
            f"  notifications (both channels):  {result['notifications_per_s']:9.0f} /s",
            f"  202 -> SMS at provider: p50 {latency['p50']:.3f}s  p95 {latency['p95']:.3f}s  "
            f"p99 {latency['p99']:.3f}s  max {latency['max']:.3f}s  "
            f"within 2 s {100 * latency['within_2s']:.1f} %",
            *(
                f"  {name.replace('_', ' ')}: p50 {v['p50']:.3f}s  p99 {v['p99']:.3f}s"
                for name, v in result["stages_s"].items()
            ),
            f"  CPU ms per message: {cpu}",
            "raw kafka-python on the same broker",
            f"  produce:                        {baseline['produce_per_s']:9.0f} msg/s",
            f"  produce>consume>produce>consume {baseline['two_hop_per_s']:9.0f} msg/s",
            f"ratio messages/s / two-hop: {result['ratio_messages_to_two_hop']:.3f}",
            "load average before/after: "
            + " / ".join(
                " ".join(f"{x:.2f}" for x in result[k])
                for k in ("load_average_before", "load_average_after")
            ),
            f"results: {path}  plot: {png}",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--rate", type=float, default=0.0, help="events/s; 0 = unpaced")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--baseline-messages", type=int, default=20000)
    parser.add_argument(
        "--database-url",
        default=None,
        help="default: a fresh SQLite file; `postgresql`: a fresh database",
    )
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--profile", default=None, help="py-spy raw output of the notifier")
    parser.add_argument(
        "--env", nargs="*", default=[], metavar="NAME=VALUE", help="settings for the services"
    )
    result = run(parser.parse_args())
    path = results_path("e2e", "json")
    png = plot_immediate(result, path.with_suffix(".png"))
    path.write_text(json.dumps(result, indent=2))
    print(report(result, path, png))


if __name__ == "__main__":
    main()
