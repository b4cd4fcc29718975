"""Every registered gradient check passes in float64 on every backend, at the 1e-6 bound."""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.gradcheck import CASES, TOLERANCE, check_problem, load_model_cases
from scratchvae.gradcheck.__main__ import main as gradcheck_main
from scratchvae.gradcheck.core import relative_error

load_model_cases()  # the catalogue: every layer, loss and model


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name, backend_name):
    problem = CASES[name](backend_name, "float64", np.random.default_rng(0))
    result = check_problem(name, problem)
    assert result.passed, f"{name}: {result.errors}"
    assert result.max_error < TOLERANCE


def test_a_wrong_gradient_is_caught():
    """The checker must fail a backward pass that is off by a little (1%)."""
    problem = CASES["Dense tanh"]("numpy", "float64", np.random.default_rng(0))
    right = problem.gradients

    def wrong():
        g = right()
        g["kernel"] = g["kernel"] * 1.01
        return g

    problem.gradients = wrong
    result = check_problem("wrong", problem)
    assert not result.passed
    assert result.errors["kernel"] > 1e-3


def test_relative_error_is_scale_free():
    a = np.array([1e-3, -2e-3, 5e-4])
    assert relative_error(a, a) == 0.0
    assert relative_error(a * 1e6, (a + 1e-9) * 1e6) == pytest.approx(relative_error(a, a + 1e-9))


def test_cli_prints_table_and_summary(capsys):
    code = gradcheck_main(["--only", "LSTM", "--backend", "numpy"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    n = sum(1 for name in CASES if "lstm" in name.lower())
    assert code == 0
    assert lines[-1] == f"{n} passed, 0 failed"
    assert "LSTM go_backwards" in out


def test_cli_exits_nonzero_on_failure(monkeypatch, capsys):
    def broken(backend, dtype, rng):
        problem = CASES["RepeatVector"](backend, dtype, rng)
        right = problem.gradients
        problem.gradients = lambda: {k: 2 * v for k, v in right().items()}
        return problem

    monkeypatch.setitem(CASES, "broken RepeatVector", broken)
    code = gradcheck_main(["--only", "RepeatVector"])
    out = capsys.readouterr().out
    assert code == 1
    assert out.strip().splitlines()[-1] == "1 passed, 1 failed"
    assert "FAILED" in out
