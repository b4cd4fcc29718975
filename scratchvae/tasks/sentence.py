"""The sentence VAE tasks (Bowman et al. 2016): ``ptb`` and ``text``.

    python -m scratchvae.train ptb --data-dir DATA --out runs/ptb
    python -m scratchvae.train text --file questions.csv --column question1 --out runs/quora
    python -m scratchvae.evaluate runs/ptb/best.npz --samples 100

``ptb`` trains on Mikolov's ``ptb/ptb.train.txt`` and validates on ``ptb.valid.txt``, downloading
them when missing (the test split is kept for a final, separate evaluation: ``evaluate --split test``).
``text`` reads one sentence a line, or a column of a CSV file, and holds out
``--valid-fraction`` of it (or reads ``--valid-file``); its checkpoints pin the files (size and
SHA-256) and the split, so a changed file is refused later.  Sentences get <s> and </s>;
those over ``--max-len`` words are dropped or truncated (``--on-long``).  The text task's KL
schedule scales with the run's length unless its parameters are given (see KL_X0_FRACTION).

A training step: word dropout on the decoder inputs, fresh noise eps ~ N(0, I), and
loss = -log p(x|z) + beta(step) KL, beta from the KL schedule (:mod:`..models.annealing`).
Validation: the one-sample negative ELBO with the true KL (beta = 1), with the same noise
every epoch.  Evaluation: the importance-weighted NLL, KL, perplexity, active units and
mutual information (:mod:`..models.latent_metrics`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cli.flags import add_flag, add_flags, apply_threads, command_parser
from ..cli.types import (
    fraction,
    int_at_least,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    share,
)
from ..data.batching import bucket_batches
from ..data.corpus import (
    EncodedSentences,
    Sentence,
    Vocab,
    csv_columns,
    encode_sentences,
    read_csv,
    read_ptb,
    read_text,
    word_dropout,
)
from ..data.errors import DataError
from ..data.glove import load_glove
from ..data.pins import check_pin
from ..data.reserved import SPECIALS
from ..losses import BatchMean, whole_batch
from ..models import latent_metrics as lm
from ..models.annealing import SCHEDULES, KLSchedule
from ..models.sentence import INIT_ACTIVATIONS, INIT_STATES, SentenceVAE, SentenceVAEConfig
from ..progress import progress_bar
from ..training.checkpoint import CheckpointError, load_checkpoint, load_model_state

DEFAULTS = {"epochs": 10, "batch_size": 32, "optimizer": "adam", "lr": 1e-3, "clipnorm": 5.0}
MAX_LEN = {"ptb": 100, "text": 50}  # PTB's longest sentence has 82 words: all are kept
EVAL_BATCH = 64

# The text task's KL schedule scales with the run (PTB's fixed one suits only PTB-sized runs: on 180 steps its
# logistic ends at beta 0.003). PTB's x0 = 2500 is 19% of its 10-epoch run of 13,150 steps, and k * x0 = 6.25,
# so beta starts near 0.002 and is 0.998 by 2 x0.  The text task keeps that shape on any run length:
KL_X0_FRACTION = 0.2  # logistic: beta = 1/2 at 20% of the run's steps
KL_SHARPNESS = 6.25  # logistic: k = KL_SHARPNESS / x0, beta(0) = 0.002
KL_LINEAR_FRACTION = 0.4  # linear: the warm-up spans the 40% (0 to 2 x0) in which the logistic rises


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """The flags of ``train ptb`` and ``train text``."""
    g = parser.add_argument_group("data")
    if name == "text":
        g.add_argument(
            "--file", required=True, metavar="PATH", help="UTF-8 text, one sentence a line, or a CSV file with --column"
        )
        g.add_argument(
            "--column", default=None, metavar="NAME", help="read this column of a CSV file with a header row"
        )
        g.add_argument(
            "--valid-file",
            default=None,
            metavar="PATH",
            help="held-out sentences, in --file's format (default: --valid-fraction of --file)",
        )
        g.add_argument(
            "--valid-fraction",
            type=fraction,
            default=0.05,
            metavar="F",
            help="fraction of --file held out for validation when there is no --valid-file",
        )
    else:
        g.add_argument(
            "--no-download",
            dest="download",
            action="store_false",
            help="fail instead of downloading ptb.train.txt and ptb.valid.txt when they are missing",
        )
    g.add_argument(
        "--max-len", type=positive_int, default=MAX_LEN[name], metavar="N", help="longest sentence, in words"
    )
    g.add_argument(
        "--on-long",
        choices=("drop", "truncate"),
        default="drop",
        help="what to do with training sentences over --max-len words",
    )
    g.add_argument(
        "--vocab-size",
        type=int_at_least(len(SPECIALS) + 1),
        default=20_000,
        metavar="N",
        help=f"keep the most frequent words (the {len(SPECIALS)} reserved tokens included)",
    )
    g.add_argument("--min-count", type=positive_int, default=1, metavar="N", help="drop words seen fewer times")

    g = parser.add_argument_group("model")
    g.add_argument("--embedding-dim", type=positive_int, default=353, metavar="N", help="size of the word vectors")
    g.add_argument("--encoder-units", type=positive_int, default=191, metavar="N", help="units of the encoder LSTM")
    g.add_argument("--decoder-units", type=positive_int, default=191, metavar="N", help="units of the decoder LSTM")
    g.add_argument("--latent-dim", type=positive_int, default=32, metavar="N", help="size of the latent code z")
    g.add_argument("--bidirectional", action="store_true", help="BiLSTM encoder")
    g.add_argument("--z-every-step", action="store_true", help="also feed z to the decoder at every step")
    g.add_argument(
        "--init-state",
        choices=INIT_STATES,
        default="hc",
        help="decoder initial state from z: hc = h0 and c0, h = h0 only (c0 = 0)",
    )
    g.add_argument(
        "--init-activation",
        choices=INIT_ACTIVATIONS,
        default="tanh",
        help="activation of the Dense layer z -> decoder initial state",
    )
    g.add_argument("--glove", default=None, metavar="FILE", help="start the embeddings from GloVe-format vectors")
    g.add_argument("--freeze-embeddings", action="store_true", help="keep the embeddings fixed (with --glove)")
    g.add_argument(
        "--tie-embeddings",
        action="store_true",
        help="the output layer's weights are the embedding table, transposed (Press & Wolf "
        "2017): one vector per word for input and output; needs --embedding-dim equal "
        "to --decoder-units",
    )
    g.add_argument(
        "--decoder-dropout",
        type=fraction,
        default=0.0,
        metavar="P",
        help="dropout at rate P on the decoder's input embeddings and on its outputs before "
        "the vocabulary projection, in training only (texar's PTB VAE uses 0.5)",
    )

    add_objective_arguments(parser.add_argument_group("objective"), scaled=name == "text")


def add_objective_arguments(
    g, scaled: bool, word_dropout: float | None = 0.3, kl_schedule: str | None = "logistic", free_bits: bool = True
) -> None:
    """Word dropout, the KL schedule and free bits: the flags of the sentence VAE's objective, which the
    IMDB review VAE shares.  ``scaled``: the schedule's parameters default to None, scaled to the run
    (:func:`kl_schedule`); else PTB's fixed values.  ``word_dropout`` / ``kl_schedule``: their defaults
    (None: a preset's, for IMDB); ``free_bits=False`` leaves --free-bits to the caller."""
    g.add_argument(
        "--word-dropout",
        type=fraction,
        default=word_dropout,
        metavar="P",
        help="rate at which decoder input words become <unk>"
        + (" (default: the preset's)" if word_dropout is None else ""),
    )
    g.add_argument(
        "--kl-schedule",
        choices=SCHEDULES,
        default=kl_schedule,
        help="KL annealing" + (" (default: the preset's)" if kl_schedule is None else ""),
    )
    g.add_argument(
        "--kl-steps",
        type=non_negative_int,
        default=None if scaled else 10_000,
        metavar="STEPS",
        help="linear: warm-up steps; cyclical: steps of all the cycles together"
        + (" (default: 40%% of the run's steps for linear, all of them for cyclical)" if scaled else ""),
    )
    g.add_argument(
        "--kl-k",
        type=positive_float,
        default=None if scaled else 0.0025,
        metavar="K",
        help="logistic: slope" + (f" (default: {KL_SHARPNESS:g} / x0)" if scaled else ""),
    )
    g.add_argument(
        "--kl-x0",
        type=non_negative_float,
        default=None if scaled else 2500,
        metavar="STEP",
        help="logistic: step at which beta = 1/2"
        + (f" (default: {KL_X0_FRACTION * 100:.0f}%% of the run's steps)" if scaled else ""),
    )
    g.add_argument("--kl-cycles", type=positive_int, default=4, metavar="N", help="cyclical: number of cycles")
    g.add_argument("--kl-ratio", type=share, default=0.5, metavar="F", help="cyclical: rising fraction of each cycle")
    if free_bits:
        g.add_argument(
            "--free-bits",
            type=non_negative_float,
            default=0.0,
            metavar="NATS",
            help="nats per latent unit below which KL is not pushed down",
        )


# --------------------------------------------------------------------- data
@dataclass
class Corpus:
    """Training and validation sentences, and where they came from (saved with checkpoints)."""

    train: list[Sentence]
    valid: list[Sentence]
    source: dict
    pinned: dict | None = None  # text corpora: {"files": {role: {"bytes", "sha256"}}, "split": {...}}


PIN_FIX = "put the original file back at that path, or retrain on the file as it is now"


def read_corpus(
    source: dict, download: bool = False, progress: bool = False, pinned: dict | None = None, fix: str = PIN_FIX
) -> Corpus:
    """The sentences ``source`` describes: {"dataset": "ptb", "data_dir"} or {"dataset": "text", "file", ...}.

    ``download``: fetch PTB's train and valid files when they are missing.  A text corpus comes back with
    ``pinned``: the size and SHA-256 of each file read and the split made (see :func:`_split_record`); given
    the ``pinned`` of a checkpoint, a file that changed since is a DataError naming it and ending in ``fix``.
    """
    if source["dataset"] == "ptb":
        train, valid = (
            read_ptb(source.get("data_dir"), split, download=download, progress=progress)
            for split in ("train", "valid")
        )
        return Corpus(train, valid, source)
    roles = [role for role in ("file", "valid_file") if source.get(role)]
    recorded = (pinned or {}).get("files", {})
    pins = {role: check_pin(source[role], recorded.get(role), fix) for role in roles}
    sentences = _read_file(source["file"], source.get("column"))
    if source.get("valid_file"):
        train, valid, held = sentences, _read_file(source["valid_file"], source.get("column")), None
    else:
        n_valid = round(source.get("valid_fraction", 0.0) * len(sentences))
        if source.get("valid_fraction", 0.0) > 0 and len(sentences) > 1:
            n_valid = max(1, n_valid)
        order = np.random.default_rng([source.get("seed", 0), 3]).permutation(len(sentences))
        held = set(order[:n_valid].tolist())
        train = [s for i, s in enumerate(sentences) if i not in held]
        valid = [s for i, s in enumerate(sentences) if i in held]
    split = _split_record(train, valid, held)
    was = (pinned or {}).get("split")
    if was is not None and was != split:

        def sizes(record: dict) -> str:
            return f"{record.get('train', 0):,} training and {record.get('valid', 0):,} held-out sentences"

        differs = (
            f"splits into {sizes(split)}, not the {sizes(was)} trained on"
            if sizes(split) != sizes(was)
            else "holds out other sentences than those held out in training"
        )
        raise DataError(f"{source['file']} now {differs}; {fix}")
    return Corpus(train, valid, source, pinned={"files": pins, "split": split})


def _split_record(train: list[Sentence], valid: list[Sentence], held: set[int] | None) -> dict:
    """The split a text run made: its sizes and, for a --valid-fraction split, the SHA-256 of the held-out
    sentence numbers (int64, ascending)."""
    record = {"train": len(train), "valid": len(valid)}
    if held is not None:
        record["held_out_sha256"] = hashlib.sha256(np.array(sorted(held), dtype=np.int64).tobytes()).hexdigest()
    return record


def _read_file(path: str, column: str | None) -> list[Sentence]:
    if column is None and Path(path).suffix.lower() == ".csv":
        raise DataError(
            f"{path} is a CSV file: say which column holds the sentences with --column, one of: "
            f"{', '.join(csv_columns(path))}"
        )
    return read_csv(path, column) if column else read_text(path)


def _source(args) -> dict:
    if args.task == "ptb":
        data_dir = None if args.data_dir is None else str(Path(args.data_dir).expanduser().resolve())
        return {"dataset": "ptb", "data_dir": data_dir}
    resolve = lambda p: None if p is None else str(Path(p).expanduser().resolve())
    return {
        "dataset": "text",
        "file": resolve(args.file),
        "column": args.column,
        "valid_file": resolve(args.valid_file),
        "valid_fraction": args.valid_fraction,
        "seed": args.seed,
    }


def _describe(source: dict) -> str:
    if source["dataset"] == "ptb":
        return "PTB"
    return Path(source["file"]).name + (f" [{source['column']}]" if source.get("column") else "")


def encode_known(sentences: list[Sentence], vocab: Vocab, max_len: int, on_long: str, what: str) -> EncodedSentences:
    """Encode sentences, refusing data in which no sentence has a word of the vocabulary."""
    data = encode_sentences(sentences, vocab, max_len, on_long)
    if not (data.targets >= len(SPECIALS)).any():  # ids past the reserved ones are words
        raise DataError(
            f"{what} has only unknown words (no word of the {len(vocab) - len(SPECIALS):,}-word vocabulary); "
            "check the file, or lower --min-count"
        )
    return data


def sort_by_length(data: EncodedSentences, batch_size: int) -> list[np.ndarray]:
    """Index batches of sentences of similar length, in order: less padding for evaluation."""
    order = np.argsort(data.lengths, kind="stable")
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


# --------------------------------------------------------------------- task
class SentenceTask:
    """Trainer task for the sentence VAE; see the module docstring."""

    progress = False  # a bar while validating (on a terminal)

    def __init__(
        self,
        name: str,
        model: SentenceVAE,
        vocab: Vocab,
        *,
        train: EncodedSentences | None = None,
        valid: EncodedSentences | None = None,
        batch_size: int = 32,
        word_dropout: float = 0.0,
        schedule: KLSchedule = KLSchedule("constant"),
        source: dict | None = None,
        data_options: dict | None = None,
        seed: int = 0,
        pinned: dict | None = None,
    ):
        self.name, self.model, self.vocab = name, model, vocab
        self.pinned = pinned  # the data files' sizes and digests, and the split (text runs; see read_corpus)
        self.train, self.valid = train, valid
        self.batch_size, self.word_dropout, self.schedule = batch_size, word_dropout, schedule
        self.source, self.data_options, self.seed = source or {}, data_options or {}, seed

    def meta(self) -> dict:
        return {
            "config": self.model.config.to_dict(),
            "dtype": self.model.dtype.name,
            "vocab": list(self.vocab.words),
            "source": self.source,
            "data": self.data_options,
            "objective": {
                "word_dropout": self.word_dropout,
                "batch_size": self.batch_size,
                "kl_schedule": self.schedule.to_dict(),
            },
            **({"pinned": self.pinned} if self.pinned is not None else {}),
        }

    def epoch_batches(self, rng: np.random.Generator) -> list:
        """Batches of sentences of similar length (little padding), in random order; the whole set is one pool."""
        return bucket_batches(self.train.lengths, self.batch_size, rng, pool_batches=None)

    def train_step(
        self, batch, rng: np.random.Generator, step: int, *, batch_mean: BatchMean = whole_batch
    ) -> dict[str, float]:
        model, backend = self.model, self.model.backend
        data = self.train[batch]
        inputs = data.inputs
        if self.word_dropout > 0:  # drawn at the corpus's full width: the same draws for a sentence
            full = word_dropout(self.train.inputs[batch], self.word_dropout, rng)  # whatever its batch mates
            inputs = full[:, : inputs.shape[1]]
        eps = backend.asarray(rng.standard_normal((len(batch), model.config.latent_dim)), dtype=model.dtype)
        targets = backend.asarray(data.targets)
        beta = self.schedule(step)
        terms = model.forward(targets, backend.asarray(inputs), eps, kl_weight=beta, rng=rng, batch_mean=batch_mean)
        model.backward()
        return {"loss": terms["loss"], "rec": terms["rec"], "kl": terms["kl"], "beta": beta}

    def validate(self) -> dict[str, float]:
        """One-sample negative ELBO (true KL) on the validation sentences, same noise every epoch."""
        if self.valid is None or len(self.valid) == 0:
            return {}
        rec, kl = negative_elbo(self.model, self.valid, np.random.default_rng([self.seed, 4]), progress=self.progress)
        tokens = int(self.valid.lengths.sum())
        return {
            "val_loss": float((rec + kl).mean()),
            "val_rec": float(rec.mean()),
            "val_kl": float(kl.mean()),
            "val_elbo_ppl": math.exp(float((rec + kl).sum()) / tokens),
        }


def negative_elbo(
    model: SentenceVAE,
    data: EncodedSentences,
    rng: np.random.Generator,
    batch_size: int = EVAL_BATCH,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Per sentence: -log p(x|z) for one z ~ q(z|x), and KL(q(z|x) || p(z)), as (N,) arrays each."""
    backend = model.backend
    rec, kl = np.empty(len(data)), np.empty(len(data))
    for idx in progress_bar(sort_by_length(data, batch_size), desc="validating", progress=progress):
        batch = data[idx]
        inputs, targets = backend.asarray(batch.inputs), backend.asarray(batch.targets)
        mean, logvar = model.encode(targets)
        eps = backend.asarray(rng.standard_normal(mean.shape), dtype=model.dtype)
        z = mean + model.xp.exp(0.5 * logvar) * eps
        rec[idx] = -backend.to_numpy(model.log_likelihood(inputs, targets, z))
        kl[idx] = lm.gaussian_kl(backend.to_numpy(mean).astype(np.float64), backend.to_numpy(logvar).astype(np.float64))
    return rec, kl


def build_model(meta: dict, backend, dtype=None, rng=None, embedding_weights=None) -> SentenceVAE:
    """A model shaped as the checkpoint metadata ``meta`` says (weights not loaded)."""
    return SentenceVAE(
        SentenceVAEConfig.from_dict(meta["config"]),
        embedding_weights=embedding_weights,
        rng=rng if rng is not None else np.random.default_rng(0),
        backend=backend,
        dtype=dtype or meta["dtype"],
    )


def _resumed_meta(args: argparse.Namespace) -> dict | None:
    """The metadata of the checkpoint ``--resume`` continues, if there is a readable one (the trainer
    reports a missing or broken one)."""
    path = Path(getattr(args, "out", None) or f"runs/{args.task}") / "last.npz"
    if not getattr(args, "resume", False) or not path.is_file():
        return None
    try:
        with np.load(path) as data:
            return json.loads(data["meta"].tobytes().decode())
    except Exception:  # noqa: BLE001 - any unreadable file: the trainer's load says what is wrong
        return None


def run_steps(n_train: int, args: argparse.Namespace) -> int:
    """The optimiser steps the run will take: --epochs of the batches of ``n_train`` sentences, at most
    --max-steps."""
    steps = args.epochs * math.ceil(n_train / max(args.batch_size, 1))  # flags are validated when parsed
    return min(steps, args.max_steps) if args.max_steps is not None else steps


def kl_schedule(args: argparse.Namespace, steps: int, resumed: dict | None = None) -> KLSchedule:
    """The KL schedule the flags give; a parameter left unset (``None``: the text task) scales with the run's
    ``steps`` (see KL_X0_FRACTION), or, resuming, is the one the run started with."""
    saved = (resumed or {}).get("objective", {}).get("kl_schedule") or {}
    saved = saved if saved.get("kind") == args.kl_schedule else {}
    x0 = args.kl_x0 if args.kl_x0 is not None else saved.get("x0", max(1.0, float(round(KL_X0_FRACTION * steps))))
    k = args.kl_k if args.kl_k is not None else saved.get("k", KL_SHARPNESS / x0)
    if args.kl_steps is not None:
        warmup = args.kl_steps
    else:
        warmup = saved.get("steps", steps if args.kl_schedule == "cyclical" else round(KL_LINEAR_FRACTION * steps))
    return KLSchedule(args.kl_schedule, steps=warmup, k=k, x0=x0, cycles=args.kl_cycles, ratio=args.kl_ratio)


def build_task(args) -> SentenceTask:
    source = _source(args)
    resumed = _resumed_meta(args)
    corpus = read_corpus(
        source,
        download=getattr(args, "download", False),
        progress=args.progress,
        pinned=(resumed or {}).get("pinned"),
        fix="point --file at the original file to resume, or start a new run with another --out",
    )
    vocab = Vocab.build(corpus.train, max_size=args.vocab_size, min_count=args.min_count)
    what = _describe(source)
    if len(vocab) == len(SPECIALS):
        raise DataError(
            f"{what} has only unknown words (no word occurs --min-count {args.min_count} times); "
            "check the file, or lower --min-count"
        )
    train = encode_known(corpus.train, vocab, args.max_len, args.on_long, f"the training text of {what}")
    valid = (
        encode_known(corpus.valid, vocab, args.max_len, args.on_long, f"the validation text of {what}")
        if corpus.valid
        else None
    )
    if args.tie_embeddings and args.embedding_dim != args.decoder_units:
        raise DataError(
            f"--tie-embeddings needs --embedding-dim equal to --decoder-units "
            f"(got {args.embedding_dim} and {args.decoder_units})"
        )
    config = SentenceVAEConfig(
        vocab_size=len(vocab),
        embedding_dim=args.embedding_dim,
        encoder_units=args.encoder_units,
        decoder_units=args.decoder_units,
        latent_dim=args.latent_dim,
        bidirectional=args.bidirectional,
        z_every_step=args.z_every_step,
        init_state=args.init_state,
        init_activation=args.init_activation,
        free_bits=args.free_bits,
        train_embeddings=not args.freeze_embeddings,
        decoder_dropout=args.decoder_dropout,
        tie_embeddings=args.tie_embeddings,
    )
    weights = None
    if args.glove:
        pretrained = load_glove(args.glove, vocab, dim=args.embedding_dim, seed=args.seed)
        weights = pretrained.weights
        if args.progress:
            print(f"{args.glove}: {pretrained}")
    elif args.freeze_embeddings:
        raise DataError(
            "--freeze-embeddings keeps the embeddings at their start; give --glove FILE to start "
            "them from pretrained vectors"
        )
    model = SentenceVAE(
        config, embedding_weights=weights, rng=np.random.default_rng(args.seed), backend=args.backend, dtype=args.dtype
    )
    steps = run_steps(len(train), args)
    schedule = kl_schedule(args, steps, resumed)
    final_beta = schedule(steps - 1)
    if steps > 0 and final_beta < 0.5:
        print(
            f"note: the KL weight ends at {final_beta:.3g} on the last of the run's {steps:,} steps (KL "
            f"{schedule.describe()}): close to a plain autoencoder; "
            + (
                "lower --kl-x0 / --kl-steps, or train longer"
                if args.task == "ptb"
                else "leave --kl-x0 / --kl-k / --kl-steps unset to scale the schedule to the run, or train longer"
            ),
            file=sys.stderr,
        )
    if args.progress:
        dropped = len(corpus.train) - len(train)
        print(
            f"{what}: {len(train):,} training sentences"
            + (f" ({dropped:,} over {args.max_len} words dropped)" if dropped else "")
            + f", {0 if valid is None else len(valid):,} validation, vocabulary {len(vocab):,}; "
            f"KL {schedule.describe()} (ends at {final_beta:.2g}), word dropout {args.word_dropout:g}, "
            f"free bits {args.free_bits:g}, "
            f"decoder dropout {args.decoder_dropout:g}"
        )
    task = SentenceTask(
        args.task,
        model,
        vocab,
        train=train,
        valid=valid,
        batch_size=args.batch_size,
        word_dropout=args.word_dropout,
        schedule=schedule,
        source=source,
        data_options={
            "max_len": args.max_len,
            "on_long": args.on_long,
            "vocab_size": args.vocab_size,
            "min_count": args.min_count,
        },
        seed=args.seed,
        pinned=None if resumed is not None and "pinned" not in resumed else corpus.pinned,
    )  # a checkpoint from before pins resumes without one
    task.progress = args.progress
    return task


def load_task(ckpt, backend, dtype=None) -> SentenceTask:
    """The task of a checkpoint: the trained model and its vocabulary (no data loaded)."""
    meta = ckpt.meta
    if "vocab" not in meta or "config" not in meta or meta.get("task") not in ("ptb", "text"):
        raise CheckpointError(
            f"the checkpoint is a {meta.get('task', 'unknown')!r} model, not a sentence VAE; "
            "pass a checkpoint written by 'train ptb' or 'train text'"
        )
    model = build_model(meta, backend, dtype)
    load_model_state(model, ckpt)
    o = meta.get("objective", {})
    return SentenceTask(
        meta["task"],
        model,
        Vocab(meta["vocab"]),
        source=meta.get("source"),
        data_options=meta.get("data"),
        word_dropout=o.get("word_dropout", 0.0),
        batch_size=o.get("batch_size", 32),
        seed=meta.get("progress", {}).get("seed", 0),
        pinned=meta.get("pinned"),
    )


def load_sentence_model(path, backend="numba", dtype=None) -> SentenceTask:
    """The task (model and vocabulary) of the sentence-VAE checkpoint at ``path``, for the CLIs."""
    return load_task(load_checkpoint(path), backend, dtype)


def training_sentences(task: SentenceTask, data_dir: str | None = None) -> list[Sentence]:
    """The sentences the checkpoint's model was trained on (re-read from its recorded source)."""
    source = dict(task.source)
    if data_dir is not None and source.get("dataset") == "ptb":
        source["data_dir"] = data_dir
    return read_corpus(source, pinned=task.pinned).train


# --------------------------------------------------------------------- evaluation
def evaluate(
    model: SentenceVAE,
    data: EncodedSentences,
    samples: int,
    rng: np.random.Generator,
    batch_size: int = EVAL_BATCH,
    mi_batch: int | None = None,
    progress: bool = False,
) -> dict:
    """Metrics of ``data``: IW NLL with ``samples`` importance samples, KL, PPL, active units, MI."""
    backend, Z = model.backend, model.config.latent_dim
    n = len(data)
    iw, rec1 = np.empty(n), np.empty(n)
    means, logvars = np.empty((n, Z)), np.empty((n, Z))
    batches = sort_by_length(data, batch_size)
    with progress_bar(total=n, desc=f"IW NLL, K={samples}", progress=progress) as bar:
        for idx in batches:
            batch = data[idx]
            inputs, targets = backend.asarray(batch.inputs), backend.asarray(batch.targets)
            mean, logvar = model.encode(targets)
            m, lv = backend.to_numpy(mean).astype(np.float64), backend.to_numpy(logvar).astype(np.float64)
            eps = rng.standard_normal((samples, len(idx), Z))
            z = m + np.exp(0.5 * lv) * eps  # (K, b, Z) on the host
            log_pxz = np.stack(
                [
                    backend.to_numpy(model.log_likelihood(inputs, targets, backend.asarray(zk, dtype=model.dtype)))
                    for zk in z
                ],
                axis=1,
            )  # (b, K)
            iw[idx] = lm.importance_weighted_log_likelihood(log_pxz, z.transpose(1, 0, 2), m, lv)
            rec1[idx] = -log_pxz[:, 0]
            means[idx], logvars[idx] = m, lv
            bar.update(len(idx))
    kl = lm.gaussian_kl(means, logvars)
    tokens = int(data.lengths.sum())
    nll = -iw
    au, _ = lm.active_units(means)
    return {
        "sentences": n,
        "tokens": tokens,
        "samples": samples,
        "nll": float(nll.mean()),
        "kl": float(kl.mean()),
        "rec": float(rec1.mean()),
        "neg_elbo": float((rec1 + kl).mean()),
        "ppl": math.exp(float(nll.sum()) / tokens),
        "active_units": au,
        "latent_dim": Z,
        "mi": lm.mutual_information(means, logvars, np.random.default_rng(rng.integers(2**32)), mi_batch),
    }


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


def eval_parser(task_name: str) -> argparse.ArgumentParser:
    run = "runs/ptb" if task_name == "ptb" else "runs/mine"
    p = command_parser(
        "python -m scratchvae.evaluate CKPT",
        "Evaluate a sentence VAE on a split: importance-weighted NLL (He et al. 2019), KL, "
        "perplexity, active units, mutual information.",
        (
            f"python -m scratchvae.evaluate {run}/best.npz",
            f"python -m scratchvae.evaluate {run}/best.npz --split test --samples 500"
            if task_name == "ptb"
            else f"python -m scratchvae.evaluate {run}/best.npz --file other.txt --samples 500",
            f"python -m scratchvae.evaluate {run}/best.npz --limit 200 --samples 10 --threads 1",
        ),
    )
    if task_name == "ptb":
        p.add_argument(
            "--split",
            choices=("valid", "test", "train"),
            default="valid",
            help="PTB split (test: only for the final evaluation)",
        )
        add_flag(p, "data_dir", help="where ptb/ is (default: the one used in training)")
        p.add_argument(
            "--no-download",
            dest="download",
            action="store_false",
            help="fail instead of downloading the split when it is missing",
        )
    else:
        p.add_argument(
            "--file", default=None, metavar="PATH", help="evaluate on this file (default: the held-out sentences)"
        )
        p.add_argument("--column", default=None, metavar="NAME", help="CSV column of --file")
    p.add_argument("--samples", type=positive_int, default=100, metavar="K", help="importance samples per sentence")
    add_flag(p, "limit")
    p.add_argument(
        "--max-len",
        type=positive_int,
        default=None,
        metavar="N",
        help="drop sentences over this many words (default: the training --max-len)",
    )
    p.add_argument(
        "--mi-batch",
        type=positive_int,
        default=None,
        metavar="N",
        help="estimate MI per batch of this size as He et al. (default: over the whole split)",
    )
    add_flag(p, "batch_size", default=EVAL_BATCH)
    add_flag(p, "backend")
    add_flag(p, "dtype", default=None, help="floating-point type of the arithmetic (default: as trained)")
    add_flag(p, "seed", help="seed of the evaluation noise")
    add_flags(p, "threads", "no_progress")
    return p


def evaluate_main(ckpt, argv) -> int:
    task_name = ckpt.meta.get("task")
    args = eval_parser(task_name).parse_args(argv)
    apply_threads(args)
    task = load_task(ckpt, args.backend, args.dtype)
    source = dict(task.source)
    if task_name == "ptb":
        data_dir = args.data_dir or source.get("data_dir")
        sentences = read_ptb(data_dir, args.split, download=args.download, progress=args.progress)
        what = f"PTB {args.split}"
    elif args.file:
        sentences = _read_file(args.file, args.column)
        what = Path(args.file).name + (f" [{args.column}]" if args.column else "")
    else:
        sentences, what = read_corpus(source, pinned=task.pinned).valid, f"held-out part of {_describe(source)}"
        if not sentences:
            raise DataError("the model was trained without held-out sentences; pass --file")
    sentences = sentences[: args.limit]
    max_len = args.max_len or task.data_options.get("max_len", MAX_LEN.get(task_name, 50))
    data = encode_known(sentences, task.vocab, max_len, "drop", what)
    metrics = evaluate(
        task.model,
        data,
        args.samples,
        np.random.default_rng([args.seed, 5]),
        args.batch_size,
        args.mi_batch,
        args.progress,
    )
    dropped = len(sentences) - len(data)
    epoch = ckpt.meta.get("progress", {}).get("epoch", "?")
    title = (
        f"{what}: {len(data):,} sentences"
        + (f" ({dropped:,} over {max_len} words dropped)" if dropped else "")
        + f", {metrics['tokens']:,} tokens; model trained {epoch} epochs, {task.model.dtype.name}"
    )
    print(format_metrics(metrics, title))
    return 0


# --------------------------------------------------------------------- generation CLIs
def add_generation_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags shared by ``interpolate`` and ``sample``: checkpoint, decoding, backend."""
    add_flags(parser, "checkpoint", "method", "temperature", "beam_width", "max_words")
    add_flag(parser, "seed", help="seed of sampled codes and words")
    add_flag(parser, "backend")
    add_flag(parser, "dtype", default=None, help="floating-point type of the arithmetic (default: as trained)")


def generate_sentences(
    task: SentenceTask, z: np.ndarray, args: argparse.Namespace, rng: np.random.Generator
) -> list[str]:
    """Decode host codes z (N, Z) by ``args.method`` into sentences (text)."""
    from ..models.generate import decode

    model = task.model
    max_words = args.max_words or task.data_options.get("max_len", 50)
    ids = decode(
        model,
        model.backend.asarray(z, dtype=model.dtype),
        args.method,
        rng=rng,
        temperature=args.temperature,
        beam_width=args.beam_width,
        max_len=max_words,
    )
    return [task.vocab.decode(sentence) for sentence in ids]


def posterior_means(
    task: SentenceTask, sentences: list[Sentence] | EncodedSentences, batch_size: int = 256
) -> np.ndarray:
    """E_q[z|x] (N, Z) of sentences (word lists, or already encoded), on the host."""
    model = task.model
    data = (
        sentences
        if isinstance(sentences, EncodedSentences)
        else encode_sentences(sentences, task.vocab, max(len(s) for s in sentences), "drop")
    )
    out = np.empty((len(data), model.config.latent_dim))
    for idx in sort_by_length(data, batch_size):
        mean, _ = model.encode(model.backend.asarray(data[idx].targets))
        out[idx] = model.backend.to_numpy(mean)
    return out
