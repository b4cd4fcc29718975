"""The IMDB latent plot: the first two principal components of z_mean, coloured by sentiment.

matplotlib is imported only when a plot is drawn (the ``plot`` extra).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def require_matplotlib():
    """The pyplot module on the Agg backend; ImportError with the fix when it is missing."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError("plots need matplotlib: pip install 'scratchvae[plot]'") from exc
    return plt


def pca_2d(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """z (N, Z) -> (coordinates (N, 2), fraction of the variance each component explains (2,)).

    The SVD of the centred data: z - mean = U S V^T; the coordinates are U S on the first
    two right singular vectors, and component k explains S_k^2 / sum S^2 of the variance.
    """
    zc = z - z.mean(axis=0)
    u, s, _ = np.linalg.svd(zc, full_matrices=False)
    k = min(2, s.size)
    coords = np.zeros((len(z), 2))
    coords[:, :k] = u[:, :k] * s[:k]
    total = float((s ** 2).sum())
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = s[:k] ** 2 / total
    return coords, explained


def latent_pca_plot(z: np.ndarray, labels: np.ndarray, path: str | Path,
                    title: str = "IMDB test reviews: PCA of z_mean") -> Path:
    """Scatter of the 2-D PCA of ``z`` (N, Z), negative reviews red, positive blue; returns the path."""
    plt = require_matplotlib()
    coords, explained = pca_2d(np.asarray(z, dtype=np.float64))
    labels = np.asarray(labels)
    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for value, colour, name in ((0, "tab:red", "negative"), (1, "tab:blue", "positive")):
        pick = labels == value
        ax.scatter(coords[pick, 0], coords[pick, 1], s=3, alpha=0.4, c=colour, label=name, linewidths=0)
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f}% of variance)")
    ax.set_title(title)
    ax.legend(markerscale=4)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
