"""What is benchmarked: kernels and full training steps, each built for every implementation.

A :class:`Case` names a piece of work (sizes, tokens per step, FLOPs) and knows how to
build a :class:`Runner` for each implementation: the scratchvae backends (numpy, numba,
cupy) and the anchors (pytorch, keras).  Every implementation gets the same data: a
batch of random ids with no padding (full-length sequences), so no implementation can
skip work the others do and PyTorch needs no packed sequences.

Model cases run the full training step the trainer runs (:func:`training_runner`): on the
CPU backends the batch split across the cores (``cores``, scratchvae.training.cores), and,
as ``numba-1proc``, the whole batch in one process on every thread (the path before the split).

Sizes:
* kernels: an LSTM forward + backward at several (batch, steps, units) with input size
  = units; the fused softmax cross-entropy (forward, gradient) at vocabularies to 20k.
* models: the IMDB VAE's ``seed`` preset (the Keras tutorial, batch 10 x 300 words) and
  its smaller ``repeat`` preset (the default before the autoregressive one), the ``default``
  (autoregressive) review VAE (batch 32, 400 words read, the first 100 rebuilt), the PTB
  sentence VAE (Bowman et al. sizes, batch 32 of a typical 24-token bucket) and the MNIST
  dense VAE (batch 100).
``quick`` shrinks everything to seconds (the smoke test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import flops
import numpy as np

from scratchvae.losses import whole_batch

OURS = ("numpy", "numba", "cupy")
ONE_PROCESS = "numba-1proc"  # model cases: the whole batch in one process on every thread (the path before #23)
ANCHORS = ("pytorch", "keras")


@dataclass
class Runner:
    """One implementation of a case: ``step()`` is timed; ``prepare()`` runs untimed before it."""

    step: Callable[[], None]
    prepare: Callable[[], None] | None = None


@dataclass
class Case:
    kind: str  # "kernel" or "model"
    name: str
    sizes: dict
    items: int  # tokens (or images) per step
    unit: str
    flops: int
    builders: dict[str, Callable[[], Runner]] = field(default_factory=dict)


class BatchTask:
    """A model case as the trainer sees a task: ``train_step(rows, rng, step)`` runs forward and backward on
    those rows of the case's fixed batch, with the step's random draws from ``rng`` (``train(model, rows, rng,
    batch_mean)`` does it on whichever model the task holds, so a worker's copy computes on its own)."""

    def __init__(self, model, train: Callable):
        self.model, self._train = model, train

    def train_step(self, rows, rng, step, *, batch_mean=whole_batch):
        return self._train(self.model, rows, rng, batch_mean)


STEP_SPLIT = None  # how a step is split across cores: None, the trainer's (CorePool); bench/cores.py sets others


def training_runner(model, train: Callable, batch: int, cores: int) -> Runner:
    """A full training step (zero_grad, forward + backward, Adam) as the trainer takes it: the batch split
    across ``cores`` cores (scratchvae.training.cores; ``cores`` 1: the whole batch in this process)."""
    from scratchvae.optim import Adam
    from scratchvae.training.cores import CorePool

    opt = Adam(model.parameters(), model.gradients(), backend=model.backend)
    pool = (STEP_SPLIT or CorePool)(BatchTask(model, train), cores)
    rows, steps = np.arange(batch), iter(range(1 << 62))

    def step():
        i = next(steps)
        model.zero_grad()
        pool.step(rows, np.random.default_rng([1, i]), i)
        pool.on_one_thread(opt.step)

    return Runner(step)


def _device(impl: str, device: str) -> str:
    return "cuda" if device == "gpu" else "cpu"


# ---------------------------------------------------------------------- kernels
def lstm_case(batch, steps, units, impls, device):
    from scratchvae.layers import LSTM

    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, steps, units)).astype(np.float32)
    dy = rng.standard_normal((batch, steps, units)).astype(np.float32)

    def ours(backend):
        layer = LSTM(
            units, units, return_sequences=True, backend=backend, dtype=np.float32, rng=np.random.default_rng(0)
        )
        xb, dyb = layer.backend.asarray(x), layer.backend.asarray(dy)

        def step():
            layer.zero_grad()
            layer.forward(xb)
            layer.backward(dyb)

        return Runner(step)

    case = Case(
        "kernel",
        f"lstm B{batch} T{steps} U{units}",
        dict(batch=batch, steps=steps, input=units, units=units),
        batch * steps,
        "tokens",
        flops.lstm_train(batch, steps, units, units),
    )
    _add(
        case,
        impls,
        ours,
        None,
        lambda: Runner(_torch().lstm_step(x, dy, units, _device("pytorch", device))),
        lambda: Runner(_keras().lstm_step(x, dy, units)),
    )
    return case


