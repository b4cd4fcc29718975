"""Layer semantics that finite differences alone cannot show."""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.backend import BackendError, get_backend
from scratchvae.layers import LSTM, Bidirectional, Dense, Dropout, Embedding, GaussianSample, RepeatVector


def _lstm(backend_name="numpy", **kw):
    return LSTM(3, 4, backend=backend_name, dtype=np.float64, rng=np.random.default_rng(0), **kw)


def test_repeatvector_then_lstm_equals_lstm_forward_repeated(backend_name):
    B = get_backend(backend_name)
    v = B.asarray(np.random.default_rng(1).standard_normal((2, 3)))
    a, b = _lstm(backend_name, return_sequences=True), _lstm(backend_name, return_sequences=True)
    repeat = RepeatVector(5, backend=backend_name, dtype=np.float64)
    ya, yb = a.forward(repeat.forward(v)), b.forward_repeated(v, 5)
    np.testing.assert_allclose(B.to_numpy(ya), B.to_numpy(yb), rtol=1e-13, atol=1e-15)
    dy = B.asarray(np.random.default_rng(2).standard_normal(ya.shape))
    dva, dvb = repeat.backward(a.backward(dy)), b.backward(dy)
    np.testing.assert_allclose(B.to_numpy(dva), B.to_numpy(dvb), rtol=1e-12, atol=1e-14)
    for k in a.grads:
        np.testing.assert_allclose(B.to_numpy(a.grads[k]), B.to_numpy(b.grads[k]), rtol=1e-12, atol=1e-14)


def test_masked_steps_carry_the_state():
    x = np.random.default_rng(1).standard_normal((2, 6, 3))
    full = _lstm(return_sequences=True)
    y_short, (h_short, _) = full.forward(x[:, :4], return_state=True)
    mask = np.array([[1, 1, 1, 1, 0, 0]] * 2, dtype=bool)
    y = _lstm(return_sequences=True).forward(x, mask)
    layer = _lstm(return_sequences=True)
    _, (h_padded, _) = layer.forward(x, mask, return_state=True)
    np.testing.assert_array_equal(h_padded, h_short)  # padding changes nothing
    np.testing.assert_array_equal(y[:, :4], y_short)
    np.testing.assert_array_equal(y[:, 4], y[:, 3])  # output at padding: the carried h
    zero = _lstm(return_sequences=True, zero_output_for_mask=True).forward(x, mask)
    assert np.all(zero[:, 4:] == 0)


def test_pre_padding_gives_the_unpadded_result():
    x = np.random.default_rng(1).standard_normal((1, 4, 3))
    padded = np.concatenate([np.zeros((1, 2, 3)), x], axis=1)
    mask = np.array([[0, 0, 1, 1, 1, 1]], dtype=bool)
    np.testing.assert_allclose(_lstm().forward(padded, mask), _lstm().forward(x), rtol=1e-15)


def test_go_backwards_reads_the_reversed_sequence():
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    back = _lstm(go_backwards=True, return_sequences=True).forward(x)
    fwd = _lstm(return_sequences=True).forward(x[:, ::-1])
    np.testing.assert_array_equal(back, fwd)  # Keras: output in processing (reversed) order


def test_bidirectional_concatenates_time_aligned_halves():
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    bi = Bidirectional(3, 4, return_sequences=True, backend="numpy", dtype=np.float64, rng=np.random.default_rng(0))
    y = bi.forward(x)
    assert y.shape == (2, 5, 8)
    np.testing.assert_array_equal(y[..., :4], bi.forward_layer.forward(x))
    np.testing.assert_array_equal(y[..., 4:], bi.backward_layer.forward(x)[:, ::-1])
    assert bi.backward_layer.go_backwards and not bi.forward_layer.go_backwards
    assert set(bi.parameters()) == {
        f"{d}_layer/{p}" for d in ("forward", "backward") for p in ("kernel", "recurrent_kernel", "bias")
    }


