"""The events service's process-wide interpreter settings."""

from __future__ import annotations

import gc
import sys

import pytest
from pydantic import ValidationError

from services.events.config import Settings
from services.events.main import tune_runtime
from tests.events.conftest import make_settings


@pytest.fixture
def interpreter_settings():
    """Puts back what `tune_runtime` changes for the whole test process."""
    before, thresholds = sys.getswitchinterval(), gc.get_threshold()
    yield
    sys.setswitchinterval(before)
    gc.set_threshold(*thresholds)


def test_the_gil_switch_interval_is_set_from_the_settings(interpreter_settings):
    tune_runtime(make_settings("127.0.0.1:1", "x.", "sqlite://", gil_switch_interval_s=0.02))
    assert sys.getswitchinterval() == pytest.approx(0.02)
    tune_runtime(make_settings("127.0.0.1:1", "x.", "sqlite://"))
    assert sys.getswitchinterval() == pytest.approx(0.05)  # the default


def test_the_gil_switch_interval_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("AVISA_GIL_SWITCH_INTERVAL_S", "0.01")
    assert Settings().gil_switch_interval_s == 0.01


@pytest.mark.parametrize("value", ["0", "-1", "2", "soon"])
def test_a_bad_gil_switch_interval_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("AVISA_GIL_SWITCH_INTERVAL_S", value)
    with pytest.raises(ValidationError, match="gil_switch_interval_s"):
        Settings()


def test_the_young_generation_threshold_is_set_and_the_older_ones_kept(interpreter_settings):
    gc.set_threshold(700, 11, 12)
    tune_runtime(make_settings("127.0.0.1:1", "x.", "sqlite://", gc_young_threshold=5000))
    assert gc.get_threshold() == (5000, 11, 12)
    tune_runtime(make_settings("127.0.0.1:1", "x.", "sqlite://"))
    assert gc.get_threshold() == (20_000, 11, 12)  # the default


@pytest.mark.parametrize("value", ["0", "699", "many"])
def test_a_bad_young_generation_threshold_is_refused_by_name(monkeypatch, value):
    monkeypatch.setenv("AVISA_GC_YOUNG_THRESHOLD", value)
    with pytest.raises(ValidationError, match="gc_young_threshold"):
        Settings()
