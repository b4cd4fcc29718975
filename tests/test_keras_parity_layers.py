"""Layer-by-layer parity with Keras 3 (torch backend, float64).

Each test builds a scratchvae layer, its Keras twin with the same weights
(:mod:`scratchvae.interop.keras_models`), feeds both the same inputs and compares the
outputs (<= 1e-10) and, through L = sum(y * R) for a random R, the gradients of every
parameter and input (<= 1e-8).  hypothesis draws the sizes and options.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras_reference import (
    N,
    T,
    assert_grad,
    assert_out,
    assert_param_grads,
    keras,
    keras_gaussian_kl,
    padding_mask,
    rng_from,
    token_ids,
    vgrad,
)

from scratchvae.interop.keras_models import (
    keras2_hard_sigmoid,
    keras_bidirectional,
    keras_dense,
    keras_embedding,
    keras_lstm,
    keras_repeat_vector,
    keras_variables,
)
from scratchvae.layers import ACTIVATIONS, LSTM, Bidirectional, Dense, Embedding, RepeatVector
from scratchvae.layers.activations import activation_backward, activation_forward
from scratchvae.layers.sampling import GaussianSample
from scratchvae.losses import BernoulliNLL, BinaryCrossEntropy, GaussianKL, SparseSoftmaxCrossEntropy

ops = keras.ops
F64 = np.float64

PARITY = settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(PARITY, max_examples=4)  # per parametrised option: every option is covered
seeds = st.integers(0, 2**31 - 1)


def sum_times(y, R):
    """torch scalar sum(y * R)."""
    return (y * T(R)).sum()


# ----------------------------------------------------------------- activations
@pytest.mark.parametrize("name", ACTIVATIONS)
def test_activation(name):
    rng = rng_from(1)
    x = rng.standard_normal(200) * 4.0
    x[:3] = [-2.5 + 1e-3, 2.5 - 1e-3, 0.3]  # just inside hard_sigmoid's ramp
    R = rng.standard_normal(200)
    act = {
        "linear": keras.activations.linear,
        "relu": keras.activations.relu,
        "elu": keras.activations.elu,
        "tanh": keras.activations.tanh,
        "sigmoid": keras.activations.sigmoid,
        "hard_sigmoid": keras2_hard_sigmoid(),
    }[name]
    y = activation_forward(np, name, x.copy())
    dx = activation_backward(np, name, y, R)
    xt = T(x, grad=True)
    yt = act(xt)
    sum_times(yt, R).backward()
    assert_out(y, N(yt), f"{name} output", f"activation {name}")
    assert_grad(dx, N(xt.grad), f"{name} dx", f"activation {name} dx")


def test_keras3_hard_sigmoid_is_not_keras2():
    """Keras 3's built-in hard_sigmoid is relu6(x + 3) / 6: the Keras 2 one must be custom."""
    x = T(np.array([1.0, -2.0]))
    assert not np.allclose(N(keras.activations.hard_sigmoid(x)), N(keras2_hard_sigmoid()(x)))


# ----------------------------------------------------------------- Dense
@pytest.mark.parametrize("activation", ACTIVATIONS)
@FEW
@given(
    seed=seeds,
    time_distributed=st.booleans(),
    n=st.integers(1, 4),
    steps=st.integers(1, 4),
    d_in=st.integers(1, 5),
    d_out=st.integers(1, 5),
)
def test_dense(seed, activation, time_distributed, n, steps, d_in, d_out):
    rng = rng_from(seed)
    layer = Dense(d_in, d_out, activation, rng=rng, dtype=F64)
    layer.params["bias"][...] = rng.standard_normal(d_out) * 0.5
    k = keras_dense(layer, time_distributed=time_distributed)
    shape = (n, steps, d_in) if time_distributed else (n, d_in)
    x = rng.standard_normal(shape)
    y = layer.forward(x)
    R = rng.standard_normal(y.shape)
    dx = layer.backward(R)
    xt = T(x, grad=True)
    yt = k(xt)
    sum_times(yt, R).backward()
    key = f"TimeDistributed(Dense {activation})" if time_distributed else f"Dense {activation}"
    assert_out(y, N(yt), "Dense output", key)
    assert_grad(dx, N(xt.grad), "Dense dx", key + " dx")
    assert_param_grads(layer, keras_variables(layer, k), "Dense", key)