def test_lstm_keras_layout_and_forget_bias():
    layer = _lstm()
    assert layer.params["kernel"].shape == (3, 16)
    assert layer.params["recurrent_kernel"].shape == (4, 16)
    np.testing.assert_array_equal(layer.params["bias"], [0] * 4 + [1] * 4 + [0] * 8)
    U = layer.params["recurrent_kernel"]
    np.testing.assert_allclose(U @ U.T, np.eye(4), atol=1e-12)  # orthogonal rows


def test_lstm_step_by_hand():
    """One step against the Keras equations written out directly."""
    layer = _lstm()
    x = np.random.default_rng(3).standard_normal((2, 1, 3))
    W, U, b = (layer.params[k] for k in ("kernel", "recurrent_kernel", "bias"))
    h0, c0 = np.full((2, 4), 0.3), np.full((2, 4), -0.2)
    z = x[:, 0] @ W + h0 @ U + b
    sig = lambda a: 1 / (1 + np.exp(-a))
    i, f, g, o = sig(z[:, :4]), sig(z[:, 4:8]), np.tanh(z[:, 8:12]), sig(z[:, 12:])
    c = f * c0 + i * g
    h, (h_T, c_T) = layer.forward(x, initial_state=(h0, c0), return_state=True)
    np.testing.assert_allclose(h, o * np.tanh(c), rtol=1e-14)
    np.testing.assert_allclose(c_T, c, rtol=1e-14)
    np.testing.assert_array_equal(h_T, h)


def test_embedding_lookup_mask_and_padding_gradient():
    emb = Embedding(5, 2, mask_zero=True, backend="numpy", dtype=np.float64, rng=np.random.default_rng(0))
    ids = np.array([[3, 1, 0], [3, 0, 0]])
    y = emb.forward(ids)
    np.testing.assert_array_equal(y[0, 0], emb.params["embeddings"][3])
    np.testing.assert_array_equal(emb.compute_mask(ids), ids != 0)
    emb.backward(np.ones((2, 3, 2)))
    np.testing.assert_array_equal(emb.grads["embeddings"][:, 0], [0, 1, 0, 2, 0])  # row 3 twice, row 0 none


def test_dense_applies_per_time_step():
    d = Dense(3, 2, "relu", backend="numpy", dtype=np.float64, rng=np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 5, 3))
    y = d.forward(x)
    assert y.shape == (4, 5, 2)
    np.testing.assert_allclose(y[2, 3], np.maximum(x[2, 3] @ d.params["kernel"] + d.params["bias"], 0))


def test_a_dense_layer_on_the_data_skips_its_input_gradient():
    rng = np.random.default_rng(1)
    x, dy = rng.standard_normal((4, 3)), rng.standard_normal((4, 2))
    layers = [Dense(3, 2, "relu", backend="numpy", dtype=np.float64, rng=np.random.default_rng(0)) for _ in range(2)]
    for layer in layers:
        layer.forward(x)
    dx = layers[0].backward(dy)
    assert layers[1].backward(dy, input_grad=False) is None
    assert dx.shape == x.shape
    for name in ("kernel", "bias"):  # the weight gradients do not depend on whether dx was wanted
        np.testing.assert_array_equal(layers[0].grads[name], layers[1].grads[name])


def test_dropout_scaling_and_inference():
    drop = Dropout(0.25, backend="numpy", dtype=np.float64)
    x = np.ones((2000, 10))
    y = drop.forward(x, training=True, rng=np.random.default_rng(0))
    assert set(np.unique(y)) == {0.0, 1 / 0.75}
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
    assert drop.forward(x) is x
    with pytest.raises(ValueError, match="dropout rate"):
        Dropout(1.0)


def test_an_examples_dropout_mask_depends_on_neither_its_batch_mates_nor_the_batch_width():
    """What a batch split into shards needs (each shard trimmed to its own longest sequence): example b's mask
    over T steps is the first T steps of its mask in the whole, wider batch."""
    from scratchvae.layers.dropout import keep_mask
    from scratchvae.training.distributed import ShardRandom, shard_rows

    whole = keep_mask(np.random.default_rng(7), (5, 9, 4), 0.3)
    assert 0.5 < whole.mean() < 0.9
    for rank in range(2):
        rows = shard_rows(5, rank, 2)
        part = keep_mask(ShardRandom(np.random.default_rng(7), rows, 5), (rows.stop - rows.start, 6, 4), 0.3)
        np.testing.assert_array_equal(part, whole[rows, :6])


