"""The IMDB task: the review VAE with a sentiment head, trained and evaluated.

    python -m scratchvae.train imdb --out runs/imdb                 # the default preset
    python -m scratchvae.train imdb --preset seed                   # the tutorial, exactly
    python -m scratchvae.train imdb --unlabelled                    # + the 50k unlabelled reviews
    python -m scratchvae.evaluate runs/imdb/best.npz --show 3 --plot latent.png
    python -m scratchvae.evaluate runs/imdb/best.npz --encode "a wonderful film"

Data: the 25k labelled training reviews, of which ``--val-size`` (chosen with the seed)
are held out for validation, whose sentiment accuracy selects ``best.npz``; the test set
is only read by ``evaluate``. The vocabulary (the ``--vocab-size`` most frequent words of the training
reviews) is saved in the checkpoint. Reviews longer than ``--max-len`` words keep their
last ``--max-len`` words (Keras's ``truncating="pre"``), in training and in ``--encode``
alike (``--encode`` says when it truncates).

Presets (every value is also a flag, which overrides the preset):

* ``seed``: the tutorial. Vocabulary 1000, 300 words, embedding 64, two bidirectional
  LSTM(500), Dense(435, relu), latent 200, epsilon std 0.01, two LSTM(500) decoders,
  sentiment Dense(100) -> Dense(1), batch 10, Adam 1e-3, pre-padding, batches drawn at random.
* ``repeat`` (the default until issue 22): the tutorial's design sized for the full data on a
  small CPU: vocabulary 10000, 400 words, LSTMs of 128, latent 64, batch 32, post-padding,
  batches of similar lengths (less padding), the sentiment loss weighted 20x against a
  reconstruction summed over the words, 3 epochs at Adam 2e-3 x 0.6 per epoch. Its decoder
  reads z repeated at every step and learns only the word frequencies (KL near 0).
* ``autoregressive`` (the default): the sentence VAE's design (:mod:`scratchvae.models.review`):
  a BiLSTM(256) encoder reads the first 400 words, z (32) starts the decoder LSTM(256) and
  enters every step, which rebuilds the review's first ``--decoder-len`` (100) words teacher-forced
  with word dropout 0.3, tied embeddings, vocabulary 10000, free bits 0.25 nats per unit, the KL
  weight annealed (logistic, half at 20 % of the run), a linear sentiment head on the posterior
  mean weighted 20x, 3 epochs at Adam 2e-3 x 0.6 per epoch, clipnorm 5. See
  :mod:`scratchvae.tasks.imdb_review` for its training step and evaluation.

In every preset best.npz is the epoch with the best validation sentiment accuracy.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from ..backend import get_backend
from ..cli.flags import add_flag, apply_threads, command_parser
from ..cli.types import fraction, image_file, non_negative_float, non_negative_int, positive_int
from ..data.batching import bucket_batches
from ..data.errors import DataError
from ..data.imdb import load_imdb
from ..data.reserved import PAD_ID, UNK_ID
from ..data.tokenizer import Tokenizer, pad_sequences, split_words
from ..losses import BatchMean, whole_batch
from ..models.imdb import IMDBVAE, IMDBVAEConfig
from ..models.review import ReviewVAEConfig
from ..plotting import matplotlib_missing
from ..progress import progress_bar
from ..training.checkpoint import load_model_state

DEFAULTS = {"optimizer": "adam", "clipnorm": None}
PRESET_DECIDED = ("epochs", "batch_size", "lr", "lr_decay", "clipnorm")  # train's flags whose default is the preset's
EVAL_BATCH = 64


@dataclass(frozen=True)
class Preset:
    model: IMDBVAEConfig | ReviewVAEConfig
    max_len: int
    padding: str  # "pre" or "post"
    bucket: bool  # batches of similar lengths
    val_size: int
    epochs: int
    batch_size: int
    lr: float
    lr_decay: float = 1.0
    clipnorm: float | None = None
    truncating: str = "pre"  # long reviews keep their last ("pre") or first ("post") max_len words
    decoder_len: int | None = None  # autoregressive: words the decoder rebuilds
    word_dropout: float | None = None  # autoregressive: rate of <unk> in the decoder inputs
    kl_schedule: str | None = None  # autoregressive: KL annealing (models/annealing.py)

    @property
    def autoregressive(self) -> bool:
        return isinstance(self.model, ReviewVAEConfig)


PRESETS = {
    "seed": Preset(
        IMDBVAEConfig(), max_len=300, padding="pre", bucket=False, val_size=2500, epochs=1, batch_size=10, lr=1e-3
    ),
    "repeat": Preset(
        IMDBVAEConfig(
            vocab_size=10000,
            embedding_dim=64,
            encoder_units=128,
            hidden_units=128,
            latent_dim=64,
            decoder_units=128,
            sentiment_units=64,
            epsilon_std=0.01,
            sentiment_weight=20.0,
        ),
        max_len=400,
        padding="post",
        bucket=True,
        val_size=2500,
        epochs=3,
        batch_size=32,
        lr=2e-3,
        lr_decay=0.6,
    ),
    "autoregressive": Preset(
        ReviewVAEConfig(),
        max_len=400,
        padding="post",
        truncating="post",
        bucket=True,
        val_size=2500,
        epochs=3,
        batch_size=32,
        lr=2e-3,
        lr_decay=0.6,
        clipnorm=5.0,
        decoder_len=100,
        word_dropout=0.3,
        kl_schedule="logistic",
    ),
}
DEFAULT_PRESET = "autoregressive"
PRESET_HELP = {
    "seed": "the Keras tutorial exactly",
    "repeat": "the tutorial's z-repeated decoder sized for a CPU (the default before issue 22)",
    "autoregressive": "an autoregressive decoder (the sentence VAE's) and a sentiment head on z",
}

# flag -> model config field, for the model sizes, options and loss weights of every preset's model.
_FIELDS = {f.name: f for config in (IMDBVAEConfig, ReviewVAEConfig) for f in fields(config)}
_MODEL_FLAGS = {name: "--" + name.replace("_", "-") for name in _FIELDS}


# The model flags' types and help: sizes are positive, the noise and the loss weights non-negative.
_MODEL_TYPES = {
    "epsilon_std": non_negative_float,
    "kl_weight": non_negative_float,
    "sentiment_weight": non_negative_float,
    "recurrent_activation": str,
    "free_bits": non_negative_float,
    "decoder_dropout": fraction,
    "init_state": str,
}
_MODEL_HELP = {
    "vocab_size": "the most frequent training words kept, the reserved ids included (2: padding, unknown; "
    "autoregressive 4: and <s>, </s>)",
    "embedding_dim": "size of the word vectors",
    "encoder_units": "units of each direction of the encoder BiLSTMs (2 of them; autoregressive 1)",
    "hidden_units": "units of the Dense layer between the encoder and z",
    "latent_dim": "size of the latent code z",
    "decoder_units": "units of the decoder LSTMs (2 of them; autoregressive 1)",
    "sentiment_units": "units of the sentiment head's hidden layer",
    "epsilon_std": "std of the reparameterisation noise while training",
    "kl_weight": "weight of the KL term in the loss",
    "sentiment_weight": "weight of the sentiment loss",
    "recurrent_activation": "the LSTMs' gate activation (hard_sigmoid: Keras 2's)",
    "z_every_step": "autoregressive: also feed z to the decoder at every step",
    "init_state": "autoregressive: the decoder's initial state from z: hc = h0 and c0, h = h0 only",
    "free_bits": "autoregressive: nats per latent unit below which KL is not pushed down",
    "decoder_dropout": "autoregressive: dropout on the decoder's inputs and outputs, in training",
    "tie_embeddings": "autoregressive: the output layer reads the embedding table transposed "
    "(needs --embedding-dim equal to --decoder-units)",
}
_CHOICES = {"recurrent_activation": ("sigmoid", "hard_sigmoid"), "init_state": ("h", "hc")}


def presets_with(key: str) -> list[str]:
    """The presets whose model, or data settings, have ``key``."""
    return [
        name
        for name, p in PRESETS.items()
        if (key in {f.name for f in fields(p.model)} if key in _FIELDS else getattr(p, key, None) is not None)
    ]


_AUTOREGRESSIVE_DATA = ("decoder_len", "word_dropout", "kl_schedule")


def _shown(value) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def preset_default(key: str) -> str:
    """--help's default for a flag the preset decides, e.g. "the preset's: 0.002 for autoregressive, 0.001 for
    seed"; a setting only some presets' models have is shown for those."""
    order = sorted(PRESETS, key=lambda name: name != DEFAULT_PRESET)  # the default preset first
    if key in _MODEL_FLAGS:
        order = [name for name in order if key in {f.name for f in fields(PRESETS[name].model)}]
    elif key in _AUTOREGRESSIVE_DATA:
        order = [name for name in order if PRESETS[name].autoregressive]
    values = [(name, getattr(PRESETS[name].model if key in _MODEL_FLAGS else PRESETS[name], key)) for name in order]
    if len(values) == 1:
        return f"the preset's: {_shown(values[0][1])} for {values[0][0]}"
    if len({v for _, v in values}) == 1:
        return f"the preset's, {_shown(values[0][1])} for every preset"
    return "the preset's: " + ", ".join(f"{_shown(v)} for {name}" for name, v in values)


