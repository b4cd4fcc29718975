"""Training machinery shared by every model: the loop, checkpoints, logs."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .log import LogError, RunLog, read_log
from .trainer import Task, Trainer, TrainingError

__all__ = ["Checkpoint", "CheckpointError", "LogError", "RunLog", "Task", "Trainer", "TrainingError",
           "load_checkpoint", "read_log", "save_checkpoint"]
