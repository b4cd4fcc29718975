"""Losses: each returns a scalar from ``forward`` and the input gradients from ``backward``.

The scalar is a 0-d array of the backend (a NumPy scalar on the CPU, a device scalar on a GPU):
``float()`` reads it, and a model reads all its terms back at once (``backend.to_floats``), so
that a training step waits for the device once.

``backward(dloss=1.0)`` returns the gradient of ``dloss * loss`` with respect to the
inputs of the last ``forward`` call.  Every loss averages over the batch, so a loss
value is "per example" and does not change with the batch size.

A batch may be computed in shards (its rows split across cores, :mod:`scratchvae.training.cores`,
or across ranks, :mod:`scratchvae.training.distributed`): each shard runs forward and backward
on its own rows, and their gradients, weighted by each shard's share of the batch, add up to the
batch's.  That holds for a mean over examples; a loss that needs a statistic of the whole batch
(the batch-mean KL of each latent unit under free bits, the batch's total weight of labelled
examples) asks its ``batch_mean`` argument for it:

    batch_mean(x) -> the mean over the whole batch of a quantity whose mean over this shard is x

:func:`whole_batch` (the default: the shard is the batch) returns x; a sharded step's averages
the shards' x by their shares of the batch.  Every shard makes the same calls in the same order.
"""

from __future__ import annotations

from collections.abc import Callable

from .layers.base import Array, Layer

BatchMean = Callable[[Array], Array]


def whole_batch(x: Array) -> Array:
    """The batch mean of a quantity whose mean over the computed rows is x, when those rows are the batch."""
    return x


SEQUENCE_REDUCTIONS = ("sum", "mean")


class SparseSoftmaxCrossEntropy(Layer):
    """Softmax cross-entropy over a vocabulary, for integer targets with a padding mask.

    forward(logits (B, T, V), targets (B, T) int, mask (B, T) bool or None) -> scalar
        nll[b, t] = logsumexp(logits[b, t]) - logits[b, t, targets[b, t]]
        reduction "sum":  sum over unmasked steps, mean over the batch (nats per sequence)
        reduction "mean": mean over unmasked tokens (nats per token)
    backward: dlogits[b, t] = w[b, t] * (softmax(logits[b, t]) - onehot(targets[b, t]))
        with w the weight of each token in the reduction (0 at padding).

    Targets stay ids: no one-hot array is ever built.  With ``overwrite_logits=True``
    forward writes the gradient into the logits buffer (the fused kernel's in-place
    mode), so a batch keeps one (B, T, V) block alive; the model code uses that.
    ``self.nll`` keeps the per-token losses (B, T) for metrics.
    """

    def __init__(self, reduction: str = "sum", **kwargs) -> None:
        super().__init__(**kwargs)
        if reduction not in SEQUENCE_REDUCTIONS:
            raise ValueError(f"unknown reduction {reduction!r}; choose one of {SEQUENCE_REDUCTIONS}")
        self.reduction = reduction

    def token_weights(self, targets: Array, mask: Array | None) -> Array:
        """(B, T) weight of each token's nll in the loss."""
        xp = self.xp
        n, T = targets.shape
        w = xp.ones((n, T), dtype=self.dtype) if mask is None else mask.astype(self.dtype)
        if self.reduction == "sum":
            return w / n
        return w / xp.maximum(w.sum(), 1.0)

    def forward(
        self, logits: Array, targets: Array, mask: Array | None = None, *, overwrite_logits: bool = False
    ) -> Array:
        n, T, V = logits.shape
        buf = logits if overwrite_logits else logits.copy()
        w = self.token_weights(targets, mask)
        nll = self.backend.softmax_cross_entropy(buf.reshape(n * T, V), targets.reshape(-1), w.reshape(-1))
        self.nll = nll.reshape(n, T)
        self.dlogits = buf
        return (self.nll * w).sum()

    def backward(self, dloss: float = 1.0) -> Array:
        return self.dlogits if dloss == 1.0 else self.dlogits * dloss


