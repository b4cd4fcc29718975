"""The sentence VAE tasks (Bowman et al. 2016): ``ptb`` and ``text``.

    python -m scratchvae.train ptb --data-dir DATA --out runs/ptb
    python -m scratchvae.train text --file questions.csv --column question1 --out runs/quora
    python -m scratchvae.evaluate runs/ptb/best.npz --samples 100

``ptb`` trains on Mikolov's ``ptb/ptb.train.txt`` and validates on ``ptb.valid.txt``
(the test split is kept for a final, separate evaluation: ``evaluate --split test``).
``text`` reads one sentence a line, or a column of a CSV file, and holds out
``--valid-fraction`` of it (or reads ``--valid-file``).  Sentences get <s> and </s>;
those over ``--max-len`` words are dropped or truncated (``--on-long``).

A training step: word dropout on the decoder inputs, fresh noise eps ~ N(0, I), and
loss = -log p(x|z) + beta(step) KL, beta from the KL schedule (:mod:`..models.annealing`).
Validation: the one-sample negative ELBO with the true KL (beta = 1), with the same noise
every epoch.  Evaluation: the importance-weighted NLL, KL, perplexity, active units and
mutual information (:mod:`..models.latent_metrics`).
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..backend import BACKENDS
from ..data.corpus import (SPECIALS, EncodedSentences, Sentence, Vocab, bucketed_batches, encode_sentences,
                           read_csv, read_ptb, read_text, word_dropout)
from ..data.errors import DataError
from ..data.glove import load_glove
from ..models import latent_metrics as lm
from ..models.annealing import SCHEDULES, KLSchedule
from ..models.sentence import INIT_ACTIVATIONS, INIT_STATES, SentenceVAE, SentenceVAEConfig
from ..training.checkpoint import CheckpointError, load_checkpoint
from .flags import add_threads_argument, apply_threads, positive_int

DEFAULTS = {"epochs": 10, "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "clipnorm": 5.0}
MAX_LEN = {"ptb": 100, "text": 50}     # PTB's longest sentence has 82 words: all are kept
EVAL_BATCH = 64


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The flags of ``train ptb`` and ``train text``."""
    g = parser.add_argument_group("data")
    if name == "text":
        g.add_argument("--file", required=True, help="UTF-8 text, one sentence a line, or a CSV file with --column")
        g.add_argument("--column", default=None, help="read this column of a CSV file with a header row")
        g.add_argument("--valid-file", default=None, help="held-out sentences (same format); default: a part of --file")
        g.add_argument("--valid-fraction", type=_fraction, default=0.05,
                       help="fraction of --file held out for validation when there is no --valid-file")
    g.add_argument("--max-len", type=positive_int, default=MAX_LEN[name], help="longest sentence, in words")
    g.add_argument("--on-long", choices=("drop", "truncate"), default="drop",
                   help="what to do with training sentences over --max-len words")
    g.add_argument("--vocab-size", type=positive_int, default=20_000,
                   help="keep the most frequent words (the 4 reserved tokens included)")
    g.add_argument("--min-count", type=positive_int, default=1, help="drop words seen fewer times")

    g = parser.add_argument_group("model")
    g.add_argument("--embedding-dim", type=positive_int, default=353)
    g.add_argument("--encoder-units", type=positive_int, default=191)
    g.add_argument("--decoder-units", type=positive_int, default=191)
    g.add_argument("--latent-dim", type=positive_int, default=32, help="size of the latent code z")
    g.add_argument("--bidirectional", action="store_true", help="BiLSTM encoder")
    g.add_argument("--z-every-step", action="store_true", help="also feed z to the decoder at every step")
    g.add_argument("--init-state", choices=INIT_STATES, default="hc",
                   help="decoder initial state from z: hc = h0 and c0, h = h0 only (c0 = 0)")
    g.add_argument("--init-activation", choices=INIT_ACTIVATIONS, default="tanh",
                   help="activation of the Dense layer z -> decoder initial state")
    g.add_argument("--glove", default=None, metavar="FILE", help="start the embeddings from GloVe-format vectors")
    g.add_argument("--freeze-embeddings", action="store_true", help="keep the embeddings fixed (with --glove)")
    g.add_argument("--tie-embeddings", action="store_true",
                   help="the output layer's weights are the embedding table, transposed (Press & Wolf "
                        "2017): one vector per word for input and output; needs --embedding-dim equal "
                        "to --decoder-units")
    g.add_argument("--decoder-dropout", type=_fraction, default=0.0, metavar="P",
                   help="dropout at rate P on the decoder's input embeddings and on its outputs before "
                        "the vocabulary projection, in training only (texar's PTB VAE uses 0.5)")

    g = parser.add_argument_group("objective")
    g.add_argument("--word-dropout", type=_fraction, default=0.3,
                   help="rate at which decoder input words become <unk>")
    g.add_argument("--kl-schedule", choices=SCHEDULES, default="logistic", help="KL annealing")
    g.add_argument("--kl-steps", type=int, default=10_000,
                   help="linear: warm-up steps; cyclical: steps of all the cycles together")
    g.add_argument("--kl-k", type=float, default=0.0025, help="logistic: slope")
    g.add_argument("--kl-x0", type=float, default=2500, help="logistic: step at which beta = 1/2")
    g.add_argument("--kl-cycles", type=positive_int, default=4, help="cyclical: number of cycles")
    g.add_argument("--kl-ratio", type=float, default=0.5, help="cyclical: rising fraction of each cycle")
    g.add_argument("--free-bits", type=float, default=0.0, help="nats per latent unit below which KL is not pushed down")


