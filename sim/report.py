"""How a failing run is printed: the shortest failing case's trace first, then a count."""

from __future__ import annotations

from sim.run import Result


def print_failures(result: Result, plant: str) -> None:
    shortest = sorted(result.traces, key=lambda index: (len(result.traces[index]), index))
    first = shortest[0]
    print(f"\nshortest failing case ({len(result.failures)} failing):")
    print(result.traces[first])
    for problem in result.failures[first]:
        print(f"  BROKEN: {problem}")
    replay = f"python -m sim --seed {result.seed} --cases {result.cases}"
    print(f"\nreplay: {replay}" + (f" --plant {plant}" if plant else ""))