class BinaryCrossEntropy(Layer):
    """Sigmoid binary cross-entropy from logits, mean over the batch.

    forward(logits (B, K), targets (B, K) in [0, 1], weights (B,) or None) -> scalar
        l = softplus(x) - y x = -[y log p + (1 - y) log(1 - p)],  p = sigmoid(x)
        sum_features=False: mean over all K (Keras ``binary_crossentropy``), then over the batch
        sum_features=True:  sum over the K features (a Bernoulli NLL per example)
        ``weights`` scale each example (0 drops it: unlabelled reviews in semi-supervised
        training); the batch mean divides by the batch's total weight, which a shard of the
        batch learns from ``batch_mean`` (see the module docstring) and keeps, in its own
        terms (its rows times the batch's mean weight), as ``self.total_weight``.
    backward: dl/dx = (sigmoid(x) - y) times each element's weight
    Working from logits avoids log(0): p = sigmoid(x) itself is never logged.
    """

    def __init__(self, sum_features: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sum_features = sum_features

    def forward(
        self, logits: Array, targets: Array, weights: Array | None = None, *, batch_mean: BatchMean = whole_batch
    ) -> Array:
        xp = self.xp
        n, k = logits.shape
        if weights is None:
            w = xp.ones(n, dtype=self.dtype)
            self.total_weight = w.sum()  # an array of the model's dtype: a float32 gradient stays float32
        else:
            w = weights.astype(self.dtype)
            self.total_weight = n * batch_mean(w.mean())
        per_example = w / xp.maximum(self.total_weight, 1e-12)
        if not self.sum_features:
            per_example = per_example / k
        self.w = per_example[:, None]
        self.logits, self.targets = logits, targets
        loss = self.backend.softplus(logits) - targets * logits
        self.per_example = loss.sum(axis=1) if self.sum_features else loss.mean(axis=1)
        return (loss * self.w).sum()

    def backward(self, dloss: float = 1.0) -> Array:
        p = 0.5 * (self.xp.tanh(0.5 * self.logits) + 1.0)  # sigmoid
        return (p - self.targets) * (self.w * dloss)


class BernoulliNLL(BinaryCrossEntropy):
    """-log p(x | logits) of independent Bernoulli pixels: BCE summed over features."""

    def __init__(self, **kwargs) -> None:
        super().__init__(sum_features=True, **kwargs)


class GaussianKL(Layer):
    """KL( N(mean, exp(logvar)) || N(0, I) ), summed over latent units, mean over the batch.

    forward(mean, logvar (B, Z)) -> scalar
        kl[b] = -1/2 sum_j (1 + logvar - mean^2 - exp(logvar))
    backward: dkl/dmean = mean / B,   dkl/dlogvar = (exp(logvar) - 1) / (2 B)
    ``free_bits`` > 0 (nats per latent unit, Kingma et al. 2016): a unit whose batch-mean
    KL is below the threshold contributes the constant threshold instead, with no
    gradient, so the optimiser stops pushing it to the prior.  A shard of a batch learns
    those batch means from ``batch_mean`` (see the module docstring).
    ``self.per_unit`` keeps the batch-mean KL of each unit (Z,), ``self.per_example`` (B,).
    """

    def __init__(self, free_bits: float = 0.0, **kwargs) -> None:
        super().__init__(**kwargs)
        self.free_bits = free_bits

    def forward(self, mean: Array, logvar: Array, *, batch_mean: BatchMean = whole_batch) -> Array:
        xp = self.xp
        self.mean, self.var = mean, xp.exp(logvar)
        kl = -0.5 * (1.0 + logvar - mean * mean - self.var)  # (B, Z)
        self.per_example = kl.sum(axis=1)
        self.per_unit = kl.mean(axis=0)
        if self.free_bits > 0:
            self.per_unit = batch_mean(self.per_unit)
            self.active = (self.per_unit > self.free_bits).astype(self.dtype)  # (Z,)
            clamped = xp.maximum(self.per_unit, self.free_bits)
            return clamped.sum()
        self.active = None
        return self.per_example.mean()

    def backward(self, dloss: float = 1.0) -> tuple[Array, Array]:
        scale = dloss / self.mean.shape[0]
        if self.active is not None:
            scale = scale * self.active
        return self.mean * scale, 0.5 * (self.var - 1.0) * scale
