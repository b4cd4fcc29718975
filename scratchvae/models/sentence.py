"""The sentence VAE of Bowman et al. (2016), "Generating Sentences from a Continuous Space".

    x = w1 .. wn                          a sentence of word ids
    encoder:  e = LSTM or BiLSTM(Embed(w1 .. wn </s>))   final state, (B, U_e) or (B, 2 U_e)
              mean = e W_m + b_m,  logvar = e W_v + b_v    q(z|x) = N(mean, exp(logvar))   (B, Z)
              z = mean + exp(logvar / 2) * eps,  eps ~ N(0, I)
    decoder:  [h0, c0] = act(z W_s + b_s)       act = tanh (default) or linear
              (init_state "h": only h0 from z, c0 = 0)
              inputs Embed(<s> w1 .. wn), word-dropped: each word replaced by <unk> at rate p
              (optionally z concatenated to every input embedding: z_every_step)
              h_1 .. h_{n+1} = LSTM(Dropout(inputs), initial_state=(h0, c0))
              logits_t = Dropout(h_t) W_o + b_o          (B, T, V): the one vocabulary-sized block
              (tie_embeddings: W_o = E^T, the embedding table, which needs U_d = E)
              (Dropout at rate decoder_dropout, in training only; 0 by default)
    loss   =  -log p(x|z) + beta * KL(q(z|x) || N(0, I))  per sentence, mean over the batch
              (KL with optional free bits per latent unit)

Design choices, documented here once:
* One embedding table serves encoder and decoder: both id arrays go through one lookup,
  (2B, T), and one scatter-add backward.  It can start from pretrained (GloVe) vectors
  and be frozen (``train_embeddings=False``).
* The encoder reads the targets ``w1 .. wn </s>`` (never word-dropped), masked at padding.
* The decoder's initial state: h0 and c0 both from z through one Dense layer with tanh
  (``init_state="hc"``, ``init_activation="tanh"``): z then shapes both the output and the
  memory of the first step, and tanh keeps h0 in the range an LSTM's h lives in.
* ``tie_embeddings`` (Press & Wolf 2017; Inan et al. 2017): the output layer reads the
  embedding table transposed, so a word's input and output vectors are one vector, learnt
  from both uses; it removes the (U_d, V) output matrix, the largest in the model.
* The decoder runs unmasked: with post-padding, steps past a sentence's end cannot
  change its earlier steps, and the loss gives them weight 0.

Generation uses the single-step API: :meth:`SentenceVAE.decoder_start` and
:meth:`SentenceVAE.decoder_step` (the LSTM forward on a T=1 sequence with an initial
state), see :mod:`scratchvae.models.generate`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..data.reserved import PAD_ID
from ..layers import LSTM, Array, Bidirectional, Dense, Dropout, Embedding, GaussianSample, Layer, TiedOutput
from ..losses import BatchMean, GaussianKL, SparseSoftmaxCrossEntropy, whole_batch
from .contract import check_kl_weight

INIT_STATES = ("h", "hc")
INIT_ACTIVATIONS = ("tanh", "linear")


@dataclass(frozen=True)
class SentenceVAEConfig:
    """Sizes and options of a :class:`SentenceVAE` (Bowman et al.'s language model: 353, 191, 13)."""

    vocab_size: int
    embedding_dim: int = 353
    encoder_units: int = 191
    decoder_units: int = 191
    latent_dim: int = 13
    bidirectional: bool = False  # BiLSTM encoder, final states of both directions concatenated
    z_every_step: bool = False  # concatenate z to every decoder input embedding
    init_state: str = "hc"  # "hc": h0 and c0 from z; "h": h0 from z, c0 = 0
    init_activation: str = "tanh"  # of the Dense layer z -> initial state: "tanh" or "linear"
    free_bits: float = 0.0  # nats per latent unit (GaussianKL)
    decoder_dropout: float = 0.0  # dropout on the decoder's input embeddings and on its outputs
    train_embeddings: bool = True  # False: the embedding table stays as loaded (frozen GloVe)
    tie_embeddings: bool = False  # the output layer's weights are the embedding table, transposed
    recurrent_activation: str = "sigmoid"

    def __post_init__(self) -> None:
        if self.init_state not in INIT_STATES:
            raise ValueError(f"init_state must be one of {INIT_STATES}, not {self.init_state!r}")
        if self.init_activation not in INIT_ACTIVATIONS:
            raise ValueError(f"init_activation must be one of {INIT_ACTIVATIONS}, not {self.init_activation!r}")
        sizes = (self.vocab_size, self.embedding_dim, self.encoder_units, self.decoder_units, self.latent_dim)
        if min(sizes) < 1:
            raise ValueError(f"every size must be at least 1, got {sizes}")
        if not 0.0 <= self.decoder_dropout < 1.0:
            raise ValueError(f"decoder_dropout must be in [0, 1), got {self.decoder_dropout}")
        if self.tie_embeddings and self.embedding_dim != self.decoder_units:
            raise ValueError(
                f"tied embeddings need embedding_dim == decoder_units, got "
                f"{self.embedding_dim} and {self.decoder_units}"
            )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SentenceVAEConfig:
        return cls(**d)


class SentenceVAE(Layer):
    """Bowman et al.'s sentence VAE; see the module docstring for the equations.

    Training: ``terms = forward(targets, decoder_ids, eps, kl_weight=beta)`` then
    ``backward()`` (accumulates every parameter gradient), the contract of
    :mod:`scratchvae.models.contract`.
        targets     (B, T) int   w1 .. wn </s>, padded with 0: what the encoder reads (never
                                 word-dropped) and what the decoder must predict (padding has no loss)
        decoder_ids (B, T) int   <s> w1 .. wn, padded with 0, word dropout already applied
        eps         (B, Z)       standard normal noise, drawn on the host
    ``terms``: ``loss``, ``rec`` (-log p(x|z), nats per sentence), ``kl`` (the true KL per
    sentence) and ``kl_term`` (KL as optimised, with free bits), floats, means over the batch.

    Inference: :meth:`encode` -> (mean, logvar); :meth:`log_likelihood` -> log p(x|z)
    per sentence; :meth:`decoder_start` / :meth:`decoder_step` for generation.
    Children: embedding, encoder, to_mean, to_logvar, to_state, decoder, output.
    """

    def __init__(
        self,
        config: SentenceVAEConfig,
        *,
        embedding_weights: np.ndarray | None = None,
        rng: np.random.Generator | None = None,
        **kwargs,
    ) -> None:
        kwargs.setdefault("name", "sentence_vae")
        super().__init__(**kwargs)
        self.config = c = config
        rng = rng if rng is not None else np.random.default_rng()
        kw = dict(backend=self.backend, dtype=self.dtype, rng=rng)
        lstm_kw = dict(recurrent_activation=c.recurrent_activation)

        self.embedding = self.add_child(
            "embedding", Embedding(c.vocab_size, c.embedding_dim, mask_zero=True, trainable=c.train_embeddings, **kw)
        )
        if embedding_weights is not None:
            if tuple(embedding_weights.shape) != (c.vocab_size, c.embedding_dim):
                raise ValueError(
                    f"embedding weights have shape {tuple(embedding_weights.shape)}, "
                    f"expected {(c.vocab_size, c.embedding_dim)}"
                )
            self.embedding.params["embeddings"][...] = self.backend.asarray(embedding_weights, self.dtype)
        if c.bidirectional:
            encoder = Bidirectional(c.embedding_dim, c.encoder_units, **lstm_kw, **kw)
        else:
            encoder = LSTM(c.embedding_dim, c.encoder_units, **lstm_kw, **kw)
        self.encoder = self.add_child("encoder", encoder)
        encoded = c.encoder_units * (2 if c.bidirectional else 1)
        self.to_mean = self.add_child("to_mean", Dense(encoded, c.latent_dim, **kw))
        self.to_logvar = self.add_child("to_logvar", Dense(encoded, c.latent_dim, **kw))
        self.sampler = GaussianSample(backend=self.backend, dtype=self.dtype)
        state_size = c.decoder_units * (2 if c.init_state == "hc" else 1)
        self.to_state = self.add_child("to_state", Dense(c.latent_dim, state_size, c.init_activation, **kw))
        decoder_input = c.embedding_dim + (c.latent_dim if c.z_every_step else 0)
        self.decoder = self.add_child(
            "decoder", LSTM(decoder_input, c.decoder_units, return_sequences=True, **lstm_kw, **kw)
        )
        if c.tie_embeddings:
            self.output = self.add_child("output", TiedOutput(self.embedding, backend=self.backend, dtype=self.dtype))
        else:
            self.output = self.add_child("output", Dense(c.decoder_units, c.vocab_size, **kw))
        self.dropout_in = Dropout(c.decoder_dropout, backend=self.backend, dtype=self.dtype)
        self.dropout_out = Dropout(c.decoder_dropout, backend=self.backend, dtype=self.dtype)
        self.reconstruction = SparseSoftmaxCrossEntropy("sum", backend=self.backend, dtype=self.dtype)
        self.kl_loss = GaussianKL(c.free_bits, backend=self.backend, dtype=self.dtype)

    # ------------------------------------------------------------------ pieces
    def _encode_embedded(self, x, ids):
        """x (B, T, E) embedded encoder input, ids (B, T) -> mean, logvar (B, Z)."""
        e = self.encoder.forward(x, ids != PAD_ID)
        return self.to_mean.forward(e), self.to_logvar.forward(e)

    def _initial_state(self, z):
        """z (B, Z) -> (h0, c0), each (B, U_d)."""
        s = self.to_state.forward(z)
        u = self.config.decoder_units
        if self.config.init_state == "hc":
            return s[:, :u], s[:, u:]
        return s, self.xp.zeros_like(s)

    def _with_z(self, x, z):
        """x (B, T, E) -> (B, T, E + Z) with z at every step, when z_every_step."""
        if not self.config.z_every_step:
            return x
        n, T, _ = x.shape
        zs = self.xp.broadcast_to(z[:, None, :], (n, T, z.shape[1]))
        return self.xp.concatenate([x, zs], axis=-1)

    def _decode(self, x, z, state=None, rng=None, return_state: bool = False):
        """Decoder inputs x (B, T, E), z (B, Z) -> logits (B, T, V); with ``return_state``, (logits, (h_T, c_T)),
        the decoder LSTM's final state.
        With ``rng`` (training) the dropout layers draw their masks from it; without, they pass through."""
        state = self._initial_state(z) if state is None else state
        training = rng is not None
        x = self.dropout_in.forward(x, training=training, rng=rng)
        h, final_state = self.decoder.forward(self._with_z(x, z), initial_state=state, return_state=True)
        logits = self.output.forward(self.dropout_out.forward(h, training=training, rng=rng))
        return (logits, final_state) if return_state else logits

    # ------------------------------------------------------------------ training
    def forward(
        self,
        targets: Array,
        decoder_ids: Array,
        eps: Array,
        *,
        kl_weight: float = 1.0,
        rng: np.random.Generator | None = None,
        batch_mean: BatchMean = whole_batch,
    ) -> dict[str, float]:
        """loss = -log p(x|z) + kl_weight * KL, per sentence, mean over the batch; caches for backward.
        ``rng`` draws the decoder's dropout masks (training); None: no dropout.  ``batch_mean``: the
        batch's means when these rows are a shard of it (free bits; see :mod:`scratchvae.losses`)."""
        terms, _ = self.forward_terms(targets, decoder_ids, eps, kl_weight=kl_weight, rng=rng, batch_mean=batch_mean)
        terms = self.backend.to_floats(terms)  # one read from the device
        return {"loss": terms["rec"] + kl_weight * terms["kl_term"], **terms}

    def forward_terms(
        self,
        targets: Array,
        decoder_ids: Array,
        eps: Array,
        *,
        kl_weight: float = 1.0,
        rng: np.random.Generator | None = None,
        encoder_ids: Array | None = None,
        batch_mean: BatchMean = whole_batch,
    ) -> tuple[dict[str, Array], Array]:
        """:meth:`forward`'s terms ``rec``, ``kl``, ``kl_term`` as 0-d arrays, still on the device, and the
        posterior mean (B, Z): for a model that puts a head on the mean (the IMDB review VAE, which reads
        these and its head's terms in one transfer; :meth:`backward`'s ``dmean`` brings the head's gradient
        back).

        ``encoder_ids`` (B, T_e), padded with 0: what the encoder reads, when it is not ``targets`` (a review
        read whole while the decoder rebuilds its first words)."""
        check_kl_weight(kl_weight)
        xp = self.xp
        n = targets.shape[0]
        if encoder_ids is None:
            emb = self.embedding.forward(xp.concatenate([targets, decoder_ids]))  # (2B, T, E), one lookup
            encoder_x, decoder_x, encoder_ids = emb[:n], emb[n:], targets
            self.encoder_width = None
        else:  # the two widths differ: one lookup of (B, T_e + T), split by columns
            self.encoder_width = width = encoder_ids.shape[1]
            emb = self.embedding.forward(xp.concatenate([encoder_ids, decoder_ids], axis=1))
            encoder_x, decoder_x = xp.ascontiguousarray(emb[:, :width]), xp.ascontiguousarray(emb[:, width:])
        mean, logvar = self._encode_embedded(encoder_x, encoder_ids)
        z = self.sampler.forward(mean, logvar, eps)
        logits = self._decode(decoder_x, z, rng=rng)
        rec = self.reconstruction.forward(logits, targets, targets != PAD_ID, overwrite_logits=True)
        kl_term = self.kl_loss.forward(mean, logvar, batch_mean=batch_mean)
        self.kl_weight = kl_weight
        return {"rec": rec, "kl": self.kl_loss.per_example.mean(), "kl_term": kl_term}, mean

    def backward(self, dloss: float = 1.0, dmean: Array | None = None) -> None:
        """Gradients of ``dloss`` times the last forward's loss, added into every parameter's gradient;
        ``dmean`` (B, Z), if given, is the gradient of a further loss term with respect to the posterior mean."""
        xp, c = self.xp, self.config
        dh = self.dropout_out.backward(self.output.backward(self.reconstruction.backward(dloss)))  # (B, T, U_d)
        dx, (dh0, dc0) = self.decoder.backward(dh, return_state=True)  # (B, T, E [+ Z]), (B, U_d) each
        dz = self.to_state.backward(xp.concatenate([dh0, dc0], axis=1) if c.init_state == "hc" else dh0)
        if c.z_every_step:  # z fed to every step: its gradient sums over the steps
            dz = dz + dx[..., c.embedding_dim :].sum(axis=1)
            dx = dx[..., : c.embedding_dim]
        dmean_z, dlogvar = self.sampler.backward(dz)
        dmean_z = dmean_z if dmean is None else dmean_z + dmean
        dmean_kl, dlogvar_kl = self.kl_loss.backward(dloss * self.kl_weight)
        de = self.to_mean.backward(dmean_z + dmean_kl) + self.to_logvar.backward(dlogvar + dlogvar_kl)
        dx_enc = self.encoder.backward(de)
        self.embedding.backward(
            xp.concatenate([dx_enc, self.dropout_in.backward(dx)], axis=0 if self.encoder_width is None else 1)
        )

    # ------------------------------------------------------------------ inference
    def encode(self, ids: Array) -> tuple[Array, Array]:
        """ids (B, T) int (w1 .. wn </s>, padded) -> mean, logvar (B, Z) of q(z|x)."""
        return self._encode_embedded(self.embedding.forward(ids), ids)

    def log_likelihood(self, decoder_ids: Array, targets: Array, z: Array) -> Array:
        """log p(x|z) (B,) of each sentence: the sum over its tokens, </s> included."""
        xp = self.xp
        logits = self._decode(self.embedding.forward(decoder_ids), z)
        n, T, V = logits.shape
        mask = (targets != PAD_ID).astype(self.dtype)
        nll = self.backend.softmax_cross_entropy(
            logits.reshape(n * T, V), targets.reshape(-1), xp.zeros(n * T, dtype=self.dtype)
        )
        return -(nll.reshape(n, T) * mask).sum(axis=1)

    def decoder_start(self, z: Array) -> tuple[Array, Array]:
        """The decoder's initial state (h0, c0) for latent codes z (B, Z)."""
        return self._initial_state(z)

    def decoder_step(self, tokens: Array, state: tuple[Array, Array], z: Array) -> tuple[Array, tuple[Array, Array]]:
        """One decoder step: tokens (B,) int, state (h, c) -> (log-probabilities (B, V), new state).

        The LSTM's forward on a T=1 sequence with ``initial_state``; a sequence decoded
        step by step gives exactly the logits of the teacher-forced forward.
        """
        xp = self.xp
        logits, (h, c) = self._decode(self.embedding.forward(tokens[:, None]), z, state, return_state=True)
        logits = logits[:, 0]
        shift = logits.max(axis=1, keepdims=True)
        logp = logits - shift
        logp -= xp.log(xp.exp(logp).sum(axis=1, keepdims=True))
        return logp, (h.copy(), c.copy())
