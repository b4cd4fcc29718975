"""Tasks: a dataset plus a model plus one training step, as the trainer runs them.

Each module registered in :data:`TASKS` provides

    DEFAULTS: dict                  defaults for the common flags (epochs, batch_size, optimizer, lr, ...)
    PRESET_DECIDED, preset_default(key), preset_values(args)
                                    optional: the common flags a preset decides, their --help default, and
                                    their values for parsed arguments (IMDB)
    add_arguments(parser, name)     its own flags for ``python -m scratchvae.train <name>``
    build_task(args) -> Task        the task for parsed arguments (args.backend, args.dtype, ... set)
    load_task(ckpt, backend) -> Task   the task (model weights loaded) from a checkpoint, for evaluation
    eval_parser(name), evaluate_main(ckpt, argv)   ``python -m scratchvae.evaluate CKPT [options]``
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

EXAMPLES = {
    "imdb": (
        "python -m scratchvae.train imdb --out runs/imdb",
        "python -m scratchvae.train imdb --preset seed --train-size 2000 --epochs 1",
        "python -m scratchvae.train imdb --backend cupy --unlabelled",
    ),
    "ptb": (
        "python -m scratchvae.train ptb --out runs/ptb",
        "python -m scratchvae.train ptb --epochs 30 --kl-schedule cyclical --word-dropout 0.5",
        "mpirun -n 2 python -m scratchvae.train ptb --distributed",
    ),
    "text": (
        "python -m scratchvae.train text --file sentences.txt --out runs/mine",
        "python -m scratchvae.train text --file questions.csv --column question1 --max-len 30",
        "python -m scratchvae.train text --file train.txt --glove glove.6B.300d.txt --embedding-dim 300",
    ),
    "mnist": (
        "python -m scratchvae.train mnist --epochs 50 --out runs/mnist",
        "python -m scratchvae.train mnist --latent-dim 16 --binarize",
        "python -m scratchvae.train mnist --out runs/mnist --resume",
    ),
}


def task_module(name: str):
    """The module implementing task ``name``."""
    if name not in TASKS:
        from ..data.errors import DataError

        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(TASKS)}")
    return importlib.import_module(TASKS[name])
