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
        raise CheckpointError(f"could not write checkpoint {path}: {exc.strerror or exc}; "
                              "free disk space or choose another --out (the previous checkpoint is intact)") from exc


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
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise CheckpointError(f"checkpoint {path} is unreadable or corrupt ({exc}); "
                              "use the other checkpoint (last/best) or retrain") from exc
    return Checkpoint(params, meta, optim)
