"""Kernel launches and host synchronisations of one cupy training step, counted without a GPU.

    python bench/run.py --launches          # full sizes, on the CuPy stand-in (seconds)

Each model case is built for the cupy backend on :mod:`scratchvae.testing.fake_cupy`, which runs
the backend's own CUDA kernels on the CPU and counts what CuPy would launch; one step is
counted (the first: later ones launch the same kernels, each LSTM time loop captured as a CUDA graph
in it and replayed after; only its host->device copies include the optimiser's one-off pointer
tables, so they are not reported).  The repeat preset, the default when issue 20 set its budget
(3,000 launches and 3 synchronisations a step), is also counted at 200 steps; the budget is checked
on it and on the default (autoregressive) preset.  The LSTM kernel cases give the launches of
a layer's forward + backward (each time loop one graph launch); the ``step-kernels`` lines the
launches inside the loops, per time step and direction, counted without graphs (kernel by kernel)
as the difference between two lengths, with and without a padding mask (budget 2 + 2).
"""

from __future__ import annotations

import contextlib

import scratchvae.backend as backend_module
from scratchvae.testing import fake_cupy

LSTM_BUDGET = 4  # per time step and direction: 2 forward, 2 backward
STEP_BUDGET = (2, 2)  # launches per time step and direction: forward, backward
DEFAULT_STEPS = 200  # the repeat-preset step of the budget: batch 32, 200 steps


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


def _model_cases(quick: bool):
    """The model cases, plus the repeat preset (the default of issue 20) at the budget's 200 steps."""
    from cases import QUICK_IMDB, all_cases, imdb_case

    cases = [c for c in all_cases(quick, ["cupy"], "gpu") if c.kind == "model" or c.name.startswith("lstm")]
    repeat = next(c for c in cases if c.name == "imdb-repeat")
    from scratchvae.models.imdb import IMDBVAEConfig
    from scratchvae.tasks.imdb import PRESETS

    config = PRESETS["repeat"].model if not quick else IMDBVAEConfig(**QUICK_IMDB)
    extra = imdb_case("repeat", config, repeat.sizes["batch"], DEFAULT_STEPS if not quick else 8, ["cupy"], "gpu")
    extra.name = f"imdb-repeat-T{extra.sizes['steps']}"
    cases.insert(cases.index(repeat) + 1, extra)
    return cases


def count(quick: bool, only: str | None = None) -> list[dict]:
    """[{case, kind, launches, syncs, h2d, d2h, steps}] for the model cases and the LSTM kernels."""
    backend_module._cache["cupy"] = fake_cupy.cupy_backend()
    try:
        cases = [c for c in _model_cases(quick) if not only or only in c.name]
        rows = []
        for case in cases:
            runner = case.builders["cupy"]()
            if runner.prepare:
                runner.prepare()
            fake_cupy.counters.reset()
            with _parts() as parts:
                runner.step()
            rows.append(
                dict(
                    case=case.name,
                    kind=case.kind,
                    steps=case.sizes.get("steps"),
                    **fake_cupy.counters.snapshot(),
                    **parts,
                )
            )
        return rows
    finally:
        backend_module._cache.pop("cupy", None)


def step_kernels(masked: bool, sequences: bool) -> dict:
    """Launches and syncs inside an LSTM layer's loops per time step and direction, without CUDA graphs:
    the counts of two lengths apart, divided by the steps between them (so the per-call work cancels)."""
    import numpy as np

    from scratchvae.backend.cupy_backend import CupyBackend
    from scratchvae.layers import LSTM

    backend = CupyBackend(cupy_module=fake_cupy, graphs=False)
    counters = fake_cupy.counters

    def counts(steps):
        layer = LSTM(3, 4, return_sequences=sequences, rng=np.random.default_rng(0), backend=backend)
        x = backend.asarray(np.ones((3, steps, 3), np.float32))
        lengths = np.array([steps, steps - 2, 1])  # ragged: padding in two rows
        mask = backend.asarray(np.arange(steps)[None, :] < lengths[:, None]) if masked else None
        dy = backend.asarray(np.ones((3, steps, 4) if sequences else (3, 4), np.float32))
        counters.reset()
        layer.forward(x, mask)
        forward, syncs = counters.launches, counters.syncs
        counters.reset()
        layer.backward(dy)
        return forward, counters.launches, syncs + counters.syncs

    short, long = counts(4), counts(12)
    per = [(b - a) / (12 - 4) for a, b in zip(short, long)]
    return dict(masked=masked, sequences=sequences, forward=per[0], backward=per[1], syncs=per[2])


def lines(rows, steps) -> list[str]:
    out = []
    for r in rows:
        if r["kind"] == "model":
            out.append(
                f"launches {r['case']} cupy = {r['launches']} per step, syncs = {r['syncs']} per step "
                f"(optimizer {r['optimizer']}, zero_grad {r['zero_grad']}, "
                f"forward+backward {r['launches'] - r['optimizer'] - r['zero_grad']})"
            )
        else:
            per_t = r["launches"] / r["steps"]
            out.append(
                f"launches {r['case']} cupy = {r['launches']} per forward+backward, "
                f"{per_t:.1f} per time step (budget {LSTM_BUDGET}), syncs = {r['syncs']}"
            )
    for s in steps:
        out.append(
            f"launches step-kernels mask={'yes' if s['masked'] else 'no'} "
            f"sequences={'yes' if s['sequences'] else 'no'} cupy = {s['forward']:g} forward + "
            f"{s['backward']:g} backward per time step and direction (budget {STEP_BUDGET[0]} + "
            f"{STEP_BUDGET[1]}, kernel by kernel), syncs = {s['syncs']:g}"
        )
    return out


def main(quick: bool, only: str | None) -> int:
    steps = [] if only else [step_kernels(m, q) for m in (False, True) for q in (True, False)]
    for line in lines(count(quick, only), steps):
        print(line, flush=True)
    return 0
