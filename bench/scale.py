"""Scale: the end-to-end run with 1 and 2 replicas of the rules service and of the notifier on
PostgreSQL (each consumer group shares the topics' six partitions among its members).

    .venv/bin/python -m bench.scale --events 2000 [--layouts 1,1 2,2 1,2]
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from bench.__main__ import apply_rules, results_path
from bench.baseline import two_hop_baseline
from bench.e2e import run_immediate
from bench.plot import plot_scale
from bench.system import running_stack, settle

# Joining members trigger rebalances: wait them out (a little over the session timeout the
# bench's services use) and send a warm-up round before measuring.
SETTLE_S = 10.0


def one_layout(rules: int, notifier: int, args: argparse.Namespace) -> dict[str, Any]:
    replicas = {"rules": rules, "notifier": notifier}
    with running_stack(database_url="postgresql", replicas=replicas) as stack:
        baseline = two_hop_baseline(stack.bootstrap, args.baseline_messages)
        apply_rules(stack)
        settle(SETTLE_S)
        run_immediate(stack, events=50, batch=50)
        load_before = os.getloadavg()
        result = run_immediate(stack, events=args.events, batch=args.batch, first_phone=1_000_000)
    result.pop("series")
    result.update(
        replicas=replicas,
        baseline=baseline,
        ratio_messages_to_two_hop=result["provider_messages_per_s"] / baseline["two_hop_per_s"],
        ratio_notifications_to_two_hop=result["notifications_per_s"] / baseline["two_hop_per_s"],
        load_average_before=load_before,
        load_average_after=os.getloadavg(),
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--baseline-messages", type=int, default=20000)
    parser.add_argument(
        "--layouts", nargs="+", default=["1,1", "2,2"], help="rules,notifier replica counts"
    )
    args = parser.parse_args()
    rows = []
    for layout in args.layouts:
        rules, notifier = (int(n) for n in layout.split(","))
        rows.append(one_layout(rules, notifier, args))
    path = results_path("scale", "json")
    png = plot_scale(rows, path.with_suffix(".png"))
    path.write_text(json.dumps(rows, indent=2))
    print(f"scale on PostgreSQL: {args.events} events (SMS + email each), batches of {args.batch}")
    for row in rows:
        latency, cpu = row["latency_s"], row["cpu_s"]
        print(
            f"  rules x{row['replicas']['rules']} notifier x{row['replicas']['notifier']}: "
            f"{row['provider_messages_per_s']:6.0f} messages/s "
            f"({row['notifications_per_s']:.0f} notifications/s)  p50 {latency['p50']:.2f}s  "
            f"p99 {latency['p99']:.2f}s  CPU s {cpu}  load {row['load_average_before'][0]:.1f}\n"
            f"    raw kafka-python two-hop {row['baseline']['two_hop_per_s']:.0f} msg/s "
            f"(produce {row['baseline']['produce_per_s']:.0f}); ratio messages/s "
            f"{row['ratio_messages_to_two_hop']:.3f}, notifications/s "
            f"{row['ratio_notifications_to_two_hop']:.3f}"
        )
    print(f"results: {path}  plot: {png}")


if __name__ == "__main__":
    main()
