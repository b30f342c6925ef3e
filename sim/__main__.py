"""`python -m sim --seed S --cases N [--plant BUG]`: run, print figures, exit 1 on a failure
with the failing case's trace (the same arguments replay it exactly)."""

from __future__ import annotations

import argparse
import random
import sys
import time

from sim.report import print_failures
from sim.run import simulate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="default: a random seed, printed")
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--plant", choices=["", "skip-recheck", "no-watermark"], default="")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    started = time.monotonic()
    result = simulate(seed, args.cases, plant=args.plant)
    elapsed = time.monotonic() - started
    print(
        f"seed {seed}: {result.cases} cases, {result.sends} messages sent, "
        f"{len(result.failures)} failing, {elapsed:.1f} s"
    )
    if result.failures:
        print_failures(result, args.plant)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
