"""The simulator: clean runs pass, planted bugs are found, a seed replays exactly.

Case counts here are small for `make test` on two shared cores; `make simulate` runs the
full count (docs/benchmarks.md, "Simulator").
"""

import random

from sim.run import simulate

FIXED_SEED = 20261208


def test_a_fixed_seed_keeps_every_invariant():
    result = simulate(FIXED_SEED, 300)
    assert result.sends > 100
    assert result.failures == {}, result.traces


def test_a_random_seed_keeps_every_invariant():
    seed = random.SystemRandom().randrange(2**32)
    print(f"simulator seed {seed}")  # replay: python -m sim --seed SEED --cases 150
    result = simulate(seed, 150)
    assert result.failures == {}, (seed, result.traces)


def test_a_scheduler_that_ignores_the_engine_s_lag_sends_after_a_cancel():
    result = simulate(FIXED_SEED, 600, plant="no-watermark")
    problems = [p for found in result.failures.values() for p in found]
    assert any("after a cancel accepted" in p for p in problems), problems


def test_a_scheduler_that_skips_the_fire_time_re_check_is_caught():
    result = simulate(FIXED_SEED, 1000, plant="skip-recheck")
    problems = [p for found in result.failures.values() for p in found]
    assert any("after its deadline" in p for p in problems), problems


def test_a_seed_replays_exactly():
    first, again = simulate(7, 80, plant="no-watermark"), simulate(7, 80, plant="no-watermark")
    assert (first.sends, first.failures, first.traces) == (
        again.sends,
        again.failures,
        again.traces,
    )
