"""Training machinery shared by every model: the loop, checkpoints, logs."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .log import LogError, RunLog, read_log
from .run_dir import RunDirError
from .stop import StopRequested, StopSignals
from .trainer import RunStopped, Task, Trainer, TrainingError

__all__ = [
    "Checkpoint",
    "CheckpointError",
    "LogError",
    "RunDirError",
    "RunLog",
    "RunStopped",
    "StopRequested",
    "StopSignals",
    "Task",
    "Trainer",
    "TrainingError",
    "load_checkpoint",
    "read_log",
    "save_checkpoint",
]