def preset_values(args) -> dict:
    """The values of :data:`PRESET_DECIDED` that ``args`` leaves to its preset."""
    preset = PRESETS[args.preset]
    return {key: getattr(preset, key) for key in PRESET_DECIDED if getattr(args, key) is None}


def add_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    g = parser.add_argument_group("model (unset flags take the preset's value)")
    g.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default=DEFAULT_PRESET,
        help="; ".join(f"{name}: {text}" for name, text in PRESET_HELP.items()),
    )
    for name, field in _FIELDS.items():
        help = f"{_MODEL_HELP[name]} (default: {preset_default(name)})"
        if field.type == "bool":
            g.add_argument(
                _MODEL_FLAGS[name], dest=name, action=argparse.BooleanOptionalAction, default=None, help=help
            )
            continue
        extra = {"choices": _CHOICES[name]} if name in _CHOICES else {"metavar": "X" if field.type == "float" else "N"}
        g.add_argument(
            _MODEL_FLAGS[name], dest=name, type=_MODEL_TYPES.get(name, positive_int), default=None, help=help, **extra
        )
    g = parser.add_argument_group("data")
    g.add_argument(
        "--max-len",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"words kept per review: the last ones (seed, repeat) or the first (autoregressive) "
        f"(default: {preset_default('max_len')})",
    )
    g.add_argument(
        "--decoder-len",
        type=positive_int,
        default=None,
        metavar="N",
        help="autoregressive: the decoder rebuilds each review's first N words (and </s> where the "
        f"review ends within them), at most --max-len (default: {preset_default('decoder_len')})",
    )
    g.add_argument(
        "--padding",
        choices=("pre", "post"),
        default=None,
        help=f"pad short reviews at the start or the end (default: {preset_default('padding')})",
    )
    g.add_argument(
        "--bucket",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"batch reviews of similar lengths together (default: {preset_default('bucket')})",
    )
    g.add_argument(
        "--train-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="train on N labelled reviews (default: all not held out)",
    )
    g.add_argument(
        "--val-size",
        type=non_negative_int,
        default=None,
        metavar="N",
        help=f"labelled training reviews held out for validation (default: {preset_default('val_size')})",
    )
    g.add_argument(
        "--unlabelled",
        nargs="?",
        const=-1,
        type=positive_int,
        default=0,
        metavar="N",
        help="semi-supervised: also train reconstruction and KL on the unlabelled reviews "
        "(all 50k, or N of them; default: none)",
    )
    add_flag(g, "no_download")
    from .sentence import add_objective_arguments

    add_objective_arguments(
        parser.add_argument_group("objective (autoregressive)"),
        scaled=True,
        word_dropout=None,
        kl_schedule=None,
        free_bits=False,
    )


