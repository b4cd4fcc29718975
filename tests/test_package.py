"""What ``import scratchvae`` does to the process: only the OpenBLAS spin timeout, and only if unset."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = "import os, scratchvae; print(os.environ['OPENBLAS_THREAD_TIMEOUT'])"


def _run(env_value):
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    if env_value is not None:
        env["OPENBLAS_THREAD_TIMEOUT"] = env_value
    out = subprocess.run([sys.executable, "-c", CODE], env=env, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_import_sets_a_short_openblas_spin_when_unset():
    assert _run(None) == "4"


def test_import_keeps_the_users_openblas_setting():
    assert _run("12") == "12"