# --------------------------------------------------------------------- data
@dataclass
class Corpus:
    """Training and validation sentences, and where they came from (saved with checkpoints)."""

    train: list[Sentence]
    valid: list[Sentence]
    source: dict


def read_corpus(source: dict) -> Corpus:
    """The sentences ``source`` describes: {"dataset": "ptb", "data_dir"} or {"dataset": "text", "file", ...}."""
    if source["dataset"] == "ptb":
        return Corpus(read_ptb(source.get("data_dir"), "train"), read_ptb(source.get("data_dir"), "valid"), source)
    sentences = _read_file(source["file"], source.get("column"))
    if source.get("valid_file"):
        return Corpus(sentences, _read_file(source["valid_file"], source.get("column")), source)
    n_valid = round(source.get("valid_fraction", 0.0) * len(sentences))
    if source.get("valid_fraction", 0.0) > 0 and len(sentences) > 1:
        n_valid = max(1, n_valid)
    order = np.random.default_rng([source.get("seed", 0), 3]).permutation(len(sentences))
    held = set(order[:n_valid].tolist())
    return Corpus([s for i, s in enumerate(sentences) if i not in held],
                  [s for i, s in enumerate(sentences) if i in held], source)


def _read_file(path: str, column: str | None) -> list[Sentence]:
    return read_csv(path, column) if column else read_text(path)


def _source(args: argparse.Namespace) -> dict:
    if args.task == "ptb":
        data_dir = None if args.data_dir is None else str(Path(args.data_dir).expanduser().resolve())
        return {"dataset": "ptb", "data_dir": data_dir}
    resolve = lambda p: None if p is None else str(Path(p).expanduser().resolve())
    return {"dataset": "text", "file": resolve(args.file), "column": args.column,
            "valid_file": resolve(args.valid_file), "valid_fraction": args.valid_fraction, "seed": args.seed}


def _describe(source: dict) -> str:
    if source["dataset"] == "ptb":
        return "PTB"
    return Path(source["file"]).name + (f" [{source['column']}]" if source.get("column") else "")


def encode_known(sentences: list[Sentence], vocab: Vocab, max_len: int, on_long: str, what: str) -> EncodedSentences:
    """Encode sentences, refusing data in which no sentence has a word of the vocabulary."""
    data = encode_sentences(sentences, vocab, max_len, on_long)
    if not (data.targets >= len(SPECIALS)).any():                      # ids past the reserved ones are words
        raise DataError(f"{what} has only unknown words (no word of the {len(vocab) - len(SPECIALS):,}-word vocabulary); "
                        "check the file, or lower --min-count")
    return data


def sort_by_length(data: EncodedSentences, batch_size: int) -> list[np.ndarray]:
    """Index batches of sentences of similar length, in order: less padding for evaluation."""
    order = np.argsort(data.lengths, kind="stable")
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