# --------------------------------------------------------------------- data
def resolve_preset(args) -> tuple[IMDBVAEConfig, dict]:
    """The model config and data settings: the preset, overridden by every flag given."""
    preset = PRESETS[args.preset]
    overrides = {k: getattr(args, k) for k in _MODEL_FLAGS if getattr(args, k, None) is not None}
    own = {f.name for f in fields(preset.model)}
    given = [k for k in overrides if k not in own]
    given += [
        k
        for k in ("decoder_len", "word_dropout", "kl_schedule", "kl_steps", "kl_k", "kl_x0")
        if not preset.autoregressive and getattr(args, k, None) is not None
    ]
    if given:
        flag = "--" + given[0].replace("_", "-")
        raise DataError(
            f"{flag} is not a setting of the {args.preset} preset's model; it belongs to "
            f"--preset {' or '.join(presets_with(given[0]) or ['autoregressive'])}"
        )
    try:
        config = replace(preset.model, **overrides)
    except ValueError as exc:  # e.g. a vocabulary with no room beside the reserved ids
        raise DataError(f"{exc} (set by --preset {args.preset} and the size flags)") from None
    pick = lambda key: getattr(preset, key) if getattr(args, key, None) is None else getattr(args, key)
    data = {
        "max_len": pick("max_len"),
        "padding": pick("padding"),
        "bucket": pick("bucket"),
        "val_size": pick("val_size"),
        "train_size": args.train_size,
        "unlabelled": args.unlabelled,
        "split_seed": args.seed,
        "truncating": preset.truncating,
    }
    if preset.autoregressive:
        if data["padding"] != "post":
            raise DataError(
                "the autoregressive preset reads post-padded reviews (its decoder starts at the first "
                "word); drop --padding pre"
            )
        data.update(
            decoder_len=min(pick("decoder_len"), data["max_len"]),
            word_dropout=pick("word_dropout"),
            kl_schedule=pick("kl_schedule"),
        )
        if getattr(args, "decoder_len", None) is not None and args.decoder_len > data["max_len"]:
            raise DataError(
                f"--decoder-len {args.decoder_len} is over --max-len {data['max_len']}: the decoder "
                "rebuilds words the encoder reads; lower --decoder-len or raise --max-len"
            )
    return config, data


