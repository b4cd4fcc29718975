"""KL annealing: the weight beta(step) of the KL term in  loss = reconstruction + beta * KL.

Each schedule is a pure function of the global optimiser step (so resuming a run
resumes its schedule exactly) with values in [0, 1]:

    constant    beta = 1
    linear      beta = min(1, step / steps)                           (warm-up over ``steps``)
    logistic    beta = 1 / (1 + exp(-k (step - x0)))                  (Bowman et al. 2016)
    cyclical    tau = (step mod period) / period,  beta = min(1, tau / ratio)
                with period = steps / cycles                           (Fu et al. 2019)

Starting with a small beta lets the decoder learn to use z before the KL term pushes
the posterior onto the prior (the "posterior collapse" of a strong LSTM decoder).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

SCHEDULES = ("constant", "linear", "logistic", "cyclical")


def constant(step: int) -> float:
    """beta = 1: no annealing."""
    return 1.0


def linear(step: int, steps: int) -> float:
    """beta rises linearly from 0 at step 0 to 1 at ``steps``, then stays at 1."""
    if steps <= 0:
        return 1.0
    return min(1.0, max(step, 0) / steps)


def logistic(step: int, k: float, x0: float) -> float:
    """Bowman et al.'s sigmoid: beta = 1 / (1 + exp(-k (step - x0))); 1/2 at step x0, slope k/4 there."""
    a = -k * (step - x0)
    if a > 0:  # the two forms keep exp from overflowing on either side
        e = math.exp(-a)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(a))


def cyclical(step: int, period: int, ratio: float = 0.5) -> float:
    """Fu et al.'s cyclical schedule: each ``period`` steps, beta rises linearly from 0 to 1 over the first
    ``ratio`` of the period and stays at 1 for the rest."""
    if period <= 0:
        return 1.0
    tau = (max(step, 0) % period) / period
    return 1.0 if ratio <= 0 else min(1.0, tau / ratio)


@dataclass(frozen=True)
class KLSchedule:
    """A named schedule and its parameters, callable as ``beta = schedule(step)``.

    ``steps``: the length of the linear warm-up, or of all the cycles together (``cycles`` of them,
    ``ratio`` of each rising); ``k`` and ``x0``: the logistic's slope and midpoint.  After the last
    cycle the cyclical schedule stays at 1, so training ends on the true ELBO.
    """

    kind: str = "linear"
    steps: int = 10_000
    k: float = 0.0025
    x0: float = 2_500.0
    cycles: int = 4
    ratio: float = 0.5

    def __post_init__(self) -> None:
        if self.kind not in SCHEDULES:
            raise ValueError(f"unknown KL schedule {self.kind!r}; choose one of {', '.join(SCHEDULES)}")
        if self.steps < 0 or self.cycles < 1 or not 0.0 <= self.ratio <= 1.0:
            raise ValueError("KL schedule needs steps >= 0, cycles >= 1 and 0 <= ratio <= 1")

    def __call__(self, step: int) -> float:
        if self.kind == "linear":
            return linear(step, self.steps)
        if self.kind == "logistic":
            return logistic(step, self.k, self.x0)
        if self.kind == "cyclical":
            period = self.steps // self.cycles
            return 1.0 if step >= period * self.cycles else cyclical(step, period, self.ratio)
        return constant(step)

    def to_dict(self) -> dict:
        """Every parameter by name (kind, steps, k, x0, cycles, ratio): what a checkpoint's meta keeps."""
        return asdict(self)

    def describe(self) -> str:
        """One line for logs: the schedule and the parameters it uses."""
        if self.kind == "linear":
            return f"linear over {self.steps} steps"
        if self.kind == "logistic":
            return f"logistic (k={self.k:g}, x0={self.x0:g})"
        if self.kind == "cyclical":
            return f"cyclical ({self.cycles} cycles over {self.steps} steps, rising {self.ratio:g} of each)"
        return "constant 1"
