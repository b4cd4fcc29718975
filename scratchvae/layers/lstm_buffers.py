"""The arrays an LSTM layer's time loops run on, and when they are kept between calls.

Every step of a layer's loops reads and writes slices of a few arrays: the gates of every step,
h and c of every step, the padding mask, the gradients of the gates and two (ping-pong) pairs of
buffers for dh and dc.  On a CPU backend they are allocated afresh for each call (they become the
call's outputs and cache).  On a backend that captures time loops as CUDA graphs
(``backend.captures_time_loops``), the graph bakes in the addresses it was captured on, so the
arrays are allocated once per batch size, with room for the longest sequence seen, and each call
uses their first T steps; the graphs captured on them live beside them (``graphs``) and are dropped
with them.  The layer then copies what it returns out of them, since the next call overwrites them.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

KEPT_BATCH_SIZES = 4  # buffer sets kept per layer (training and evaluation batches), least recent dropped
STEP_ROUNDING = 64  # kept buffers grow to a multiple of this many steps (fewer re-captures)


@dataclass
class LoopBuffers:
    """The time loops' arrays for T steps of a batch of n (views of kept arrays when ``shared``)."""

    gates: object  # (T, n, 4U) the input projection in, the activated gates out
    hs: object  # (T + 1, n, U) h_0 .. h_T
    cs: object  # (T + 1, n, U) c_0 .. c_T
    mask: object  # (T, n) bool, False at padding (filled only for a masked call)
    dgates: object  # (T, n, 4U) dz of every step
    dys: object  # (T, n, U) the output gradient of every step (return_sequences)
    dh: object  # (2, n, U) dh of step t and of step t - 1, in turn
    dc: object  # (2, n, U) likewise dc
    Wh_T: object  # (4U, U) the recurrent kernel, transposed, C-contiguous
    graphs: dict  # captured time loops on these arrays, by key
    shared: bool  # True: kept between calls (copy outputs out)

    def ready_for_backward(self, xp) -> None:
        """Allocate the backward's arrays of a fresh set (a forward alone, as in evaluation, needs none)."""
        if self.dgates is None:
            T, n, four_u = self.gates.shape
            u = four_u // 4
            self.dgates = xp.empty_like(self.gates)
            self.dys = xp.empty((T, n, u), dtype=self.gates.dtype)
            self.dh = xp.empty((2, n, u), dtype=self.gates.dtype)
            self.dc = xp.empty((2, n, u), dtype=self.gates.dtype)


@dataclass
class _Kept:
    steps: int
    arrays: dict
    graphs: dict = field(default_factory=dict)


class LoopBufferPool:
    """Per layer: :class:`LoopBuffers` for a call, fresh or kept (see the module docstring)."""

    def __init__(self) -> None:
        self._kept: OrderedDict[int, _Kept] = OrderedDict()

    def get(self, xp, dtype, steps: int, batch: int, units: int, *, keep: bool) -> LoopBuffers:
        if not keep:
            return _views(_allocate(xp, dtype, steps, batch, units, backward=False), steps, {}, shared=False)
        kept = self._kept.get(batch)
        if kept is None or kept.steps < steps:
            rounded = -(-steps // STEP_ROUNDING) * STEP_ROUNDING
            kept = _Kept(rounded, _allocate(xp, dtype, rounded, batch, units))
            self._kept[batch] = kept
        self._kept.move_to_end(batch)
        while len(self._kept) > KEPT_BATCH_SIZES:
            self._kept.popitem(last=False)
        return _views(kept.arrays, steps, kept.graphs, shared=True)


def _allocate(xp, dtype, steps, batch, units, *, backward=True) -> dict:
    u = units
    a = dict(
        gates=xp.empty((steps, batch, 4 * u), dtype=dtype),
        hs=xp.empty((steps + 1, batch, u), dtype=dtype),
        cs=xp.empty((steps + 1, batch, u), dtype=dtype),
        mask=xp.empty((steps, batch), dtype=bool),
        Wh_T=xp.empty((4 * u, u), dtype=dtype),
    )
    if backward:
        a.update(
            dgates=xp.empty((steps, batch, 4 * u), dtype=dtype),
            dys=xp.empty((steps, batch, u), dtype=dtype),
            dh=xp.empty((2, batch, u), dtype=dtype),
            dc=xp.empty((2, batch, u), dtype=dtype),
        )
    return a


def _views(a, steps, graphs, *, shared) -> LoopBuffers:
    T = steps
    first = lambda name: a[name][:T] if name in a else None
    return LoopBuffers(
        gates=a["gates"][:T],
        hs=a["hs"][: T + 1],
        cs=a["cs"][: T + 1],
        mask=a["mask"][:T],
        dgates=first("dgates"),
        dys=first("dys"),
        dh=a.get("dh"),
        dc=a.get("dc"),
        Wh_T=a["Wh_T"],
        graphs=graphs,
        shared=shared,
    )
