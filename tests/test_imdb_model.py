"""The IMDB VAE: gradients, masking, the memory rule, backends, and the inference helpers."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scratchvae.backend import get_backend
from scratchvae.gradcheck import CASES, load_model_cases
from scratchvae.gradcheck.model_cases import TINY, random_batch
from scratchvae.models.imdb import IMDBVAE, IMDBVAEConfig

load_model_cases()
IMDB_CASES = [name for name in CASES if name.startswith("IMDB VAE")]


def _model(backend="numpy", dtype=np.float64, seed=0, **overrides):
    return IMDBVAE(replace(TINY, **overrides), rng=np.random.default_rng(seed), backend=backend, dtype=dtype)


def _step(model, ids, labels, eps, weights=None):
    """Loss terms and a copy of every gradient after one forward/backward."""
    model.zero_grad()
    terms = model.forward(
        model.backend.asarray(ids, dtype=np.int64),
        labels,
        None if eps is None else model.backend.asarray(eps, dtype=model.dtype),
        weights,
    )
    model.backward()
    return terms, {k: model.backend.to_numpy(g).copy() for k, g in model.gradients().items()}


def test_gradient_cases_are_registered_including_hard_sigmoid():
    """tests/test_gradcheck.py runs every registered case on every backend at the 1e-6 bound;
    here, that the cases exist and check every parameter of the model."""
    assert len(IMDB_CASES) >= 3
    assert any("hard_sigmoid" in name for name in IMDB_CASES)
    for name in IMDB_CASES:
        problem = CASES[name]("numpy", "float64", np.random.default_rng(0))
        assert set(problem.arrays) == set(_model().parameters())
        assert np.isfinite(problem.loss())


def test_parameter_paths_mirror_the_keras_layers():
    children = list(_model().children)
    assert children == [
        "embedding",
        "encoder_0",
        "encoder_1",
        "hidden",
        "z_mean",
        "z_log_var",
        "decoder_0",
        "decoder_1",
        "output",
        "sentiment_hidden",
        "sentiment_output",
    ]
    params = _model().parameters()
    assert params["output/kernel"].shape == (TINY.decoder_units, TINY.vocab_size)
    assert params["encoder_1/backward_layer/kernel"].shape == (2 * TINY.encoder_units, 4 * TINY.encoder_units)


def test_seed_sizes_are_the_tutorials():
    c = IMDBVAEConfig()
    assert (
        c.vocab_size,
        c.embedding_dim,
        c.encoder_units,
        c.hidden_units,
        c.latent_dim,
        c.decoder_units,
        c.sentiment_units,
        c.epsilon_std,
    ) == (1000, 64, 500, 435, 200, 500, 100, 0.01)


@pytest.mark.parametrize("padding", ["post", "pre"])
def test_extra_padding_changes_nothing(padding):
    """Masking is exact: padding columns added to a batch leave loss and gradients unchanged."""
    model = _model()
    rng = np.random.default_rng(1)
    ids, labels = random_batch(rng, TINY, batch=3, steps=5, padding=padding)
    eps = rng.standard_normal((3, TINY.latent_dim))
    extra = np.zeros((3, 4), dtype=ids.dtype)
    padded = np.concatenate([ids, extra] if padding == "post" else [extra, ids], axis=1)
    t1, g1 = _step(model, ids, labels, eps)
    t2, g2 = _step(model, padded, labels, eps)
    for k in ("loss", "reconstruction", "kl", "bce"):
        assert t1[k] == pytest.approx(t2[k], rel=1e-12)
    for k in g1:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-9, atol=1e-13, err_msg=k)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.integers(0, 2**31 - 1))
def test_loss_terms_are_finite_and_the_nll_counts_only_real_tokens(lengths, seed):
    model = _model()
    rng = np.random.default_rng(seed)
    ids = np.zeros((len(lengths), 6), dtype=np.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = rng.integers(1, TINY.vocab_size, n)
    terms = model.forward(ids, rng.integers(0, 2, len(lengths)), None, kl_weight=0.7)
    assert all(np.isfinite(v) for v in terms.values())
    nll = model.reconstruction_loss.nll
    assert terms["reconstruction"] == pytest.approx(float((nll * (ids != 0)).sum()) / len(lengths))
    assert terms["nll_per_token"] == pytest.approx(float((nll * (ids != 0)).sum()) / sum(lengths))
    assert terms["loss"] == pytest.approx(
        terms["reconstruction"] + 0.7 * terms["kl"] + TINY.sentiment_weight * terms["bce"]
    )


def test_one_vocabulary_block_per_batch():
    """The loss writes its gradient into the logits buffer: no second (B, T, V) array."""
    model = _model(dtype=np.float32)
    ids, labels = random_batch(np.random.default_rng(2), TINY)
    model.forward(ids, labels, model.noise(np.random.default_rng(3), len(labels)))
    dlogits = model.reconstruction_loss.dlogits
    assert dlogits.shape == (*ids.shape, TINY.vocab_size)
    assert np.shares_memory(dlogits, model.output.y)


def test_unlabelled_reviews_do_not_train_the_sentiment_head():
    model = _model()
    rng = np.random.default_rng(4)
    ids, labels = random_batch(rng, TINY)
    eps = rng.standard_normal((3, TINY.latent_dim))
    terms, grads = _step(model, ids, labels, eps, np.zeros(3))
    assert "accuracy" not in terms  # no labelled review in the batch
    assert not np.any(grads["sentiment_output/kernel"]) and not np.any(grads["sentiment_hidden/kernel"])
    assert np.any(grads["decoder_0/kernel"])
    # weight 0 on a review == leaving it out of the sentiment loss
    t_w, _ = _step(model, ids, labels, eps, np.array([1.0, 0.0, 1.0]))
    t_sub, _ = _step(model, ids[[0, 2]], labels[[0, 2]], eps[[0, 2]])
    assert t_w["bce"] == pytest.approx(t_sub["bce"], rel=1e-12)


def test_backends_agree(fast_backend_name):
    rng = np.random.default_rng(5)
    ids, labels = random_batch(rng, TINY)
    eps = rng.standard_normal((3, TINY.latent_dim))
    ref_terms, ref_grads = _step(_model("numpy", recurrent_activation="hard_sigmoid"), ids, labels, eps)
    terms, grads = _step(_model(fast_backend_name, recurrent_activation="hard_sigmoid"), ids, labels, eps)
    for k in ref_terms:
        assert terms[k] == pytest.approx(ref_terms[k], rel=1e-10)
    for k in ref_grads:
        np.testing.assert_allclose(grads[k], ref_grads[k], rtol=1e-8, atol=1e-12, err_msg=k)


def test_float32_runs():
    model = _model(dtype=np.float32)
    ids, labels = random_batch(np.random.default_rng(6), TINY)
    terms, grads = _step(model, ids, labels, np.random.default_rng(7).standard_normal((3, TINY.latent_dim)))
    assert np.isfinite(terms["loss"]) and all(g.dtype == np.float32 for g in grads.values())


def test_encode_reconstruct_predict():
    model = _model()
    ids, _ = random_batch(np.random.default_rng(8), TINY, padding="pre")
    z = model.encode(ids)
    assert z.shape == (3, TINY.latent_dim)
    out = model.reconstruct(ids)
    assert out.shape == ids.shape and np.all(out[ids == 0] == 0)
    assert np.all((out[ids != 0] >= 0) & (out[ids != 0] < TINY.vocab_size))
    p = model.predict_sentiment(ids)
    assert p.shape == (3,) and np.all((p > 0) & (p < 1))
    # z_mean is deterministic, and forward with eps=None uses it
    np.testing.assert_array_equal(model.encode(ids), z)


def test_training_steps_reduce_the_loss():
    from scratchvae.optim import Adam

    model = _model(seed=9)
    opt = Adam(model.parameters(), model.gradients(), learning_rate=0.05)
    rng = np.random.default_rng(10)
    ids, labels = random_batch(rng, TINY, batch=4, steps=6)
    first = None
    for _ in range(40):
        terms, _ = _step(model, ids, labels, model.noise(rng, 4))
        opt.step()
        first = first if first is not None else terms["loss"]
    assert model.forward(ids, labels, None)["loss"] < 0.8 * first


@pytest.mark.parametrize(
    "bad", [dict(vocab_size=2), dict(latent_dim=0), dict(recurrent_activation="relu"), dict(sentiment_weight=-1.0)]
)
def test_config_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        replace(TINY, **bad)


def test_forward_rejects_a_negative_kl_weight():
    ids, labels = random_batch(np.random.default_rng(0), TINY)
    with pytest.raises(ValueError, match="kl_weight must be a number >= 0, got -1.0"):
        _model().forward(ids, labels, None, kl_weight=-1.0)


def test_config_round_trips_through_a_dict():
    assert IMDBVAEConfig.from_dict(TINY.to_dict()) == TINY
    assert get_backend("numpy").name == "numpy"
