"""Training machinery shared by every model: the loop, checkpoints, logs."""

from .checkpoint import Checkpoint, CheckpointError, load_checkpoint, save_checkpoint
from .trainer import Task, Trainer, TrainingError

__all__ = ["Checkpoint", "CheckpointError", "Task", "Trainer", "TrainingError", "load_checkpoint",
           "save_checkpoint"]