# ----------------------------------------------------------------- Embedding
@PARITY
@given(
    seed=seeds,
    mask_zero=st.booleans(),
    trainable=st.booleans(),
    n=st.integers(1, 4),
    steps=st.integers(1, 6),
    vocab=st.integers(2, 9),
    dim=st.integers(1, 4),
)
def test_embedding(seed, mask_zero, trainable, n, steps, vocab, dim):
    rng = rng_from(seed)
    layer = Embedding(vocab, dim, mask_zero=mask_zero, trainable=trainable, rng=rng, dtype=F64)
    k = keras_embedding(layer)
    mask = padding_mask(rng, n, steps)
    ids = token_ids(rng, n, steps, vocab, mask)
    y = layer.forward(ids)
    # Consumers of a masked embedding ignore the padding: the gradient there is zero.
    R = rng.standard_normal(y.shape) * (mask[..., None] if mask_zero else 1.0)
    layer.backward(R)
    yt = k(T(ids))
    if trainable:
        sum_times(yt, R).backward()
    assert_out(y, N(yt), "Embedding output", "Embedding")
    km = k.compute_mask(T(ids))
    if mask_zero:
        np.testing.assert_array_equal(layer.compute_mask(ids), N(km))
    else:
        assert layer.compute_mask(ids) is None and km is None
    assert_grad(
        layer.grads["embeddings"],
        vgrad(k.embeddings) if trainable else 0 * layer.grads["embeddings"],
        "Embedding dW",
        "Embedding dW",
    )
    assert k.embeddings.trainable == trainable


def test_embedding_padding_row_gets_no_gradient_by_design():
    """A documented deviation: with mask_zero, scratchvae never updates the padding row.

    Keras only emits a mask, so a consumer that ignores it sends gradient to row 0.
    scratchvae drops that gradient (padding carries no information); every other row
    matches Keras, and with mask-honouring consumers (all three models) so does row 0.
    """
    rng = rng_from(3)
    layer = Embedding(5, 2, mask_zero=True, rng=rng, dtype=F64)
    k = keras_embedding(layer)
    ids = np.array([[1, 2, 0, 0]])
    R = np.ones((1, 4, 2))
    layer.forward(ids)
    layer.backward(R)
    sum_times(k(T(ids)), R).backward()
    keras_dW = vgrad(k.embeddings)
    np.testing.assert_array_equal(layer.grads["embeddings"][0], 0.0)
    np.testing.assert_array_equal(keras_dW[0], 2.0)  # Keras: two padded positions
    assert_grad(layer.grads["embeddings"][1:], keras_dW[1:], "Embedding dW rows 1..", "Embedding dW")


# ----------------------------------------------------------------- RepeatVector
@PARITY
@given(seed=seeds, n=st.integers(1, 4), reps=st.integers(1, 5), dim=st.integers(1, 4))
def test_repeat_vector(seed, n, reps, dim):
    rng = rng_from(seed)
    layer = RepeatVector(reps, dtype=F64)
    k = keras_repeat_vector(layer)
    x = rng.standard_normal((n, dim))
    y = layer.forward(x)
    R = rng.standard_normal(y.shape)
    dx = layer.backward(R)
    xt = T(x, grad=True)
    yt = k(xt)
    sum_times(yt, R).backward()
    assert_out(y, N(yt), "RepeatVector output", "RepeatVector")
    assert_grad(dx, N(xt.grad), "RepeatVector dx", "RepeatVector dx")


# ----------------------------------------------------------------- LSTM
def _perturb_bias(layer, rng):
    layer.params["bias"][...] += rng.standard_normal(layer.params["bias"].shape) * 0.5


