"""Whole-model parity with Keras 3 (torch backend, float64).

For the IMDB VAE (with its sentiment head), the sentence VAE and the MNIST VAE: build
the Keras twin (:mod:`scratchvae.interop.keras_models`), copy the weights through the
model's layout, feed identical inputs and identical noise, and compare the outputs and
every loss term (<= 1e-10) and every parameter gradient (<= 1e-8, Keras's through torch
autograd).  hypothesis draws the sizes and options.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras_reference import (
    N,
    T,
    assert_model_grads,
    assert_out,
    keras,
    keras_gaussian_kl,
    keras_sequence_nll,
    load_into_keras,
    padding_mask,
    perturb_biases,
    rng_from,
    token_ids,
)

from scratchvae.interop import layout_of
from scratchvae.interop.keras_models import (
    build_keras_imdb_vae,
    build_keras_mnist_vae,
    build_keras_sentence_vae,
    keras_h5_groups,
)


def _model_module(name):
    """scratchvae.models.<name>, or skip (each model's tests stand alone)."""
    return pytest.importorskip(f"scratchvae.models.{name}")


F64 = np.float64
ops = keras.ops
PARITY = settings(
    max_examples=10,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(PARITY, max_examples=5)  # per parametrised option
seeds = st.integers(0, 2**31 - 1)
small = st.integers(1, 3)


# ----------------------------------------------------------------- IMDB VAE
def imdb_batch(rng, config, n, steps, padding):
    mask = padding_mask(rng, n, steps, padding)
    return token_ids(rng, n, steps, config.vocab_size, mask), mask, rng.integers(0, 2, n)


@pytest.mark.parametrize("recurrent_activation", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("padding", ["post", "pre"])
@FEW
@given(
    seed=seeds,
    vocab=st.integers(3, 8),
    emb=small,
    enc=small,
    hidden=st.integers(1, 4),
    latent=small,
    dec=small,
    sent=small,
    n=st.integers(1, 4),
    steps=st.integers(1, 5),
    label_weights=st.sampled_from([None, "semi", "none_labelled"]),
    evaluation=st.booleans(),
    weights=st.sampled_from([(1.0, 1.0), (0.7, 1.3)]),
    fixed_steps=st.booleans(),
)
def test_imdb_vae(
    seed,
    vocab,
    emb,
    enc,
    hidden,
    latent,
    dec,
    sent,
    n,
    steps,
    padding,
    recurrent_activation,
    label_weights,
    evaluation,
    weights,
    fixed_steps,
):
    imdb = _model_module("imdb")
    rng = rng_from(seed)
    config = imdb.IMDBVAEConfig(
        vocab_size=vocab,
        embedding_dim=emb,
        encoder_units=enc,
        hidden_units=hidden,
        latent_dim=latent,
        decoder_units=dec,
        sentiment_units=sent,
        epsilon_std=0.7,
        sentiment_weight=weights[1],
        recurrent_activation=recurrent_activation,
    )
    model = imdb.IMDBVAE(config, rng=rng, dtype=F64)
    perturb_biases(model, rng)
    ids, mask, labels = imdb_batch(rng, config, n, steps, padding)
    eps = None if evaluation else model.noise(rng, n)
    lw = {None: None, "semi": (rng.random(n) < 0.5).astype(F64), "none_labelled": np.zeros(n)}[label_weights]

    # scratchvae: the outputs, then the loss terms and the gradients
    mean, logvar, _ = model._encode(ids)
    z = mean if eps is None else mean + np.exp(0.5 * logvar) * eps
    logits = model._decode(z, mask).copy()
    s_logit = model._sentiment_logit(z).copy()
    out = model.forward(ids, labels, eps, lw, kl_weight=weights[0])
    model.backward()

    km = build_keras_imdb_vae(config, steps=steps if fixed_steps else None)
    variables = load_into_keras(model, km)
    k_eps = np.zeros((n, latent)) if eps is None else eps
    k_logits, k_mean, k_logvar, k_s = km([T(ids), T(k_eps)])
    rec = keras_sequence_nll(ids, k_logits, mask)
    kl = keras_gaussian_kl(k_mean, k_logvar)
    y = T(labels.astype(F64)[:, None])
    if lw is None:
        bce = keras.losses.BinaryCrossentropy(from_logits=True)(y, k_s)
    else:
        bce = keras.losses.BinaryCrossentropy(from_logits=True, reduction="mean_with_sample_weight")(
            y, k_s, sample_weight=T(lw)
        )
    loss = rec + weights[0] * kl + config.sentiment_weight * bce
    loss.backward()

    key = "IMDB VAE"
    assert_out(mean, N(k_mean), "z_mean", key + " outputs")
    assert_out(logvar, N(k_logvar), "z_log_var", key + " outputs")
    assert_out(logits, N(k_logits), "logits", key + " outputs")
    assert_out(s_logit, N(k_s), "sentiment logit", key + " outputs")
    for name, k in (("reconstruction", rec), ("kl", kl), ("bce", bce), ("loss", loss)):
        assert_out(out[name], N(k), name, key + " loss")
    assert_model_grads(model, variables, key)


# ----------------------------------------------------------------- sentence VAE
def sentence_batch(rng, vocab, n, steps):
    """decoder ids <s> w1 .. wk and targets w1 .. wk </s>, post-padded (k may be 0)."""
    dec, tgt = np.zeros((n, steps), np.int64), np.zeros((n, steps), np.int64)
    for row in range(n):
        k = steps - 1 if row == 0 else int(rng.integers(0, steps))
        words = rng.integers(1, vocab, k)  # <unk> (1) as a word-dropped token too
        dec[row, : k + 1] = [2, *words]
        tgt[row, : k + 1] = [*words, 3]
    return dec, tgt


@pytest.mark.parametrize("recurrent_activation", ["sigmoid", "hard_sigmoid"])
@pytest.mark.parametrize("bidirectional", [False, True])
@FEW
@given(
    seed=seeds,
    vocab=st.integers(5, 9),
    emb=small,
    enc=small,
    dec=small,
    latent=small,
    n=st.integers(1, 4),
    steps=st.integers(1, 5),
    z_every_step=st.booleans(),
    init=st.sampled_from([("hc", "tanh"), ("h", "linear"), ("hc", "linear")]),
    free_bits=st.sampled_from([0.0, 0.2]),
    train_embeddings=st.booleans(),
    kl_weight=st.sampled_from([1.0, 0.3]),
)
def test_sentence_vae(
    seed,
    vocab,
    emb,
    enc,
    dec,
    latent,
    n,
    steps,
    bidirectional,
    z_every_step,
    init,
    free_bits,
    train_embeddings,
    recurrent_activation,
    kl_weight,
):
    sentence = _model_module("sentence")
    rng = rng_from(seed)
    config = sentence.SentenceVAEConfig(
        vocab_size=vocab,
        embedding_dim=emb,
        encoder_units=enc,
        decoder_units=dec,
        latent_dim=latent,
        bidirectional=bidirectional,
        z_every_step=z_every_step,
        init_state=init[0],
        init_activation=init[1],
        free_bits=free_bits,
        train_embeddings=train_embeddings,
        recurrent_activation=recurrent_activation,
    )
    model = sentence.SentenceVAE(config, rng=rng, dtype=F64)
    model.embedding.params["embeddings"][...] = rng.standard_normal((vocab, emb))
    perturb_biases(model, rng)
    decoder_ids, targets = sentence_batch(rng, vocab, n, steps)
    eps = rng.standard_normal((n, latent))

    mean, logvar = model.encode(targets)
    z = mean + np.exp(0.5 * logvar) * eps
    logits = model._decode(model.embedding.forward(decoder_ids), z).copy()
    terms = model.forward(targets, decoder_ids, eps, kl_weight=kl_weight)
    model.backward()

    km = build_keras_sentence_vae(config)
    variables = load_into_keras(model, km)
    k_logits, k_mean, k_logvar = km([T(targets), T(decoder_ids), T(eps)])
    rec = keras_sequence_nll(targets, k_logits, targets != 0)
    kl_term = keras_gaussian_kl(k_mean, k_logvar, free_bits)
    loss = rec + kl_weight * kl_term
    loss.backward()

    key = "sentence VAE"
    assert_out(mean, N(k_mean), "mean", key + " outputs")
    assert_out(logvar, N(k_logvar), "logvar", key + " outputs")
    assert_out(logits, N(k_logits), "logits", key + " outputs")
    assert_out(terms["rec"], N(rec), "reconstruction", key + " loss")
    assert_out(terms["kl_term"], N(kl_term), "kl term", key + " loss")
    assert_out(terms["kl"], N(keras_gaussian_kl(k_mean, k_logvar)), "kl", key + " loss")
    assert_out(terms["loss"], N(loss), "loss", key + " loss")
    assert_model_grads(model, variables, key)
    if not train_embeddings:
        assert not np.any(model.gradients()["embedding/embeddings"])
        assert not variables["embedding/embeddings"].trainable


# ----------------------------------------------------------------- MNIST VAE
@PARITY
@given(
    seed=seeds,
    pixels=st.integers(1, 8),
    hidden=st.integers(1, 5),
    latent=st.integers(1, 3),
    n=st.integers(1, 5),
    binary=st.booleans(),
)
def test_mnist_vae(seed, pixels, hidden, latent, n, binary):
    mnist = _model_module("mnist")
    rng = rng_from(seed)
    model = mnist.DenseVAE(pixels, hidden, latent, rng=rng, dtype=F64)
    perturb_biases(model, rng)
    x = rng.random((n, pixels))
    x = (x > 0.5).astype(F64) if binary else x
    eps = rng.standard_normal((n, latent))

    mean, log_var = model.encode(x)
    logits = model.decoder.forward(mean + np.exp(0.5 * log_var) * eps).copy()
    out = model.forward(x, eps)
    model.backward()

    km = build_keras_mnist_vae(model.config())
    variables = load_into_keras(model, km)
    k_logits, k_mean, k_log_var = km([T(x), T(eps)])
    nll = ops.mean(ops.sum(ops.binary_crossentropy(T(x), k_logits, from_logits=True), axis=1))
    kl = keras_gaussian_kl(k_mean, k_log_var)
    loss = nll + kl
    loss.backward()

    key = "MNIST VAE"
    assert_out(mean, N(k_mean), "mean", key + " outputs")
    assert_out(log_var, N(k_log_var), "log_var", key + " outputs")
    assert_out(logits, N(k_logits), "logits", key + " outputs")
    for name, k in (("nll", nll), ("kl", kl), ("loss", loss)):
        assert_out(out[name], N(k), name, key + " loss")
    assert_model_grads(model, variables, key)


# ----------------------------------------------------------------- layouts vs builders
def _layout_case(case):
    if case == "mnist":
        mnist = _model_module("mnist")
        return mnist.DenseVAE(4, 3, 2, rng=rng_from(0), dtype=F64), lambda m: build_keras_mnist_vae(m.config())
    if case == "imdb":
        imdb = _model_module("imdb")
        cfg = imdb.IMDBVAEConfig(
            vocab_size=5,
            embedding_dim=2,
            encoder_units=2,
            hidden_units=2,
            latent_dim=2,
            decoder_units=2,
            sentiment_units=2,
        )
        return imdb.IMDBVAE(cfg, rng=rng_from(0), dtype=F64), lambda m: build_keras_imdb_vae(m.config)
    sentence = _model_module("sentence")
    bi = case == "sentence bidirectional"
    scfg = sentence.SentenceVAEConfig(
        vocab_size=6, embedding_dim=2, encoder_units=2, decoder_units=2, latent_dim=2, bidirectional=bi, z_every_step=bi
    )
    return sentence.SentenceVAE(scfg, rng=rng_from(0), dtype=F64), lambda m: build_keras_sentence_vae(m.config)


@pytest.mark.parametrize("case", ["mnist", "imdb", "sentence", "sentence bidirectional"])
def test_layout_matches_keras_builder(case):
    """The declared layout names, for every h5 group, the Keras layer the builder puts there."""
    model, build = _layout_case(case)
    km = build(model)
    groups = {g: layer.name for g, layer in keras_h5_groups(km).items() if layer.weights}
    layout = layout_of(model)
    assert {e.group: e.name for e in layout.entries} == groups, case