def softmax_ce_case(rows, vocab, impls, device):
    rng = np.random.default_rng(0)
    logits = (3 * rng.standard_normal((rows, vocab))).astype(np.float32)
    targets = rng.integers(0, vocab, rows)
    scale = np.full(rows, 1.0 / rows, np.float32)

    def ours(backend):
        from scratchvae.backend import get_backend

        B = get_backend(backend)
        src, buf = B.asarray(logits), B.asarray(logits)
        t, s = B.asarray(targets, dtype=np.int64), B.asarray(scale)

        def prepare():  # the kernel overwrites the logits with the gradient
            buf[...] = src

        return Runner(lambda: B.softmax_cross_entropy(buf, t, s), prepare)

    case = Case("kernel", f"softmax-ce N{rows} V{vocab}", dict(rows=rows, vocab=vocab), rows, "tokens", 0)
    _add(
        case,
        impls,
        ours,
        None,
        lambda: Runner(_torch().softmax_ce_step(logits, targets, scale, _device("pytorch", device))),
        lambda: Runner(_keras().softmax_ce_step(logits, targets, scale)),
    )
    return case


# ---------------------------------------------------------------------- models
def _ids(rng, shape, vocab):
    """Random word ids, none of them padding (0) or a reserved id."""
    return rng.integers(4, vocab, shape)


def _text_model_sizes(config, batch, steps) -> dict:
    """A text model case's parameters: the batch shape and the config's sizes (hidden only where it has one)."""
    c = config
    hidden = {"hidden": c.hidden_units} if hasattr(c, "hidden_units") else {}
    return dict(
        batch=batch,
        steps=steps,
        vocab=c.vocab_size,
        embedding=c.embedding_dim,
        encoder=c.encoder_units,
        **hidden,
        latent=c.latent_dim,
        decoder=c.decoder_units,
    )


def imdb_model_batch(batch: int = 32, steps: int = 200, *, backend="numba", dtype=np.float32, seed: int = 0, **sizes):
    """An IMDB VAE of any sizes (IMDBVAEConfig fields; the rest as the tutorial) and one random
    ragged batch, with no dataset or tokenizer: ``(model, ids, labels, eps)`` for timing
    ``model.forward(ids, labels, eps); model.backward()`` (bench/distributed.py)."""
    from scratchvae.gradcheck.model_cases import random_batch
    from scratchvae.models.imdb import IMDBVAE, IMDBVAEConfig

    rng = np.random.default_rng(seed)
    model = IMDBVAE(IMDBVAEConfig(**sizes), rng=rng, backend=backend, dtype=dtype)
    host_ids, labels = random_batch(rng, model.config, batch, steps)
    return model, model.backend.asarray(host_ids, dtype=np.int64), labels, model.noise(rng, batch)


def _model_case(name, sizes, items, unit, flop_count, build, impls, cores, torch_runner, keras_runner=None):
    """A full training step as a case.  ``build(backend) -> (model, inputs)``: our model and ``inputs(rows,
    rng)``, its forward's positional arguments for those rows of the case's fixed batch with the step's random
    draws from ``rng``; ``torch_runner`` and ``keras_runner`` (None: no Keras model) build the anchors."""

    def ours(backend, cores):
        model, inputs = build(backend)

        def train(m, rows, rng, batch_mean):
            terms = m.forward(*inputs(rows, rng), batch_mean=batch_mean)
            m.backward()
            return terms

        return training_runner(model, train, sizes["batch"], cores)

    case = Case("model", name, sizes, items, unit, flop_count)
    _add(case, impls, ours, cores, torch_runner, keras_runner)
    return case


def _noise(backend, rng, rows, latent_dim):
    """The step's eps (rows, Z) on the backend."""
    return backend.asarray(rng.standard_normal((len(rows), latent_dim)), dtype=np.float32)


