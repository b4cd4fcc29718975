"""Checkpoints: one ``.npz`` file with parameters, optimiser state and JSON metadata.

Layout inside the file:
    param/<path>   each model parameter, e.g. ``param/encoder/bilstm_0/forward_layer/kernel``
    optim/<key>    optimiser state, e.g. ``optim/m/<path>``, ``optim/iterations``
    meta           UTF-8 JSON (task name, model config, tokenizer, progress counters)

Writes are atomic: the file is written beside its destination, flushed to disk and
renamed over it, so a crash or a full disk leaves the previous checkpoint intact.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or read; the message says why, on one line."""


@dataclass
class Checkpoint:
    params: dict[str, np.ndarray]
    meta: dict
    optim: dict[str, np.ndarray] = field(default_factory=dict)
    path: Path | None = None  # where it was read from, for messages

    def task(self) -> str:
        """The task that wrote it; CheckpointError if its metadata does not say."""
        task = self.meta.get("task")
        if not isinstance(task, str):
            raise CheckpointError(
                f"checkpoint {self.path or ''} records no task in its metadata: it was not "
                "written by python -m scratchvae.train (or is damaged); use a run's last.npz "
                "or best.npz"
            )
        return task


def non_finite(arrays: dict[str, np.ndarray]) -> list[str]:
    """The names of the arrays holding a NaN or an infinity (integer arrays never do)."""
    return [k for k, v in arrays.items() if np.issubdtype(np.asarray(v).dtype, np.inexact) and not np.isfinite(v).all()]


def load_model_state(model, ckpt: Checkpoint) -> None:
    """Copy a checkpoint's parameters into ``model``; CheckpointError if they do not fit it."""
    try:
        model.load_state_dict(ckpt.params)
    except (ValueError, TypeError) as exc:
        raise CheckpointError(
            f"checkpoint {ckpt.path or ''} does not fit the model its metadata describes "
            f"({exc}); it is damaged or was edited: use the run's other checkpoint "
            "(last.npz / best.npz) or retrain"
        ) from None


def save_checkpoint(path: str | os.PathLike, ckpt: Checkpoint) -> None:
    """Write ``ckpt`` to ``path`` atomically (temp file + fsync + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f"param/{k}": v for k, v in ckpt.params.items()}
    arrays.update({f"optim/{k}": v for k, v in ckpt.optim.items()})
    arrays["meta"] = np.frombuffer(json.dumps(ckpt.meta).encode(), dtype=np.uint8)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise CheckpointError(
            f"could not write checkpoint {path}: {exc.strerror or exc}; "
            "free disk space or choose another --out (the previous checkpoint is intact)"
        ) from exc


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint`."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}; pass the path of a .npz written by training")
    try:
        with np.load(path) as data:
            params = {k[6:]: data[k] for k in data.files if k.startswith("param/")}
            optim = {k[6:]: data[k] for k in data.files if k.startswith("optim/")}
            meta = json.loads(data["meta"].tobytes().decode())
    except EOFError:
        raise CheckpointError(
            f"checkpoint {path} is empty (0 bytes: a write cut short?); use the other checkpoint (last/best) or retrain"
        ) from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"checkpoint {path} is unreadable or corrupt ({exc}); use the other checkpoint (last/best) or retrain"
        ) from None
    if not isinstance(meta, dict):
        raise CheckpointError(
            f"checkpoint {path} has malformed metadata (not a JSON object); "
            "use the other checkpoint (last/best) or retrain"
        )
    return Checkpoint(params, meta, optim, path)
