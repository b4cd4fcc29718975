"""CUDA graphs on the cupy backend: each LSTM layer's time loop captured once and replayed.

On the CPU stand-in, capture records the custom kernels and cuBLAS calls issued on the capturing
stream (and refuses any other device work) and a replay runs them again on the same arrays, so
these tests run the backend's graph path itself: it must give bit for bit what the plain path
(one launch per kernel, ``SCRATCHVAE_CUDA_GRAPHS=0``) gives, call after call, whatever the mask.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend.cupy_backend import GRAPHS_ENV, CupyBackend
from scratchvae.gradcheck.model_cases import TINY, random_batch
from scratchvae.layers import LSTM
from scratchvae.layers.lstm_buffers import STEP_ROUNDING
from scratchvae.models.imdb import IMDBVAE
from scratchvae.testing import fake_cupy


@pytest.fixture(scope="module")
def backends():
    try:
        return {graphs: CupyBackend(cupy_module=fake_cupy, graphs=graphs) for graphs in (False, True)}
    except Exception as exc:  # noqa: BLE001 - no C++ compiler: the stand-in cannot run the kernels
        pytest.skip(f"the cupy stand-in cannot run the CUDA kernels: {exc}")


def _calls(backend, **options):
    """Forward and backward calls of one layer at several lengths and masks: every array they return."""
    rng = np.random.default_rng(0)
    layer = LSTM(3, 4, rng=np.random.default_rng(1), backend=backend, dtype=np.float64, **options)
    xp, out = backend.xp, []
    for T in (5, 5, 3, STEP_ROUNDING + 6):  # the last outgrows the kept buffers: new ones
        x = xp.asarray(rng.standard_normal((2, T, 3)))
        mask = xp.asarray(rng.random((2, T)) < 0.7)
        dy_shape = (2, T, 4) if layer.return_sequences else (2, 4)
        dy, dh, dc = (xp.asarray(rng.standard_normal(s)) for s in (dy_shape, (2, 4), (2, 4)))
        y, state = layer.forward(x, mask, return_state=True)
        dx, d_initial = layer.backward(dy, (dh, dc), return_state=True)
        out += [y, *state, dx, *d_initial]
    v = xp.asarray(rng.standard_normal((2, 3)))
    out.append(layer.forward_repeated(v, 4))
    out.append(layer.backward(xp.asarray(rng.standard_normal((2, 4, 4) if layer.return_sequences else (2, 4)))))
    out += list(layer.gradients().values())
    return [backend.to_numpy(a) for a in out]  # read at the end: a later call must not clobber them


@pytest.mark.parametrize(
    "options",
    [
        {"return_sequences": True},
        {"return_sequences": False},
        {"return_sequences": True, "go_backwards": True, "zero_output_for_mask": True},
    ],
)
def test_the_graph_path_is_bit_identical_to_the_plain_path(backends, options):
    plain, graphs = _calls(backends[False], **options), _calls(backends[True], **options)
    assert len(plain) == len(graphs)
    for k, (a, b) in enumerate(zip(plain, graphs)):
        np.testing.assert_array_equal(a, b, err_msg=f"array {k}")


def _imdb_steps(backend):
    """Two training steps of a tiny IMDB VAE (ragged, masked batches of two lengths): terms and gradients."""
    model = IMDBVAE(TINY, rng=np.random.default_rng(0), backend=backend, dtype=np.float64)
    rng, out = np.random.default_rng(1), []
    for steps in (6, 4):
        ids, labels = random_batch(rng, TINY, batch=3, steps=steps)
        model.zero_grad()
        terms = model.forward(backend.asarray(ids), labels, model.noise(rng, 3), kl_weight=0.7)
        model.backward()
        out += [np.array(list(terms.values()))] + [backend.to_numpy(g) for g in model.gradients().values()]
    return out


def test_a_model_step_is_bit_identical_with_and_without_graphs(backends):
    for a, b in zip(_imdb_steps(backends[False]), _imdb_steps(backends[True]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_time_loop_is_captured_once_per_length_and_replayed_as_one_launch(backends):
    backend, xp, counters = backends[True], backends[True].xp, fake_cupy.counters
    layer = LSTM(3, 4, return_sequences=True, rng=np.random.default_rng(1), backend=backend)
    x = xp.asarray(np.ones((2, 6, 3), np.float32))
    mask = xp.asarray(np.array([[True] * 6, [True] * 4 + [False] * 2]))
    launches = []
    for _ in range(2):
        counters.reset()
        layer.forward(x, mask)
        layer.backward(xp.ones((2, 6, 4), dtype=np.float32))
        launches.append(counters.launches)
        assert counters.custom.get("graph") == 2, counters.custom  # one forward, one backward loop
        assert "lstm_cell_forward" not in counters.custom and "lstm_cell_backward" not in counters.custom
    assert launches[0] == launches[1]
    kept = next(iter(layer._buffers._kept.values()))
    assert kept.steps == STEP_ROUNDING
    Wh = id(layer.params["recurrent_kernel"])
    assert sorted(kept.graphs) == [("backward", 6, True, True, Wh), ("forward", 6, True, Wh)]
    assert all(g.kernels == 2 * 6 for g in kept.graphs.values())  # 2 launches a step, each way


def test_graphs_are_on_by_default_and_the_environment_turns_them_off(monkeypatch):
    monkeypatch.delenv(GRAPHS_ENV, raising=False)
    assert CupyBackend(cupy_module=fake_cupy).graphs is True
    monkeypatch.setenv(GRAPHS_ENV, "0")
    backend = CupyBackend(cupy_module=fake_cupy)
    assert backend.graphs is False and backend.captures_time_loops is False


def test_the_stand_in_refuses_what_a_capture_cannot_hold():
    cp = fake_cupy
    a = cp.ones((2, 2))
    with pytest.raises(RuntimeError, match="legacy default stream"):
        cp.cuda.get_current_stream().begin_capture()
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        try:
            with pytest.raises(RuntimeError, match="uncaptured kernel"):
                a + 1
            with pytest.raises(RuntimeError, match="uncaptured kernel"):
                a[...] = 5.0
            with pytest.raises(RuntimeError, match="synchronisation"):
                stream.synchronize()
            with pytest.raises(RuntimeError, match="device -> host"):
                a.get()
        finally:
            graph = stream.end_capture()
    assert graph.kernels == 0 and a.get().tolist() == [[1.0, 1.0], [1.0, 1.0]]  # refused before writing
    fake_cupy.counters.reset()
    graph.launch()
    assert fake_cupy.counters.launches == 1


def test_a_replay_reads_the_arrays_as_they_are_then():
    cp = fake_cupy
    a, b, out = cp.ones((2, 2)), cp.full((2, 2), 2.0), cp.zeros((2, 2))
    stream = cp.cuda.Stream(non_blocking=True)
    with stream:
        stream.begin_capture()
        cp.cublas.gemm("N", "N", a, b, out=out, beta=1.0)
        graph = stream.end_capture()
    np.testing.assert_array_equal(out.get(), 0)  # captured, not run
    graph.launch()
    graph.launch()
    np.testing.assert_array_equal(out.get(), 8)  # 0 + 4 + 4
    a[...] = 0
    graph.launch()
    np.testing.assert_array_equal(out.get(), 8)


def test_a_capture_that_fails_turns_graphs_off_with_a_note_and_still_computes(capsys):
    backend = CupyBackend(cupy_module=fake_cupy, graphs=True)
    xp = backend.xp
    out = xp.zeros((2,))

    def steps():
        out[...] = 1.0  # an elementwise kernel: not capturable on the stand-in

    fake_cupy.counters.reset()
    backend.run_time_loop({}, "k", steps)
    assert backend.graphs is False and out.get().tolist() == [1.0, 1.0]
    assert fake_cupy.counters.launches == 1  # the refused capture wrote nothing; the plain run did
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("note: CUDA graphs off") and GRAPHS_ENV in err[0]


def test_kept_buffers_are_reused_per_batch_size_grown_when_too_short_and_the_least_recent_dropped():
    from scratchvae.layers.lstm_buffers import KEPT_BATCH_SIZES, LoopBufferPool

    pool = LoopBufferPool()
    fresh = [pool.get(np, np.float32, 5, 2, 3, keep=False) for _ in range(2)]
    assert not fresh[0].shared and not np.shares_memory(fresh[0].gates, fresh[1].gates)
    assert fresh[0].dgates is None  # a forward alone allocates no backward arrays
    fresh[0].ready_for_backward(np)
    assert fresh[0].dgates.shape == (5, 2, 12) and fresh[0].dh.shape == (2, 2, 3)
    a, b = pool.get(np, np.float32, 5, 2, 3, keep=True), pool.get(np, np.float32, 3, 2, 3, keep=True)
    assert a.shared and a.gates.shape == (5, 2, 12) and b.hs.shape == (4, 2, 3)
    assert np.shares_memory(a.gates, b.gates) and a.graphs is b.graphs
    a.graphs["k"] = "captured"
    longer = pool.get(np, np.float32, STEP_ROUNDING + 1, 2, 3, keep=True)
    assert not np.shares_memory(a.gates, longer.gates) and longer.graphs == {}  # new arrays, no old graphs
    for batch in range(3, 3 + KEPT_BATCH_SIZES):  # batch 2 is now the least recent
        pool.get(np, np.float32, 4, batch, 3, keep=True)
    assert 2 not in pool._kept and len(pool._kept) == KEPT_BATCH_SIZES
