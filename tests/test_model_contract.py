"""Every VAE follows one contract (scratchvae.models.contract): forward(*inputs, kl_weight=beta) returns
a dict of floats with the loss under "loss", and backward(dloss) gives the gradients of dloss * loss."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from scratchvae.models.imdb import IMDBVAE, IMDBVAEConfig
from scratchvae.models.mnist import DenseVAE
from scratchvae.models.review import ReviewVAE, ReviewVAEConfig
from scratchvae.models.sentence import SentenceVAE, SentenceVAEConfig

ROOT = Path(__file__).resolve().parents[1]
RECONSTRUCTION = {"mnist": "nll", "imdb": "reconstruction", "sentence": "rec", "review": "rec"}
KINDS = ["mnist", "imdb", "sentence", "review"]


def tiny(kind: str):
    """(model, inputs) of a tiny model on a fixed batch, float64, with fixed noise."""
    rng = np.random.default_rng(0)
    if kind == "mnist":
        model = DenseVAE(6, 5, 2, rng=rng, dtype=np.float64)
        return model, (rng.uniform(0, 1, (3, 6)), rng.standard_normal((3, 2)))
    if kind == "imdb":
        config = IMDBVAEConfig(
            vocab_size=8,
            embedding_dim=3,
            encoder_units=2,
            hidden_units=4,
            latent_dim=3,
            decoder_units=2,
            sentiment_units=2,
        )
        model = IMDBVAE(config, rng=rng, dtype=np.float64)
        ids = np.array([[3, 4, 5, 6], [2, 7, 0, 0]])
        return model, (ids, np.array([1, 0]), model.noise(rng, 2))
    if kind == "review":
        model = ReviewVAE(
            ReviewVAEConfig(vocab_size=8, embedding_dim=4, encoder_units=3, decoder_units=4, latent_dim=2),
            rng=rng,
            dtype=np.float64,
        )
        encoder_ids = np.array([[4, 5, 6, 7], [6, 0, 0, 0]])
        targets, decoder_ids = np.array([[4, 5], [6, 3]]), np.array([[2, 4], [2, 6]])
        return model, (encoder_ids, targets, decoder_ids, np.array([1, 0]), rng.standard_normal((2, 2)))
    config = SentenceVAEConfig(vocab_size=8, embedding_dim=3, encoder_units=4, decoder_units=4, latent_dim=2)
    model = SentenceVAE(config, rng=rng, dtype=np.float64)
    targets, decoder_ids = np.array([[4, 5, 3], [6, 3, 0]]), np.array([[2, 4, 5], [2, 6, 0]])
    return model, (targets, decoder_ids, rng.standard_normal((2, 2)))


def gradients(model, inputs, dloss=None):
    model.zero_grad()
    model.forward(*inputs, kl_weight=0.5)
    model.backward() if dloss is None else model.backward(dloss)
    return {k: np.array(v) for k, v in model.gradients().items()}


@pytest.mark.parametrize("kind", KINDS)
def test_forward_returns_float_terms_and_the_kl_weight_scales_the_kl(kind):
    model, inputs = tiny(kind)
    terms = model.forward(*inputs, kl_weight=0.25)
    assert {"loss", "kl", RECONSTRUCTION[kind]} <= set(terms)
    assert all(type(value) is float for value in terms.values()), terms
    plain = model.forward(*inputs)  # kl_weight defaults to 1
    kl = terms.get("kl_term", terms["kl"])  # the sentence VAE optimises the KL with free bits
    assert plain["loss"] - terms["loss"] == pytest.approx(0.75 * kl, rel=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_backward_gives_the_gradients_of_dloss_times_the_loss(kind):
    model, inputs = tiny(kind)
    once, twice = gradients(model, inputs), gradients(model, inputs, dloss=2.0)
    assert any(g.any() for g in once.values())
    for name in once:
        np.testing.assert_allclose(twice[name], 2.0 * once[name], rtol=1e-12, atol=1e-15, err_msg=name)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [-1.0, float("nan"), "0.5"])
def test_forward_rejects_a_bad_kl_weight_before_any_work(kind, bad):
    model, inputs = tiny(kind)
    with pytest.raises(ValueError, match="kl_weight must be a number >= 0"):
        model.forward(*inputs, kl_weight=bad)


@pytest.mark.parametrize("kind", KINDS)
def test_the_kl_weight_is_a_keyword(kind):
    model, inputs = tiny(kind)
    with pytest.raises(TypeError):
        model.forward(*inputs, None, 0.5)


def test_the_models_do_not_import_their_test_harness():
    """Gradient-check and benchmark cases live in scratchvae.gradcheck and bench/, not in the models."""
    code = (
        "import sys, scratchvae.models.mnist, scratchvae.models.imdb, scratchvae.models.sentence, "
        "scratchvae.models.generate; print(sorted(m for m in sys.modules if 'gradcheck' in m))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
