"""``scratchvae COMMAND ...`` (the console command) and ``python -m scratchvae COMMAND ...``: the commands.

Each command is also ``python -m scratchvae.COMMAND ...``; both forms take the same arguments.
"""

from __future__ import annotations

import importlib
import sys

from . import __version__

# name -> (module whose main(argv) runs it, one line about it)
COMMANDS = {
    "train": ("scratchvae.train", "train a model (imdb, ptb, text, mnist): progress, logs, checkpoints"),
    "evaluate": ("scratchvae.evaluate", "evaluate a checkpoint on its task's held-out data; figures"),
    "sample": ("scratchvae.sample", "sentences decoded from latent codes drawn from the prior"),
    "interpolate": ("scratchvae.interpolate", "sentences on the line between two sentences' latent codes"),
    "neighbours": ("scratchvae.neighbours", "the training sentences nearest a sentence in latent space"),
    "curves": ("scratchvae.curves", "learning curves of runs: a table, and a figure with --out"),
    "gradcheck": ("scratchvae.gradcheck.__main__", "check every backward pass against finite differences"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [
        "usage: scratchvae COMMAND [options]   (or python -m scratchvae.COMMAND [options])",
        "",
        f"scratchvae {__version__}: variational autoencoders for text and images, every backward pass by hand.",
        "",
        "commands:",
    ]
    lines += [f"  {name:<{width}}  {about}" for name, (_, about) in COMMANDS.items()]
    lines += [
        "",
        "scratchvae COMMAND --help describes a command's options.",
        "",
        "examples:",
        "  scratchvae train mnist --epochs 5 --out runs/mnist",
        "  scratchvae evaluate runs/mnist/best.npz --plots figures",
        "  scratchvae curves runs/mnist --out curves.png",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    if argv[0] == "--version":
        print(f"scratchvae {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(
            f"{usage().splitlines()[0]}\nscratchvae: error: unknown command {argv[0]!r}; choose one of "
            f"{', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    module = importlib.import_module(COMMANDS[argv[0]][0])
    return module.main(argv[1:])


if __name__ == "__main__":
    sys.exit(main())
