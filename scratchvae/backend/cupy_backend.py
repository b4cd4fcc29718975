"""The CuPy backend: arrays on a CUDA GPU, the hot loops as single CUDA kernels.

CuPy is an optional dependency (``pip install "scratchvae[gpu]"``, which brings the CUDA toolkit
pieces CuPy compiles and multiplies with) and is imported only when this backend is asked for.
The kernels are CUDA C (:mod:`scratchvae.backend.cuda`, which says why), compiled once by NVRTC and
launched by CuPy; the same source runs on the CPU in the test suite.  Making the backend runs a
start-up check (compile the kernels, launch one, run a small matrix product) so that a machine
that cannot run it fails at once, in one line that names the fix, before any data is read.

An LSTM step is two launches each way: the recurrent GEMM accumulating into the gates (cuBLAS,
beta = 1) and one cell kernel that also handles the padding mask (and, backward, sums the two
gradients reaching h_t and passes padding rows through).  Each layer's whole time loop is then
captured once as a CUDA graph (per layer and shape, on buffers the layer keeps) and replayed as one
launch (:meth:`CupyBackend.run_time_loop`).

The optimiser kernels walk every parameter in one launch through a table of device pointers, so a
step's Adam update is one launch and its global gradient norm three, with no host synchronisation
(the norm stays on the device until someone reads it).
"""

from __future__ import annotations

import importlib
import os
import sys

import numpy as np

from .cuda import kernels as cuda_kernels
from .errors import BackendError
from .gates import is_hard_sigmoid as _is_hard
from .numpy_backend import NumpyBackend

GRAPHS_ENV = "SCRATCHVAE_CUDA_GRAPHS"  # "0": run the LSTM time loops kernel by kernel, no CUDA graphs
_INSTALL = "pip install 'scratchvae[gpu]' (cupy-cuda12x[ctk]; cupy-cuda13x[ctk] for CUDA 13)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _import_cupy():
    try:
        import cupy
    except ImportError as exc:
        raise BackendError(f"the cupy backend needs CuPy: {_INSTALL}, or use --backend numba") from exc
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver missing or broken
        raise BackendError(
            f"the cupy backend found no usable CUDA GPU ({_first_line(exc)}); use --backend numba"
        ) from exc
    if count == 0:
        raise BackendError("the cupy backend found no CUDA GPU; use --backend numba")
    return cupy


def _compile(cp):
    """Every kernel for float32 and float64: {(name, dtype): kernel}."""
    module = cp.RawModule(
        code=cuda_kernels.SOURCE, options=cuda_kernels.NVRTC_OPTIONS, name_expressions=cuda_kernels.name_expressions()
    )
    return {
        (name, np.dtype(dt)): module.get_function(f"{name}<{ctype}>")
        for name in cuda_kernels.KERNELS
        for dt, ctype in ((np.float32, "float"), (np.float64, "double"))
    }


def _contiguous(**arrays) -> None:
    for name, a in arrays.items():
        if not a.flags.c_contiguous:
            raise ValueError(
                f"the cupy kernels index raw memory: {name} must be C-contiguous "
                f"(shape {a.shape}, strides {a.strides}); pass xp.ascontiguousarray({name})"
            )