# --------------------------------------------------------------------- task
class SentenceTask:
    """Trainer task for the sentence VAE; see the module docstring."""

    def __init__(self, name: str, model: SentenceVAE, vocab: Vocab, *, train: EncodedSentences | None = None,
                 valid: EncodedSentences | None = None, batch_size: int = 32, word_dropout: float = 0.0,
                 schedule: KLSchedule = KLSchedule("constant"), source: dict | None = None,
                 data_options: dict | None = None, seed: int = 0):
        self.name, self.model, self.vocab = name, model, vocab
        self.train, self.valid = train, valid
        self.batch_size, self.word_dropout, self.schedule = batch_size, word_dropout, schedule
        self.source, self.data_options, self.seed = source or {}, data_options or {}, seed

    def meta(self) -> dict:
        s = self.schedule
        return {"config": self.model.config.to_dict(), "dtype": self.model.dtype.name,
                "vocab": list(self.vocab.words), "source": self.source, "data": self.data_options,
                "objective": {"word_dropout": self.word_dropout, "batch_size": self.batch_size,
                              "kl_schedule": {"kind": s.kind, "steps": s.steps, "k": s.k, "x0": s.x0,
                                              "cycles": s.cycles, "ratio": s.ratio}}}

    def epoch_batches(self, rng: np.random.Generator) -> list:
        """Batches of sentences of similar length (little padding), in random order."""
        return list(bucketed_batches(self.train.lengths, self.batch_size, rng))

    def train_step(self, batch, rng: np.random.Generator, step: int) -> dict[str, float]:
        model, backend = self.model, self.model.backend
        data = self.train[batch]
        inputs = data.inputs
        if self.word_dropout > 0:  # drawn at the corpus's full width: the same draws for a sentence
            full = word_dropout(self.train.inputs[batch], self.word_dropout, rng)  # whatever its batch mates
            inputs = full[:, :inputs.shape[1]]
        eps = backend.asarray(rng.standard_normal((len(batch), model.config.latent_dim)), dtype=model.dtype)
        targets = backend.asarray(data.targets)
        beta = self.schedule(step)
        loss = model.forward(targets, backend.asarray(inputs), targets, eps, beta, rng=rng)
        model.backward()
        return {"loss": loss, "rec": model.rec, "kl": model.kl, "beta": beta}

    def validate(self) -> dict[str, float]:
        """One-sample negative ELBO (true KL) on the validation sentences, same noise every epoch."""
        if self.valid is None or len(self.valid) == 0:
            return {}
        rec, kl = negative_elbo(self.model, self.valid, np.random.default_rng([self.seed, 4]))
        tokens = int(self.valid.lengths.sum())
        return {"val_loss": float((rec + kl).mean()), "val_rec": float(rec.mean()), "val_kl": float(kl.mean()),
                "val_elbo_ppl": math.exp(float((rec + kl).sum()) / tokens)}


