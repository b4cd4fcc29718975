"""Optimisers: Adam against a step worked out by hand, SGD, RMSprop, clipping, state."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scratchvae.optim import SGD, Adam, RMSprop, make_optimizer


def _setup(backend_name, dtype=np.float64):
    from scratchvae.backend import get_backend

    B = get_backend(backend_name)
    p = {"w": B.asarray([1.0, -2.0, 0.5], dtype=dtype)}
    g = {"w": B.asarray([0.1, 0.2, -0.3], dtype=dtype)}
    return B, p, g


def test_adam_two_steps_by_hand(backend_name):
    B, p, g = _setup(backend_name)
    opt = Adam(p, g, backend=backend_name)  # lr 1e-3, b1 .9, b2 .999, eps 1e-7
    opt.step()
    # step 1: m = 0.1 g, v = 0.001 g^2, lr_t = 1e-3 sqrt(1 - .999) / (1 - .9)
    w0, gw = np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, -0.3])
    m, v = 0.1 * gw, 0.001 * gw**2
    lr_t = 1e-3 * math.sqrt(1 - 0.999) / (1 - 0.9)
    w1 = w0 - lr_t * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(B.to_numpy(p["w"]), w1, rtol=0, atol=1e-15)
    # the first Adam step moves every weight by almost exactly lr, against the gradient's sign
    np.testing.assert_allclose(w0 - w1, 1e-3 * np.sign(gw), rtol=1e-4)  # eps shaves ~3e-5
    opt.step()  # same gradient again
    m = 0.9 * m + 0.1 * gw
    v = 0.999 * v + 0.001 * gw**2
    lr_t = 1e-3 * math.sqrt(1 - 0.999**2) / (1 - 0.9**2)
    w2 = w1 - lr_t * m / (np.sqrt(v) + 1e-7)
    np.testing.assert_allclose(B.to_numpy(p["w"]), w2, rtol=0, atol=1e-15)
    assert opt.iterations == 2


def test_sgd_momentum_and_nesterov(backend_name):
    for nesterov in (False, True):
        B, p, g = _setup(backend_name)
        opt = SGD(p, g, learning_rate=0.1, momentum=0.9, nesterov=nesterov, backend=backend_name)
        w, gw, m = np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, -0.3]), np.zeros(3)
        for _ in range(3):
            opt.step()
            m = 0.9 * m - 0.1 * gw
            w = w + (0.9 * m - 0.1 * gw if nesterov else m)
        np.testing.assert_allclose(B.to_numpy(p["w"]), w, atol=1e-15)


def test_rmsprop_by_hand(backend_name):
    B, p, g = _setup(backend_name)
    opt = RMSprop(p, g, backend=backend_name)
    w, gw, v = np.array([1.0, -2.0, 0.5]), np.array([0.1, 0.2, -0.3]), np.zeros(3)
    for _ in range(2):
        opt.step()
        v = 0.9 * v + 0.1 * gw**2
        w = w - 1e-3 * gw / np.sqrt(v + 1e-7)
    np.testing.assert_allclose(B.to_numpy(p["w"]), w, atol=1e-15)


def test_global_norm_clipping(backend_name):
    B, p, g = _setup(backend_name)
    norm = math.sqrt(0.01 + 0.04 + 0.09)
    opt = SGD(p, g, learning_rate=1.0, global_clipnorm=0.1, backend=backend_name)
    opt.step()
    assert opt.last_grad_norm == pytest.approx(norm)
    step = np.array([1.0, -2.0, 0.5]) - B.to_numpy(p["w"])
    np.testing.assert_allclose(step, np.array([0.1, 0.2, -0.3]) * 0.1 / norm, atol=1e-15)
    assert np.linalg.norm(step) == pytest.approx(0.1)


def test_no_clipping_below_the_norm(backend_name):
    B, p, g = _setup(backend_name)
    SGD(p, g, learning_rate=1.0, global_clipnorm=10.0, backend=backend_name).step()
    np.testing.assert_allclose(B.to_numpy(p["w"]), [0.9, -2.2, 0.8], atol=1e-15)


def test_state_round_trip_continues_identically():
    _, p1, g1 = _setup("numpy")
    a = Adam(p1, g1)
    a.step()
    _, p2, g2 = _setup("numpy")
    p2["w"][...] = p1["w"]
    b = Adam(p2, g2)
    b.load_state_dict(a.state_dict())
    a.step(), b.step()
    np.testing.assert_array_equal(p1["w"], p2["w"])


def test_float32_adam_on_numba_matches_numpy():
    results = []
    for name in ("numpy", "numba"):
        _, p, g = _setup(name, np.float32)
        opt = Adam(p, g, backend=name)
        for _ in range(3):
            opt.step()
        results.append(p["w"])
    assert results[1].dtype == np.float32
    np.testing.assert_allclose(results[1], results[0], rtol=1e-6)


def test_unknown_optimizer_message():
    with pytest.raises(ValueError, match="unknown optimizer 'adamw'; choose one of adam, sgd, rmsprop"):
        make_optimizer("adamw", {}, {})


@pytest.mark.parametrize("clipnorm, launches", [(None, 4), (0.5, 5)])
def test_a_cupy_step_is_a_few_launches_and_waits_only_when_the_norm_is_read(fake_cupy_backend, clipnorm, launches):
    from scratchvae.testing import fake_cupy

    B, rng = fake_cupy_backend, np.random.default_rng(0)
    shapes = [(3, 8), (8,), (8, 32), (32,)]
    host = [rng.standard_normal(s) for s in shapes]
    params = {f"p{k}": B.asarray(a) for k, a in enumerate(host)}
    grads = {f"p{k}": B.asarray(a / 10) for k, a in enumerate(host)}
    opt = Adam(params, grads, global_clipnorm=clipnorm, backend=B)
    opt.step()  # builds the pointer tables (copies, once)
    fake_cupy.counters.reset()
    opt.step()  # the norm: partial sums, their sum, sqrt; the clip; Adam over all four parameters
    assert fake_cupy.counters.snapshot() == {"launches": launches, "h2d": 0, "d2h": 0, "syncs": 0}
    norm = np.sqrt(sum((a**2).sum() for a in host)) / 10
    assert clipnorm is None or norm > clipnorm  # so the first step clipped the gradients in place
    assert opt.last_grad_norm == pytest.approx(norm if clipnorm is None else clipnorm)
    assert fake_cupy.counters.syncs == 1
