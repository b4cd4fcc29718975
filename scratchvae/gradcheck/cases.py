"""The gradient-check catalogue: one small problem per layer, option and loss.

Each case builds a tiny instance on a backend and returns a :class:`Problem`.  A layer
with output y is checked through the scalar L = sum(y * R) for a fixed random R, so
dL/dy = R exercises every output entry with a different weight; a loss is checked
through its own value.  The whole models' cases are in :mod:`scratchvae.gradcheck.model_cases`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..backend import get_backend
from ..layers import LSTM, Bidirectional, Dense, Dropout, Embedding, GaussianSample, Layer, RepeatVector
from ..losses import BernoulliNLL, BinaryCrossEntropy, GaussianKL, SparseSoftmaxCrossEntropy
from .core import Problem

Builder = Callable[..., Problem]
CASES: dict[str, Builder] = {}


def register(name: str):
    """Decorator adding a case ``builder(backend, dtype, rng) -> Problem`` to the catalogue."""

    def wrap(builder: Builder) -> Builder:
        CASES[name] = builder
        return builder

    return wrap


# ----------------------------------------------------------------- helpers
class CaseContext:
    """Backend, dtype and seeded host RNG shared by a case's arrays."""

    def __init__(self, backend, dtype, rng):
        self.backend, self.dtype, self.rng = get_backend(backend), np.dtype(dtype), rng
        self.xp = self.backend.xp

    def normal(self, *shape, scale=1.0):
        return self.backend.asarray(scale * self.rng.standard_normal(shape), dtype=self.dtype)

    def uniform(self, *shape, low=0.0, high=1.0):
        return self.backend.asarray(self.rng.uniform(low, high, shape), dtype=self.dtype)

    def ids(self, *shape, high):
        return self.backend.asarray(self.rng.integers(1, high, shape), dtype=np.int64)

    def kw(self):
        return dict(backend=self.backend, dtype=self.dtype, rng=self.rng)


def _dot(xp, y, r) -> float:
    return float(xp.sum(y * r))


def layer_problem(ctx: CaseContext, layer, inputs: dict, run, back) -> Problem:
    """Problem for L = sum(run(**inputs) * R): ``back(R)`` must return {input: dL/dinput}.

    Parameters of ``layer`` are checked along with the named inputs.
    """
    R = ctx.normal(*run(**inputs).shape)

    def loss():
        return _dot(ctx.xp, run(**inputs), R)

    def gradients():
        layer.zero_grad()
        run(**inputs)
        return {**back(R), **layer.gradients()}

    return Problem(loss, gradients, {**inputs, **layer.parameters()}, ctx.backend)


def _mask(ctx, n, T, padding="post"):
    """(B, T) bool mask with random lengths 1..T, padded at the end or the start."""
    lengths = ctx.rng.integers(1, T + 1, n)
    lengths[0] = T  # one full row
    pos = np.arange(T)[None, :]
    host = pos < lengths[:, None] if padding == "post" else pos >= (T - lengths)[:, None]
    return ctx.backend.asarray(host, dtype=bool)


# ----------------------------------------------------------------- layers
def _dense_case(activation, time_distributed=False):
    def build(backend, dtype, rng):
        c = CaseContext(backend, dtype, rng)
        layer = Dense(4, 3, activation, **c.kw())
        layer.params["bias"][...] = c.normal(3, scale=0.3)
        x = c.normal(2, 5, 4) if time_distributed else c.normal(3, 4)
        return layer_problem(c, layer, {"x": x}, lambda x: layer.forward(x), lambda R: {"x": layer.backward(R)})

    return build


for _act in ("linear", "relu", "elu", "tanh", "sigmoid", "hard_sigmoid"):
    register(f"Dense {_act}")(_dense_case(_act))
register("Dense time-distributed")(_dense_case("tanh", time_distributed=True))


