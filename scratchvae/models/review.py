"""The IMDB review VAE with an autoregressive decoder: the sentence VAE plus a sentiment head on z.

    encoder_ids (B, T_e)   the review, up to max_len words, read whole by the BiLSTM encoder
    targets     (B, T)     its first decoder_len words, then </s> where the review ends within them
    decoder_ids (B, T)     <s> and the targets but the last, word-dropped by the caller
    vae = SentenceVAE (scratchvae.models.sentence): BiLSTM encoder -> q(z|x) = N(mean, exp(logvar));
          the decoder LSTM teacher-forced from [h0, c0] = tanh(z W + b), z also at every step;
          optional tied embeddings; KL with optional free bits
    sentiment:  logit = mean w + b      (a Dense(1) on the posterior mean: logistic regression on z)
    loss = rec + beta * KL_term + sentiment_weight * BCE(logit, label; weight 0 for unlabelled reviews)

Every piece but the head is the sentence VAE's (one implementation of teacher forcing, the z paths,
tied embeddings and free bits); this model adds the head and its gradient into the mean
(:meth:`SentenceVAE.backward`'s ``dmean``).  The head is linear in z, so "positive" is a half-space
of the latent space whose normal is :meth:`ReviewVAE.sentiment_direction`: the generation commands
condition on it and flip reviews across it.  Generation decodes through ``model.vae`` with
:mod:`scratchvae.models.generate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np

from ..backend.numpy_backend import RECURRENT_ACTIVATIONS
from ..layers import Array, Dense, Layer
from ..losses import BatchMean, BinaryCrossEntropy, whole_batch
from .config_checks import check_non_negative, check_positive_ints
from .sentence import INIT_STATES, SentenceVAE, SentenceVAEConfig


@dataclass(frozen=True)
class ReviewVAEConfig:
    """Sizes and options; the defaults are the ``autoregressive`` preset's (see tasks/imdb.py)."""

    vocab_size: int = 10_000  # ids < vocab_size: <pad>, <unk>, <s>, </s>, then the words
    embedding_dim: int = 256
    encoder_units: int = 256  # per direction of the BiLSTM encoder
    decoder_units: int = 256
    latent_dim: int = 32
    z_every_step: bool = True  # z concatenated to every decoder input
    init_state: str = "hc"
    free_bits: float = 0.25  # nats per latent unit (GaussianKL)
    decoder_dropout: float = 0.0
    tie_embeddings: bool = True  # needs embedding_dim == decoder_units
    sentiment_weight: float = 20.0
    recurrent_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        check_positive_ints(self)
        if self.vocab_size < 5:
            raise ValueError(
                f"vocab_size={self.vocab_size} leaves no room for words after the 4 reserved ids "
                "(<pad>, <unk>, <s>, </s>); use at least 5"
            )
        if self.recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise ValueError(f"recurrent_activation must be one of {RECURRENT_ACTIVATIONS}")
        if self.init_state not in INIT_STATES:
            raise ValueError(f"init_state must be one of {INIT_STATES}, not {self.init_state!r}")
        check_non_negative(self, "free_bits", "sentiment_weight")
        self.sentence_config()  # the sentence VAE's own checks (dropout range, tied sizes)

    def sentence_config(self) -> SentenceVAEConfig:
        """The config of the sentence VAE inside: a BiLSTM encoder and these sizes and options."""
        return SentenceVAEConfig(
            vocab_size=self.vocab_size,
            embedding_dim=self.embedding_dim,
            encoder_units=self.encoder_units,
            decoder_units=self.decoder_units,
            latent_dim=self.latent_dim,
            bidirectional=True,
            z_every_step=self.z_every_step,
            init_state=self.init_state,
            free_bits=self.free_bits,
            decoder_dropout=self.decoder_dropout,
            tie_embeddings=self.tie_embeddings,
            recurrent_activation=self.recurrent_activation,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> ReviewVAEConfig:
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class ReviewVAE(Layer):
    """See the module docstring.

    forward(encoder_ids, targets, decoder_ids, labels (B,) 0/1, eps (B, Z), label_weights (B,) or None,
            *, kl_weight=1.0, rng=None, batch_mean=whole_batch)
        -> {"loss", "rec" (nats per review), "kl" (true KL), "kl_term" (as optimised), "bce",
            "nll_per_token" (rec per target token), "accuracy" (of the head on the labelled reviews,
            absent when the batch has none)}, the contract of :mod:`scratchvae.models.contract`.
    backward(dloss=1.0) accumulates the gradients of ``dloss * loss``.
    encode(encoder_ids) -> (mean, logvar); sentiment_logit(z) -> (B,); sentiment_direction() -> (w, b).
    Children: vae (the SentenceVAE), sentiment.
    """

    def __init__(self, config: ReviewVAEConfig, *, rng: np.random.Generator | None = None, **kwargs) -> None:
        kwargs.setdefault("name", "review_vae")
        super().__init__(**kwargs)
        self.config = c = config
        rng = rng if rng is not None else np.random.default_rng()
        kw = dict(backend=self.backend, dtype=self.dtype)
        self.vae = self.add_child("vae", SentenceVAE(c.sentence_config(), rng=rng, **kw))
        self.sentiment = self.add_child("sentiment", Dense(c.latent_dim, 1, rng=rng, **kw))
        self.sentiment_loss = BinaryCrossEntropy(**kw)

    def forward(
        self,
        encoder_ids: Array,
        targets: Array,
        decoder_ids: Array,
        labels: np.ndarray,
        eps: Array,
        label_weights: np.ndarray | None = None,
        *,
        kl_weight: float = 1.0,
        rng: np.random.Generator | None = None,
        batch_mean: BatchMean = whole_batch,
    ) -> dict[str, float]:
        xp = self.xp
        terms, mean = self.vae.forward_terms(
            targets, decoder_ids, eps, kl_weight=kl_weight, rng=rng, encoder_ids=encoder_ids, batch_mean=batch_mean
        )
        logit = self.sentiment.forward(mean)  # (B, 1)
        y = xp.asarray(labels, dtype=self.dtype).reshape(-1, 1)
        weights = None if label_weights is None else xp.asarray(label_weights, dtype=self.dtype)
        bce = self.sentiment_loss.forward(logit, y, weights, batch_mean=batch_mean)
        w = xp.ones(len(labels), dtype=self.dtype) if weights is None else weights
        hits = ((logit[:, 0] > 0) == (y[:, 0] > 0.5)).astype(self.dtype)
        # the batch's means, not this shard's, so that the shards' metrics average to the batch's
        tokens = batch_mean((targets != 0).sum(axis=1).mean())  # per review
        head = {"bce": bce, "tokens": tokens, "labelled": self.sentiment_loss.total_weight, "correct": (hits * w).sum()}
        read = self.backend.to_floats({**terms, **head})  # one read from the device
        rec, kl_term, bce = read["rec"], read["kl_term"], read["bce"]
        out = {
            "loss": rec + kl_weight * kl_term + self.config.sentiment_weight * bce,
            "rec": rec,
            "kl": read["kl"],
            "kl_term": kl_term,
            "bce": bce,
            "nll_per_token": rec / max(read["tokens"], 1e-12),
        }
        if read["labelled"] > 0:
            out["accuracy"] = read["correct"] / read["labelled"]
        return out

    def backward(self, dloss: float = 1.0) -> None:
        """Gradients of ``dloss`` times the last forward's loss: the head's reach z through the mean."""
        dmean = self.sentiment.backward(self.sentiment_loss.backward(dloss * self.config.sentiment_weight))
        self.vae.backward(dloss, dmean=dmean)

    # ------------------------------------------------------------------ use
    def encode(self, encoder_ids: Array) -> tuple[Array, Array]:
        """encoder_ids (B, T) -> mean, logvar (B, Z) of q(z|x)."""
        return self.vae.encode(encoder_ids)

    def sentiment_logit(self, z: Array) -> Array:
        """z (B, Z) -> (B,) logit of P(positive)."""
        return self.sentiment.forward(z)[:, 0]

    def sentiment_direction(self) -> tuple[np.ndarray, float]:
        """(w (Z,), b) on the host, float64: logit(z) = z . w + b, so w is the normal of the boundary."""
        to_host = self.backend.to_numpy
        w = np.asarray(to_host(self.sentiment.params["kernel"]), dtype=np.float64)[:, 0]
        return w, float(np.asarray(to_host(self.sentiment.params["bias"]), dtype=np.float64)[0])
