"""python -m scratchvae.curves RUN [RUN ...] [--out PNG]: the learning curves of training runs.

RUN is a run's --out directory (or its metrics.jsonl); any task, finished or still
training.  Prints each run's validation figures epoch by epoch; with --out, also draws
them: one panel per metric, the logged training batches' values as a thin line (their
mean over the last epoch) and each epoch's validation value as dots, one colour a run.
Where a run logged a KL weight (the sentence VAE's annealing), the KL panel shows it on
a second axis.

    python -m scratchvae.curves runs/ptb runs/ptb-512 --out curves.png
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from .cli.flags import command_parser
from .cli.types import image_file, non_negative_int
from .plotting import figure, require_matplotlib, save
from .training.log import LogError, RunLog, read_log

KL_WEIGHT = "beta"  # the step metric the sentence VAE logs for its annealed KL weight


def build_parser() -> argparse.ArgumentParser:
    p = command_parser(
        "python -m scratchvae.curves",
        __doc__.split("\n\n")[1].replace("\n", " "),
        (
            "python -m scratchvae.curves runs/ptb",
            "python -m scratchvae.curves runs/ptb runs/ptb-512 --out curves.png",
            "python -m scratchvae.curves runs/mnist --metrics loss,kl,nll --validation-only --out m.svg",
        ),
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run's --out directory or its metrics.jsonl")
    p.add_argument(
        "--out", type=image_file, metavar="PNG", help="draw the curves into this image (.png, .pdf, .svg, ...)"
    )
    p.add_argument(
        "--metrics",
        default="loss,kl",
        type=lambda s: [m for m in s.split(",") if m],
        help="comma-separated metrics, one panel each, as the runs log them (loss, kl, "
        "rec, reconstruction, nll, bce, accuracy, ...) (default: loss,kl)",
    )
    p.add_argument(
        "--label",
        action="append",
        dest="labels",
        metavar="NAME",
        help="the name of a run in the table and the legend; once per run, in order (default: their folder names)",
    )
    p.add_argument(
        "--smooth",
        type=int,
        default=None,
        metavar="N",
        help="running mean over N logged training steps (default: an epoch's; 1: raw)",
    )
    p.add_argument(
        "--validation-only",
        action="store_true",
        help="draw only the validation values (the training lines of the sentence VAE, "
        "whose batches are grouped by length, are noisy)",
    )
    p.add_argument(
        "--skip-steps",
        type=non_negative_int,
        default=0,
        metavar="S",
        help="leave out the first S training steps, whose large early losses squash the rest of the y-axis",
    )
    return p


def running_mean(values: np.ndarray, n: int) -> np.ndarray:
    """Mean of each value and the n - 1 before it (fewer at the start): a trailing window."""
    c = np.cumsum(np.insert(np.asarray(values, dtype=np.float64), 0, 0.0))
    k = np.arange(1, len(values) + 1)
    lo = np.maximum(k - n, 0)
    return (c[k] - c[lo]) / (k - lo)


def _series(records: list[dict], key: str, min_step: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that have ``key``, from step ``min_step`` on."""
    pairs = [(r["step"], r[key]) for r in records if key in r and r["step"] >= min_step]
    if not pairs:
        return np.zeros(0), np.zeros(0)
    steps, values = zip(*pairs)
    return np.asarray(steps), np.asarray(values, dtype=np.float64)


def check_metrics(logs: list[RunLog], metrics: list[str]) -> None:
    """LogError naming the metric and what the logs have, for a metric no run logged."""
    for m in metrics:
        if not any(m in log.step_keys() or f"val_{m}" in log.epoch_keys() for log in logs):
            have = sorted(
                {k for log in logs for k in log.step_keys()} - {"grad_norm", KL_WEIGHT}
                | {k[4:] for log in logs for k in log.epoch_keys() if k.startswith("val_")}
            )
            raise LogError(f"no run logged the metric {m!r}; --metrics can name {', '.join(have)}")