class CupyBackend(NumpyBackend):
    """CuPy arrays on the current CUDA device; custom CUDA kernels for the hot loops.

    ``cupy_module``: the array module to use instead of ``import cupy`` (the test suite passes its
    CPU stand-in, :mod:`scratchvae.testing.fake_cupy`).  ``graphs``: capture each LSTM layer's time
    loop as a CUDA graph and replay it (default: on, unless ``SCRATCHVAE_CUDA_GRAPHS=0``).
    """

    name = "cupy"

    def __init__(self, cupy_module=None, *, graphs: bool | None = None):
        super().__init__()
        cp = cupy_module if cupy_module is not None else _import_cupy()
        self.xp = cp
        try:
            self._gemm = cp.cublas.gemm
        except AttributeError:  # a CuPy that does not import its cublas module itself
            self._gemm = importlib.import_module(f"{cp.__name__}.cublas").gemm
        self._tables: dict = {}
        self.graphs = graphs if graphs is not None else os.environ.get(GRAPHS_ENV, "1") != "0"
        self._capture_stream = None
        self._start_up_check()
        self._no_mask = cp.ones((1,), dtype=np.bool_)  # the mask argument of an unmasked step

    def _start_up_check(self) -> None:
        """Compile the kernels, launch one and multiply two small matrices; BackendError if any fails."""
        cp = self.xp
        try:
            self._kernels = _compile(cp)
        except Exception as exc:  # NVRTC missing (driver-only machine) or the source refused
            raise BackendError(
                f"the cupy backend cannot compile its CUDA kernels ({_first_line(exc)}); "
                f"{_INSTALL} brings NVRTC, or use --backend numba"
            ) from exc
        try:
            a = cp.full((8, 8), 0.5, dtype=np.float32)
            logits, total = cp.ones((2, 4), dtype=np.float32), cp.full((2,), 4.0, dtype=np.float32)
            self._launch(
                "softmax_xent_grad",
                np.float32,
                logits.size,
                logits,
                total,
                cp.ones((2,), dtype=np.float32),
                cp.zeros((2,), dtype=np.int64),
                np.int64(logits.size),
                np.int64(4),
            )
            product = float((a @ a).sum() + logits.sum())  # 64 * 2.0, plus rows of 1/4 - onehot: 0
        except Exception as exc:  # cuBLAS missing, or the kernel cannot run on this GPU
            raise BackendError(
                f"the cupy backend cannot run on this GPU ({_first_line(exc)}); "
                f"{_INSTALL} brings cuBLAS, or use --backend numba"
            ) from exc
        if abs(product - 128.0) > 1e-3:
            raise BackendError(
                f"the cupy backend computed {product} for a check worth 128 on this GPU; "
                "use --backend numba and report the GPU and CUDA versions"
            )

    def _launch(self, name, dtype, n, *args, stride_loop=False):
        """Kernel ``name`` for float type ``dtype`` over n elements."""
        self._kernels[name, np.dtype(dtype)](
            (cuda_kernels.grid_for(n, stride_loop=stride_loop),), (cuda_kernels.THREADS,), args
        )

    def concurrently(self, *calls):
        """One after another: the GPU queues each call's kernels; host threads would add nothing."""
        return [call() for call in calls]

    def asarray(self, a, dtype=None):
        return self.xp.ascontiguousarray(self.xp.asarray(a, dtype=dtype))

    def to_numpy(self, a) -> np.ndarray:
        return self.xp.asnumpy(a)

    def synchronize(self) -> None:
        self.xp.cuda.get_current_stream().synchronize()

    def to_floats(self, values: dict) -> dict[str, float]:
        xp = self.xp
        on_device = [k for k, v in values.items() if isinstance(v, xp.ndarray)]
        out = {k: float(v) for k, v in values.items() if k not in on_device}
        if on_device:
            stacked = xp.stack([values[k].reshape(()).astype(np.float64, copy=False) for k in on_device])
            out.update(zip(on_device, (float(x) for x in xp.asnumpy(stacked))))
        return {k: out[k] for k in values}

    # ------------------------------------------------------------------ LSTM
    def _mask_args(self, mask, rows):
        """(keep, masked) kernel arguments: the (B,) bool mask, or a placeholder and 0."""
        if mask is None:
            return self._no_mask, np.int32(0)
        _contiguous(mask=mask)
        if mask.dtype != np.bool_ or mask.shape != (rows,):
            raise ValueError(f"the step mask must be ({rows},) bool, not {mask.shape} {mask.dtype}")
        return mask, np.int32(1)

    def lstm_cell_forward(self, gates, c_prev, c_out, h_out, recurrent_activation="sigmoid", *, mask=None, h_prev=None):
        hard = np.int32(_is_hard(recurrent_activation))
        keep, masked = self._mask_args(mask, c_prev.shape[0])
        h_prev = c_prev if h_prev is None else h_prev  # read only at padding rows
        _contiguous(gates=gates, c_prev=c_prev, h_prev=h_prev, c_out=c_out, h_out=h_out)
        self._launch(
            "lstm_cell_forward",
            gates.dtype,
            c_prev.size,
            gates,
            c_prev,
            h_prev,
            keep,
            masked,
            c_out,
            h_out,
            np.int64(c_prev.size),
            np.int32(c_prev.shape[1]),
            hard,
        )

    def lstm_step_forward(
        self, gates, h_prev, U, U_T, c_prev, c_out, h_out, recurrent_activation="sigmoid", *, mask=None
    ):
        """gates += h_prev U as one GEMM with beta = 1 (cuBLAS accumulates in place), then the cell
        (padding rows carried over inside it): two launches."""
        _contiguous(gates=gates, h_prev=h_prev, U=U)
        self._gemm("N", "N", h_prev, U, out=gates, alpha=1.0, beta=1.0)
        self.lstm_cell_forward(gates, c_prev, c_out, h_out, recurrent_activation, mask=mask, h_prev=h_prev)

    def _cell_backward(self, dh, dy, dc, gates, c_prev, c, mask, dgates_out, dc_prev, dh_pass, hard):
        keep, masked = self._mask_args(mask, c.shape[0])
        has_dy = np.int32(dy is not None)
        dy = dh if dy is None else dy  # not read without has_dy
        _contiguous(
            dh=dh,
            dy=dy,
            dc=dc,
            gates=gates,
            c_prev=c_prev,
            c=c,
            dgates_out=dgates_out,
            dc_prev=dc_prev,
            dh_pass=dh_pass,
        )
        self._launch(
            "lstm_cell_backward",
            gates.dtype,
            c.size,
            dh,
            dy,
            has_dy,
            dc,
            gates,
            c_prev,
            c,
            keep,
            masked,
            dgates_out,
            dc_prev,
            dh_pass,
            np.int64(c.size),
            np.int32(c.shape[1]),
            hard,
        )

    def lstm_cell_backward(self, dh, dc, gates, c_prev, c, dgates_out, recurrent_activation="sigmoid"):
        dc_prev = self.xp.empty_like(c)
        self._cell_backward(
            dh, None, dc, gates, c_prev, c, None, dgates_out, dc_prev, dc_prev, np.int32(_is_hard(recurrent_activation))
        )
        return dc_prev

    def lstm_step_backward(
        self,
        dh,
        dc,
        gates,
        c_prev,
        c,
        dgates_out,
        Wh,
        Wh_T,
        dh_prev_out,
        recurrent_activation="sigmoid",
        *,
        dy=None,
        mask=None,
        dc_prev_out=None,
    ):
        """The cell (dh + dy summed, padding rows passed through into dh_prev_out), then
        dh_prev_out += dz Wh^T as one GEMM (beta = 1 when the cell wrote the pass-through): two launches."""
        dc_prev = self.xp.empty_like(c) if dc_prev_out is None else dc_prev_out
        self._cell_backward(
            dh,
            dy,
            dc,
            gates,
            c_prev,
            c,
            mask,
            dgates_out,
            dc_prev,
            dh_prev_out,
            np.int32(_is_hard(recurrent_activation)),
        )
        _contiguous(Wh_T=Wh_T)
        self._gemm("N", "N", dgates_out, Wh_T, out=dh_prev_out, alpha=1.0, beta=0.0 if mask is None else 1.0)
        return dc_prev

    # ------------------------------------------------------------------ CUDA graphs
    @property
    def captures_time_loops(self) -> bool:
        return self.graphs

    def run_time_loop(self, graphs: dict, key, issue_steps) -> None:
        """``issue_steps()`` captured once per key into a CUDA graph (kept in ``graphs``), then replayed:
        one launch for a whole time loop.  Without graphs (``SCRATCHVAE_CUDA_GRAPHS=0``), it just runs."""
        if not self.graphs:
            issue_steps()
            return
        graph = graphs.get(key)
        if graph is None:
            try:
                graph = graphs[key] = self._capture(issue_steps)
            except Exception as exc:  # noqa: BLE001 - a CuPy, driver or library that cannot capture: no graphs
                self.graphs = False
                print(
                    f"note: CUDA graphs off, the LSTM loops run kernel by kernel ({_first_line(exc)}); "
                    f"{GRAPHS_ENV}=0 skips the attempt",
                    file=sys.stderr,
                )
                issue_steps()  # the capture ran nothing: the buffers are as they were
                return
        graph.launch(stream=self.xp.cuda.get_current_stream())

    def _capture(self, issue_steps):
        stream = self._capture_stream
        if stream is None:
            stream = self._capture_stream = self.xp.cuda.Stream(non_blocking=True)
        with stream:
            stream.begin_capture()
            try:
                issue_steps()
            finally:
                graph = stream.end_capture()
        return graph

    def zero_all(self, arrays) -> None:
        arrays = list(arrays)
        if not arrays:
            return
        pointers, offsets, n, total, dtype = self._table(arrays)
        self._launch("zero_all", dtype, total, pointers, offsets, n, stride_loop=True)

    # ------------------------------------------------------------------ embedding
    def embedding_backward(self, ids, dy, num_rows):
        dW = self.xp.zeros((num_rows, dy.shape[1]), dtype=dy.dtype)
        self.xp.add.at(dW, ids, dy)  # atomicAdd scatter on the GPU
        return dW

    # ------------------------------------------------------------------ loss
    def softmax_cross_entropy(self, logits, targets, scale):
        xp = self.xp
        _contiguous(logits=logits)
        rows = xp.arange(logits.shape[0])
        shift = logits.max(axis=1)
        target_logit = logits[rows, targets] - shift
        logits -= shift[:, None]
        xp.exp(logits, out=logits)
        total = logits.sum(axis=1)
        nll = xp.log(total) - target_logit
        self._launch(
            "softmax_xent_grad",
            logits.dtype,
            logits.size,
            logits,
            total,
            xp.ascontiguousarray(scale.astype(logits.dtype, copy=False)),
            xp.ascontiguousarray(targets.astype(np.int64, copy=False)),
            np.int64(logits.size),
            np.int64(logits.shape[1]),
        )
        return nll

    def softplus(self, x):
        # one launch: CuPy's logaddexp is max(a, b) + log1p(exp(-|a - b|)) in one elementwise kernel, and
        # the GPU's log1p is fast (the NumPy backend's one-log trick is for NumPy's slow float32 log1p)
        return self.xp.logaddexp(0, x)

    # ------------------------------------------------------------------ optimiser
    def _table(self, *groups, cache=True):
        """Device pointer table and offsets for aligned lists of arrays (built once per set of arrays
        when ``cache``: the table keeps them alive, so their ids stay theirs)."""
        key = tuple(id(a) for group in groups for a in group)
        if key not in self._tables or not cache:
            first = groups[0]
            dtype = first[0].dtype
            for group in groups:
                for a, ref in zip(group, first):
                    if a.dtype != dtype or a.shape != ref.shape:
                        raise ValueError("the optimiser kernels need arrays of one dtype, aligned in shape")
                    _contiguous(parameter=a)
            pointers = np.array([a.data.ptr for group in groups for a in group], dtype=np.uint64)
            offsets = np.cumsum([0] + [a.size for a in first], dtype=np.int64)
            table = (
                groups,
                self.xp.asarray(pointers),
                self.xp.asarray(offsets),
                np.int32(len(first)),
                int(offsets[-1]),
                dtype,
            )
            if not cache:
                return table[1:]
            self._tables[key] = table
        return self._tables[key][1:]

    def global_norm(self, grads):
        """sqrt of the sum of squares of every entry, as a 0-d float64 device array (no sync)."""
        pointers, offsets, n, total, dtype = self._table(grads)
        blocks = cuda_kernels.grid_for(total, stride_loop=True)
        partials = self.xp.empty(blocks * cuda_kernels.THREADS, dtype=np.float64)
        self._launch("sum_squares_partials", dtype, total, pointers, offsets, n, partials, stride_loop=True)
        return self.xp.sqrt(partials.sum())

    def clip_by_global_norm(self, grads, norm, clipnorm: float) -> None:
        pointers, offsets, n, total, dtype = self._table(grads)
        self._launch("scale_by_norm", dtype, total, pointers, offsets, n, norm, np.float64(clipnorm), stride_loop=True)

    def adam_update_all(self, params, grads, ms, vs, lr_t, beta_1, beta_2, epsilon, *, cache=True):
        pointers, offsets, n, total, dtype = self._table(params, grads, ms, vs, cache=cache)
        dt = dtype.type
        self._launch(
            "adam_update_all",
            dtype,
            total,
            pointers,
            offsets,
            n,
            dt(lr_t),
            dt(1.0 - beta_1),
            dt(1.0 - beta_2),
            dt(epsilon),
            stride_loop=True,
        )

    def adam_update(self, param, grad, m, v, lr_t, beta_1, beta_2, epsilon):
        self.adam_update_all([param], [grad], [m], [v], lr_t, beta_1, beta_2, epsilon, cache=False)
