"""Tasks: a dataset plus a model plus one training step, as the trainer runs them.

Each module registered in :data:`TASKS` provides

    DEFAULTS: dict                  defaults for the common flags (epochs, batch_size, optimizer, lr, ...)
    add_arguments(parser, name)     its own flags for ``python -m scratchvae.train <name>``
    build_task(args) -> Task        the task for parsed arguments (args.backend, args.dtype, ... set)
    load_task(ckpt, backend) -> Task   the task (model weights loaded) from a checkpoint, for evaluation
"""

from __future__ import annotations

import importlib

TASKS = {
    "imdb": "scratchvae.tasks.imdb",
    "ptb": "scratchvae.tasks.sentence",
    "text": "scratchvae.tasks.sentence",
    "mnist": "scratchvae.tasks.mnist",
}
HELP = {
    "imdb": "IMDB review VAE with a sentiment head (Large Movie Review Dataset)",
    "ptb": "sentence VAE (Bowman et al. 2016) on the Penn Treebank",
    "text": "sentence VAE on your own text file or CSV column",
    "mnist": "dense MNIST VAE with a Bernoulli likelihood",
}


def task_module(name: str):
    """The module implementing task ``name``."""
    if name not in TASKS:
        from ..data.errors import DataError
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name])
