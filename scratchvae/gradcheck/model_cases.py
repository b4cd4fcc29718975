"""Gradient-check cases of the whole models: each a tiny instance, its loss a function of every parameter.

Importing this module registers the cases (:func:`scratchvae.gradcheck.load_model_cases` does it);
the models themselves know nothing of gradient checking. Each case fixes the noise (and the
dropout masks), so the loss is a deterministic function of the parameters, and moves the
parameters off their initial values (biases off zero, larger embeddings) so that every path
carries a gradient well above the finite differences' rounding error.
"""

from __future__ import annotations

import numpy as np

from ..models.imdb import IMDBVAE, IMDBVAEConfig
from ..models.mnist import DenseVAE
from ..models.review import ReviewVAE, ReviewVAEConfig
from ..models.sentence import SentenceVAE, SentenceVAEConfig
from .cases import register
from .core import Problem


def model_problem(model, loss) -> Problem:
    """The check of ``loss()``, a forward of ``model`` returning its loss, against every parameter."""

    def gradients():
        model.zero_grad()
        loss()
        model.backward()
        return model.gradients()

    return Problem(loss, gradients, model.parameters(), model.backend)


# ---------------------------------------------------------------------- IMDB VAE
TINY = IMDBVAEConfig(
    vocab_size=8,
    embedding_dim=3,
    encoder_units=2,
    hidden_units=4,
    latent_dim=3,
    decoder_units=2,
    sentiment_units=2,
    epsilon_std=0.5,
    sentiment_weight=1.3,
)
TINY_KL_WEIGHT = 0.7  # the KL weight of the IMDB checks: off 1, so a missing factor shows


def random_batch(
    rng: np.random.Generator, config: IMDBVAEConfig, batch: int = 3, steps: int = 5, padding: str = "post"
) -> tuple[np.ndarray, np.ndarray]:
    """Random ids (B, T) with ragged lengths (row 0 full) and labels (B,), on the host."""
    ids = rng.integers(1, config.vocab_size, (batch, steps))
    lengths = rng.integers(1, steps + 1, batch)
    lengths[0] = steps
    pos = np.arange(steps)[None, :]
    pad = pos >= lengths[:, None] if padding == "post" else pos < (steps - lengths)[:, None]
    ids[pad] = 0
    return ids, rng.integers(0, 2, batch)


def _imdb_case(padding="post", semi_supervised=False, evaluation=False, **overrides):
    def build(backend, dtype, rng):
        config = IMDBVAEConfig(**{**TINY.to_dict(), **overrides})
        model = IMDBVAE(config, rng=rng, backend=backend, dtype=dtype)
        # Biases off zero exercise every path; unit-scale embeddings (not Keras's +-0.05) and
        # doubled encoder weights keep the encoder's gradients far above the finite
        # differences' rounding error.
        for path, p in model.parameters().items():
            if path.startswith("encoder"):
                p *= 2.0
            scale = 1.0 if path.startswith("embedding") else 0.3 if path.endswith("bias") else 0.0
            p += model.backend.asarray(scale * rng.standard_normal(p.shape), dtype=model.dtype)
        host_ids, labels = random_batch(rng, config, padding=padding)
        ids = model.backend.asarray(host_ids, dtype=np.int64)
        eps = None if evaluation else model.noise(rng, len(labels))
        weights = np.array([1.0, 0.0, 1.0]) if semi_supervised else None

        def loss():
            return model.forward(ids, labels, eps, weights, kl_weight=TINY_KL_WEIGHT)["loss"]

        return model_problem(model, loss)

    return build


register("IMDB VAE (tiny)")(_imdb_case())
register("IMDB VAE (tiny) pre-padding, hard_sigmoid, semi-supervised weights")(
    _imdb_case("pre", semi_supervised=True, recurrent_activation="hard_sigmoid")
)
register("IMDB VAE (tiny) z = z_mean (no noise)")(_imdb_case(evaluation=True))


# ---------------------------------------------------------------------- MNIST dense VAE
def _mnist_case(latent_dim: int, binary: bool):
    """The whole model on a 4-image batch of 6 pixels, L = negative ELBO for fixed noise."""

    def build(backend, dtype, rng):
        model = DenseVAE(6, 5, latent_dim, rng=rng, backend=backend, dtype=dtype)
        host = model.backend
        for path, p in model.parameters().items():
            if path.endswith("bias"):  # off zero, so every bias sees a different gradient
                p[...] = host.asarray(0.3 * rng.standard_normal(p.shape), dtype=dtype)
        pixels = rng.uniform(0, 1, (4, 6))
        x = host.asarray(pixels > 0.5 if binary else pixels, dtype=dtype)
        eps = host.asarray(rng.standard_normal((4, latent_dim)), dtype=dtype)

        def loss():
            return model.forward(x, eps)["loss"]

        return model_problem(model, loss)

    return build


register("MNIST dense VAE")(_mnist_case(2, binary=False))
register("MNIST dense VAE binary pixels, latent 3")(_mnist_case(3, binary=True))