def negative_elbo(model: SentenceVAE, data: EncodedSentences, rng: np.random.Generator,
                  batch_size: int = EVAL_BATCH) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence: -log p(x|z) for one z ~ q(z|x), and KL(q(z|x) || p(z)), as (N,) arrays each."""
    backend = model.backend
    rec, kl = np.empty(len(data)), np.empty(len(data))
    for idx in sort_by_length(data, batch_size):
        batch = data[idx]
        inputs, targets = backend.asarray(batch.inputs), backend.asarray(batch.targets)
        mean, logvar = model.encode(targets)
        eps = backend.asarray(rng.standard_normal(mean.shape), dtype=model.dtype)
        z = mean + model.xp.exp(0.5 * logvar) * eps
        rec[idx] = -backend.to_numpy(model.log_likelihood(inputs, targets, z))
        kl[idx] = lm.gaussian_kl(backend.to_numpy(mean).astype(np.float64),
                                 backend.to_numpy(logvar).astype(np.float64))
    return rec, kl


def build_model(meta: dict, backend, dtype=None, rng=None, embedding_weights=None) -> SentenceVAE:
    """A model shaped as the checkpoint metadata ``meta`` says (weights not loaded)."""
    return SentenceVAE(SentenceVAEConfig.from_dict(meta["config"]), embedding_weights=embedding_weights,
                       rng=rng if rng is not None else np.random.default_rng(0), backend=backend,
                       dtype=dtype or meta["dtype"])


def build_task(args: argparse.Namespace) -> SentenceTask:
    source = _source(args)
    corpus = read_corpus(source)
    vocab = Vocab.build(corpus.train, max_size=args.vocab_size, min_count=args.min_count)
    what = _describe(source)
    if len(vocab) == len(SPECIALS):
        raise DataError(f"{what} has only unknown words (no word occurs --min-count {args.min_count} times); "
                        "check the file, or lower --min-count")
    train = encode_known(corpus.train, vocab, args.max_len, args.on_long, f"the training text of {what}")
    valid = (encode_known(corpus.valid, vocab, args.max_len, args.on_long, f"the validation text of {what}")
             if corpus.valid else None)
    if args.tie_embeddings and args.embedding_dim != args.decoder_units:
        raise DataError(f"--tie-embeddings needs --embedding-dim equal to --decoder-units "
                        f"(got {args.embedding_dim} and {args.decoder_units})")
    config = SentenceVAEConfig(
        vocab_size=len(vocab), embedding_dim=args.embedding_dim, encoder_units=args.encoder_units,
        decoder_units=args.decoder_units, latent_dim=args.latent_dim, bidirectional=args.bidirectional,
        z_every_step=args.z_every_step, init_state=args.init_state, init_activation=args.init_activation,
        free_bits=args.free_bits, train_embeddings=not args.freeze_embeddings,
        decoder_dropout=args.decoder_dropout, tie_embeddings=args.tie_embeddings)
    weights = None
    if args.glove:
        pretrained = load_glove(args.glove, vocab, dim=args.embedding_dim, seed=args.seed)
        weights = pretrained.weights
        if args.progress:
            print(f"{args.glove}: {pretrained}")
    elif args.freeze_embeddings:
        raise DataError("--freeze-embeddings keeps the embeddings at their start; give --glove FILE to start "
                        "them from pretrained vectors")
    model = SentenceVAE(config, embedding_weights=weights, rng=np.random.default_rng(args.seed),
                        backend=args.backend, dtype=args.dtype)
    schedule = KLSchedule(args.kl_schedule, steps=args.kl_steps, k=args.kl_k, x0=args.kl_x0,
                          cycles=args.kl_cycles, ratio=args.kl_ratio)
    if args.progress:
        dropped = len(corpus.train) - len(train)
        print(f"{what}: {len(train):,} training sentences"
              + (f" ({dropped:,} over {args.max_len} words dropped)" if dropped else "")
              + f", {0 if valid is None else len(valid):,} validation, vocabulary {len(vocab):,}; "
              f"KL {schedule.describe()}, word dropout {args.word_dropout:g}, free bits {args.free_bits:g}, "
              f"decoder dropout {args.decoder_dropout:g}")
    return SentenceTask(args.task, model, vocab, train=train, valid=valid, batch_size=args.batch_size,
                        word_dropout=args.word_dropout, schedule=schedule, source=source,
                        data_options={"max_len": args.max_len, "on_long": args.on_long,
                                      "vocab_size": args.vocab_size, "min_count": args.min_count},
                        seed=args.seed)


def load_task(ckpt, backend, dtype=None) -> SentenceTask:
    """The task of a checkpoint: the trained model and its vocabulary (no data loaded)."""
    meta = ckpt.meta
    if "vocab" not in meta or "config" not in meta or meta.get("task") not in ("ptb", "text"):
        raise CheckpointError(f"the checkpoint is a {meta.get('task', 'unknown')!r} model, not a sentence VAE; "
                              "pass a checkpoint written by 'train ptb' or 'train text'")
    model = build_model(meta, backend, dtype)
    model.load_state_dict(ckpt.params)
    o = meta.get("objective", {})
    return SentenceTask(meta["task"], model, Vocab(meta["vocab"]), source=meta.get("source"),
                        data_options=meta.get("data"), word_dropout=o.get("word_dropout", 0.0),
                        batch_size=o.get("batch_size", 32), seed=meta.get("progress", {}).get("seed", 0))


def load_sentence_model(path, backend="numba", dtype=None) -> SentenceTask:
    """The task (model and vocabulary) of the sentence-VAE checkpoint at ``path``, for the CLIs."""
    return load_task(load_checkpoint(path), backend, dtype)


def training_sentences(task: SentenceTask, data_dir: str | None = None) -> list[Sentence]:
    """The sentences the checkpoint's model was trained on (re-read from its recorded source)."""
    source = dict(task.source)
    if data_dir is not None and source.get("dataset") == "ptb":
        source["data_dir"] = data_dir
    return read_corpus(source).train


