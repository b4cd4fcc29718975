"""The IMDB review VAE with a sentiment head (the Keras tutorial's model, by hand).

Architecture (children named after the Keras layers):

    ids (B, T) --embedding (mask_zero)--> (B, T, E)
      --encoder_0: Bidirectional LSTM, return_sequences--> (B, T, 2H)
      --encoder_1: Bidirectional LSTM, last output-------> (B, 2H)
      --hidden: Dense relu--> (B, D)
      --z_mean, z_log_var: Dense linear--> (B, Z) each
    z = z_mean + exp(z_log_var / 2) * eps,  eps ~ N(0, epsilon_std^2)     (reparameterisation)
      --decoder_0: LSTM fed z at every step (RepeatVector + LSTM), return_sequences--> (B, T, U)
      --decoder_1: LSTM, return_sequences--> (B, T, U)
      --output: time-distributed Dense (softmax in the loss)--> logits (B, T, V)
    z --sentiment_hidden: Dense linear--> (B, S) --sentiment_output: Dense (sigmoid in the loss)--> (B, 1)

Loss, all averaged over the batch:

    reconstruction  sum over the unmasked tokens of -log p(ids[t] | z)   (nats per review)
    kl              KL(q(z | ids) || N(0, I))
    bce             binary cross-entropy of the sentiment head (weights 0 for unlabelled reviews)
    loss = reconstruction + kl_weight * kl + sentiment_weight * bce
    (kl_weight a forward argument, the caller's to anneal; sentiment_weight a setting of the model)

The decoder reconstructs its own input: the targets are the ids, and the padding mask
from the embedding removes padded positions from the encoder, the decoder and the loss.
Only one (B, T, V) block ever exists: the logits, overwritten by their gradient.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import numpy as np
from numpy.typing import DTypeLike

from ..backend import NumpyBackend
from ..backend.numpy_backend import RECURRENT_ACTIVATIONS
from ..layers import LSTM, Array, Bidirectional, Dense, Embedding, GaussianSample, Layer
from ..losses import BatchMean, BinaryCrossEntropy, GaussianKL, SparseSoftmaxCrossEntropy, whole_batch
from .config_checks import check_non_negative, check_positive_ints
from .contract import check_kl_weight


@dataclass(frozen=True)
class IMDBVAEConfig:
    """Every size of the model. The defaults are the tutorial's (the ``seed`` preset)."""

    vocab_size: int = 1000  # ids < vocab_size, reserved ids 0 (padding) and 1 (unknown) included
    embedding_dim: int = 64
    encoder_units: int = 500  # per direction of each bidirectional LSTM
    hidden_units: int = 435
    latent_dim: int = 200
    decoder_units: int = 500
    sentiment_units: int = 100
    epsilon_std: float = 0.01  # std of the reparameterisation noise while training
    sentiment_weight: float = 1.0
    recurrent_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        check_positive_ints(self)
        if self.vocab_size < 3:
            raise ValueError(
                f"vocab_size={self.vocab_size} leaves no room for words after the "
                "reserved ids 0 (padding) and 1 (unknown); use at least 3"
            )
        if self.recurrent_activation not in RECURRENT_ACTIVATIONS:
            raise ValueError(f"recurrent_activation must be one of {RECURRENT_ACTIVATIONS}")
        check_non_negative(self, "epsilon_std", "sentiment_weight")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> IMDBVAEConfig:
        """The config of :meth:`to_dict`; keys it does not know (``kl_weight`` of older checkpoints) are ignored."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


class IMDBVAE(Layer):
    """The VAE; see the module docstring for the graph and the loss.

    forward(ids (B, T) int, labels (B,) in {0, 1}, eps (B, Z) or None, label_weights (B,) or None,
            *, kl_weight=1.0, token_accuracy=False, batch_mean=whole_batch)
        -> {"loss", "reconstruction", "kl", "bce", "accuracy"?, "nll_per_token"} as floats
        (the contract of :mod:`scratchvae.models.contract`).
        eps=None uses z = z_mean (evaluation). "accuracy" (of the sentiment head on the
        labelled reviews) is absent when the batch has none; ``token_accuracy=True`` adds the
        greedy reconstruction's accuracy over the unmasked tokens. Keeps ``last_z_mean`` (B, Z).
    backward(dloss=1.0) accumulates the gradients of ``dloss * loss`` into every parameter.
    encode(ids) -> z_mean (B, Z); reconstruct(ids) -> greedy argmax ids (B, T), 0 at padding;
    predict_sentiment(ids) -> P(positive) (B,) from z_mean.
    """

    def __init__(
        self,
        config: IMDBVAEConfig,
        *,
        rng: np.random.Generator | None = None,
        backend: str | NumpyBackend = "numpy",
        dtype: DTypeLike = np.float32,
        name: str = "imdb_vae",
    ) -> None:
        super().__init__(backend=backend, dtype=dtype, name=name)
        rng = rng if rng is not None else np.random.default_rng()
        self.config = c = config
        kw = dict(rng=rng, backend=self.backend, dtype=self.dtype)
        lstm = dict(recurrent_activation=c.recurrent_activation, **kw)
        add = self.add_child
        self.embedding = add("embedding", Embedding(c.vocab_size, c.embedding_dim, mask_zero=True, **kw))
        self.encoder_0 = add(
            "encoder_0", Bidirectional(c.embedding_dim, c.encoder_units, return_sequences=True, **lstm)
        )
        self.encoder_1 = add("encoder_1", Bidirectional(2 * c.encoder_units, c.encoder_units, **lstm))
        self.hidden = add("hidden", Dense(2 * c.encoder_units, c.hidden_units, "relu", **kw))
        self.z_mean = add("z_mean", Dense(c.hidden_units, c.latent_dim, **kw))
        self.z_log_var = add("z_log_var", Dense(c.hidden_units, c.latent_dim, **kw))
        self.decoder_0 = add("decoder_0", LSTM(c.latent_dim, c.decoder_units, return_sequences=True, **lstm))
        self.decoder_1 = add("decoder_1", LSTM(c.decoder_units, c.decoder_units, return_sequences=True, **lstm))
        self.output = add("output", Dense(c.decoder_units, c.vocab_size, **kw))
        self.sentiment_hidden = add("sentiment_hidden", Dense(c.latent_dim, c.sentiment_units, **kw))
        self.sentiment_output = add("sentiment_output", Dense(c.sentiment_units, 1, **kw))
        # Parameter-free pieces (not children: the parameter paths mirror the Keras model).
        common = dict(backend=self.backend, dtype=self.dtype)
        self.sampler = GaussianSample(**common)
        self.reconstruction_loss = SparseSoftmaxCrossEntropy("sum", **common)
        self.kl_loss = GaussianKL(**common)
        self.sentiment_loss = BinaryCrossEntropy(**common)

    # ------------------------------------------------------------------ pieces
    def _encode(self, ids):
        """ids (B, T) -> (z_mean, z_log_var, mask), each statistic (B, Z)."""
        mask = self.embedding.compute_mask(ids)
        h = self.encoder_0.forward(self.embedding.forward(ids), mask)
        h = self.hidden.forward(self.encoder_1.forward(h, mask))
        return self.z_mean.forward(h), self.z_log_var.forward(h), mask

    def _decode(self, z, mask):
        """z (B, Z), mask (B, T) -> logits (B, T, V): the batch's one vocabulary-sized block."""
        d = self.decoder_0.forward_repeated(z, mask.shape[1], mask)  # = RepeatVector(T) + LSTM
        return self.output.forward(self.decoder_1.forward(d, mask))

    def _sentiment_logit(self, z):
        """z (B, Z) -> (B, 1) logit of P(positive)."""
        return self.sentiment_output.forward(self.sentiment_hidden.forward(z))

    # ------------------------------------------------------------------ training
    def forward(
        self,
        ids: Array,
        labels: np.ndarray,
        eps: Array | None,
        label_weights: np.ndarray | None = None,
        *,
        kl_weight: float = 1.0,
        token_accuracy: bool = False,
        batch_mean: BatchMean = whole_batch,
    ) -> dict[str, float]:
        check_kl_weight(kl_weight)
        xp, c = self.xp, self.config
        mean, logvar, mask = self._encode(ids)
        self.sampled = eps is not None
        z = self.sampler.forward(mean, logvar, eps) if self.sampled else mean
        logits = self._decode(z, mask)
        # every term read back from the device at once, below; the batch's means where the shards' differ
        device = {"tokens": batch_mean(mask.sum(axis=1).mean())}  # per review
        if token_accuracy:  # before the loss overwrites the logits with their gradient
            device["token_hits"] = ((logits.argmax(axis=-1) == ids) & mask).sum()
        device["reconstruction"] = self.reconstruction_loss.forward(logits, ids, mask, overwrite_logits=True)
        device["kl"] = self.kl_loss.forward(mean, logvar, batch_mean=batch_mean)
        s_logit = self._sentiment_logit(z)
        targets = xp.asarray(labels, dtype=self.dtype).reshape(-1, 1)
        weights = None if label_weights is None else xp.asarray(label_weights, dtype=self.dtype)
        device["bce"] = self.sentiment_loss.forward(s_logit, targets, weights, batch_mean=batch_mean)
        correct = ((s_logit[:, 0] > 0) == (targets[:, 0] > 0.5)).astype(self.dtype)
        w = xp.ones_like(correct) if weights is None else weights
        device["labelled"] = self.sentiment_loss.total_weight
        device["accuracy"] = (correct * w).sum() / xp.maximum(device["labelled"], 1e-30)  # kept when labelled > 0
        terms = self.backend.to_floats(device)
        rec, kl, bce, tokens = terms["reconstruction"], terms["kl"], terms["bce"], terms["tokens"]
        out = {}
        if token_accuracy:
            out["token_accuracy"] = terms["token_hits"] / max(tokens * ids.shape[0], 1.0)
        out.update(
            loss=rec + kl_weight * kl + c.sentiment_weight * bce,
            reconstruction=rec,
            kl=kl,
            bce=bce,
            nll_per_token=rec / max(tokens, 1e-12),
        )
        if terms["labelled"] > 0:
            out["accuracy"] = terms["accuracy"]
        self.last_z_mean, self.kl_weight = mean, kl_weight
        return out

    def backward(self, dloss: float = 1.0) -> None:
        """Gradients of ``dloss`` times the last forward's ``loss``, added into every parameter."""
        c = self.config
        # reconstruction: logits -> decoder -> z (summed over the T steps that read it)
        d = self.decoder_1.backward(self.output.backward(self.reconstruction_loss.backward(dloss)))
        dz = self.decoder_0.backward(d)
        # sentiment head on z
        dz = dz + self.sentiment_hidden.backward(
            self.sentiment_output.backward(self.sentiment_loss.backward(dloss * c.sentiment_weight))
        )
        # z = mean + exp(logvar / 2) eps  (or z = mean when not sampled), plus the KL term
        dmean, dlogvar = self.sampler.backward(dz) if self.sampled else (dz, 0.0)
        kl_dmean, kl_dlogvar = self.kl_loss.backward(dloss * self.kl_weight)
        dh = self.z_mean.backward(dmean + kl_dmean) + self.z_log_var.backward(dlogvar + kl_dlogvar)
        dh = self.encoder_1.backward(self.hidden.backward(dh))
        self.embedding.backward(self.encoder_0.backward(dh))

    def noise(self, rng: np.random.Generator, batch: int) -> Array:
        """eps (batch, Z) ~ N(0, epsilon_std^2), drawn on the host so every backend agrees."""
        eps = rng.standard_normal((batch, self.config.latent_dim)) * self.config.epsilon_std
        return self.backend.asarray(eps, dtype=self.dtype)

    # ------------------------------------------------------------------ use
    def encode(self, ids: Array) -> Array:
        """ids (B, T) -> z_mean (B, Z), the deterministic code of each review."""
        return self._encode(ids)[0]

    def reconstruct(self, ids: Array) -> Array:
        """ids (B, T) -> (B, T) int: the argmax word at each unpadded step of decode(z_mean), 0 at padding."""
        mean, _, mask = self._encode(ids)
        out = self._decode(mean, mask).argmax(axis=-1)
        return self.xp.where(mask, out, 0)

    def predict_sentiment(self, ids: Array) -> Array:
        """ids (B, T) -> P(positive) (B,), from z_mean."""
        logit = self._sentiment_logit(self.encode(ids))[:, 0]
        return 0.5 * (self.xp.tanh(0.5 * logit) + 1.0)