def imdb_case(label, config, batch, steps, impls, device, cores=1):
    from scratchvae.models.imdb import IMDBVAE

    data_rng = np.random.default_rng(0)
    ids, labels = _ids(data_rng, (batch, steps), config.vocab_size), data_rng.integers(0, 2, batch)

    def build(backend):
        model = IMDBVAE(config, rng=np.random.default_rng(0), backend=backend, dtype=np.float32)
        ids_b = model.backend.asarray(ids, dtype=np.int64)
        return model, lambda rows, rng: (ids_b[rows], labels[rows], model.noise(rng, len(rows)))

    return _model_case(
        f"imdb-{label}",
        _text_model_sizes(config, batch, steps),
        batch * steps,
        "tokens",
        flops.imdb_train(config, batch, steps),
        build,
        impls,
        cores,
        lambda: Runner(_torch().imdb_step(config, ids, labels, np.random.default_rng(1), _device("pytorch", device))),
        lambda: Runner(_keras().imdb_step(config, ids, labels, np.random.default_rng(1))),
    )


def _teacher_forced(targets):
    """The decoder's inputs for these targets: <s> (id 2) and the targets but the last."""
    return np.concatenate([np.full((len(targets), 1), 2), targets[:, :-1]], axis=1)


def sentence_case(label, config, batch, steps, impls, device, cores=1):
    from scratchvae.models.sentence import SentenceVAE

    targets = _ids(np.random.default_rng(0), (batch, steps), config.vocab_size)
    decoder_ids = _teacher_forced(targets)

    def build(backend):
        model = SentenceVAE(config, rng=np.random.default_rng(0), backend=backend, dtype=np.float32)
        B = model.backend
        t, d = B.asarray(targets, dtype=np.int64), B.asarray(decoder_ids, dtype=np.int64)
        return model, lambda rows, rng: (t[rows], d[rows], _noise(B, rng, rows, config.latent_dim))

    data = (config, targets, decoder_ids, targets)
    return _model_case(
        label,
        _text_model_sizes(config, batch, steps),
        batch * steps,
        "tokens",
        flops.sentence_train(config, batch, steps),
        build,
        impls,
        cores,
        lambda: Runner(_torch().sentence_step(*data, np.random.default_rng(1), _device("pytorch", device))),
        lambda: Runner(_keras().sentence_step(*data, np.random.default_rng(1))),
    )


def review_case(label, config, batch, encoder_steps, steps, impls, device, cores=1):
    """The autoregressive review VAE: the encoder reads ``encoder_steps`` words, the decoder rebuilds the
    first ``steps`` of them (the preset's --max-len and --decoder-len); every review labelled."""
    from scratchvae.models.review import ReviewVAE

    data_rng = np.random.default_rng(0)
    encoder_ids = _ids(data_rng, (batch, encoder_steps), config.vocab_size)
    targets = encoder_ids[:, :steps]
    decoder_ids = _teacher_forced(targets)
    labels = data_rng.integers(0, 2, batch)

    def build(backend):
        model = ReviewVAE(config, rng=np.random.default_rng(0), backend=backend, dtype=np.float32)
        B = model.backend
        e, t, d = (B.asarray(a, dtype=np.int64) for a in (encoder_ids, targets, decoder_ids))
        Z = config.latent_dim
        return model, lambda rows, rng: (e[rows], t[rows], d[rows], labels[rows], _noise(B, rng, rows, Z))

    data = (config, encoder_ids, decoder_ids, targets, labels)
    return _model_case(
        f"imdb-{label}",
        dict(_text_model_sizes(config, batch, steps), encoder_steps=encoder_steps),
        batch * encoder_steps,  # the words read, as the other text cases count theirs
        "tokens",
        flops.review_train(config, batch, encoder_steps, steps),
        build,
        impls,
        cores,
        lambda: Runner(_torch().review_step(*data, np.random.default_rng(1), _device("pytorch", device))),
    )


def mnist_case(dims, batch, impls, device, cores=1):
    from scratchvae.models.mnist import DenseVAE

    d, h, z = dims
    x = np.random.default_rng(0).uniform(0, 1, (batch, d)).astype(np.float32)

    def build(backend):
        model = DenseVAE(d, h, z, rng=np.random.default_rng(0), backend=backend, dtype=np.float32)
        xb = model.backend.asarray(x)
        return model, lambda rows, rng: (xb[rows], _noise(model.backend, rng, rows, z))

    return _model_case(
        "mnist",
        dict(batch=batch, input=d, hidden=h, latent=z),
        batch,
        "images",
        flops.mnist_train(d, h, z, batch),
        build,
        impls,
        cores,
        lambda: Runner(_torch().mnist_step(dims, x, np.random.default_rng(1), _device("pytorch", device))),
        lambda: Runner(_keras().mnist_step(dims, x, np.random.default_rng(1))),
    )


