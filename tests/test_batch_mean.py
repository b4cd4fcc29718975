"""Losses with batch statistics computed in shards (scratchvae.losses' ``batch_mean``).

A shard of a batch runs forward and backward on its rows; given the batch's means of what its
losses ask for, its gradients weighted by its share of the batch add up to the whole batch's,
and so do its metrics.  Here each shard is told the means the whole batch computed (recorded
in the order they were asked); the pool's exchange of them between processes is tested in
test_cores.py.  Every case checks first that a shard left to its own means gets it wrong.
"""

from __future__ import annotations

import numpy as np
import pytest

from scratchvae.losses import BinaryCrossEntropy, GaussianKL
from scratchvae.models.imdb import IMDBVAE, IMDBVAEConfig
from scratchvae.models.review import ReviewVAE, ReviewVAEConfig
from scratchvae.models.sentence import SentenceVAE, SentenceVAEConfig
from scratchvae.training.distributed import shard_rows

N, SHARDS = 7, 3  # 3 + 2 + 2 rows: shards that do not divide the batch evenly


def recording(calls: list):
    """A whole batch's batch_mean that remembers what it was asked."""

    def batch_mean(x):
        calls.append(np.array(x, copy=True))
        return x

    return batch_mean


def replaying(calls: list):
    """A shard's batch_mean that answers with the whole batch's means, in the order they were asked."""
    answers = iter(calls)

    def batch_mean(x):
        want = next(answers)
        assert np.shape(x) == want.shape
        return want

    return batch_mean


def sharded(run, told: bool):
    """(value, gradients) of the whole batch and of its shards weighted by their shares: run(rows,
    batch_mean) -> (value, {name: gradient}).  ``told``: the shards get the whole batch's means."""
    calls: list = []
    whole = run(slice(0, N), recording(calls))
    assert calls, "the case asks for no batch mean"
    value, grads = 0.0, None
    for i in range(SHARDS):
        rows = shard_rows(N, i, SHARDS)
        share = (rows.stop - rows.start) / N
        v, g = run(rows, replaying(calls) if told else lambda x: x)
        value = value + share * v
        grads = {k: share * a for k, a in g.items()} if grads is None else {k: grads[k] + share * g[k] for k in g}
    return whole, (value, grads)


def assert_close(whole, split, rtol=1e-12):
    (v1, g1), (v2, g2) = whole, split
    np.testing.assert_allclose(v2, v1, rtol=rtol, atol=1e-14)
    for k in g1:
        np.testing.assert_allclose(g2[k], g1[k], rtol=rtol, atol=1e-14, err_msg=k)


def assert_differ(whole, split):
    (v1, g1), (v2, g2) = whole, split
    gaps = [np.abs(np.asarray(v2) - np.asarray(v1)).max()] + [np.abs(g2[k] - g1[k]).max() for k in g1]
    assert max(gaps) > 1e-6


@pytest.mark.parametrize("told", [True, False])
def test_free_bits_clamp_the_batch_mean_kl_of_each_unit(told):
    rng = np.random.default_rng(0)
    mean, logvar = rng.normal(0, 0.6, (N, 4)), rng.normal(0, 0.5, (N, 4))
    mean[:3, 0] *= 4  # unit 0: active in the batch and in shard 0, clamped in the others
    kl = GaussianKL(free_bits=0.3, dtype=np.float64)
    per_unit = (-0.5 * (1 + logvar - mean**2 - np.exp(logvar))).mean(axis=0)
    assert (per_unit > 0.3).any() and (per_unit < 0.3).any()  # both kinds of unit in the batch

    def run(rows, batch_mean):
        value = kl.forward(mean[rows], logvar[rows], batch_mean=batch_mean)
        dmean, dlogvar = kl.backward(1.0)
        return float(value), {"mean": _scatter(dmean, rows, mean.shape), "logvar": _scatter(dlogvar, rows, mean.shape)}

    whole, split = sharded(run, told)
    (assert_close if told else assert_differ)(whole, split)


@pytest.mark.parametrize("told", [True, False])
def test_weighted_bce_divides_by_the_batch_total_weight(told):
    rng = np.random.default_rng(1)
    logits, y = rng.normal(size=(N, 1)), rng.integers(0, 2, (N, 1)).astype(np.float64)
    weights = np.array([1, 0, 0, 1, 1, 1, 0], dtype=np.float64)  # the shards hold 1, 2 and 1 labelled rows
    bce = BinaryCrossEntropy(dtype=np.float64)

    def run(rows, batch_mean):
        value = bce.forward(logits[rows], y[rows], weights[rows], batch_mean=batch_mean)
        return float(value), {"logits": _scatter(bce.backward(1.0), rows, logits.shape)}

    whole, split = sharded(run, told)
    (assert_close if told else assert_differ)(whole, split)


def _scatter(part, rows, shape):
    """A shard's gradient for its rows, in the batch's shape (zero elsewhere)."""
    full = np.zeros(shape)
    full[rows] = part
    return full


def _model_run(model, forward, keys):
    """run(rows, batch_mean) of a model: its metrics ``keys`` and its parameter gradients."""

    def run(rows, batch_mean):
        model.zero_grad()
        terms = forward(rows, batch_mean)
        model.backward()
        values = [terms.get(k, 0.0) for k in keys]  # a shard left to itself may see no labelled review
        return np.array(values), {k: g.copy() for k, g in model.gradients().items()}

    return run


