"""Property-based tests: hypothesis draws shapes, seeds, masks and directions.

For every draw the LSTM (alone and bidirectional) and the fused softmax cross-entropy
must match finite differences in float64, and the numba backend must match numpy.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchvae.backend import get_backend
from scratchvae.gradcheck.core import Problem, check_problem
from scratchvae.layers import LSTM, Bidirectional, Dense, Layer
from scratchvae.losses import SparseSoftmaxCrossEntropy

PROPERTY = settings(max_examples=25, deadline=None)


@st.composite
def sequences(draw):
    n = draw(st.integers(1, 5))
    T = draw(st.integers(1, 12))
    lengths = draw(st.lists(st.integers(0, T), min_size=n, max_size=n))
    return dict(
        n=n,
        T=T,
        D=draw(st.integers(1, 9)),
        U=draw(st.integers(1, 9)),
        seed=draw(st.integers(0, 2**32 - 1)),
        lengths=lengths if draw(st.booleans()) else None,
        pre_padding=draw(st.booleans()),
    )


def _mask(spec):
    if spec["lengths"] is None:
        return None
    pos = np.arange(spec["T"])[None, :]
    L = np.array(spec["lengths"])[:, None]
    return pos >= spec["T"] - L if spec["pre_padding"] else pos < L


def _sequence_problem(layer_factory, spec, backend):
    """L = sum(layer(x, mask) * R) for a layer built from the drawn spec."""
    B = get_backend(backend)
    rng = np.random.default_rng(spec["seed"])
    layer: Layer = layer_factory(rng, B)
    x = B.asarray(rng.standard_normal((spec["n"], spec["T"], spec["D"])))
    m = _mask(spec)
    mask = None if m is None else B.asarray(m)
    R = B.asarray(rng.standard_normal(layer.forward(x, mask).shape))

    def loss():
        return float((layer.forward(x, mask) * R).sum())

    def gradients():
        layer.zero_grad()
        layer.forward(x, mask)
        return {"x": layer.backward(R), **layer.gradients()}

    return Problem(loss, gradients, {"x": x, **layer.parameters()}, B)


def _lstm_factory(spec, go_backwards, return_sequences, activation):
    def make(rng, B):
        layer = LSTM(
            spec["D"],
            spec["U"],
            go_backwards=go_backwards,
            return_sequences=return_sequences,
            recurrent_activation=activation,
            backend=B,
            dtype=np.float64,
            rng=rng,
        )
        layer.params["bias"][...] += B.asarray(0.5 * rng.standard_normal(4 * spec["U"]))
        return layer

    return make


def _agree(factory, spec):
    """numba's loss and gradients equal numpy's to 1e-12 (relative to each array's scale)."""
    ref, got = (_sequence_problem(factory, spec, b) for b in ("numpy", "numba"))
    assert got.loss() == pytest.approx(ref.loss(), rel=1e-12, abs=1e-12)
    g_ref, g_got = ref.gradients(), got.gradients()
    for k in g_ref:
        scale = max(np.abs(g_ref[k]).max(initial=0), 1e-30)
        assert np.abs(g_got[k] - g_ref[k]).max(initial=0) <= 1e-12 * scale, k


@PROPERTY
@given(spec=sequences(), go_backwards=st.booleans(), return_sequences=st.booleans())
def test_lstm_gradients(spec, go_backwards, return_sequences):
    factory = _lstm_factory(spec, go_backwards, return_sequences, "sigmoid")
    result = check_problem("lstm", _sequence_problem(factory, spec, "numpy"), seed=spec["seed"])
    assert result.passed, result.errors
    _agree(factory, spec)


@PROPERTY
@given(spec=sequences(), return_sequences=st.booleans())
def test_bidirectional_gradients(spec, return_sequences):
    def factory(rng, B):
        return Bidirectional(
            spec["D"], spec["U"], return_sequences=return_sequences, backend=B, dtype=np.float64, rng=rng
        )

    result = check_problem("bilstm", _sequence_problem(factory, spec, "numpy"), seed=spec["seed"])
    assert result.passed, result.errors
    _agree(factory, spec)


@PROPERTY
@given(spec=sequences(), go_backwards=st.booleans())
def test_hard_sigmoid_lstm_matches_numpy(spec, go_backwards):
    """Keras 2's piecewise-linear gates: finite differences are unreliable at the kinks,
    so this property checks backend agreement only (fixed-seed gradchecks cover the rest)."""
    _agree(_lstm_factory(spec, go_backwards, True, "hard_sigmoid"), spec)


@PROPERTY
@given(
    n=st.integers(1, 5),
    T=st.integers(1, 12),
    V=st.integers(2, 9),
    D=st.integers(1, 9),
    seed=st.integers(0, 2**32 - 1),
    reduction=st.sampled_from(["sum", "mean"]),
)
def test_time_distributed_softmax_cross_entropy(n, T, V, D, seed, reduction):
    """Dense per time step + fused softmax cross-entropy with a padding mask."""
    B = get_backend("numpy")
    rng = np.random.default_rng(seed)
    dense = Dense(D, V, backend=B, dtype=np.float64, rng=rng)
    loss_fn = SparseSoftmaxCrossEntropy(reduction, backend=B, dtype=np.float64)
    x = rng.standard_normal((n, T, D))
    targets = rng.integers(0, V, (n, T))
    mask = rng.random((n, T)) < 0.8

    def loss():
        return loss_fn.forward(dense.forward(x), targets, mask, overwrite_logits=True)

    def gradients():
        dense.zero_grad()
        loss()
        return {"x": dense.backward(loss_fn.backward()), **dense.gradients()}

    result = check_problem("xent", Problem(loss, gradients, {"x": x, **dense.parameters()}, B), seed=seed)
    assert result.passed, result.errors


@PROPERTY
@given(n=st.integers(1, 5), V=st.integers(1, 30), seed=st.integers(0, 2**32 - 1), scale=st.floats(0.1, 50.0))
def test_fused_softmax_kernel_matches_reference(n, V, seed, scale):
    """numba's fused kernel equals the numpy one, also for large logits (no overflow)."""
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, V))
    targets = rng.integers(0, V, n)
    w = rng.random(n)
    out = {}
    for name in ("numpy", "numba"):
        buf = logits.copy()
        nll = get_backend(name).softmax_cross_entropy(buf, targets, w)
        out[name] = (nll, buf)
    assert np.all(np.isfinite(out["numpy"][0]))
    np.testing.assert_allclose(out["numba"][0], out["numpy"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(out["numba"][1], out["numpy"][1], rtol=1e-12, atol=1e-15)
    # rows of the gradient sum to zero: softmax sums to 1, the one-hot to 1
    np.testing.assert_allclose(out["numpy"][1].sum(axis=1), 0.0, atol=1e-12)