# ---------------------------------------------------------------------- plumbing
def _torch():
    import torch_models

    return torch_models


def _keras():
    import keras_models

    return keras_models


def _add(case, impls, ours, cores, torch_builder, keras_builder):
    """The builders of a case; ``cores``: a model case's batch split (ours(backend, cores)), None for a kernel
    (ours(backend)).  A GPU step and ONE_PROCESS are not split."""
    for impl in impls:
        if impl in OURS and cores is None:
            case.builders[impl] = (lambda b: lambda: ours(b))(impl)
        elif impl in OURS:
            case.builders[impl] = (lambda b: lambda: ours(b, cores if b != "cupy" else 1))(impl)
        elif impl == ONE_PROCESS and cores is not None:
            case.builders[impl] = lambda: ours("numba", 1)
        elif impl == "pytorch":
            case.builders[impl] = torch_builder
        elif impl == "keras" and keras_builder is not None:
            case.builders[impl] = keras_builder


QUICK_IMDB = dict(  # the IMDB VAE sizes of --quick runs
    vocab_size=30,
    embedding_dim=4,
    encoder_units=6,
    hidden_units=5,
    latent_dim=3,
    decoder_units=6,
    sentiment_units=4,
)


QUICK_REVIEW = dict(  # the review VAE sizes of --quick runs (tied embeddings: embedding_dim == decoder_units)
    vocab_size=30,
    embedding_dim=6,
    encoder_units=5,
    decoder_units=6,
    latent_dim=3,
)


def all_cases(quick: bool, impls: list[str], device: str, cores: int = 1) -> list[Case]:
    """Every case, in report order; the model steps of the CPU backends split across ``cores`` cores."""
    from scratchvae.models.imdb import IMDBVAEConfig
    from scratchvae.models.review import ReviewVAEConfig
    from scratchvae.models.sentence import SentenceVAEConfig

    if quick:
        lstm_sizes, ce_sizes = [(2, 6, 8), (3, 4, 16)], [(12, 50), (12, 300)]
        imdb = [("seed", IMDBVAEConfig(**QUICK_IMDB), 2, 7), ("repeat", IMDBVAEConfig(**QUICK_IMDB), 3, 5)]
        review = (ReviewVAEConfig(**QUICK_REVIEW), 3, 7, 5)
        ptb = (SentenceVAEConfig(vocab_size=40, embedding_dim=5, encoder_units=6, decoder_units=6, latent_dim=3), 3, 6)
        mnist = ((20, 8, 2), 4)
    else:
        from scratchvae.tasks.imdb import PRESETS

        lstm_sizes = [(10, 300, 500), (32, 200, 128), (32, 24, 191), (128, 50, 512)]
        ce_sizes = [(3000, 1000), (3000, 10000), (3000, 20000)]
        imdb = [
            (name, PRESETS[name].model, PRESETS[name].batch_size, PRESETS[name].max_len) for name in ("seed", "repeat")
        ]  # the IMDBVAE presets; the default, autoregressive, is a ReviewVAE
        ar = PRESETS["autoregressive"]
        review = (ar.model, ar.batch_size, ar.max_len, ar.decoder_len)
        ptb = (
            SentenceVAEConfig(vocab_size=10000, embedding_dim=353, encoder_units=191, decoder_units=191, latent_dim=32),
            32,
            24,
        )
        mnist = ((784, 256, 2), 100)
    cases = [lstm_case(*s, impls, device) for s in lstm_sizes]
    cases += [softmax_ce_case(*s, impls, device) for s in ce_sizes]
    cases += [imdb_case(label, c, b, t, impls, device, cores) for label, c, b, t in imdb]
    cases.append(review_case("default", *review, impls, device, cores))
    cases.append(sentence_case("ptb-sentence", *ptb, impls, device, cores))
    cases.append(mnist_case(*mnist, impls, device, cores))
    return cases
