"""metrics.jsonl, the log a training run appends to: read back, and trimmed when a run resumes.

One JSON object a line:

    {"event": "step", "epoch", "step", "grad_norm", <the batch's metrics>}   every log_every steps
    {"event": "epoch", "epoch", "step", "seconds", "lr", "train_<metric>"..., "val_<metric>"...}

A run resumed from its last checkpoint repeats the steps it had already logged after that
checkpoint; :func:`trim_log` drops those records when it resumes, so the file reads as one
uninterrupted run.  :func:`read_log` also keeps only the last record of a step or an epoch
(logs written before trimming existed) and skips a last line cut short by a crash.

The file is strict JSON: a figure that is not finite (a diverged loss) is written as null.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

LOG_NAME = "metrics.jsonl"


class LogError(ValueError):
    """A log that cannot be read: missing, empty, or with a malformed line."""


@dataclass
class RunLog:
    """A run's records: ``steps`` sorted by step, ``epochs`` sorted by epoch."""

    path: Path
    steps: list[dict]
    epochs: list[dict]

    def step_keys(self) -> list[str]:
        """Metric names logged per step (loss, kl, ...), in first-seen order."""
        return _keys(self.steps, ("event", "epoch", "step"))

    def epoch_keys(self) -> list[str]:
        """Names logged per epoch (lr, train_loss, val_loss, ...), in first-seen order."""
        return _keys(self.epochs, ("event", "epoch", "step"))


def record_line(record: dict) -> str:
    """One line of the log: ``record`` as strict JSON, a NaN or infinite number written as null."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


def append_record(path: str | Path, record: dict) -> None:
    """Append one record; LogError (one line) if the disk refuses the write."""
    try:
        with open(path, "a", encoding="utf-8") as f:
            f.write(record_line(record))
    except OSError as exc:
        raise LogError(f"could not append to {path}: {exc.strerror or exc}") from None


def _keys(records: list[dict], skip: tuple[str, ...]) -> list[str]:
    seen: dict[str, None] = {}
    for r in records:
        seen.update((k, None) for k in r if k not in skip)
    return list(seen)


def log_path(run: str | Path) -> Path:
    """The log of a run: ``run`` is its --out directory or the metrics.jsonl file itself."""
    run = Path(run)
    return run / LOG_NAME if run.is_dir() else run


def _records(path: Path) -> list[dict]:
    """The file's records in order; a malformed last line (a write cut short) is skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise LogError(f"{path} does not exist; give a run's --out directory or its {LOG_NAME}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise LogError(f"cannot read {path}: {exc}") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "step" not in record:
                raise ValueError("not a record of a step")
        except ValueError as exc:
            if number == len(lines):
                break
            raise LogError(f"{path}, line {number}: {exc}; is this a scratchvae {LOG_NAME}?") from None
        records.append(record)
    return records


def read_log(run: str | Path) -> RunLog:
    """The step and epoch records of a run, the last record of each step or epoch kept."""
    path = log_path(run)
    steps: dict[int, dict] = {}
    epochs: dict[int, dict] = {}
    for record in _records(path):
        event = record.get("event")
        if event == "step":
            steps[record["step"]] = record
        elif event == "epoch":
            epochs[record["epoch"]] = record
    if not steps and not epochs:
        raise LogError(f"{path} has no records yet: a run logs its first after a few steps")
    return RunLog(path, [steps[k] for k in sorted(steps)], [epochs[k] for k in sorted(epochs)])


def trim_log(path: str | Path, step: int) -> None:
    """Drops the records after global step ``step`` (a resumed run logs them again).

    The file is replaced atomically: a crash leaves the old log or the new one.
    """
    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in _records(path) if r["step"] <= step]
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.writelines(record_line(r) for r in kept)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise LogError(f"could not rewrite {path} to resume: {exc.strerror or exc}; free disk space") from None