def epoch_table(log: RunLog, label: str) -> str:
    """The run's epochs, one line each: epoch, step, learning rate and every val_* figure."""
    val = [k for k in log.epoch_keys() if k.startswith("val_")]
    cols = ["epoch", "step"] + (["lr"] if "lr" in log.epoch_keys() else []) + val
    head = [c[4:] if c.startswith("val_") else c for c in cols]
    rows = [[_fmt(r.get(c)) for c in cols] for r in log.epochs]
    widths = [max(len(h), *(len(row[i]) for row in rows)) if rows else len(h) for i, h in enumerate(head)]
    lines = [
        f"{label} ({log.path}): {len(log.steps)} logged steps, {len(log.epochs)} epochs"
        + (", validation:" if rows else "")
    ]
    if rows:
        lines.append("  ".join(h.rjust(w) for h, w in zip(head, widths)))
        lines += ["  ".join(v.rjust(w) for v, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}" if abs(v) < 1 else f"{v:.2f}" if abs(v) < 1e4 else f"{v:.0f}"


def epoch_window(log: RunLog) -> int:
    """Logged training steps in one epoch (the default running-mean window), at least 1.

    Batches differ a lot (the sentence VAE's are grouped by length, so a batch of short
    sentences has a small loss): only a window of a whole epoch gives a smooth curve.
    """
    if not log.epochs:
        return max(len(log.steps) // 2, 1)
    return max(sum(1 for r in log.steps if r["step"] <= log.epochs[0]["step"]), 1)


def plot_curves(
    logs: list[RunLog],
    labels: list[str],
    metrics: list[str],
    path,
    *,
    smooth: int | None = None,
    skip_steps: int = 0,
    validation_only: bool = False,
):
    """One panel per metric: training running means (thin) and validation per epoch (dots).

    The y-axis spans the validation values and all but the highest 2 % of the training
    curve, so the first steps' losses do not flatten everything after them.
    """
    from matplotlib.ticker import MaxNLocator

    fig = figure(4.6 * len(metrics), 3.8)
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colours = [f"C{i % 10}" for i in range(len(logs))]
    for ax, metric in zip(axes, metrics):
        weight_ax, shown = None, []
        for log, label, colour in zip(logs, labels, colours):
            steps, values = _series(log.steps, metric, skip_steps)
            if len(steps) and not validation_only:
                mean = running_mean(values, smooth or epoch_window(log))
                ax.plot(steps, mean, color=colour, lw=0.8, alpha=0.5)
                shown.append(mean[mean <= np.quantile(mean, 0.98)])
            steps, values = _series(log.epochs, f"val_{metric}", skip_steps)
            if len(steps):
                ax.plot(steps, values, "o-", color=colour, ms=3.5, lw=1.2, label=label)
                shown.append(values)
            else:
                ax.plot([], [], color=colour, label=label)
            steps, weights = _series(log.steps, KL_WEIGHT, skip_steps)
            if metric == "kl" and len(steps):
                weight_ax = weight_ax or ax.twinx()
                weight_ax.plot(steps, weights, "--", color=colour, lw=0.9, alpha=0.7)
        if weight_ax is not None:
            weight_ax.set_ylim(0, 1.05)
            weight_ax.set_ylabel(f"KL weight {KL_WEIGHT} (dashed)")
        if shown:
            lo, hi = float(min(v.min() for v in shown)), float(max(v.max() for v in shown))
            pad = 0.05 * (hi - lo) or 0.5
            ax.set_ylim(lo - pad, hi + pad)
        ax.set(
            xlabel="training step",
            ylabel=metric,
            title=f"{metric}: validation" if validation_only else f"{metric}: training (line), validation (dots)",
        )
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")  # one legend: the colours are the same in every panel
    return save(fig, path)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.labels and len(args.labels) != len(args.runs):
            raise LogError(
                f"--label names {len(args.labels)} runs but {len(args.runs)} were given; "
                "give one --label per run, or none"
            )
        if args.smooth is not None and args.smooth < 1:
            raise LogError(f"--smooth must be at least 1, got {args.smooth}")
        if not args.metrics:
            raise LogError("--metrics is empty; name at least one metric, e.g. --metrics loss")
        if args.out:
            require_matplotlib("--out")
        logs = [read_log(r) for r in args.runs]
        check_metrics(logs, args.metrics)
    except (LogError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    labels = args.labels or [log.path.parent.name for log in logs]  # the run's folder, file or not
    print("\n\n".join(epoch_table(log, label) for log, label in zip(logs, labels)))
    if args.out:
        path = plot_curves(
            logs,
            labels,
            args.metrics,
            args.out,
            smooth=args.smooth,
            skip_steps=args.skip_steps,
            validation_only=args.validation_only,
        )
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
