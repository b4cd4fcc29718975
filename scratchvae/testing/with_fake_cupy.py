"""Run a module with the CuPy stand-in imported as ``cupy``.

    python -m scratchvae.testing.with_fake_cupy scratchvae.train imdb --backend cupy --max-steps 2

The command runs as under ``python -m MODULE ARGS``; at exit, the counts go to stderr when
SCRATCHVAE_FAKE_CUPY_COUNTS is set.
"""

from __future__ import annotations

import os
import runpy
import sys

from . import fake_cupy


def main() -> None:
    if len(sys.argv) < 2:
        print("usage: python -m scratchvae.testing.with_fake_cupy MODULE [ARGS...]", file=sys.stderr)
        raise SystemExit(2)
    module, sys.argv = sys.argv[1], sys.argv[1:]
    fake_cupy.install()
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    finally:
        if os.environ.get("SCRATCHVAE_FAKE_CUPY_COUNTS"):
            print(f"fake_cupy counts: {fake_cupy.counters.snapshot()}", file=sys.stderr)


if __name__ == "__main__":
    main()
