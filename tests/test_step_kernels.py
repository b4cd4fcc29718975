"""The fused LSTM step and cell kernels of the compiled backends against the numpy reference.

The sizes reach every path of the numba kernel: batches that take register tiles of
5, 2 and 1 rows; dot lengths shorter than one SIMD vector, with a vector part and a
tail, and long ones (4U = 2000); steps large enough to be split across threads.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend import get_backend

SIZES = [(1, 3), (5, 16), (10, 37), (11, 150), (4, 256), (10, 500)]


def _inputs(batch, units, dtype, seed=0):
    rng = np.random.default_rng(seed)
    U = (rng.standard_normal((units, 4 * units)) / np.sqrt(units)).astype(dtype)
    return {
        "gates": rng.standard_normal((batch, 4 * units)).astype(dtype),
        "h_prev": rng.standard_normal((batch, units)).astype(dtype),
        "c_prev": rng.standard_normal((batch, units)).astype(dtype),
        "dh": rng.standard_normal((batch, units)).astype(dtype),
        "dc": rng.standard_normal((batch, units)).astype(dtype),
        "U": U,
    }


def _run(backend_name, x, activation):
    K = get_backend(backend_name)
    d = {k: K.asarray(v) for k, v in x.items()}
    U = d["U"]
    U_T = K.xp.ascontiguousarray(U.T)
    gates, c, h = d["gates"].copy(), K.xp.empty_like(d["c_prev"]), K.xp.empty_like(d["c_prev"])
    K.lstm_step_forward(gates, d["h_prev"], U, U_T, d["c_prev"], c, h, activation)
    dgates, dh_prev = K.xp.empty_like(gates), K.xp.empty_like(d["h_prev"])
    dc_prev = K.lstm_step_backward(d["dh"], d["dc"], gates, d["c_prev"], c, dgates, U, U_T, dh_prev, activation)
    out = {"gates": gates, "c": c, "h": h, "dgates": dgates, "dh_prev": dh_prev, "dc_prev": dc_prev}
    # The cell alone (the step kernels fuse it; the cell kernels are public too), from the same z.
    z = d["gates"] + d["h_prev"] @ U
    cell_c, cell_h = K.xp.empty_like(c), K.xp.empty_like(c)
    K.lstm_cell_forward(z, d["c_prev"], cell_c, cell_h, activation)
    cell_dz = K.xp.empty_like(z)
    cell_dc_prev = K.lstm_cell_backward(d["dh"], d["dc"], z, d["c_prev"], cell_c, cell_dz, activation)
    out.update(cell_gates=z, cell_c=cell_c, cell_h=cell_h, cell_dz=cell_dz, cell_dc_prev=cell_dc_prev)
    return {k: K.to_numpy(v) for k, v in out.items()}


@pytest.mark.parametrize("batch, units", SIZES)
@pytest.mark.parametrize("activation", ["sigmoid", "hard_sigmoid"])
def test_step_and_cell_kernels_match_the_reference_in_float64(fast_backend_name, batch, units, activation):
    x = _inputs(batch, units, np.float64)
    ref, got = _run("numpy", x, activation), _run(fast_backend_name, x, activation)
    for k in ref:
        scale = np.abs(ref[k]).max()
        err = np.abs(got[k] - ref[k]).max() / scale
        assert err <= 1e-12, f"{k} at B={batch} U={units}: relative difference {err:.1e}"


@pytest.mark.parametrize("batch, units", [(10, 37), (10, 500)])
def test_step_kernels_in_float32_stay_within_rounding(fast_backend_name, batch, units):
    x = _inputs(batch, units, np.float64, seed=1)
    ref = _run("numpy", x, "sigmoid")
    got = _run(fast_backend_name, {k: v.astype(np.float32) for k, v in x.items()}, "sigmoid")
    for k in ref:
        assert got[k].dtype == np.float32
        err = np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max()
        assert err <= 1e-5, f"{k} at B={batch} U={units}: relative difference {err:.1e}"


@pytest.mark.parametrize("batch, units", [(10, 500), (11, 150)])
@pytest.mark.parametrize("activation", ["sigmoid", "hard_sigmoid"])
def test_numba_serial_step_kernels_match_the_reference(batch, units, activation):
    """Inside backend.concurrently each call gets one thread and its steps run on the serial
    kernels (_step_*_serial), also at sizes that would otherwise be split across threads."""
    K = get_backend("numba")
    x = _inputs(batch, units, np.float64, seed=2)
    assert K._with_threads(1, lambda: K._parts(x["h_prev"], x["U"])) == 1
    ref = _run("numpy", x, activation)
    got = K._with_threads(1, lambda: _run("numba", x, activation))
    for k in ref:
        err = np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max()
        assert err <= 1e-12, f"{k} at B={batch} U={units}: relative difference {err:.1e}"


def _run_masked(backend_name, x, activation, keep):
    """One step each way with a padding mask, the output gradient dy and every output preallocated."""
    K = get_backend(backend_name)
    d = {k: K.asarray(v) for k, v in x.items()}
    U, mask = d["U"], K.asarray(keep)
    U_T = K.xp.ascontiguousarray(U.T)
    gates, c, h = d["gates"].copy(), K.xp.empty_like(d["c_prev"]), K.xp.empty_like(d["c_prev"])
    K.lstm_step_forward(gates, d["h_prev"], U, U_T, d["c_prev"], c, h, activation, mask=mask)
    dgates, dh_prev, dc_prev = K.xp.empty_like(gates), K.xp.empty_like(d["h_prev"]), K.xp.empty_like(c)
    returned = K.lstm_step_backward(
        d["dh"].copy(),
        d["dc"],
        gates,
        d["c_prev"],
        c,
        dgates,
        U,
        U_T,
        dh_prev,
        activation,
        dy=d["dy"],
        mask=mask,
        dc_prev_out=dc_prev,
    )
    assert returned is dc_prev
    out = {"gates": gates, "c": c, "h": h, "dgates": dgates, "dh_prev": dh_prev, "dc_prev": dc_prev}
    return {k: K.to_numpy(v) for k, v in out.items()}


@pytest.mark.parametrize("batch, units", [(1, 3), (10, 37), (11, 150)])
@pytest.mark.parametrize("activation", ["sigmoid", "hard_sigmoid"])
def test_masked_steps_with_dy_match_the_reference_and_pass_padding_through(backend_name, batch, units, activation):
    """The padding mask and the output gradient folded into the steps: real rows as the reference,
    padding rows carry the state forward and pass dh + dy and dc straight back (dz = 0)."""
    x = _inputs(batch, units, np.float64, seed=3)
    x["dy"] = np.random.default_rng(4).standard_normal((batch, units))
    keep = np.arange(batch) % 3 != 1  # row 1, 4, 7, ... padding
    ref, got = _run_masked("numpy", x, activation, keep), _run_masked(backend_name, x, activation, keep)
    for k in ref:
        err = np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max()
        assert err <= 1e-12, f"{k} at B={batch} U={units}: relative difference {err:.1e}"
    pad = ~keep
    np.testing.assert_array_equal(got["h"][pad], x["h_prev"][pad])
    np.testing.assert_array_equal(got["c"][pad], x["c_prev"][pad])
    np.testing.assert_array_equal(got["dgates"][pad], 0)
    np.testing.assert_array_equal(got["dh_prev"][pad], (x["dh"] + x["dy"])[pad])
    np.testing.assert_array_equal(got["dc_prev"][pad], x["dc"][pad])
    if keep.any():  # a real row is the unmasked step's, fed dh + dy
        plain = dict(x, dh=x["dh"] + x["dy"])
        unmasked = _run("numpy", plain, activation)
        for k in ("c", "h", "dgates", "dh_prev", "dc_prev"):
            err = np.abs(got[k][keep] - unmasked[k][keep]).max() / np.abs(unmasked[k]).max()
            assert err <= 1e-12, k
