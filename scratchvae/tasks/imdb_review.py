"""The IMDB task's autoregressive model (``--preset autoregressive``, the default): batches, training step,
validation, evaluation and the text it writes.

Ids: the IMDB tokenizer (Keras's) reserves 0 (<pad>) and 1 (<unk>), its words start at 2; the review VAE's
decoder also needs <s> and </s> (2 and 3, :mod:`scratchvae.data.reserved`), so the model's ids are the
tokenizer's shifted by 2 from the first word on (:func:`to_model_ids`, :func:`to_tokenizer_ids`).

A review as the model sees it (:func:`decoder_arrays`):

    encoder_ids   its first max_len words (post-padded)
    targets       its first decoder_len words, then </s> where the review ends within them
    decoder_ids   <s> and the targets but the last, word-dropped in training

so "reconstruction NLL per token" is per token of the targets: the first decoder_len words of each review,
and </s> where a review is no longer than that.

Training: loss = rec + beta(step) KL_term + sentiment_weight BCE, beta from the sentence VAE's KL schedules
(:mod:`scratchvae.models.annealing`, scaled to the run as the text task's), BCE on the labelled reviews only.
Validation: one sample of z per review (the same noise every epoch) and the head on the posterior mean.
Evaluation: importance-weighted NLL (K samples), KL, active units and mutual information as for PTB
(:mod:`scratchvae.models.latent_metrics`), the greedy reconstruction's token accuracy, sentiment accuracy.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

from ..backend import get_backend
from ..cli.flags import add_flag, apply_threads, command_parser
from ..cli.types import positive_int
from ..data.corpus import word_dropout
from ..data.errors import DataError
from ..data.imdb import load_imdb
from ..data.reserved import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from ..data.tokenizer import FIRST_WORD_ID, Tokenizer, split_words
from ..losses import BatchMean, whole_batch
from ..models import generate
from ..models import latent_metrics as lm
from ..models.annealing import KLSchedule
from ..models.review import ReviewVAE, ReviewVAEConfig
from ..plotting import matplotlib_missing
from ..progress import progress_bar
from ..training.checkpoint import CheckpointError, load_model_state
from .imdb import (
    EVAL_BATCH,
    IMDBTask,
    Prepared,
    add_plot,
    add_review_inputs,
    add_test_size,
    encode_texts,
    read_review_file,
    trim,
)

SHIFT = EOS_ID + 1 - FIRST_WORD_ID  # 2: tokenizer word ids start at 2, the model's at 4
FLIP_MARGIN = 2.0  # a flipped review's head logit is at least this far across (P 0.88)
SAMPLE_ROUNDS, SAMPLE_DRAWS = 200, 1000  # sample --sentiment: prior draws tried, at most


# --------------------------------------------------------------------- ids
def to_model_ids(ids: np.ndarray) -> np.ndarray:
    """Tokenizer ids -> the model's (words shifted past <s> and </s>; <pad> and <unk> kept), int64."""
    ids = np.asarray(ids, dtype=np.int64)
    return np.where(ids >= FIRST_WORD_ID, ids + SHIFT, ids)


def to_tokenizer_ids(ids) -> np.ndarray:
    """The model's ids -> the tokenizer's, <s>, </s> and <pad> dropped (for ``Tokenizer.decode``)."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    ids = ids[(ids != BOS_ID) & (ids != EOS_ID) & (ids != PAD_ID)]
    return np.where(ids >= FIRST_WORD_ID + SHIFT, ids - SHIFT, ids)


def review_text(tokenizer: Tokenizer, ids) -> str:
    """The words of model ids, as text."""
    return tokenizer.decode(to_tokenizer_ids(ids))


def decoder_arrays(encoder_ids: np.ndarray, decoder_len: int, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Post-padded model ids (B, T) -> (decoder inputs, targets), each (B, L) int64, L <= decoder_len + 1.

    targets: the first decoder_len words, then </s> where the review ends within them (a review of fewer than
    ``max_len`` words ends; one of max_len words may have been cut, so gets no </s>); inputs: <s>, then the
    targets but the last.
    """
    n_words = (encoder_ids != PAD_ID).sum(axis=1)
    kept = np.minimum(n_words, decoder_len)
    ends = (n_words < max_len) & (n_words <= decoder_len)
    steps = kept + ends
    width = max(int(steps.max()), 1)
    pos = np.arange(width)[None, :]
    targets = np.zeros((len(encoder_ids), width), dtype=np.int64)
    words = encoder_ids[:, : min(width, encoder_ids.shape[1])]
    targets[:, : words.shape[1]] = words
    targets[pos >= kept[:, None]] = PAD_ID
    targets[ends, kept[ends]] = EOS_ID
    inputs = np.concatenate([np.full((len(targets), 1), BOS_ID), targets[:, :-1]], axis=1)
    inputs[pos >= steps[:, None]] = PAD_ID
    return inputs, targets