def test_sampling_uses_the_given_noise():
    s = GaussianSample(backend="numpy", dtype=np.float64)
    z = s.forward(np.array([[1.0]]), np.array([[np.log(4.0)]]), np.array([[0.5]]))
    assert z[0, 0] == pytest.approx(1.0 + 2.0 * 0.5)


def test_float32_parameters_stay_float32(backend_name):
    layer = LSTM(3, 4, return_sequences=True, backend=backend_name, dtype=np.float32)
    B = get_backend(backend_name)
    y = layer.forward(B.asarray(np.ones((2, 5, 3)), dtype=np.float32))
    dx = layer.backward(B.xp.ones_like(y))
    assert y.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in layer.grads.values())


def test_bad_options_are_one_line_errors():
    with pytest.raises(ValueError, match="unknown recurrent_activation 'relu'"):
        LSTM(2, 2, recurrent_activation="relu")
    with pytest.raises(ValueError, match="unknown activation 'gelu'"):
        Dense(2, 2, "gelu")
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        Dense(2, 2, dtype=np.float16)


def test_unknown_backend_message():
    with pytest.raises(BackendError, match="unknown backend 'jax'; choose one of numpy, numba, cupy"):
        get_backend("jax")


def test_cupy_request_without_gpu_suggests_numba():
    try:
        get_backend("cupy")
    except BackendError as exc:
        assert "--backend numba" in str(exc) and "\n" not in str(exc)
    else:
        pytest.skip("CuPy and a GPU are present")


def test_lstm_state_goes_in_and_out_explicitly():
    """forward(..., return_state=True) -> (y, (h_T, c_T)); backward(dy, d_state, return_state=True)
    -> (dx, (dh0, dc0)); the plain calls return y and dx alone, and nothing travels in attributes."""
    rng = np.random.default_rng(4)
    x, h0, c0 = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    layer = _lstm(return_sequences=True)
    y, (h_T, c_T) = layer.forward(x, initial_state=(h0, c0), return_state=True)
    np.testing.assert_array_equal(h_T, y[:, -1])
    np.testing.assert_array_equal(layer.forward(x, initial_state=(h0, c0)), y)
    dy = rng.standard_normal(y.shape)
    dx_plain = layer.backward(dy)
    layer.zero_grad()
    dx, (dh0, dc0) = layer.backward(dy, d_state=(np.zeros((2, 4)), np.zeros((2, 4))), return_state=True)
    np.testing.assert_array_equal(dx, dx_plain)  # d_state=None means zeros
    assert dh0.shape == dc0.shape == (2, 4) and np.abs(dh0).max() > 0 and np.abs(dc0).max() > 0
    for leftover in ("final_state", "d_initial_state", "x_t", "U_T", "constant_input"):
        assert not hasattr(layer, leftover)


def test_lstm_refuses_inputs_of_the_wrong_shape_before_any_work():
    layer = _lstm()
    with pytest.raises(ValueError, match=r"LSTM.forward takes x \(B, T, 3\), not shape \(2, 3\); .*forward_repeated"):
        layer.forward(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"takes x \(B, T, 3\), not shape \(2, 5, 4\)"):
        layer.forward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match=r"forward_repeated takes v \(B, 3\), not shape \(2, 5, 3\); .*forward\(x\)"):
        layer.forward_repeated(np.zeros((2, 5, 3)), 5)
    with pytest.raises(ValueError, match="steps >= 1, got 0"):
        layer.forward_repeated(np.zeros((2, 3)), 0)
    with pytest.raises(RuntimeError, match="call forward first"):
        _lstm().backward(np.zeros((2, 4)))