@pytest.mark.parametrize("recurrent_activation", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("mask", [None, "post", "pre", "holes"])
@settings(PARITY, max_examples=6)
@given(
    seed=seeds,
    n=st.integers(1, 4),
    steps=st.integers(1, 6),
    d=st.integers(1, 4),
    units=st.integers(1, 4),
    return_sequences=st.booleans(),
    go_backwards=st.booleans(),
    zero_output_for_mask=st.booleans(),
    with_state=st.booleans(),
    backend=st.sampled_from(["numpy", "numba"]),
)
def test_lstm(
    seed,
    n,
    steps,
    d,
    units,
    return_sequences,
    go_backwards,
    recurrent_activation,
    zero_output_for_mask,
    mask,
    with_state,
    backend,
):
    rng = rng_from(seed)
    layer = LSTM(
        d,
        units,
        return_sequences=return_sequences,
        go_backwards=go_backwards,
        recurrent_activation=recurrent_activation,
        zero_output_for_mask=zero_output_for_mask,
        rng=rng,
        dtype=F64,
        backend=backend,
    )
    _perturb_bias(layer, rng)
    k = keras_lstm(layer, return_state=True)
    x = rng.standard_normal((n, steps, d))
    m = None if mask is None else padding_mask(rng, n, steps, "pre" if mask == "pre" else "post", holes=mask == "holes")
    state = (rng.standard_normal((n, units)) * 0.5, rng.standard_normal((n, units)) * 0.5) if with_state else None

    y, (hT, cT) = layer.forward(x, m, initial_state=state, return_state=True)
    R, Rh, Rc = (rng.standard_normal(a.shape) for a in (y, hT, cT))
    dx, (dh0, dc0) = layer.backward(R, d_state=(Rh, Rc), return_state=True)

    xt = T(x, grad=True)
    st_t = [T(s, grad=True) for s in state] if with_state else None
    yt, ht, ct = k(xt, mask=None if m is None else T(m), initial_state=st_t)
    (sum_times(yt, R) + sum_times(ht, Rh) + sum_times(ct, Rc)).backward()

    key = f"LSTM {recurrent_activation}"
    assert_out(y, N(yt), "LSTM output", key)
    assert_out(hT, N(ht), "LSTM final h", key + " state")
    assert_out(cT, N(ct), "LSTM final c", key + " state")
    assert_grad(dx, N(xt.grad), "LSTM dx", key + " dx")
    if with_state:
        assert_grad(dh0, N(st_t[0].grad), "LSTM dh0", key + " d_initial_state")
        assert_grad(dc0, N(st_t[1].grad), "LSTM dc0", key + " d_initial_state")
    assert_param_grads(layer, keras_variables(layer, k), "LSTM", key)


@pytest.mark.parametrize("unit_forget_bias", [True, False])
def test_lstm_initial_bias(unit_forget_bias):
    layer = LSTM(3, 4, unit_forget_bias=unit_forget_bias, dtype=F64)
    k = keras.layers.LSTM(4, unit_forget_bias=unit_forget_bias)
    k.build((None, None, 3))
    np.testing.assert_array_equal(layer.params["bias"], N(k.cell.bias))
    assert layer.params["kernel"].shape == tuple(k.cell.kernel.shape)
    assert layer.params["recurrent_kernel"].shape == tuple(k.cell.recurrent_kernel.shape)


@PARITY
@given(
    seed=seeds,
    n=st.integers(1, 3),
    steps=st.integers(1, 5),
    d=st.integers(1, 4),
    units=st.integers(1, 4),
    return_sequences=st.booleans(),
    recurrent_activation=st.sampled_from(["sigmoid", "hard_sigmoid"]),
)
def test_lstm_constant_input_is_repeat_vector_then_lstm(
    seed, n, steps, d, units, return_sequences, recurrent_activation
):
    rng = rng_from(seed)
    layer = LSTM(
        d, units, return_sequences=return_sequences, recurrent_activation=recurrent_activation, rng=rng, dtype=F64
    )
    _perturb_bias(layer, rng)
    k = keras_lstm(layer)
    v = rng.standard_normal((n, d))
    y = layer.forward_repeated(v, steps)
    R = rng.standard_normal(y.shape)
    dv = layer.backward(R)
    vt = T(v, grad=True)
    yt = k(keras.layers.RepeatVector(steps)(vt))
    sum_times(yt, R).backward()
    assert_out(y, N(yt), "LSTM.forward_repeated output", "LSTM constant input")
    assert_grad(dv, N(vt.grad), "LSTM.forward_repeated dv", "LSTM constant input dx")
    assert_param_grads(layer, keras_variables(layer, k), "LSTM.forward_repeated", "LSTM constant input")


# ----------------------------------------------------------------- Bidirectional
def _bidirectional_case(seed, n, steps, d, units, return_sequences, recurrent_activation, mask):
    rng = rng_from(seed)
    layer = Bidirectional(
        d, units, return_sequences=return_sequences, recurrent_activation=recurrent_activation, rng=rng, dtype=F64
    )
    _perturb_bias(layer.forward_layer, rng)
    _perturb_bias(layer.backward_layer, rng)
    k = keras_bidirectional(layer)
    x = rng.standard_normal((n, steps, d))
    m = None if mask is None else padding_mask(rng, n, steps, "pre" if mask == "pre" else "post", holes=mask == "holes")
    y = layer.forward(x, m)
    R = rng.standard_normal(y.shape)
    dx = layer.backward(R)
    xt = T(x, grad=True)
    yt = k(xt, mask=None if m is None else T(m))
    sum_times(yt, R).backward()
    key = "Bidirectional"
    assert_out(y, N(yt), "Bidirectional output", key)
    assert_grad(dx, N(xt.grad), "Bidirectional dx", key + " dx")
    assert_param_grads(layer, keras_variables(layer, k), "Bidirectional", key)


@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("mask", [None, "post", "pre", "holes"])
@FEW
@given(
    seed=seeds,
    n=st.integers(1, 4),
    steps=st.integers(1, 5),
    d=st.integers(1, 3),
    units=st.integers(1, 3),
    recurrent_activation=st.sampled_from(["sigmoid", "hard_sigmoid"]),
)
def test_bidirectional(seed, n, steps, d, units, return_sequences, recurrent_activation, mask):
    _bidirectional_case(seed, n, steps, d, units, return_sequences, recurrent_activation, mask)


# ----------------------------------------------------------------- sampling
@PARITY
@given(seed=seeds, n=st.integers(1, 4), z=st.integers(1, 5))
def test_gaussian_sample(seed, n, z):
    rng = rng_from(seed)
    layer = GaussianSample(dtype=F64)
    mean, logvar, eps = rng.standard_normal((3, n, z))
    y = layer.forward(mean, logvar, eps)
    R = rng.standard_normal(y.shape)
    dmean, dlogvar = layer.backward(R)
    mt, lt = T(mean, grad=True), T(logvar, grad=True)
    yt = mt + ops.exp(0.5 * lt) * T(eps)  # the Keras VAE sampling layer
    sum_times(yt, R).backward()
    assert_out(y, N(yt), "GaussianSample", "GaussianSample")
    assert_grad(dmean, N(mt.grad), "GaussianSample dmean", "GaussianSample dx")
    assert_grad(dlogvar, N(lt.grad), "GaussianSample dlogvar", "GaussianSample dx")


# ----------------------------------------------------------------- losses
def _masked(t, mask):
    t._keras_mask = T(mask)  # what Keras mask propagation attaches to a layer output
    return t


@pytest.mark.parametrize("reduction", ["sum", "mean"])
@settings(PARITY, max_examples=6)
@given(seed=seeds, n=st.integers(1, 4), steps=st.integers(1, 5), vocab=st.integers(2, 7), use_mask=st.booleans())
def test_sparse_softmax_cross_entropy(seed, n, steps, vocab, reduction, use_mask):
    rng = rng_from(seed)
    loss = SparseSoftmaxCrossEntropy(reduction, dtype=F64)
    logits = rng.standard_normal((n, steps, vocab)) * 3.0
    mask = padding_mask(rng, n, steps) if use_mask else None
    targets = token_ids(rng, n, steps, vocab, mask)
    value = loss.forward(logits, targets, mask)
    dlogits = loss.backward()

    lt = T(logits, grad=True)
    if reduction == "mean":
        # Keras: the mask makes "sum_over_batch_size" a mean over the unmasked tokens.
        kl = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        kv = kl(T(targets), lt if mask is None else _masked(lt, mask))
    else:
        # nats per sequence: Keras "sum" over tokens (mask as weights), over batch size.
        kl = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
        kv = kl(T(targets), lt, sample_weight=None if mask is None else T(mask.astype(F64))) / n
    kv.backward()
    assert_out(value, N(kv), "SparseSoftmaxCrossEntropy", f"SparseSoftmaxCrossEntropy {reduction}")
    assert_grad(dlogits, N(lt.grad), "SparseSoftmaxCrossEntropy dlogits", f"SparseSoftmaxCrossEntropy {reduction} dx")
    per_token = keras.losses.sparse_categorical_crossentropy(T(targets), T(logits), from_logits=True)
    assert_out(loss.nll, N(per_token), "per-token nll", f"SparseSoftmaxCrossEntropy {reduction}")


@PARITY
@given(seed=seeds, n=st.integers(1, 5), k=st.integers(1, 4), weighted=st.booleans(), binary_targets=st.booleans())
def test_binary_cross_entropy(seed, n, k, weighted, binary_targets):
    rng = rng_from(seed)
    loss = BinaryCrossEntropy(dtype=F64)
    logits = rng.standard_normal((n, k)) * 3.0
    targets = (rng.random((n, k)) < 0.5).astype(F64) if binary_targets else rng.random((n, k))
    weights = None
    if weighted:  # semi-supervised: unlabelled examples weigh 0
        weights = (rng.random(n) < 0.6).astype(F64)
        weights[0] = 1.0
    value = loss.forward(logits, targets, weights)
    dlogits = loss.backward()
    lt = T(logits, grad=True)
    if weighted:
        kl = keras.losses.BinaryCrossentropy(from_logits=True, reduction="mean_with_sample_weight")
        kv = kl(T(targets), lt, sample_weight=T(weights))
    else:
        kv = keras.losses.BinaryCrossentropy(from_logits=True)(T(targets), lt)
    kv.backward()
    assert_out(value, N(kv), "BinaryCrossEntropy", "BinaryCrossEntropy")
    assert_grad(dlogits, N(lt.grad), "BinaryCrossEntropy dlogits", "BinaryCrossEntropy dx")


@PARITY
@given(seed=seeds, n=st.integers(1, 5), k=st.integers(1, 6))
def test_bernoulli_nll(seed, n, k):
    rng = rng_from(seed)
    loss = BernoulliNLL(dtype=F64)
    logits = rng.standard_normal((n, k)) * 3.0
    targets = rng.random((n, k))  # MNIST intensities in [0, 1]
    value = loss.forward(logits, targets)
    dlogits = loss.backward()
    lt = T(logits, grad=True)
    # Bernoulli NLL per image = sum over pixels of the elementwise binary cross-entropy.
    kv = ops.mean(ops.sum(ops.binary_crossentropy(T(targets), lt, from_logits=True), axis=1))
    kv.backward()
    assert_out(value, N(kv), "BernoulliNLL", "BernoulliNLL")
    assert_grad(dlogits, N(lt.grad), "BernoulliNLL dlogits", "BernoulliNLL dx")


@PARITY
@given(seed=seeds, n=st.integers(1, 5), z=st.integers(1, 6), free_bits=st.sampled_from([0.0, 0.1, 0.5]))
def test_gaussian_kl(seed, n, z, free_bits):
    rng = rng_from(seed)
    loss = GaussianKL(free_bits, dtype=F64)
    mean = rng.standard_normal((n, z))
    logvar = rng.standard_normal((n, z)) * 0.7
    value = loss.forward(mean, logvar)
    dmean, dlogvar = loss.backward()
    mt, lt = T(mean, grad=True), T(logvar, grad=True)
    kv = keras_gaussian_kl(mt, lt, free_bits)
    kv.backward()
    assert_out(value, N(kv), "GaussianKL", "GaussianKL")
    assert_grad(dmean, N(mt.grad), "GaussianKL dmean", "GaussianKL dx")
    assert_grad(dlogvar, N(lt.grad), "GaussianKL dlogvar", "GaussianKL dx")
