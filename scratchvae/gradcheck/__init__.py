"""Gradient checking: finite differences against every hand-written backward pass.

Run ``python -m scratchvae.gradcheck --help``.
"""

from .cases import CASES, register
from .core import TOLERANCE, Problem, Result, check_problem

__all__ = ["CASES", "Problem", "Result", "TOLERANCE", "check_problem", "load_model_cases", "register",
           "run_checks"]


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
    """Import the model modules so their cases register themselves."""
    import importlib
    import pkgutil

    from .. import models

    for info in pkgutil.iter_modules(models.__path__):
        importlib.import_module(f"{models.__name__}.{info.name}")
