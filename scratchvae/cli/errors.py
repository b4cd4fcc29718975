"""The errors a user can fix: every command prints them as one line, ``error: <message>``, and exits 2."""

from __future__ import annotations

from ..backend.errors import BackendError
from ..data.errors import DataError
from ..training.checkpoint import CheckpointError
from ..training.log import LogError
from ..training.run_dir import RunDirError
from ..training.trainer import TrainingError

USER_ERRORS = (DataError, BackendError, TrainingError, CheckpointError, LogError, RunDirError)
