"""matplotlib, imported only when a figure is drawn (the ``plot`` extra), so the rest of
the package works without it.  Figures are ``matplotlib.figure.Figure`` objects drawn
on directly: no pyplot, no global state, no display needed.
"""

from __future__ import annotations

import sys
from pathlib import Path


def require_matplotlib(flag: str = "plots") -> None:
    """ImportError with the one-line fix when matplotlib is missing; commands call it before
    minutes of work, not after.  ``flag`` names what needs it in the message."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ImportError(
            f"{flag} needs matplotlib: pip install matplotlib (or pip install 'scratchvae[plot]')"
        ) from None


def matplotlib_missing(flag: str) -> bool:
    """True, after printing require_matplotlib's one-line error to stderr, when matplotlib is missing:
    ``if args.plot and matplotlib_missing("--plot"): return 2`` before minutes of evaluation, not after."""
    try:
        require_matplotlib(flag)
    except ImportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return True
    return False


def figure(width: float, height: float):
    """A new Figure of width x height inches, laid out so labels do not overlap."""
    require_matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def save(fig, path: str | Path, dpi: int = 100) -> Path:
    """Writes the figure (its format from the suffix), creating missing folders; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    return path
