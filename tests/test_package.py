"""What ``import scratchvae`` does to the process: only the OpenBLAS and GNU OpenMP spin limits, and only if unset."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SPIN_LIMITS = [("OPENBLAS_THREAD_TIMEOUT", "4"), ("GOMP_SPINCOUNT", "1000")]


def _run(variable, env_value):
    code = f"import os, scratchvae; print(os.environ[{variable!r}])"
    env = {k: v for k, v in os.environ.items() if k != variable}
    if env_value is not None:
        env[variable] = env_value
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


@pytest.mark.parametrize("variable, value", SPIN_LIMITS)
def test_import_sets_a_short_spin_when_unset(variable, value):
    assert _run(variable, None) == value


@pytest.mark.parametrize("variable, value", SPIN_LIMITS)
def test_import_keeps_the_users_setting(variable, value):
    assert _run(variable, "12") == "12"