def encode_texts(tokenizer: Tokenizer, texts, max_len: int, padding: str, truncating: str = "pre") -> np.ndarray:
    """Texts -> (N, max_len) int32 ids, long reviews keeping their last (``truncating="pre"``) or first
    max_len words."""
    return pad_sequences(tokenizer.encode(texts), maxlen=max_len, padding=padding, truncating=truncating)


def check_not_empty(ids: np.ndarray, split: str) -> None:
    """DataError naming the first review that encoded to no words at all."""
    empty = np.flatnonzero(~(ids != PAD_ID).any(axis=1))
    if empty.size:
        raise DataError(
            f"{empty.size} of the {split} reviews are empty (no words), the first at index "
            f"{empty[0]}; remove the empty review files from the dataset"
        )


@dataclass
class Prepared:
    tokenizer: Tokenizer
    train_ids: np.ndarray  # (N, max_len) int32
    train_labels: np.ndarray  # (N,) 0/1 (0 for unlabelled)
    train_weights: np.ndarray  # (N,) 1 labelled, 0 unlabelled
    val_ids: np.ndarray
    val_labels: np.ndarray


def prepare_data(
    config: IMDBVAEConfig | ReviewVAEConfig, data: dict, data_dir=None, download=True, progress=True
) -> Prepared:
    """Load the reviews, hold out the validation set, fit the vocabulary, encode and pad."""
    imdb = load_imdb(data_dir, download=download, progress=progress)
    train = imdb.train
    n = len(train)
    order = np.random.default_rng([data["split_seed"], 3]).permutation(n)
    val_idx, rest = order[: data["val_size"]], order[data["val_size"] :]
    if len(rest) == 0:
        raise DataError(f"--val-size {data['val_size']} leaves none of the {n} labelled reviews for training")
    if data["train_size"] is not None:
        if data["train_size"] > len(rest):
            raise DataError(
                f"--train-size {data['train_size']} is more than the {len(rest)} labelled "
                f"reviews left after holding out {len(val_idx)} for validation"
            )
        rest = rest[: data["train_size"]]
    texts = [train.texts[i] for i in rest]
    labels = train.labels[rest].astype(np.int64)
    weights = np.ones(len(texts))
    if data["unlabelled"]:
        unsup = imdb.unsup.texts if data["unlabelled"] < 0 else imdb.unsup.texts[: data["unlabelled"]]
        if not unsup:
            raise DataError(
                "--unlabelled needs the unlabelled reviews (train/unsup), which this "
                "copy of the dataset lacks; use aclImdb_v1.tar.gz"
            )
        texts += unsup
        labels = np.concatenate([labels, np.zeros(len(unsup), np.int64)])
        weights = np.concatenate([weights, np.zeros(len(unsup))])
    # The autoregressive model's ids add <s> and </s> to the tokenizer's two reserved ids (imdb_review.py).
    reserved_extra = 2 if isinstance(config, ReviewVAEConfig) else 0
    tokenizer = Tokenizer(config.vocab_size - reserved_extra).fit(texts)
    enc = lambda t: encode_texts(tokenizer, t, data["max_len"], data["padding"], data.get("truncating", "pre"))
    train_ids, val_ids = enc(texts), enc([train.texts[i] for i in val_idx])
    check_not_empty(train_ids, "training")
    check_not_empty(val_ids, "validation")
    return Prepared(tokenizer, train_ids, labels, weights, val_ids, train.labels[val_idx].astype(np.int64))