# --------------------------------------------------------------------- task
class ReviewTask(IMDBTask):
    """Trainer task of the review VAE: one step is a batch's loss with word dropout, noise and beta(step)."""

    def __init__(
        self,
        model: ReviewVAE,
        prepared: Prepared | None,
        data: dict,
        *,
        batch_size: int,
        tokenizer: Tokenizer,
        schedule: KLSchedule = KLSchedule("constant"),
        seed: int = 0,
    ):
        super().__init__(model, prepared, data, batch_size=batch_size, tokenizer=tokenizer)
        self.schedule, self.seed = schedule, seed

    def meta(self) -> dict:
        return {
            **super().meta(),
            "model": "review",
            "objective": {
                "word_dropout": self.data["word_dropout"],
                "batch_size": self.batch_size,
                "kl_schedule": self.schedule.to_dict(),
            },
        }

    def arrays(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Tokenizer ids (B, max_len) -> the model's (encoder ids, decoder inputs, targets)."""
        enc = to_model_ids(trim(ids))
        return (enc, *decoder_arrays(enc, self.data["decoder_len"], self.data["max_len"]))

    def train_step(
        self, batch, rng: np.random.Generator, step: int, *, batch_mean: BatchMean = whole_batch
    ) -> dict[str, float]:
        model, p, backend = self.model, self.prepared, self.model.backend
        enc, inputs, targets = self.arrays(p.train_ids[batch])
        rate = self.data["word_dropout"]
        if rate > 0:  # drawn at the full decoder width: a review's draws do not depend on its batch mates
            full = np.zeros((len(batch), self.data["decoder_len"] + 1), dtype=np.int64)
            full[:, : inputs.shape[1]] = inputs
            inputs = word_dropout(full, rate, rng)[:, : inputs.shape[1]]
        eps = rng.standard_normal((len(batch), model.config.latent_dim))
        beta = self.schedule(step)
        terms = model.forward(
            backend.asarray(enc),
            backend.asarray(targets),
            backend.asarray(inputs),
            p.train_labels[batch],
            backend.asarray(eps, dtype=model.dtype),
            self.label_weights(batch),
            kl_weight=beta,
            rng=rng,
            batch_mean=batch_mean,
        )
        model.backward()
        keep = ("loss", "rec", "kl", "bce", "accuracy", "nll_per_token")
        return {**{k: terms[k] for k in keep if k in terms}, "beta": beta}

    def validate(self) -> dict[str, float]:
        p = self.prepared
        if len(p.val_ids) == 0:
            return {}
        m = measure(
            self,
            p.val_ids,
            p.val_labels,
            samples=1,
            rng=np.random.default_rng([self.seed, 4]),
            progress=self.progress,
            desc="validating",
        )
        return {
            "val_loss": m["neg_elbo"] + self.model.config.sentiment_weight * m["bce"],
            **{f"val_{k}": m[k] for k in ("accuracy", "bce", "rec", "kl", "nll_per_token", "active_units", "mi")},
        }


def build_review_task(args, config: ReviewVAEConfig, data: dict, prepared: Prepared) -> ReviewTask:
    """The task for a run's settings (from :func:`scratchvae.tasks.imdb.build_task`)."""
    from .sentence import _resumed_meta, kl_schedule, run_steps

    # ids past the tokenizer's words would be words the decoder could write and no one could read
    config = replace(config, vocab_size=min(config.vocab_size, prepared.tokenizer.vocab_size + SHIFT))
    model = ReviewVAE(config, rng=np.random.default_rng(args.seed), backend=args.backend, dtype=args.dtype)
    steps = run_steps(len(prepared.train_ids), args)
    schedule_args = argparse.Namespace(
        **{k: getattr(args, k) for k in ("kl_steps", "kl_k", "kl_x0", "kl_cycles", "kl_ratio")},
        kl_schedule=data["kl_schedule"],
    )
    schedule = kl_schedule(schedule_args, steps, _resumed_meta(args))
    task = ReviewTask(
        model,
        prepared,
        data,
        batch_size=args.batch_size,
        tokenizer=prepared.tokenizer,
        schedule=schedule,
        seed=args.seed,
    )
    task.progress = args.progress
    if args.progress:
        print(
            f"imdb autoregressive: {len(prepared.train_ids):,} training reviews "
            f"({int((prepared.train_weights == 0).sum()):,} unlabelled), {len(prepared.val_ids):,} validation; "
            f"{model.num_parameters():,} parameters; KL {schedule.describe()} over {steps:,} steps, "
            f"word dropout {data['word_dropout']:g}, free bits {config.free_bits:g}"
        )
    return task


def load_review_task(ckpt, backend, dtype=None) -> ReviewTask:
    """The task of a review-VAE checkpoint: the trained model and its tokenizer (no data loaded)."""
    meta = ckpt.meta
    model = ReviewVAE(
        ReviewVAEConfig.from_dict(meta["config"]),
        rng=np.random.default_rng(0),
        backend=backend,
        dtype=dtype or meta["dtype"],
    )
    load_model_state(model, ckpt)
    return ReviewTask(
        model, None, meta["data"], batch_size=meta["batch_size"], tokenizer=Tokenizer.from_json(meta["tokenizer"])
    )


def review_task_of(ckpt, backend, dtype=None) -> ReviewTask:
    """:func:`load_review_task`, or a one-line CheckpointError for a checkpoint that writes no text."""
    if ckpt.task() != "imdb" or ckpt.meta.get("model") != "review":
        preset = ckpt.meta.get("data", {}).get("decoder_len") is None and ckpt.task() == "imdb"
        what = (
            "an IMDB model whose decoder reads z repeated (--preset seed or repeat), which cannot write text "
            "word by word"
            if preset
            else f"a {ckpt.task()!r} model"
        )
        raise CheckpointError(
            f"the checkpoint is {what}; pass one written by 'train imdb' (the autoregressive preset, the default)"
        )
    return load_review_task(ckpt, backend, dtype)


# --------------------------------------------------------------------- measuring
def _token_hits(generated: list[list[int]], targets: np.ndarray, decoder_len: int) -> int:
    """Positions where the greedy words (then </s> if they stopped early) equal the targets."""
    hits = 0
    for words, row in zip(generated, targets):
        seq = words + ([EOS_ID] if len(words) < decoder_len else [])
        n = int((row != PAD_ID).sum())
        seq = np.array((seq + [-1] * n)[:n])
        hits += int((seq == row[:n]).sum())
    return hits


def measure(
    task: ReviewTask,
    ids: np.ndarray,
    labels: np.ndarray,
    *,
    samples: int,
    rng: np.random.Generator,
    batch_size: int = EVAL_BATCH,
    greedy: bool = False,
    mi_batch: int | None = None,
    progress: bool = False,
    desc: str = "evaluating",
    z_out: np.ndarray | None = None,
) -> dict:
    """Metrics of reviews (tokenizer ids (N, max_len), labels (N,)): IW NLL from ``samples`` z per review, the
    one-sample reconstruction, KL, active units, MI, sentiment accuracy and BCE from the posterior mean, and
    with ``greedy`` the greedy reconstruction's token accuracy. Per review unless named per token.
    ``z_out`` (N, Z), if given, receives every review's E_q[z|x]."""
    model, backend = task.model, task.model.backend
    n, Z = len(ids), model.config.latent_dim
    iw, rec1, tokens, logits = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    means, logvars = np.empty((n, Z)), np.empty((n, Z))
    hits = 0
    order = np.argsort((ids != PAD_ID).sum(axis=1), kind="stable")
    for start in progress_bar(range(0, n, batch_size), desc=desc, progress=progress):
        idx = order[start : start + batch_size]
        enc, inputs, targets = task.arrays(ids[idx])
        mean, logvar = model.encode(backend.asarray(enc))
        m, lv = backend.to_numpy(mean).astype(np.float64), backend.to_numpy(logvar).astype(np.float64)
        z = m + np.exp(0.5 * lv) * rng.standard_normal((samples, len(idx), Z))  # (K, b, Z)
        inputs_d, targets_d = backend.asarray(inputs), backend.asarray(targets)
        log_pxz = np.stack(
            [
                backend.to_numpy(model.vae.log_likelihood(inputs_d, targets_d, backend.asarray(zk, dtype=model.dtype)))
                for zk in z
            ],
            axis=1,
        )  # (b, K)
        iw[idx] = lm.importance_weighted_log_likelihood(log_pxz, z.transpose(1, 0, 2), m, lv)
        rec1[idx], tokens[idx] = -log_pxz[:, 0], (targets != PAD_ID).sum(axis=1)
        means[idx], logvars[idx] = m, lv
        logits[idx] = backend.to_numpy(model.sentiment_logit(mean))
        if greedy:
            hits += _token_hits(
                generate.greedy(model.vae, mean, task.data["decoder_len"]), targets, task.data["decoder_len"]
            )
    if z_out is not None:
        z_out[...] = means
    kl = lm.gaussian_kl(means, logvars)
    y = np.asarray(labels, dtype=np.float64)
    bce = np.logaddexp(0.0, logits) - y * logits
    total = max(float(tokens.sum()), 1.0)
    out = {
        "reviews": n,
        "tokens": int(tokens.sum()),
        "samples": samples,
        "nll": float(-iw.mean()),
        "nll_per_token": float(-iw.sum() / total),
        "rec": float(rec1.mean()),
        "kl": float(kl.mean()),
        "neg_elbo": float((rec1 + kl).mean()),
        "neg_elbo_per_token": float((rec1 + kl).sum() / total),
        "accuracy": float(((logits > 0) == (y > 0.5)).mean()),
        "bce": float(bce.mean()),
        "active_units": lm.active_units(means)[0],
        "latent_dim": Z,
        "mi": lm.mutual_information(means, logvars, np.random.default_rng(rng.integers(2**32)), mi_batch),
    }
    if greedy:
        out["token_accuracy"] = hits / total
    return out


# --------------------------------------------------------------------- text in, text out
def encode_user_texts(task: ReviewTask, texts: list[str]) -> np.ndarray:
    """Reviews a user typed -> tokenizer ids (N, max_len); DataError for one with no word, or no known word."""
    for text in texts:
        if not split_words(text):
            raise DataError(f"the review {text[:40]!r} has no words; give a review with at least one word")
    ids = encode_texts(task.tokenizer, texts, task.data["max_len"], "post", task.data.get("truncating", "post"))
    for text, row in zip(texts, ids):
        if not ((row != PAD_ID) & (row != UNK_ID)).any():
            raise DataError(
                f"no word of {text[:40]!r} is in the model's {task.model.config.vocab_size:,}-word "
                "vocabulary; write the review in English words the training reviews use"
            )
    return ids


def posterior_means(task: ReviewTask, ids: np.ndarray, batch_size: int = EVAL_BATCH) -> np.ndarray:
    """E_q[z|x] (N, Z) of reviews (tokenizer ids), on the host."""
    model = task.model
    out = np.empty((len(ids), model.config.latent_dim))
    for start in range(0, len(ids), batch_size):
        enc = to_model_ids(trim(ids[start : start + batch_size]))
        out[start : start + len(enc)] = model.backend.to_numpy(model.encode(model.backend.asarray(enc))[0])
    return out


def decode_reviews(
    task: ReviewTask,
    z: np.ndarray,
    method: str,
    *,
    rng: np.random.Generator | None = None,
    temperature: float = 1.0,
    beam_width: int = 5,
    max_words: int | None = None,
) -> list[str]:
    """Codes z (N, Z) on the host -> review texts, by ``method`` (greedy, sample, beam)."""
    model = task.model
    ids = generate.decode(
        model.vae,
        model.backend.asarray(z, dtype=model.dtype),
        method,
        rng=rng,
        temperature=temperature,
        beam_width=beam_width,
        max_len=max_words or task.data["decoder_len"],
    )
    return [review_text(task.tokenizer, words) for words in ids]


def flipped_codes(task: ReviewTask, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z (N, Z) moved along the head's normal w across its boundary: logit z' . w + b = -sign(logit) *
    max(|logit|, FLIP_MARGIN); the part of z along the boundary is kept. Returns (z', logit of z)."""
    w, b = task.model.sentiment_direction()
    logit = z @ w + b
    target = -np.sign(logit + (logit == 0)) * np.maximum(np.abs(logit), FLIP_MARGIN)
    return z + ((target - logit) / max(float(w @ w), 1e-12))[:, None] * w, logit


def prior_codes(task: ReviewTask, n: int, rng: np.random.Generator, sentiment: str | None = None) -> np.ndarray:
    """n codes from the prior N(0, I); with ``sentiment``, the prior restricted to the head's half-space for
    it (draws kept where P(positive) > 1/2, or < 1/2), i.e. z ~ p(z | the head says ``sentiment``)."""
    Z = task.model.config.latent_dim
    if sentiment is None:
        return rng.standard_normal((n, Z))
    w, b = task.model.sentiment_direction()
    kept: list[np.ndarray] = []
    count = 0
    for _ in range(SAMPLE_ROUNDS):
        z = rng.standard_normal((SAMPLE_DRAWS, Z))
        side = z @ w + b > 0
        z = z[side if sentiment == "positive" else ~side]
        kept.append(z)
        count += len(z)
        if count >= n:
            return np.concatenate(kept)[:n]
    raise DataError(
        f"only {count} of {SAMPLE_ROUNDS * SAMPLE_DRAWS:,} codes drawn from the prior are {sentiment} "
        f"for this model's sentiment head; ask for at most {count} reviews with -n"
    )


def p_positive(task: ReviewTask, z: np.ndarray) -> np.ndarray:
    w, b = task.model.sentiment_direction()
    return 0.5 * (np.tanh(0.5 * (z @ w + b)) + 1.0)


# --------------------------------------------------------------------- evaluate
def eval_parser(name: str = "imdb") -> argparse.ArgumentParser:
    p = command_parser(
        "python -m scratchvae.evaluate CKPT",
        "Evaluate an autoregressive IMDB review VAE on the 25k test reviews: reconstruction NLL per token "
        "(importance-weighted, K samples; per token of the first --decoder-len words of each review, </s> "
        "included where a review ends within them), KL, active units, mutual information, the greedy "
        "reconstruction's token accuracy, sentiment accuracy from z = E_q[z|x]. Shows reconstructions (greedy "
        "and beam) of test reviews or of your own text, and with --flip the review decoded from z moved across "
        "the sentiment head's boundary. With only --encode/--encode-file the test set is not read.",
        (
            "python -m scratchvae.evaluate runs/imdb/best.npz --samples 10 --show 3 --flip",
            'python -m scratchvae.evaluate runs/imdb/best.npz --encode "a wonderful film" --flip',
            "python -m scratchvae.evaluate runs/imdb/best.npz --test-size 2000 --samples 5 --threads 1",
        ),
    )
    add_flag(p, "backend")
    add_flag(p, "data_dir")
    add_flag(p, "no_download")
    add_test_size(p)
    p.add_argument(
        "--samples",
        type=positive_int,
        default=10,
        metavar="K",
        help="importance samples of z per review for the NLL (each costs a decoder pass)",
    )
    p.add_argument(
        "--mi-batch",
        type=positive_int,
        default=None,
        metavar="N",
        help="estimate MI per batch of this size as He et al. (default: over all the reviews)",
    )
    add_flag(p, "batch_size", default=EVAL_BATCH)
    add_review_inputs(
        p,
        show_help="print N test reviews drawn with --seed and their reconstructions (greedy and beam)",
        encode_help="encode TEXT: its predicted sentiment and reconstructions (repeatable)",
    )
    p.add_argument(
        "--flip",
        action="store_true",
        help="also decode each shown or encoded review from its z moved across the sentiment head's "
        "boundary (to the other side, at least as far: P at most 0.12 or at least 0.88)",
    )
    add_flag(p, "beam_width")
    add_plot(p)
    add_flag(p, "seed", help="seed of the --test-size and --show draws and of the evaluation noise")
    add_flag(p, "threads")
    add_flag(p, "no_progress")
    return p


def show_reviews(task: ReviewTask, ids: np.ndarray, heading: list[str], args) -> list[str]:
    """Each review (tokenizer ids) under its heading: what the decoder rebuilds, its greedy and beam
    reconstructions, and with ``args.flip`` the decodings of its flipped code."""
    z = posterior_means(task, ids)
    enc = to_model_ids(ids)
    _, targets = decoder_arrays(enc, task.data["decoder_len"], task.data["max_len"])
    decoded = {m: decode_reviews(task, z, m, beam_width=args.beam_width) for m in ("greedy", "beam")}
    lines = []
    if args.flip:
        flipped, logit = flipped_codes(task, z)
        flips = {m: decode_reviews(task, flipped, m, beam_width=args.beam_width) for m in ("greedy", "beam")}
    for i, head in enumerate(heading):
        lines += [
            "",
            f"{head}  (P(positive) from z = {p_positive(task, z[i : i + 1])[0]:.3f})",
            f"original:       {review_text(task.tokenizer, targets[i])}",
            f"greedy:         {decoded['greedy'][i]}",
            f"beam ({args.beam_width}):       {decoded['beam'][i]}",
        ]
        if args.flip:
            to = "negative" if logit[i] > 0 else "positive"
            lines += [
                f"flipped to {to} (P(positive) = {p_positive(task, flipped[i : i + 1])[0]:.3f}):",
                f"  greedy:       {flips['greedy'][i]}",
                f"  beam:         {flips['beam'][i]}",
            ]
    return lines


def evaluate_main(ckpt, argv) -> int:
    args = eval_parser().parse_args(argv)
    apply_threads(args)
    if args.plot and matplotlib_missing("--plot"):
        return 2
    texts = list(args.encode) + (read_review_file(args.encode_file) if args.encode_file else [])
    if args.flip and not (texts or args.show):
        raise DataError("--flip decodes the reviews shown or encoded: add --show N or --encode TEXT")
    task = load_review_task(ckpt, get_backend(args.backend))
    own = encode_user_texts(task, texts) if texts else None  # bad text fails before any work
    model, c, data = task.model, task.model.config, task.data
    print(
        f"imdb review VAE (autoregressive): vocabulary {c.vocab_size}, reads {data['max_len']} words, rebuilds "
        f"the first {data['decoder_len']}, latent {c.latent_dim}, {model.num_parameters():,} parameters, "
        f"{model.dtype.name}, trained {ckpt.meta.get('progress', {}).get('global_step', '?')} steps"
    )
    if own is not None:
        heads = [f"[your text {i + 1}, {len(split_words(t))} words]" for i, t in enumerate(texts)]
        print("\n".join(show_reviews(task, own, heads, args)))
    if texts and not (args.show or args.plot or args.test_size):
        return 0

    test = load_imdb(args.data_dir, download=args.download, progress=args.progress).test
    idx = np.arange(len(test))
    if args.test_size is not None and args.test_size < len(test):
        idx = np.sort(np.random.default_rng([args.seed, 4]).choice(len(test), args.test_size, replace=False))
    ids = encode_texts(
        task.tokenizer, [test.texts[i] for i in idx], data["max_len"], "post", data.get("truncating", "post")
    )
    labels = test.labels[idx].astype(np.int64)
    z = np.empty((len(ids), c.latent_dim))
    m = measure(
        task,
        ids,
        labels,
        samples=args.samples,
        rng=np.random.default_rng([args.seed, 5]),
        batch_size=args.batch_size,
        greedy=True,
        mi_batch=args.mi_batch,
        progress=args.progress,
        desc="test set",
        z_out=z,
    )
    per_review = m["tokens"] / max(m["reviews"], 1)
    print(
        f"test reviews              {m['reviews']}  ({m['tokens']:,} target tokens, {per_review:.1f} a review: "
        f"the first {data['decoder_len']} words, </s> where a review ends within them)"
    )
    print(
        f"reconstruction NLL/token  {m['nll_per_token']:.4f} nats  (importance-weighted, K={m['samples']}; "
        f"{m['nll']:.2f} per review)"
    )
    print(
        f"-ELBO/token (1 sample)    {m['neg_elbo_per_token']:.4f} nats  (reconstruction {m['rec']:.2f} + KL per review)"
    )
    print(f"KL                        {m['kl']:.3f} nats  (KL(q(z|x) || N(0, I)) per review)")
    print(f"active units              {m['active_units']} / {m['latent_dim']}  (Cov_x(E_q[z_j]) > 0.01)")
    print(f"mutual information        {m['mi']:.3f} nats  (I(x; z) under q, He et al. 2019)")
    print(
        f"token accuracy            {m['token_accuracy']:.4f}  (greedy reconstruction from z = E_q[z|x], "
        "word by word against the targets)"
    )
    print(f"sentiment BCE             {m['bce']:.4f}")
    print(f"sentiment accuracy        {m['accuracy']:.4f}  (from z = E_q[z|x])")
    if args.show:
        shown = np.random.default_rng([args.seed, 5]).permutation(len(idx))[: args.show]
        heads = [f"[test review {idx[i]}, {'positive' if labels[i] else 'negative'}]" for i in shown]
        print("\n".join(show_reviews(task, ids[shown], heads, args)))
    if args.plot:
        from . import imdb_plots

        print(f"wrote {imdb_plots.latent_pca_plot(z, labels, args.plot)}")
    return 0


# --------------------------------------------------------------------- sample, interpolate
def sample_lines(ckpt, args) -> list[str]:
    """``python -m scratchvae.sample`` for a review VAE: one review a line, from the prior (or the prior
    restricted to the head's ``--sentiment`` side), each with the head's P(positive) of its code."""
    task = review_task_of(ckpt, args.backend, args.dtype)
    rng = np.random.default_rng(args.seed)
    z = prior_codes(task, args.num, rng, args.sentiment)
    texts = decode_reviews(
        task,
        z,
        args.method,
        rng=rng,
        temperature=args.temperature,
        beam_width=args.beam_width,
        max_words=args.max_words,
    )
    return [f"P(positive) {p:.3f}  {text}" for p, text in zip(p_positive(task, z), texts)]


def interpolate_lines(ckpt, args) -> list[str]:
    """``python -m scratchvae.interpolate`` for a review VAE: z(t) = (1 - t) z1 + t z2 decoded, one line a t."""
    task = review_task_of(ckpt, args.backend, args.dtype)
    z1, z2 = posterior_means(task, encode_user_texts(task, [args.first, args.second]))
    t = np.linspace(0.0, 1.0, args.steps)[:, None]
    z = (1 - t) * z1 + t * z2
    texts = decode_reviews(
        task,
        z,
        args.method,
        rng=np.random.default_rng(args.seed),
        temperature=args.temperature,
        beam_width=args.beam_width,
        max_words=args.max_words,
    )
    return [f"{ti:.2f}  P(positive) {p:.3f}  {text}" for ti, p, text in zip(t[:, 0], p_positive(task, z), texts)]


def neighbours_lines(ckpt, args) -> list[str]:
    """``python -m scratchvae.neighbours`` for a review VAE: the labelled training reviews whose E_q[z|x] is most
    cosine-similar to the query's, each with its similarity, label and first words. ``--limit N`` searches N
    of them drawn at random (seed 0): the dataset lists the negative reviews first."""
    from ..neighbours import cosine_nearest

    task = review_task_of(ckpt, args.backend, args.dtype)
    query = posterior_means(task, encode_user_texts(task, [args.sentence]))[0]
    train = load_imdb(args.data_dir, download=False, progress=False).train
    pick = np.arange(len(train))
    if args.limit is not None and args.limit < len(train):
        pick = np.sort(np.random.default_rng([0, 6]).choice(len(train), args.limit, replace=False))
    texts, labels = [train.texts[i] for i in pick], train.labels[pick]
    ids = encode_texts(task.tokenizer, texts, task.data["max_len"], "post", task.data.get("truncating", "post"))
    top, similarity = cosine_nearest(query, posterior_means(task, ids), args.k)
    return [
        f"{s:.3f}  [{'positive' if labels[i] else 'negative'}]  {' '.join(split_words(texts[i])[:30])}"
        for i, s in zip(top, similarity)
    ]
