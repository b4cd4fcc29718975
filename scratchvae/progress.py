"""Where progress goes: tqdm bars on a terminal, plain lines elsewhere (Keras's verbose=2).

One policy for training, validation, evaluation and reading or downloading data: bars are
drawn only when progress is wanted and both stdout and stderr (where tqdm draws) are
terminals.  Piped into a file or run under ``--no-progress``, there are no bars and so no
carriage returns: the trainer prints one line per epoch (and one every ``--log-every``
steps, when given) instead, and validation, evaluation and data loading show nothing until
their result lines.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def on_terminal() -> bool:
    """Whether stdout and stderr are both terminals (a bar would be redrawn in place)."""
    return all(getattr(stream, "isatty", lambda: False)() for stream in (sys.stdout, sys.stderr))


def use_bars(progress: bool) -> bool:
    """Bars when progress is wanted and the output is a terminal; lines otherwise."""
    return bool(progress) and on_terminal()


def progress_bar(
    iterable=None, *, total=None, desc: str = "", progress: bool = True, leave: bool = False, initial: int = 0
):
    """A tqdm bar under :func:`use_bars`'s policy (a silent one otherwise, with the same methods)."""
    return tqdm(
        iterable,
        total=total,
        desc=desc,
        initial=initial,
        leave=leave,
        dynamic_ncols=True,
        disable=not use_bars(progress),
    )


def say(text: str) -> None:
    """Print a line to stdout without breaking a bar that is being drawn."""
    tqdm.write(text, file=sys.stdout)
    sys.stdout.flush()  # a log file followed with tail -f gets each line when it is written