def trim(ids: np.ndarray) -> np.ndarray:
    """Drop the columns that are padding in every row (exact: masked steps change nothing)."""
    used = np.flatnonzero((ids != PAD_ID).any(axis=0))
    if used.size == 0:
        return ids[:, :1]
    return ids[:, used[0] : used[-1] + 1]


def evaluate_arrays(
    model: IMDBVAE,
    ids: np.ndarray,
    labels: np.ndarray,
    batch_size: int = EVAL_BATCH,
    progress: bool = False,
    desc: str = "evaluating",
    z_out: np.ndarray | None = None,
) -> dict[str, float]:
    """Loss terms with z = z_mean over a whole set, batched by length; means per review/token.

    ``z_out`` (N, Z), if given, receives every review's z_mean.
    """
    order = np.argsort((ids != PAD_ID).sum(axis=1), kind="stable")
    sums = dict.fromkeys(("loss", "reconstruction", "kl", "bce", "accuracy"), 0.0)
    nll = tokens = hits = 0.0
    for start in progress_bar(range(0, len(order), batch_size), desc=desc, progress=progress):
        idx = order[start : start + batch_size]
        batch = trim(ids[idx])
        m = model.forward(model.backend.asarray(batch, dtype=np.int64), labels[idx], None, token_accuracy=True)
        n_tok = float((batch != PAD_ID).sum())
        if z_out is not None:
            z_out[idx] = model.backend.to_numpy(model.last_z_mean)
        for k in sums:
            sums[k] += m[k] * len(idx)
        nll += m["nll_per_token"] * n_tok
        hits += m["token_accuracy"] * n_tok
        tokens += n_tok
    n = max(len(order), 1)
    out = {k: v / n for k, v in sums.items()}
    out["nll_per_token"] = nll / max(tokens, 1.0)
    out["token_accuracy"] = hits / max(tokens, 1.0)
    return out


# --------------------------------------------------------------------- task
class IMDBTask:
    """Trainer task: one step is the loss of a batch of reviews with fresh noise eps."""

    name = "imdb"
    selection = ("val_accuracy", "max")  # best.npz: the epoch whose latent code predicts sentiment best
    progress = False  # a bar while validating (on a terminal)

    def __init__(self, model: IMDBVAE, prepared: Prepared | None, data: dict, *, batch_size: int, tokenizer: Tokenizer):
        self.model, self.prepared, self.data = model, prepared, data
        self.batch_size, self.tokenizer = batch_size, tokenizer
        if prepared is not None and batch_size > len(prepared.train_ids):
            raise DataError(
                f"--batch-size {batch_size} is larger than the {len(prepared.train_ids)} "
                f"training reviews; use --batch-size <= {len(prepared.train_ids)}"
            )
        if prepared is not None:
            self.lengths = (prepared.train_ids != PAD_ID).sum(axis=1)

    def label_weights(self, batch) -> np.ndarray | None:
        """The batch's weights of the sentiment loss (0 for an unlabelled review); None when every review of
        the run is labelled.  Decided by the run, not the batch, so that every shard of a batch passes
        weights, and asks for their batch mean (see :mod:`scratchvae.losses`), or none does."""
        return self.prepared.train_weights[batch] if self.data["unlabelled"] else None

    def meta(self) -> dict:
        return {
            "config": self.model.config.to_dict(),
            "dtype": self.model.dtype.name,
            "data": dict(self.data),
            "batch_size": self.batch_size,
            "tokenizer": self.tokenizer.to_json(),
        }

    def epoch_batches(self, rng: np.random.Generator) -> list:
        if self.data["bucket"]:
            return bucket_batches(self.lengths, self.batch_size, rng)
        order = rng.permutation(len(self.lengths))
        return [order[i : i + self.batch_size] for i in range(0, len(order), self.batch_size)]

    def train_step(
        self, batch, rng: np.random.Generator, step: int, *, batch_mean: BatchMean = whole_batch
    ) -> dict[str, float]:
        model, p = self.model, self.prepared
        ids = model.backend.asarray(trim(p.train_ids[batch]), dtype=np.int64)
        metrics = model.forward(
            ids,
            p.train_labels[batch],
            model.noise(rng, len(batch)),
            self.label_weights(batch),
            batch_mean=batch_mean,
        )
        model.backward()
        return metrics

    def validate(self) -> dict[str, float]:
        p = self.prepared
        if len(p.val_ids) == 0:
            return {}
        m = evaluate_arrays(self.model, p.val_ids, p.val_labels, progress=self.progress, desc="validating")
        return {"val_loss": m["loss"], **{f"val_{k}": v for k, v in m.items() if k != "loss"}}