# --------------------------------------------------------------------- evaluation
def evaluate(model: SentenceVAE, data: EncodedSentences, samples: int, rng: np.random.Generator,
             batch_size: int = EVAL_BATCH, mi_batch: int | None = None, progress: bool = False) -> dict:
    """Metrics of ``data``: IW NLL with ``samples`` importance samples, KL, PPL, active units, MI."""
    backend, Z = model.backend, model.config.latent_dim
    n = len(data)
    iw, rec1 = np.empty(n), np.empty(n)
    means, logvars = np.empty((n, Z)), np.empty((n, Z))
    batches = sort_by_length(data, batch_size)
    with tqdm(total=n, desc=f"IW NLL, K={samples}", disable=not progress, dynamic_ncols=True, leave=False) as bar:
        for idx in batches:
            batch = data[idx]
            inputs, targets = backend.asarray(batch.inputs), backend.asarray(batch.targets)
            mean, logvar = model.encode(targets)
            m, lv = backend.to_numpy(mean).astype(np.float64), backend.to_numpy(logvar).astype(np.float64)
            eps = rng.standard_normal((samples, len(idx), Z))
            z = m + np.exp(0.5 * lv) * eps                                  # (K, b, Z) on the host
            log_pxz = np.stack([backend.to_numpy(model.log_likelihood(inputs, targets,
                                                                      backend.asarray(zk, dtype=model.dtype)))
                                for zk in z], axis=1)                       # (b, K)
            iw[idx] = lm.importance_weighted_log_likelihood(log_pxz, z.transpose(1, 0, 2), m, lv)
            rec1[idx] = -log_pxz[:, 0]
            means[idx], logvars[idx] = m, lv
            bar.update(len(idx))
    kl = lm.gaussian_kl(means, logvars)
    tokens = int(data.lengths.sum())
    nll = -iw
    au, _ = lm.active_units(means)
    return {"sentences": n, "tokens": tokens, "samples": samples, "nll": float(nll.mean()),
            "kl": float(kl.mean()), "rec": float(rec1.mean()), "neg_elbo": float((rec1 + kl).mean()),
            "ppl": math.exp(float(nll.sum()) / tokens), "active_units": au, "latent_dim": Z,
            "mi": lm.mutual_information(means, logvars, np.random.default_rng(rng.integers(2**32)), mi_batch)}


