"""Gradient checking: finite differences against every hand-written backward pass.

Run ``python -m scratchvae.gradcheck --help``.
"""

from .cases import CASES, register
from .core import TOLERANCE, Problem, Result, check_problem

__all__ = ["CASES", "Problem", "Result", "TOLERANCE", "check_problem", "load_model_cases", "register", "run_checks"]


def run_checks(backend="numpy", dtype="float64", names=None, seed=0) -> list[Result]:
    """Run the named cases (all by default) and return their results."""
    import numpy as np

    load_model_cases()
    results = []
    for name in names or list(CASES):
        problem = CASES[name](backend, dtype, np.random.default_rng(seed))
        results.append(check_problem(name, problem, seed))
    return results


def load_model_cases() -> None:
    """Add the whole models' cases (:mod:`scratchvae.gradcheck.model_cases`) to :data:`CASES`."""
    from importlib import import_module

    import_module(".model_cases", __package__)  # its cases register themselves on import