def build_task(args) -> IMDBTask:
    """The task for a run's settings (:func:`scratchvae.train.resolve_settings`)."""
    config, data = resolve_preset(args)  # bad sizes fail here, before minutes of loading
    prepared = prepare_data(config, data, args.data_dir, args.download, args.progress)
    if isinstance(config, ReviewVAEConfig):
        from .imdb_review import build_review_task

        return build_review_task(args, config, data, prepared)
    model = IMDBVAE(config, rng=np.random.default_rng(args.seed), backend=args.backend, dtype=args.dtype)
    task = IMDBTask(model, prepared, data, batch_size=args.batch_size, tokenizer=prepared.tokenizer)
    task.progress = args.progress
    return task


def load_task(ckpt, backend) -> IMDBTask:
    """The task of a checkpoint: the trained model and its tokenizer (no data loaded)."""
    meta = ckpt.meta
    if meta.get("model") == "review":
        from .imdb_review import load_review_task

        return load_review_task(ckpt, backend)
    model = IMDBVAE(
        IMDBVAEConfig.from_dict(meta["config"]), rng=np.random.default_rng(0), backend=backend, dtype=meta["dtype"]
    )
    load_model_state(model, ckpt)
    return IMDBTask(
        model, None, meta["data"], batch_size=meta["batch_size"], tokenizer=Tokenizer.from_json(meta["tokenizer"])
    )


# --------------------------------------------------------------------- evaluation
def add_test_size(p: argparse.ArgumentParser) -> None:
    """--test-size N of the IMDB evaluate commands."""
    p.add_argument(
        "--test-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="evaluate on N test reviews drawn at random (default: all)",
    )


def add_review_inputs(p: argparse.ArgumentParser, show_help: str, encode_help: str) -> None:
    """--show N, --encode TEXT (repeatable) and --encode-file PATH of the IMDB evaluate commands; each model
    says in ``show_help`` and ``encode_help`` what it prints for a shown or encoded review."""
    p.add_argument("--show", type=non_negative_int, default=0, metavar="N", help=show_help)
    p.add_argument("--encode", action="append", default=[], metavar="TEXT", help=encode_help)
    p.add_argument(
        "--encode-file", metavar="PATH", help="encode every non-empty line of a UTF-8 file, one review per line"
    )


def add_plot(p: argparse.ArgumentParser) -> None:
    """--plot PNG of the IMDB evaluate commands."""
    p.add_argument(
        "--plot",
        type=image_file,
        metavar="PNG",
        help="write the PCA of the test reviews' z_mean, coloured by sentiment, into this image",
    )


def eval_parser(name: str = "imdb") -> argparse.ArgumentParser:
    """The options of ``evaluate`` for the default preset's (autoregressive) checkpoints; those of the seed and
    repeat presets are :func:`repeat_eval_parser`'s."""
    from .imdb_review import eval_parser as review_eval_parser

    return review_eval_parser(name)


def repeat_eval_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "python -m scratchvae.evaluate CKPT",
        "Evaluate an IMDB VAE of the seed or repeat preset on the 25k test reviews (reconstruction NLL per "
        "token, token accuracy, KL, sentiment accuracy; z = z_mean), show reconstructions, encode your own text, "
        "plot the latent space. "
        "With only --encode/--encode-file the test set is not read.",
        (
            "python -m scratchvae.evaluate runs/imdb/best.npz --show 3 --plot latent.png",
            'python -m scratchvae.evaluate runs/imdb/best.npz --encode "a wonderful film"',
            "python -m scratchvae.evaluate runs/imdb/best.npz --test-size 2000 --threads 1",
        ),
    )
    add_flag(p, "backend")
    add_flag(p, "data_dir")
    add_flag(p, "no_download")
    add_test_size(p)
    add_flag(p, "batch_size", default=EVAL_BATCH)
    add_review_inputs(
        p,
        show_help="print N test reviews and their greedy reconstructions",
        encode_help="encode TEXT and print its predicted sentiment (repeatable); longer than "
        "--max-len words, it keeps its last max-len words, as in training",
    )
    add_plot(p)
    add_flag(p, "seed", help="seed of the --test-size and --show draws")
    add_flag(p, "threads")
    add_flag(p, "no_progress")
    return p