def _straddle_free_bits(kl_loss, forward) -> None:
    """Set the free-bits threshold between latent unit 0's batch-mean KL and its mean in one of the shards (an
    untrained model's KLs are far below any usual threshold): that shard alone would clamp it wrongly."""
    kl_loss.free_bits = 1e-30
    forward(slice(0, N), lambda x: x)
    kl = -0.5 * (1.0 + np.log(kl_loss.var) - kl_loss.mean**2 - kl_loss.var)[:, 0]  # (N,) of unit 0
    shard = max((kl[shard_rows(N, i, SHARDS)].mean() for i in range(SHARDS)), key=lambda m: abs(m - kl.mean()))
    kl_loss.free_bits = float(kl.mean() + shard) / 2


def _text_batch(vocab, width):
    rng = np.random.default_rng(2)
    targets = rng.integers(4, vocab, (N, width))
    targets[np.arange(N), rng.integers(2, width, N)] = 3  # </s>, then padding
    targets[np.cumsum(targets == 3, axis=1) - (targets == 3) > 0] = 0
    decoder_ids = np.concatenate([np.full((N, 1), 2), targets[:, :-1]], axis=1)
    return targets, decoder_ids


@pytest.mark.parametrize("told", [True, False])
def test_the_review_vae_in_shards_gives_the_batch_gradient_and_metrics(told):
    """Free bits, unlabelled reviews, and the metrics: accuracy over the batch's labelled reviews, nats per
    token over the batch's tokens."""
    config = ReviewVAEConfig(
        vocab_size=11, embedding_dim=4, encoder_units=3, decoder_units=4, latent_dim=4, free_bits=0.05
    )
    model = ReviewVAE(config, rng=np.random.default_rng(0), dtype=np.float64)
    targets, decoder_ids = _text_batch(11, 6)
    encoder_ids = np.random.default_rng(3).integers(1, 11, (N, 8))
    labels, weights = np.array([1, 0, 1, 1, 0, 0, 1]), np.array([1.0, 0, 0, 1, 1, 0, 1])
    eps = np.random.default_rng(4).standard_normal((N, 4))

    def forward(rows, batch_mean):
        return model.forward(
            encoder_ids[rows],
            targets[rows],
            decoder_ids[rows],
            labels[rows],
            eps[rows],
            weights[rows],
            kl_weight=0.7,
            batch_mean=batch_mean,
        )

    _straddle_free_bits(model.vae.kl_loss, forward)
    whole, split = sharded(_model_run(model, forward, ("loss", "bce", "kl_term", "accuracy", "nll_per_token")), told)
    (assert_close if told else assert_differ)(whole, split)


@pytest.mark.parametrize("told", [True, False])
def test_the_sentence_vae_with_free_bits_in_shards_gives_the_batch_gradient(told):
    config = SentenceVAEConfig(
        vocab_size=10, embedding_dim=4, encoder_units=3, decoder_units=4, latent_dim=4, free_bits=0.05
    )
    model = SentenceVAE(config, rng=np.random.default_rng(0), dtype=np.float64)
    targets, decoder_ids = _text_batch(10, 5)
    eps = np.random.default_rng(4).standard_normal((N, 4))

    def forward(rows, batch_mean):
        return model.forward(targets[rows], decoder_ids[rows], eps[rows], batch_mean=batch_mean)

    _straddle_free_bits(model.kl_loss, forward)
    whole, split = sharded(_model_run(model, forward, ("loss", "kl_term")), told)
    (assert_close if told else assert_differ)(whole, split)


@pytest.mark.parametrize("told", [True, False])
def test_the_repeat_imdb_vae_with_unlabelled_reviews_in_shards_gives_the_batch_gradient(told):
    config = IMDBVAEConfig(
        vocab_size=12,
        embedding_dim=4,
        encoder_units=3,
        hidden_units=3,
        latent_dim=2,
        decoder_units=3,
        sentiment_units=3,
    )
    model = IMDBVAE(config, rng=np.random.default_rng(0), dtype=np.float64)
    ids = np.random.default_rng(5).integers(1, 12, (N, 6))
    labels, weights = np.array([1, 0, 1, 1, 0, 0, 1]), np.array([0.0, 1, 1, 0, 0, 1, 1])
    eps = np.random.default_rng(6).standard_normal((N, 2))

    def forward(rows, batch_mean):
        return model.forward(ids[rows], labels[rows], eps[rows], weights[rows], batch_mean=batch_mean)

    whole, split = sharded(_model_run(model, forward, ("loss", "bce", "accuracy", "nll_per_token")), told)
    (assert_close if told else assert_differ)(whole, split)


@pytest.mark.parametrize("weights", [None, np.array([1.0, 0.0, 1.0])])
def test_the_losses_keep_a_float32_models_dtype(weights):
    """A float64 scalar in a loss's scaling would turn every gradient of a float32 model into float64
    (and its products into float64 GEMMs at half the speed)."""
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(3, 2)).astype(np.float32), rng.integers(0, 2, (3, 2)).astype(np.float32)
    bce = BinaryCrossEntropy(dtype=np.float32)
    assert bce.forward(logits, y, weights).dtype == np.float32
    assert bce.backward(1.0).dtype == np.float32
    kl = GaussianKL(free_bits=0.1, dtype=np.float32)
    mean, logvar = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)
    assert kl.forward(mean, logvar).dtype == np.float32
    assert all(g.dtype == np.float32 for g in kl.backward(1.0))