def format_metrics(m: dict, title: str) -> str:
    """The metrics table printed by ``python -m scratchvae.evaluate``."""
    rows = [
        (f"NLL (IW, K={m['samples']})", f"{m['nll']:.2f}", "nats/sentence, -log p(x) estimate"),
        ("KL", f"{m['kl']:.2f}", "nats/sentence, KL(q(z|x) || N(0, I))"),
        ("-ELBO (1 sample)", f"{m['neg_elbo']:.2f}", f"reconstruction {m['rec']:.2f} + KL"),
        ("PPL", f"{m['ppl']:.2f}", f"exp(sum NLL / {m['tokens']:,} tokens incl. </s>)"),
        ("active units", f"{m['active_units']} / {m['latent_dim']}", "Cov_x(E_q[z_j]) > 0.01"),
        ("MI", f"{m['mi']:.3f}", "nats, I(x; z) under q (He et al. 2019)"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [title, f"{'metric':<{width}}  {'value':>9}  note"]
    lines += [f"{a:<{width}}  {b:>9}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _eval_parser(task_name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scratchvae.evaluate CKPT",
        description="Evaluate a sentence VAE on a split: importance-weighted NLL (He et al. 2019), KL, "
                    "perplexity, active units, mutual information.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    if task_name == "ptb":
        p.add_argument("--split", choices=("valid", "test", "train"), default="valid",
                       help="PTB split (test: only for the final evaluation)")
        p.add_argument("--data-dir", default=None, help="where ptb/ is (default: the one used in training)")
    else:
        p.add_argument("--file", default=None, help="evaluate on this file (default: the held-out sentences)")
        p.add_argument("--column", default=None, help="CSV column of --file")
    p.add_argument("--samples", type=positive_int, default=100, metavar="K", help="importance samples per sentence")
    p.add_argument("--limit", type=positive_int, default=None, metavar="N", help="only the first N sentences")
    p.add_argument("--max-len", type=positive_int, default=None,
                   help="drop sentences over this many words (default: the training --max-len)")
    p.add_argument("--mi-batch", type=positive_int, default=None,
                   help="estimate MI per batch of this size as He et al. (default: over the whole split)")
    p.add_argument("--batch-size", type=positive_int, default=EVAL_BATCH)
    p.add_argument("--backend", choices=BACKENDS, default="numba")
    p.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default: as trained")
    p.add_argument("--seed", type=int, default=0, help="seed of the evaluation noise")
    add_threads_argument(p)
    p.add_argument("--no-progress", dest="progress", action="store_false")
    return p


def evaluate_main(ckpt, argv) -> int:
    task_name = ckpt.meta.get("task")
    args = _eval_parser(task_name).parse_args(argv)
    apply_threads(args)
    task = load_task(ckpt, args.backend, args.dtype)
    source = dict(task.source)
    if task_name == "ptb":
        data_dir = args.data_dir or source.get("data_dir")
        sentences, what = read_ptb(data_dir, args.split), f"PTB {args.split}"
    elif args.file:
        sentences = _read_file(args.file, args.column)
        what = Path(args.file).name + (f" [{args.column}]" if args.column else "")
    else:
        sentences, what = read_corpus(source).valid, f"held-out part of {_describe(source)}"
        if not sentences:
            raise DataError("the model was trained without held-out sentences; pass --file")
    sentences = sentences[:args.limit]
    max_len = args.max_len or task.data_options.get("max_len", MAX_LEN.get(task_name, 50))
    data = encode_known(sentences, task.vocab, max_len, "drop", what)
    metrics = evaluate(task.model, data, args.samples, np.random.default_rng([args.seed, 5]),
                       args.batch_size, args.mi_batch, args.progress)
    dropped = len(sentences) - len(data)
    epoch = ckpt.meta.get("progress", {}).get("epoch", "?")
    title = (f"{what}: {len(data):,} sentences" + (f" ({dropped:,} over {max_len} words dropped)" if dropped else "")
             + f", {metrics['tokens']:,} tokens; model trained {epoch} epochs, {task.model.dtype.name}")
    print(format_metrics(metrics, title))
    return 0


# --------------------------------------------------------------------- generation CLIs
def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by ``interpolate``, ``sample`` and ``neighbours``: checkpoint, decoding, backend."""
    from ..models.generate import METHODS
    parser.add_argument("checkpoint", metavar="CKPT", help="a checkpoint of 'train ptb' or 'train text'")
    parser.add_argument("--method", choices=METHODS, default="greedy", help="how to decode a latent code")
    parser.add_argument("--temperature", type=float, default=1.0, help="--method sample: softmax temperature")
    parser.add_argument("--beam-width", type=positive_int, default=5, help="--method beam: hypotheses kept")
    parser.add_argument("--max-words", type=positive_int, default=None,
                        help="longest generated sentence (default: the training --max-len)")
    parser.add_argument("--seed", type=int, default=0, help="seed of sampled codes and words")
    parser.add_argument("--backend", choices=BACKENDS, default="numba")
    parser.add_argument("--dtype", choices=("float32", "float64"), default=None, help="default: as trained")


def generate_sentences(task: SentenceTask, z: np.ndarray, args: argparse.Namespace,
                       rng: np.random.Generator) -> list[str]:
    """Decode host codes z (N, Z) by ``args.method`` into sentences (text)."""
    from ..models.generate import decode
    model = task.model
    max_words = args.max_words or task.data_options.get("max_len", 50)
    ids = decode(model, model.backend.asarray(z, dtype=model.dtype), args.method, rng=rng,
                 temperature=args.temperature, beam_width=args.beam_width, max_len=max_words)
    return [task.vocab.decode(sentence) for sentence in ids]


def posterior_means(task: SentenceTask, sentences: list[Sentence] | EncodedSentences,
                    batch_size: int = 256) -> np.ndarray:
    """E_q[z|x] (N, Z) of sentences (word lists, or already encoded), on the host."""
    model = task.model
    data = sentences if isinstance(sentences, EncodedSentences) else encode_sentences(
        sentences, task.vocab, max(len(s) for s in sentences), "drop")
    out = np.empty((len(data), model.config.latent_dim))
    for idx in sort_by_length(data, batch_size):
        mean, _ = model.encode(model.backend.asarray(data[idx].targets))
        out[idx] = model.backend.to_numpy(mean)
    return out