def read_review_file(path: str) -> list[str]:
    """Non-empty lines of a UTF-8 file; DataError for a missing, empty or non-UTF-8 file."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path} is not UTF-8 (bad byte at offset {exc.start}); save it as UTF-8") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise DataError(f"{path} is empty; put one review per line")
    return lines


def encode_report(task: IMDBTask, texts: list[str]) -> list[str]:
    """One line per text: predicted sentiment, and a note when it was truncated."""
    max_len, model = task.data["max_len"], task.model
    out = []
    for text in texts:
        n_words = len(split_words(text))
        if n_words == 0:
            raise DataError("the text to encode has no words; give a review with at least one word")
        ids = encode_texts(task.tokenizer, [text], max_len, task.data["padding"])
        p = float(model.backend.to_numpy(model.predict_sentiment(model.backend.asarray(trim(ids), np.int64)))[0])
        label = "positive" if p > 0.5 else "negative"
        note = f" (truncated: {n_words} words, kept the last {max_len})" if n_words > max_len else ""
        unknown = int((ids == UNK_ID).sum())
        out.append(f"{label} (P(positive) = {p:.3f}, {unknown} unknown words){note}: {text[:80]!r}")
    return out


def evaluate_main(ckpt, argv) -> int:
    if ckpt.meta.get("model") == "review":
        from .imdb_review import evaluate_main as review_evaluate_main

        return review_evaluate_main(ckpt, argv)
    args = repeat_eval_parser().parse_args(argv)
    apply_threads(args)
    if args.plot and matplotlib_missing("--plot"):
        return 2
    task = load_task(ckpt, get_backend(args.backend))
    model, tok = task.model, task.tokenizer
    c = model.config
    print(
        f"imdb VAE: vocabulary {c.vocab_size}, max length {task.data['max_len']}, latent {c.latent_dim}, "
        f"{model.num_parameters():,} parameters, {model.dtype.name}, "
        f"trained {ckpt.meta.get('progress', {}).get('global_step', '?')} steps"
    )
    texts = list(args.encode) + (read_review_file(args.encode_file) if args.encode_file else [])
    for line in encode_report(task, texts):
        print(line)
    if texts and not (args.show or args.plot or args.test_size):
        return 0

    test = load_imdb(args.data_dir, download=args.download, progress=args.progress).test
    idx = np.arange(len(test))
    if args.test_size is not None and args.test_size < len(test):
        idx = np.sort(np.random.default_rng([args.seed, 4]).choice(len(test), args.test_size, replace=False))
    ids = encode_texts(tok, [test.texts[i] for i in idx], task.data["max_len"], task.data["padding"])
    labels = test.labels[idx].astype(np.int64)
    z = np.empty((len(ids), c.latent_dim))
    m = evaluate_arrays(model, ids, labels, args.batch_size, args.progress, "test set", z_out=z)
    print(f"test reviews              {len(idx)}")
    print(f"reconstruction NLL/token  {m['nll_per_token']:.4f} nats  ({m['reconstruction']:.2f} per review)")
    print(f"token accuracy            {m['token_accuracy']:.4f}  (greedy, z = z_mean)")
    print(f"KL                        {m['kl']:.3f} nats")
    print(f"sentiment BCE             {m['bce']:.4f}")
    print(f"sentiment accuracy        {m['accuracy']:.4f}")

    shown = np.random.default_rng([args.seed, 5]).permutation(len(idx))[: max(args.show, 0)]
    for i in shown:
        row = ids[i : i + 1]
        rec = model.backend.to_numpy(model.reconstruct(model.backend.asarray(trim(row), np.int64)))[0]
        print(f"\n[{'positive' if labels[i] else 'negative'}] original:      {tok.decode(row[0])}")
        print(f"reconstructed: {tok.decode(rec)}")

    if args.plot:
        from . import imdb_plots

        print(f"wrote {imdb_plots.latent_pca_plot(z, labels, args.plot)}")
    return 0