@register("Embedding mask_zero")
def _embedding(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = Embedding(7, 3, mask_zero=True, **c.kw())
    ids = c.ids(3, 5, high=7)
    ids[0, -2:] = 0  # padding: consumers ignore it (the mask), and row 0 gets no gradient
    keep = layer.compute_mask(ids)[..., None]

    def back(R):
        layer.backward(R * keep)  # fills the table's gradient; the int ids have none, so no input gradients
        return {}

    return layer_problem(c, layer, {}, lambda: layer.forward(ids) * keep, back)


@register("Dropout training")
def _dropout(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = Dropout(0.4, backend=c.backend, dtype=c.dtype)
    x = c.normal(4, 6)
    run = lambda x: layer.forward(x, training=True, rng=np.random.default_rng(7))  # same mask each call
    return layer_problem(c, layer, {"x": x}, run, lambda R: {"x": layer.backward(R)})


@register("RepeatVector")
def _repeat(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = RepeatVector(4, backend=c.backend, dtype=c.dtype)
    return layer_problem(
        c, layer, {"x": c.normal(3, 2)}, lambda x: layer.forward(x), lambda R: {"x": layer.backward(R)}
    )


@register("GaussianSample")
def _sample(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = GaussianSample(backend=c.backend, dtype=c.dtype)
    eps = c.normal(3, 4)
    inputs = {"mean": c.normal(3, 4), "logvar": c.normal(3, 4, scale=0.5)}

    def back(R):
        dmean, dlogvar = layer.backward(R)
        return {"mean": dmean, "logvar": dlogvar}

    return layer_problem(c, layer, inputs, lambda mean, logvar: layer.forward(mean, logvar, eps), back)


def _lstm_case(T=5, mask=None, **options):
    def build(backend, dtype, rng):
        c = CaseContext(backend, dtype, rng)
        layer = LSTM(3, 4, **options, **c.kw())
        layer.params["bias"][...] += c.normal(16, scale=0.3)
        m = None if mask is None else _mask(c, 3, T, mask)
        return layer_problem(
            c, layer, {"x": c.normal(3, T, 3)}, lambda x: layer.forward(x, m), lambda R: {"x": layer.backward(R)}
        )

    return build


register("LSTM last output")(_lstm_case())
register("LSTM return_sequences")(_lstm_case(return_sequences=True))
register("LSTM go_backwards")(_lstm_case(go_backwards=True, return_sequences=True))
register("LSTM hard_sigmoid (Keras 2)")(_lstm_case(return_sequences=True, recurrent_activation="hard_sigmoid"))
register("LSTM mask post-padding")(_lstm_case(mask="post", return_sequences=True))
register("LSTM mask pre-padding, last output")(_lstm_case(mask="pre"))
register("LSTM mask go_backwards")(_lstm_case(mask="post", go_backwards=True))
register("LSTM mask zero_output_for_mask")(_lstm_case(mask="post", return_sequences=True, zero_output_for_mask=True))
register("LSTM one step")(_lstm_case(T=1, return_sequences=True))


@register("LSTM initial and final state")
def _lstm_state(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = LSTM(3, 4, return_sequences=True, **c.kw())
    Rh, Rc = c.normal(2, 4), c.normal(2, 4)
    m = _mask(c, 2, 5, "pre")

    def run(x, h0, c0):
        y, (h, cT) = layer.forward(x, m, initial_state=(h0, c0), return_state=True)
        return c.xp.concatenate([y.reshape(-1), (h * Rh).reshape(-1), (cT * Rc).reshape(-1)])

    def back(R):
        n = 2 * 5 * 4
        dx, (dh0, dc0) = layer.backward(
            R[:n].reshape(2, 5, 4),
            return_state=True,
            d_state=(Rh * R[n : n + 8].reshape(2, 4), Rc * R[n + 8 :].reshape(2, 4)),
        )
        return {"x": dx, "h0": dh0, "c0": dc0}

    inputs = {"x": c.normal(2, 5, 3), "h0": c.normal(2, 4, scale=0.5), "c0": c.normal(2, 4, scale=0.5)}
    return layer_problem(c, layer, inputs, run, back)


@register("LSTM constant input (forward_repeated)")
def _lstm_constant(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = LSTM(3, 4, return_sequences=True, **c.kw())
    return layer_problem(
        c, layer, {"v": c.normal(2, 3)}, lambda v: layer.forward_repeated(v, 6), lambda R: {"v": layer.backward(R)}
    )


@register("LSTM stacked x2")
def _lstm_stacked(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    stack = Layer(backend=c.backend, dtype=c.dtype, name="stack")  # a plain container
    first = stack.add_child("lstm_0", LSTM(3, 4, return_sequences=True, **c.kw()))
    second = stack.add_child("lstm_1", LSTM(4, 2, **c.kw()))
    m = _mask(c, 3, 5)
    return layer_problem(
        c,
        stack,
        {"x": c.normal(3, 5, 3)},
        lambda x: second.forward(first.forward(x, m), m),
        lambda R: {"x": first.backward(second.backward(R))},
    )


def _bidirectional_case(return_sequences, mask):
    def build(backend, dtype, rng):
        c = CaseContext(backend, dtype, rng)
        layer = Bidirectional(3, 4, return_sequences=return_sequences, **c.kw())
        m = _mask(c, 3, 5) if mask else None
        return layer_problem(
            c, layer, {"x": c.normal(3, 5, 3)}, lambda x: layer.forward(x, m), lambda R: {"x": layer.backward(R)}
        )

    return build


register("Bidirectional return_sequences")(_bidirectional_case(True, False))
register("Bidirectional last output, mask")(_bidirectional_case(False, True))
register("Bidirectional return_sequences, mask")(_bidirectional_case(True, True))


# ----------------------------------------------------------------- losses
def loss_problem(c: CaseContext, inputs: dict, run, back) -> Problem:
    """Problem for L = run(**inputs): ``back()`` returns {input: dL/dinput} after a forward."""

    def gradients():
        run(**inputs)
        return back()

    return Problem(lambda: float(run(**inputs)), gradients, inputs, c.backend)  # a loss is a 0-d array


def _softmax_xent_case(reduction):
    def build(backend, dtype, rng):
        c = CaseContext(backend, dtype, rng)
        loss = SparseSoftmaxCrossEntropy(reduction, backend=c.backend, dtype=c.dtype)
        targets = c.ids(3, 4, high=6)
        mask = _mask(c, 3, 4)
        return loss_problem(
            c,
            {"logits": c.normal(3, 4, 6, scale=2.0)},
            lambda logits: loss.forward(logits, targets, mask),
            lambda: {"logits": loss.backward()},
        )

    return build


register("SparseSoftmaxCrossEntropy sum, mask")(_softmax_xent_case("sum"))
register("SparseSoftmaxCrossEntropy mean, mask")(_softmax_xent_case("mean"))


def _bce_case(cls, weighted):
    def build(backend, dtype, rng):
        c = CaseContext(backend, dtype, rng)
        loss = cls(backend=c.backend, dtype=c.dtype)
        targets = c.uniform(4, 3)
        weights = c.backend.asarray([1.0, 0.0, 1.0, 1.0], dtype=c.dtype) if weighted else None
        return loss_problem(
            c,
            {"logits": c.normal(4, 3, scale=3.0)},
            lambda logits: loss.forward(logits, targets, weights),
            lambda: {"logits": loss.backward()},
        )

    return build


register("BinaryCrossEntropy")(_bce_case(BinaryCrossEntropy, False))
register("BinaryCrossEntropy weighted (semi-supervised)")(_bce_case(BinaryCrossEntropy, True))
register("BernoulliNLL")(_bce_case(BernoulliNLL, False))


def _kl_case(free_bits):
    def build(backend, dtype, rng):
        c = CaseContext(backend, dtype, rng)
        loss = GaussianKL(free_bits, backend=c.backend, dtype=c.dtype)
        inputs = {"mean": c.normal(3, 5), "logvar": c.normal(3, 5, scale=0.7)}

        def back():
            dmean, dlogvar = loss.backward()
            return {"mean": dmean, "logvar": dlogvar}

        return loss_problem(c, inputs, lambda mean, logvar: loss.forward(mean, logvar), back)

    return build


register("GaussianKL")(_kl_case(0.0))
register("GaussianKL free bits")(_kl_case(0.5))
