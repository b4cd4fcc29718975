"""argparse value types: every number and output path checked when the command line is parsed.

Each raises ``argparse.ArgumentTypeError`` with the reason, which argparse prints as one line,
``prog: error: argument --flag: <reason>``, before any work starts.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path

# What matplotlib's savefig writes (it picks the format from the suffix).
IMAGE_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp", ".pgf")


def _parse(text: str, kind: type):
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a {'whole number' if kind is int else 'number'}") from None
    if kind is float and not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def int_at_least(low: int, name: str | None = None):
    """argparse type: a whole number >= ``low``."""

    def parse(text: str) -> int:
        value = _parse(text, int)
        if value < low:
            wanted = {0: "a whole number >= 0", 1: "a positive integer"}.get(low, f"a whole number >= {low}")
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text}")
        return value

    parse.__name__ = name or f"int_at_least_{low}"
    return parse


def float_in(
    low: float, high: float = math.inf, *, low_open: bool = False, high_open: bool = False, name: str, note: str = ""
):
    """argparse type: a finite number in the interval from ``low`` to ``high`` (ends open or closed)."""

    def parse(text: str) -> float:
        value = _parse(text, float)
        if value < low or (low_open and value == low) or value > high or (high_open and value == high):
            if high == math.inf:
                wanted = "a positive number" if low == 0 and low_open else f"a number >= {low:g}"
            else:
                wanted = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {value:g}{note}")
        return value

    parse.__name__ = name
    return parse


positive_int = int_at_least(1, "positive_int")
non_negative_int = int_at_least(0, "non_negative_int")
positive_float = float_in(0.0, low_open=True, name="positive_float")
non_negative_float = float_in(0.0, name="non_negative_float")
fraction = float_in(0.0, 1.0, high_open=True, name="fraction")  # a rate in [0, 1)
share = float_in(0.0, 1.0, low_open=True, name="share")  # a part of a whole, (0, 1]
decay_factor = float_in(0.0, 1.0, low_open=True, name="decay_factor", note=" (1 keeps the rate constant)")


def _unwritable(folder: Path) -> str | None:
    """Why files cannot be written into ``folder`` (made when missing), or None if they can."""
    probe = folder.absolute()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        return f"{probe} is a file, not a folder"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def image_file(text: str) -> str:
    """argparse type: an image to write, its format named by its suffix, in a folder that exists or can be made."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; name a file, e.g. {path / 'figure.png'}")
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise argparse.ArgumentTypeError(f"{text!r} is not an image file name; end it in {', '.join(IMAGE_SUFFIXES)}")
    problem = _unwritable(path.parent)
    if problem:
        raise argparse.ArgumentTypeError(f"cannot write {text}: {problem}")
    return str(path)


def output_folder(text: str) -> str:
    """argparse type: a folder to write files into, which exists or can be made."""
    path = Path(text).expanduser()
    problem = f"{path} is a file, not a folder" if path.exists() and not path.is_dir() else _unwritable(path)
    if problem:
        raise argparse.ArgumentTypeError(f"cannot write into {text}: {problem}")
    return str(path)
