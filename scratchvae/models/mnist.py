"""The dense MNIST VAE of Louis Tiao's "modular dense VAE in Keras" tutorial.

    x (B, 784) -> Dense(256, relu) -> mean, log_var (B, Z)      encoder q(z | x)
    KL( q(z | x) || N(0, I) )                                    its own module, adds its term
    z = mean + exp(log_var / 2) * eps,   eps (B, Z) an input     reparameterisation
    z -> Dense(256, relu) -> Dense(784) logits                   decoder p(x | z), Bernoulli
    loss = Bernoulli NLL summed over pixels + KL                 negative ELBO, nats per image

The tutorial's decoder ends in Dense(784, sigmoid) followed by binary cross-entropy; here
the last layer returns the logits and the likelihood is computed from them (the same
function, without log(0) and without Keras's clipping of p to [1e-7, 1 - 1e-7]).

Besides the training loss the model gives the importance-weighted bound of Burda et al.
(2016), :meth:`DenseVAE.iw_nll`, which tightens towards -log p(x) as K grows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import numpy as np
from numpy.typing import DTypeLike

from ..backend import NumpyBackend
from ..layers import Array, Dense, GaussianSample, Layer
from ..losses import BatchMean, BernoulliNLL, GaussianKL, whole_batch
from .contract import check_kl_weight


class DenseEncoder(Layer):
    """q(z | x) = N(mean, diag exp(log_var)).

    forward:  x (B, D) -> h = relu(x W_h + b_h) (B, H) -> mean = h W_m + b_m, log_var = h W_v + b_v (B, Z)
    backward: dmean, dlog_var (B, Z) -> dx (B, D), or None with ``input_grad=False``
        dh = dmean W_m^T + dlog_var W_v^T   (h feeds both heads), then back through the hidden layer
    """

    def __init__(self, input_dim: int, hidden: int, latent_dim: int, *, rng: np.random.Generator, **kwargs) -> None:
        super().__init__(**kwargs)
        kw = dict(rng=rng, backend=self.backend, dtype=self.dtype)
        self.hidden = self.add_child("hidden", Dense(input_dim, hidden, "relu", **kw))
        self.mean = self.add_child("mean", Dense(hidden, latent_dim, **kw))
        self.log_var = self.add_child("log_var", Dense(hidden, latent_dim, **kw))

    def forward(self, x: Array) -> tuple[Array, Array]:
        h = self.hidden.forward(x)
        return self.mean.forward(h), self.log_var.forward(h)

    def backward(self, dmean: Array, dlog_var: Array, *, input_grad: bool = True) -> Array | None:
        dh = self.mean.backward(dmean) + self.log_var.backward(dlog_var)
        return self.hidden.backward(dh, input_grad=input_grad)


class DenseDecoder(Layer):
    """p(x | z) = Bernoulli(sigmoid(logits)), independently per pixel.

    forward:  z (N, Z) -> relu(z W_h + b_h) (N, H) -> logits (N, D)
    backward: dlogits (N, D) -> dz (N, Z)
    """

    def __init__(self, latent_dim: int, hidden: int, output_dim: int, *, rng: np.random.Generator, **kwargs) -> None:
        super().__init__(**kwargs)
        kw = dict(rng=rng, backend=self.backend, dtype=self.dtype)
        self.hidden = self.add_child("hidden", Dense(latent_dim, hidden, "relu", **kw))
        self.logits = self.add_child("logits", Dense(hidden, output_dim, **kw))

    def forward(self, z: Array) -> Array:
        return self.logits.forward(self.hidden.forward(z))

    def backward(self, dlogits: Array) -> Array:
        return self.hidden.backward(self.logits.backward(dlogits))

    def probabilities(self, z: Array) -> Array:
        """The pixel means sigmoid(logits) (N, D): the decoded images."""
        return 0.5 * (self.xp.tanh(0.5 * self.forward(z)) + 1.0)  # sigmoid without overflow


class DenseVAE(Layer):
    """The whole model; ``forward`` returns the loss terms, ``backward`` fills every gradient.

    forward(x (B, D) in [0, 1], eps (B, Z), *, kl_weight=1.0, batch_mean=whole_batch)
        -> {"loss": nll + kl_weight * kl, "nll", "kl"}
        each term a float in nats per image (batch mean); the contract of :mod:`scratchvae.models.contract`
    backward(dloss=1.0): gradients of dloss * loss, accumulated into every parameter
        dlogits = NLL'  ->  decoder  ->  dz  ->  (dmean, dlog_var) of the sample
        + (dmean, dlog_var) of the KL  ->  encoder
    After ``forward``, ``self.nll.per_example`` and ``self.kl.per_example`` (B,) hold the
    terms of each image.  Parameter paths: ``encoder/hidden/kernel``, ``decoder/logits/bias``, ...
    """

    def __init__(
        self, input_dim: int = 784, hidden: int = 256, latent_dim: int = 2, *, rng: np.random.Generator, **kwargs
    ) -> None:
        super().__init__(**kwargs)
        self.input_dim, self.hidden_dim, self.latent_dim = input_dim, hidden, latent_dim
        kw = dict(backend=self.backend, dtype=self.dtype)
        self.encoder = self.add_child("encoder", DenseEncoder(input_dim, hidden, latent_dim, rng=rng, **kw))
        self.kl = self.add_child("kl", GaussianKL(**kw))
        self.sample = self.add_child("sample", GaussianSample(**kw))
        self.decoder = self.add_child("decoder", DenseDecoder(latent_dim, hidden, input_dim, rng=rng, **kw))
        self.nll = self.add_child("nll", BernoulliNLL(**kw))

    def config(self) -> dict:
        """The constructor arguments (for checkpoints)."""
        return {"input_dim": self.input_dim, "hidden": self.hidden_dim, "latent_dim": self.latent_dim}

    # ------------------------------------------------------------------ training
    def forward(
        self, x: Array, eps: Array, *, kl_weight: float = 1.0, batch_mean: BatchMean = whole_batch
    ) -> dict[str, float]:
        check_kl_weight(kl_weight)
        mean, log_var = self.encoder.forward(x)
        kl = self.kl.forward(mean, log_var, batch_mean=batch_mean)  # the KL module adds its term to the loss
        z = self.sample.forward(mean, log_var, eps)
        nll = self.nll.forward(self.decoder.forward(z), x)
        self.kl_weight = kl_weight
        terms = self.backend.to_floats({"nll": nll, "kl": kl})  # one read from the device
        return {"loss": terms["nll"] + kl_weight * terms["kl"], **terms}

    def backward(self, dloss: float = 1.0) -> None:
        dz = self.decoder.backward(self.nll.backward(dloss))
        dmean, dlog_var = self.sample.backward(dz)
        kl_dmean, kl_dlog_var = self.kl.backward(dloss * self.kl_weight)
        # x is the data (and the likelihood's target): nobody needs its gradient, so it is not computed
        self.encoder.backward(dmean + kl_dmean, dlog_var + kl_dlog_var, input_grad=False)

    # ------------------------------------------------------------------ inference
    def encode(self, x: Array) -> tuple[Array, Array]:
        """x (B, D) -> (mean, log_var) (B, Z) of q(z | x)."""
        return self.encoder.forward(x)

    def decode(self, z: Array) -> Array:
        """z (N, Z) -> pixel means (N, D)."""
        return self.decoder.probabilities(z)

    def _chunks(self, x: np.ndarray, size: int) -> Iterator[Array]:
        for start in range(0, len(x), size):
            yield self.backend.asarray(x[start : start + size], dtype=self.dtype)

    def negative_elbo(
        self, x: np.ndarray, rng: np.random.Generator, batch_size: int = 500
    ) -> tuple[np.ndarray, np.ndarray]:
        """Per-image (nll, kl) on the host, (N,) each: one noise draw per image, analytic KL.

        x is a host array (N, D); the mean of nll + kl is the test loss in nats.
        """
        nll, kl = [], []
        for xb in self._chunks(x, batch_size):
            eps = self.backend.asarray(rng.standard_normal((len(xb), self.latent_dim)), dtype=self.dtype)
            self.forward(xb, eps)
            nll.append(self.backend.to_numpy(self.nll.per_example))
            kl.append(self.backend.to_numpy(self.kl.per_example))
        return np.concatenate(nll).astype(np.float64), np.concatenate(kl).astype(np.float64)

    def iw_nll(
        self,
        x: np.ndarray,
        K: int,
        rng: np.random.Generator,
        max_rows: int = 5000,
        progress: Callable[[int], object] | None = None,
    ) -> np.ndarray:
        """Importance-weighted estimate of -log p(x) per image (N,), in nats, on the host.

            w_k = p(x | z_k) p(z_k) / q(z_k | x),   z_k = mean + std * eps_k,  eps_k ~ N(0, I)
            -log p(x) ~= -(logsumexp_k log w_k - log K)
        K = 1 is a one-sample ELBO; the estimate decreases towards -log p(x) as K grows
        (Burda et al. 2016).  Images go through in chunks of max_rows // K, so at most
        ``max_rows`` decoder rows are alive at once.  ``progress(n)`` is called per chunk.
        """
        xp, Z = self.xp, self.latent_dim
        chunk = max(1, max_rows // K)
        out = []
        for xb in self._chunks(x, chunk):
            b = len(xb)
            eps = self.backend.asarray(rng.standard_normal((b, K, Z)), dtype=self.dtype)
            mean, log_var = self.encode(xb)
            z = mean[:, None, :] + xp.exp(0.5 * log_var)[:, None, :] * eps  # (b, K, Z)
            logits = self.decoder.forward(z.reshape(b * K, Z)).reshape(b, K, -1)  # (b, K, D)
            # log Bernoulli(x | sigmoid(l)) = x l - softplus(l)
            log_px = (xb[:, None, :] * logits - xp.logaddexp(0, logits)).sum(axis=2, dtype=xp.float64)
            # log N(z; 0, I) - log N(z; mean, std^2): the (2 pi)^(-Z/2) factors cancel,
            # and (z - mean) / std = eps
            log_pz = -0.5 * (z * z).sum(axis=2, dtype=xp.float64)
            log_qz = -0.5 * (eps * eps + log_var[:, None, :]).sum(axis=2, dtype=xp.float64)
            log_w = log_px + log_pz - log_qz  # (b, K)
            top = log_w.max(axis=1)
            lse = top + xp.log(xp.exp(log_w - top[:, None]).sum(axis=1))
            out.append(self.backend.to_numpy(math.log(K) - lse))
            if progress is not None:
                progress(b)
        return np.concatenate(out)


def build_model(
    config: dict, *, rng: np.random.Generator, backend: str | NumpyBackend = "numpy", dtype: DTypeLike = np.float32
) -> DenseVAE:
    """A DenseVAE from :meth:`DenseVAE.config`'s dict."""
    return DenseVAE(config["input_dim"], config["hidden"], config["latent_dim"], rng=rng, backend=backend, dtype=dtype)