# ---------------------------------------------------------------------- sentence VAE
def _sentence_case(kl_weight: float = 0.7, **options):
    """A tiny model (V=7, E=3, U=4, Z=2, B=3, T=5; ``options`` may change them) with word dropout off
    and fixed noise: a deterministic loss (with decoder_dropout, every call draws the same masks
    from a fresh generator)."""

    def build(backend, dtype, rng):
        sizes = dict(vocab_size=7, embedding_dim=3, encoder_units=4, decoder_units=4, latent_dim=2)
        config = SentenceVAEConfig(**{**sizes, **options})
        model = SentenceVAE(config, rng=rng, backend=backend, dtype=dtype)

        def normal(*shape, scale=1.0):
            return model.backend.asarray(scale * rng.standard_normal(shape), dtype=model.dtype)

        model.embedding.params["embeddings"][...] = normal(7, config.embedding_dim)  # O(1) signals
        for layer in (model.to_mean, model.to_logvar, model.to_state, model.output):
            layer.params["bias"][...] = normal(*layer.params["bias"].shape, scale=0.3)
        decoder_ids, targets = np.zeros((3, 5), np.int64), np.zeros((3, 5), np.int64)
        for row, n in enumerate((4, 2, 1)):  # sentences of 4, 2 and 1 words, then padding
            words = rng.integers(4, 7, n)
            decoder_ids[row, : n + 1] = [2, *words]  # <s> w1 .. wn
            targets[row, : n + 1] = [*words, 3]  # w1 .. wn </s>
        decoder_ids, targets = model.backend.asarray(decoder_ids), model.backend.asarray(targets)
        eps = normal(3, 2)

        def loss():
            masks = np.random.default_rng(5) if model.config.decoder_dropout > 0 else None
            return model.forward(targets, decoder_ids, eps, kl_weight=kl_weight, rng=masks)["loss"]

        return model_problem(model, loss)

    return build


register("SentenceVAE LSTM encoder, h0 c0 = tanh(Dense(z))")(_sentence_case())
register("SentenceVAE BiLSTM encoder, z every step, free bits")(
    _sentence_case(bidirectional=True, z_every_step=True, free_bits=0.05, kl_weight=1.0)
)
register("SentenceVAE h0 = Dense(z) linear, c0 = 0")(_sentence_case(init_state="h", init_activation="linear"))
register("SentenceVAE decoder dropout 0.4, z every step")(_sentence_case(decoder_dropout=0.4, z_every_step=True))
register("SentenceVAE tied embeddings (output = E^T), decoder dropout 0.4")(
    _sentence_case(embedding_dim=4, tie_embeddings=True, decoder_dropout=0.4)
)


# ---------------------------------------------------------------------- IMDB review VAE (autoregressive)
def _review_case(semi_supervised: bool = False, **options):
    """A tiny review VAE (V=8, E=U_d=4, U_e=3, Z=2, B=3): the encoder reads 6 columns, the decoder rebuilds
    the first 3 words (</s> for the review that ends within them); fixed noise, free bits, KL weight 0.7."""

    def build(backend, dtype, rng):
        sizes = dict(
            vocab_size=8,
            embedding_dim=4,
            encoder_units=3,
            decoder_units=4,
            latent_dim=2,
            free_bits=0.05,
            sentiment_weight=1.3,
        )
        model = ReviewVAE(ReviewVAEConfig(**{**sizes, **options}), rng=rng, backend=backend, dtype=dtype)
        vae = model.vae

        def normal(*shape, scale=1.0):
            return model.backend.asarray(scale * rng.standard_normal(shape), dtype=model.dtype)

        vae.embedding.params["embeddings"][...] = normal(8, 4)
        for layer in (vae.to_mean, vae.to_logvar, vae.to_state, vae.output, model.sentiment):
            layer.params["bias"][...] = normal(*layer.params["bias"].shape, scale=0.3)
        model.sentiment.params["kernel"][...] = normal(2, 1)
        encoder_ids = np.array([[4, 5, 6, 7, 4, 5], [6, 7, 0, 0, 0, 0], [5, 4, 6, 7, 0, 0]])
        targets = np.array([[4, 5, 6, 0], [6, 7, 3, 0], [5, 4, 6, 0]])  # review 2 ends within 3 words
        decoder_ids = np.array([[2, 4, 5, 0], [2, 6, 7, 0], [2, 5, 4, 0]])
        to = lambda a: model.backend.asarray(a)
        encoder_ids, targets, decoder_ids = to(encoder_ids), to(targets), to(decoder_ids)
        labels = np.array([1, 0, 1])
        weights = np.array([1.0, 0.0, 1.0]) if semi_supervised else None
        eps = normal(3, 2)

        def loss():
            masks = np.random.default_rng(5) if model.config.decoder_dropout > 0 else None
            return model.forward(encoder_ids, targets, decoder_ids, labels, eps, weights, kl_weight=0.7, rng=masks)[
                "loss"
            ]

        return model_problem(model, loss)

    return build


register("IMDB review VAE: encoder reads more than the decoder rebuilds, tied embeddings, head on the mean")(
    _review_case()
)
register("IMDB review VAE: semi-supervised weights, untied output, h0 only, decoder dropout 0.4")(
    _review_case(semi_supervised=True, tie_embeddings=False, init_state="h", decoder_dropout=0.4)
)
