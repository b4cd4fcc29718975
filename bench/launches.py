"""Kernel launches and host synchronisations of one cupy training step, counted without a GPU.

    python bench/run.py --launches          # full sizes, on the CuPy stand-in (seconds)

Each model case is built for the cupy backend on :mod:`scratchvae.testing.fake_cupy`, which runs
the backend's own CUDA kernels on the CPU and counts what CuPy would launch; one step is
counted (the first: later ones launch the same kernels; only its host->device copies include the
optimiser's one-off pointer tables, so they are not reported).  The LSTM kernel
cases give the launches per time step (forward + backward of one direction).
"""

from __future__ import annotations

import contextlib

import scratchvae.backend as backend_module
from scratchvae.testing import fake_cupy

LSTM_BUDGET = 4           # per time step and direction: 2 forward, 2 backward
DEFAULT_STEP_BUDGET = (3000, 3)


@contextlib.contextmanager
def _parts():
    """{part: launches} of the optimiser step and zero_grad, the rest being forward + backward."""
    from scratchvae.layers.base import Layer
    from scratchvae.optim import Optimizer
    parts = {"optimizer": 0, "zero_grad": 0}
    originals = {(Optimizer, "step"): Optimizer.step, (Layer, "zero_grad"): Layer.zero_grad}

    def counted(function, part):
        def wrapper(self, *args, **kwargs):
            before = fake_cupy.counters.launches
            try:
                return function(self, *args, **kwargs)
            finally:
                parts[part] += fake_cupy.counters.launches - before
        return wrapper
    Optimizer.step = counted(Optimizer.step, "optimizer")
    Layer.zero_grad = counted(Layer.zero_grad, "zero_grad")
    try:
        yield parts
    finally:
        for (cls, name), function in originals.items():
            setattr(cls, name, function)


def count(quick: bool, only: str | None = None) -> list[dict]:
    """[{case, kind, launches, syncs, h2d, d2h, steps}] for the model cases and the LSTM kernels."""
    from cases import all_cases
    backend_module._cache["cupy"] = fake_cupy.cupy_backend()
    try:
        cases = [c for c in all_cases(quick, ["cupy"], "gpu")
                 if (c.kind == "model" or c.name.startswith("lstm")) and (not only or only in c.name)]
        rows = []
        for case in cases:
            runner = case.builders["cupy"]()
            if runner.prepare:
                runner.prepare()
            fake_cupy.counters.reset()
            with _parts() as parts:
                runner.step()
            rows.append(dict(case=case.name, kind=case.kind, steps=case.sizes.get("steps"),
                             **fake_cupy.counters.snapshot(), **parts))
        return rows
    finally:
        backend_module._cache.pop("cupy", None)


def lines(rows) -> list[str]:
    out = []
    for r in rows:
        if r["kind"] == "model":
            out.append(f"launches {r['case']} cupy = {r['launches']} per step, syncs = {r['syncs']} per step "
                       f"(optimizer {r['optimizer']}, zero_grad {r['zero_grad']}, "
                       f"forward+backward {r['launches'] - r['optimizer'] - r['zero_grad']})")
        else:
            per_t = r["launches"] / r["steps"]
            out.append(f"launches {r['case']} cupy = {r['launches']} per forward+backward, "
                       f"{per_t:.1f} per time step (budget {LSTM_BUDGET}), syncs = {r['syncs']}")
    return out


def main(quick: bool, only: str | None) -> int:
    for line in lines(count(quick, only)):
        print(line, flush=True)
    return 0
