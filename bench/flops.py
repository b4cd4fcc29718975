"""Floating-point operations of the benchmarked work: matrix products only, 2 m n k each.

Every implementation is credited with the same count for the same step (the work an
efficient implementation must do), so achieved GFLOP/s is proportional to throughput
and comparable with the GEMM peak.  Elementwise work (gate activations, softmax, Adam)
is not counted; it is small next to the products at these sizes.

A training step is the forward products plus, for each product x W, the two backward
products dx = dy W^T and dW = x^T dy.
"""

from __future__ import annotations


def gemm(m: int, k: int, n: int) -> int:
    """(m, k) @ (k, n)."""
    return 2 * m * k * n


def dense_train(rows: int, d_in: int, d_out: int) -> int:
    """Forward y = x W, backward dx = dy W^T and dW = x^T dy."""
    return 3 * gemm(rows, d_in, d_out)


def lstm_train(batch: int, steps: int, d_in: int, units: int, *, constant_input: bool = False) -> int:
    """An LSTM over ``steps`` steps, forward and backward.

    Input projection x W (all steps at once, or once when the same vector feeds every
    step), and per step h U forward, dz U^T and h^T dz backward.
    """
    rows = batch if constant_input else batch * steps
    return dense_train(rows, d_in, 4 * units) + dense_train(batch * steps, units, 4 * units)


def imdb_train(config, batch: int, steps: int) -> int:
    """One training step of :class:`scratchvae.models.imdb.IMDBVAE`."""
    c, n = config, batch
    e, h, d = c.encoder_units, c.hidden_units, c.decoder_units
    return (
        2 * lstm_train(n, steps, c.embedding_dim, e)
        + 2 * lstm_train(n, steps, 2 * e, e)
        + dense_train(n, 2 * e, h)
        + 2 * dense_train(n, h, c.latent_dim)
        + lstm_train(n, steps, c.latent_dim, d, constant_input=True)
        + lstm_train(n, steps, d, d)
        + dense_train(n * steps, d, c.vocab_size)
        + dense_train(n, c.latent_dim, c.sentiment_units)
        + dense_train(n, c.sentiment_units, 1)
    )


def sentence_train(config, batch: int, steps: int, encoder_steps: int | None = None) -> int:
    """One training step of :class:`scratchvae.models.sentence.SentenceVAE`: the decoder over ``steps``
    steps, the encoder over ``encoder_steps`` (default: the same)."""
    c, n = config, batch
    encoder_steps = steps if encoder_steps is None else encoder_steps
    directions = 2 if c.bidirectional else 1
    encoded = directions * c.encoder_units
    state = c.decoder_units * (2 if c.init_state == "hc" else 1)
    # z at every step is the same vector at each: its share of the input projection is one product
    z_input = dense_train(n, c.latent_dim, 4 * c.decoder_units) if c.z_every_step else 0
    return (
        directions * lstm_train(n, encoder_steps, c.embedding_dim, c.encoder_units)
        + 2 * dense_train(n, encoded, c.latent_dim)
        + dense_train(n, c.latent_dim, state)
        + lstm_train(n, steps, c.embedding_dim, c.decoder_units)
        + z_input
        + dense_train(n * steps, c.decoder_units, c.vocab_size)
    )


def review_train(config, batch: int, encoder_steps: int, steps: int) -> int:
    """One training step of :class:`scratchvae.models.review.ReviewVAE`: its sentence VAE and the head."""
    sentence = sentence_train(config.sentence_config(), batch, steps, encoder_steps=encoder_steps)
    return sentence + dense_train(batch, config.latent_dim, 1)


def mnist_train(input_dim: int, hidden: int, latent: int, batch: int) -> int:
    """One training step of :class:`scratchvae.models.mnist.DenseVAE`; the first layer reads the data,
    whose gradient no one needs (forward and dW only)."""
    return (
        2 * gemm(batch, input_dim, hidden)
        + 2 * dense_train(batch, hidden, latent)
        + dense_train(batch, latent, hidden)
        + dense_train(batch, hidden, input_dim)
    )
