"""Worked gradient checks for learners: ``python -m scratchvae.gradcheck --explain LAYER``.

The gradient-check catalogue (:mod:`scratchvae.gradcheck.cases`) prints one number per
check.  Here one tiny instance of a layer or loss is built, and *every* entry of every
gradient is printed twice, side by side: the value the hand-written backward pass
returns (analytic) and the central finite difference (L(x + h) - L(x - h)) / 2h
(numeric), with their difference.  Seeing the two columns agree digit by digit is the
point; the derivations are in ``docs/guide/``.

A layer with output y is checked through the scalar L = sum(y * R) for a fixed random
R, so dL/dy = R; a loss is checked through its own value.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO

import numpy as np

from ..backend import BackendError
from ..layers import LSTM, Bidirectional, Dense, Dropout, Embedding, GaussianSample, RepeatVector
from ..losses import BinaryCrossEntropy, GaussianKL, SparseSoftmaxCrossEntropy
from .cases import CaseContext, layer_problem, loss_problem
from .core import STEP, TOLERANCE, Problem, Result, numeric_gradient, relative_error

GATES = "ifgo"  # Keras gate order of an LSTM's 4U columns: input, forget, cell candidate, output


@dataclass(frozen=True)
class Example:
    """A worked example: what is computed (printed above the tables) and how to build it."""

    title: str
    equations: tuple[str, ...]
    build: Callable[..., Problem]  # (backend, dtype, rng) -> Problem
    note: Callable[[str, tuple], str] | None = None  # (array name, index) -> a hint for the row


EXAMPLES: dict[str, Example] = {}
ALIASES = {
    "gaussiansample": "sample",
    "reparameterisation": "sample",
    "reparameterization": "sample",
    "repeat": "repeatvector",
    "gaussiankl": "kl",
    "crossentropy": "softmax",
    "softmaxcrossentropy": "softmax",
    "sparsesoftmaxcrossentropy": "softmax",
    "binarycrossentropy": "bce",
    "bilstm": "bidirectional",
    "lstmsteps": "lstm-steps",
    "repeatvectorlstm": "lstm-steps",
}


def example(name: str, title: str, *equations: str, note=None):
    """Decorator adding ``build(backend, dtype, rng) -> Problem`` to :data:`EXAMPLES`."""

    def wrap(build):
        EXAMPLES[name] = Example(title, equations, build, note)
        return build

    return wrap


def lstm_gate_note(units: int):
    """Row hints for LSTM parameters: which gate and unit a column of the 4U axis feeds."""

    def note(name: str, index: tuple) -> str:
        if name.split("/")[-1] in ("kernel", "recurrent_kernel", "bias"):
            j = index[-1]
            return f"gate {GATES[j // units]}, unit {j % units}"
        return ""

    return note


# ------------------------------------------------------------------ layers
@example(
    "dense",
    "Dense(3 -> 2, tanh) on a batch of 2",
    "forward:  z = x W + b,  y = tanh(z)          x (2, 3), W (3, 2), b (2,), y (2, 2)",
    "loss:     L = sum(y * R)                      so dL/dy = R",
    "backward: dz = R * (1 - y^2)   dW = x^T dz   db = sum_rows dz   dx = dz W^T",
)
def _dense(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = Dense(3, 2, "tanh", **c.kw())
    layer.params["bias"][...] = c.normal(2, scale=0.3)
    return layer_problem(
        c, layer, {"x": c.normal(2, 3)}, lambda x: layer.forward(x), lambda R: {"x": layer.backward(R)}
    )


@example(
    "embedding",
    "Embedding(5 ids -> 2 dims, mask_zero) on ids [[3, 1, 3], [2, 4, 0]]",
    "forward:  y[b, t] = W[ids[b, t]]              ids (2, 3) int, W (5, 2), y (2, 3, 2)",
    "loss:     L = sum(y * R * mask)               id 0 is padding: masked out downstream",
    "backward: dW[v] = sum of R[b, t] over the positions where ids[b, t] == v",
    "          (id 3 appears twice, so its row adds two gradients; row 0 gets none)",
)
def _embedding(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = Embedding(5, 2, mask_zero=True, **c.kw())
    ids = c.backend.asarray(np.array([[3, 1, 3], [2, 4, 0]]))
    keep = layer.compute_mask(ids)[..., None]

    def back(R):
        layer.backward(R * keep)  # fills the table's gradient; the int ids have none, so no input gradients
        return {}

    return layer_problem(c, layer, {}, lambda: layer.forward(ids) * keep, back)


@example(
    "dropout",
    "Dropout(rate 0.5) in training mode, the same mask on every call",
    "forward:  y = x * keep / (1 - rate)          keep ~ Bernoulli(0.5), x (2, 3)",
    "loss:     L = sum(y * R)",
    "backward: dx = R * keep / (1 - rate)         (dropped entries get exactly 0)",
)
def _dropout(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = Dropout(0.5, backend=c.backend, dtype=c.dtype)
    run = lambda x: layer.forward(x, training=True, rng=np.random.default_rng(3))  # noqa: E731
    return layer_problem(c, layer, {"x": c.normal(2, 3)}, run, lambda R: {"x": layer.backward(R)})


@example(
    "lstm",
    "LSTM(D=2 -> U=2), return_sequences, one sequence of T=3 steps",
    "forward:  z_t = x_t Wx + h_{t-1} Wh + b;  i, f, o = sigmoid, g = tanh of z_t's four blocks",
    "          c_t = f c_{t-1} + i g;  h_t = o tanh(c_t)      x (1, 3, 2), Wx (2, 8), Wh (2, 8), b (8,)",
    "loss:     L = sum(h * R)                      h (1, 3, 2): every step's output",
    "backward: through time, t = 3, 2, 1, carrying dh and dc; then",
    "          dWx = X^T dZ,  dWh = H_prev^T dZ,  db = sum dZ   (one product over all steps)",
    note=lstm_gate_note(2),
)
def _lstm(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = LSTM(2, 2, return_sequences=True, **c.kw())
    layer.params["bias"][...] += c.normal(8, scale=0.3)
    return layer_problem(
        c, layer, {"x": c.normal(1, 3, 2)}, lambda x: layer.forward(x), lambda R: {"x": layer.backward(R)}
    )


@example(
    "lstm-steps",
    "LSTM(D=2 -> U=2) fed one vector v at all T=3 steps (RepeatVector + LSTM fused)",
    "forward:  lstm.forward_repeated(v, 3) = lstm.forward(RepeatVector(3)(v)),  v (1, 2)",
    "          v Wx + b is computed once instead of 3 times",
    "loss:     L = sum(h * R)                      h (1, 3, 2)",
    "backward: dv = (sum_t dz_t) Wx^T,  dWx = v^T (sum_t dz_t)",
    note=lstm_gate_note(2),
)
def _lstm_steps(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = LSTM(2, 2, return_sequences=True, **c.kw())
    return layer_problem(
        c, layer, {"v": c.normal(1, 2)}, lambda v: layer.forward_repeated(v, 3), lambda R: {"v": layer.backward(R)}
    )


@example(
    "bidirectional",
    "Bidirectional(LSTM(D=2 -> U=1)), return_sequences, T=3",
    "forward:  y[:, t] = [forward_lstm(x)[:, t], backward_lstm(x reversed)[:, T-1-t]]   y (1, 3, 2)",
    "loss:     L = sum(y * R)",
    "backward: dy splits in two halves; the second is reversed in time before the backward",
    "          LSTM; dx = dx_forward + dx_backward (both LSTMs read the same x)",
    note=lstm_gate_note(1),
)
def _bidirectional(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = Bidirectional(2, 1, return_sequences=True, **c.kw())
    return layer_problem(
        c, layer, {"x": c.normal(1, 3, 2)}, lambda x: layer.forward(x), lambda R: {"x": layer.backward(R)}
    )


@example(
    "repeatvector",
    "RepeatVector(3) on a batch of 2 vectors of size 2",
    "forward:  y[:, t] = x for t = 0, 1, 2         x (2, 2), y (2, 3, 2)",
    "loss:     L = sum(y * R)",
    "backward: dx = sum_t R[:, t]                  (every copy sends its gradient back)",
)
def _repeat(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = RepeatVector(3, backend=c.backend, dtype=c.dtype)
    return layer_problem(
        c, layer, {"x": c.normal(2, 2)}, lambda x: layer.forward(x), lambda R: {"x": layer.backward(R)}
    )


@example(
    "sample",
    "GaussianSample: the reparameterisation trick, batch 1, 3 latent units",
    "forward:  z = mean + exp(logvar / 2) * eps   eps ~ N(0, 1) drawn once, held fixed",
    "loss:     L = sum(z * R)",
    "backward: dmean = R,   dlogvar = R * eps * exp(logvar / 2) / 2",
)
def _sample(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    layer = GaussianSample(backend=c.backend, dtype=c.dtype)
    eps = c.normal(1, 3)
    inputs = {"mean": c.normal(1, 3), "logvar": c.normal(1, 3, scale=0.5)}

    def back(R):
        dmean, dlogvar = layer.backward(R)
        return {"mean": dmean, "logvar": dlogvar}

    return layer_problem(c, layer, inputs, lambda mean, logvar: layer.forward(mean, logvar, eps), back)


# ------------------------------------------------------------------ losses
@example(
    "kl",
    "GaussianKL: KL(N(mean, exp(logvar)) || N(0, 1)), batch 2, 2 latent units",
    "loss:     L = (1/B) sum_b -1/2 sum_j (1 + logvar - mean^2 - exp(logvar))",
    "backward: dmean = mean / B,   dlogvar = (exp(logvar) - 1) / (2 B)",
)
def _kl(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    loss = GaussianKL(backend=c.backend, dtype=c.dtype)
    inputs = {"mean": c.normal(2, 2), "logvar": c.normal(2, 2, scale=0.7)}

    def back():
        dmean, dlogvar = loss.backward()
        return {"mean": dmean, "logvar": dlogvar}

    return loss_problem(c, inputs, lambda mean, logvar: loss.forward(mean, logvar), back)


@example(
    "softmax",
    "SparseSoftmaxCrossEntropy (sum over steps): 2 sequences of 2 steps, 3 classes",
    "loss:     L = (1/B) sum_{b,t unmasked} [logsumexp(logits[b, t]) - logits[b, t, target]]",
    "          targets [[2, 0], [1, 1]], the last step of sequence 1 is padding",
    "backward: dlogits[b, t] = w[b, t] (softmax(logits[b, t]) - onehot(target))",
    "          w = 1/B at real steps, 0 at padding (whose rows are all exactly 0)",
)
def _softmax(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    loss = SparseSoftmaxCrossEntropy("sum", backend=c.backend, dtype=c.dtype)
    targets = c.backend.asarray(np.array([[2, 0], [1, 1]]))
    mask = c.backend.asarray(np.array([[True, True], [True, False]]))
    return loss_problem(
        c,
        {"logits": c.normal(2, 2, 3, scale=2.0)},
        lambda logits: loss.forward(logits, targets, mask),
        lambda: {"logits": loss.backward()},
    )


@example(
    "bce",
    "BinaryCrossEntropy from logits: batch 2, 3 outputs",
    "loss:     L = mean over b, k of softplus(x) - y x     (= -y log p - (1 - y) log(1 - p))",
    "backward: dx = (sigmoid(x) - y) / (B K)",
)
def _bce(backend, dtype, rng):
    c = CaseContext(backend, dtype, rng)
    loss = BinaryCrossEntropy(backend=c.backend, dtype=c.dtype)
    targets = c.uniform(2, 3)
    return loss_problem(
        c,
        {"logits": c.normal(2, 3, scale=2.0)},
        lambda logits: loss.forward(logits, targets),
        lambda: {"logits": loss.backward()},
    )


# ------------------------------------------------------------------ running
def find_example(name: str) -> str:
    """The example called ``name``: case, spaces, '-' and '_' do not matter; a few aliases work."""
    key = re.sub(r"[\s_-]", "", name.lower())
    key = ALIASES.get(key, key)
    for candidate in EXAMPLES:
        if candidate.replace("-", "") == key.replace("-", ""):
            return candidate
    raise KeyError(f"no worked example for {name!r}; choose one of {', '.join(EXAMPLES)}")


def explain(
    name: str, backend="numpy", dtype="float64", seed: int = 0, out: TextIO | None = None, h: float = STEP
) -> Result:
    """Print the worked example ``name`` (see :func:`find_example`) and return its result."""
    out = out if out is not None else sys.stdout
    key = find_example(name)
    ex = EXAMPLES[key]
    problem = ex.build(backend, dtype, np.random.default_rng(seed))
    to_numpy = problem.backend.to_numpy if problem.backend is not None else np.asarray
    analytic = {k: to_numpy(v) for k, v in problem.gradients().items()}

    print(f"{ex.title}  [backend {backend}, {dtype}]", file=out)
    for line in ex.equations:
        print(f"  {line}", file=out)
    print(f"\nanalytic: the backward pass.  numeric: (L(x + h) - L(x - h)) / 2h, h = {h:g}.", file=out)

    result = Result(key)
    for array_name, array in problem.arrays.items():
        flat = np.arange(array.size)
        numeric = numeric_gradient(problem.loss, array, flat, h)
        exact = analytic[array_name].reshape(-1).astype(np.float64)
        result.errors[array_name] = relative_error(exact, numeric)
        _print_table(out, array_name, tuple(array.shape), exact, numeric, ex.note)
        print(f"  relative error {result.errors[array_name]:.2e}", file=out)

    verdict = "analytic and numeric gradients agree" if result.passed else "analytic and numeric gradients DISAGREE"
    print(f"\nverdict: {verdict} (max relative error {result.max_error:.2e}, bound {TOLERANCE:g})", file=out)
    if np.dtype(dtype) == np.float32 and not result.passed:
        print("(in float32 finite differences are only good to about 1e-2: use float64 to check)", file=out)
    return result


def _print_table(out, name, shape, analytic, numeric, note) -> None:
    rows = []
    for k in range(len(analytic)):
        index = tuple(int(i) for i in np.unravel_index(k, shape))
        hint = note(name, index) if note is not None else ""
        rows.append((f"{name}[{', '.join(map(str, index))}]", analytic[k], numeric[k], hint))
    width = max(len("index"), *(len(r[0]) for r in rows))
    print(f"\n{name} {shape}", file=out)
    print(f"  {'index':<{width}}  {'analytic':>16}  {'numeric':>16}  {'abs diff':>8}", file=out)
    for label, a, n, hint in rows:
        tail = f"  {hint}" if hint else ""
        print(f"  {label:<{width}}  {a:16.10f}  {n:16.10f}  {abs(a - n):8.1e}{tail}", file=out)


def explain_main(name: str, backend="numpy", dtype="float64", seed: int = 0) -> int:
    """CLI entry: 0 when the gradients agree, 1 when not, 2 for an unknown name or backend."""
    try:
        result = explain(name, backend, dtype, seed)
    except (KeyError, BackendError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) else str(exc)
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0 if result.passed else 1
