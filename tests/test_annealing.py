"""KL annealing schedules: values, shapes over time, and the exactness that resume relies on."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvae.models.annealing import SCHEDULES, KLSchedule, constant, cyclical, linear, logistic

steps = st.integers(min_value=0, max_value=10**7)


def test_linear_ramps_then_stays_at_one():
    assert linear(0, 100) == 0.0
    assert linear(25, 100) == 0.25
    assert linear(100, 100) == 1.0
    assert linear(10**6, 100) == 1.0
    assert linear(5, 0) == 1.0  # no warm-up


def test_logistic_is_half_at_x0_with_slope_k_over_4():
    assert logistic(2500, 0.0025, 2500) == pytest.approx(0.5)
    slope = (logistic(2501, 0.0025, 2500) - logistic(2499, 0.0025, 2500)) / 2
    assert slope == pytest.approx(0.0025 / 4, rel=1e-4)
    assert logistic(0, 0.0025, 2500) == pytest.approx(1 / (1 + math.exp(6.25)))


def test_logistic_never_overflows():
    assert logistic(10**9, 10.0, 0) == 1.0
    assert logistic(0, 10.0, 10**9) == 0.0


def test_cyclical_restarts_every_period():
    period = 100
    assert [cyclical(s, period, 0.5) for s in (0, 25, 50, 75, 99, 100, 125)] == [0, 0.5, 1, 1, 1, 0, 0.5]


def test_schedule_object_dispatches_and_finishes_cycles_at_one():
    s = KLSchedule("cyclical", steps=400, cycles=4, ratio=0.5)
    assert s(0) == 0.0 and s(50) == 1.0 and s(100) == 0.0 and s(150) == 1.0
    assert s(399) == 1.0 and s(400) == 1.0 and s(450) == 1.0  # stays at 1 after the last cycle
    assert KLSchedule("constant")(0) == constant(0) == 1.0
    assert KLSchedule("linear", steps=10)(5) == 0.5
    assert KLSchedule("logistic", k=0.01, x0=100)(100) == pytest.approx(0.5)
    assert KLSchedule("logistic", k=0.01, x0=100).describe() == "logistic (k=0.01, x0=100)"
    assert KLSchedule("constant").describe() == "constant 1"


@pytest.mark.parametrize("bad", [dict(kind="sigmoid"), dict(cycles=0), dict(ratio=1.5), dict(steps=-1)])
def test_bad_schedules_are_refused(bad):
    with pytest.raises(ValueError):
        KLSchedule(**bad)


@given(kind=st.sampled_from(SCHEDULES), step=steps)
def test_every_schedule_stays_in_0_1(kind, step):
    assert 0.0 <= KLSchedule(kind, steps=1000, k=0.01, x0=500)(step) <= 1.0


@given(a=steps, b=steps)
def test_linear_and_logistic_never_decrease(a, b):
    lo, hi = min(a, b), max(a, b)
    for kind in ("linear", "logistic"):
        s = KLSchedule(kind, steps=5000, k=0.003, x0=2000)
        assert s(lo) <= s(hi)


@given(step=steps)
def test_a_schedule_is_a_pure_function_of_the_step(step):
    s = KLSchedule("cyclical", steps=1000, cycles=3)
    assert s(step) == s(step) == KLSchedule("cyclical", steps=1000, cycles=3)(step)
