"""The IMDB latent plot: the first two principal components of z_mean, coloured by sentiment.

Drawn with :mod:`scratchvae.plotting` (matplotlib only when a figure is drawn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import figure, save


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
    total = float((s**2).sum())
    explained = np.zeros(2)
    if total > 0:
        explained[:k] = s[:k] ** 2 / total
    return coords, explained


def latent_pca_plot(
    z: np.ndarray, labels: np.ndarray, path: str | Path, title: str = "IMDB test reviews: PCA of z_mean"
) -> Path:
    """Scatter of the 2-D PCA of ``z`` (N, Z), negative reviews red, positive blue; returns the path."""
    coords, explained = pca_2d(np.asarray(z, dtype=np.float64))
    labels = np.asarray(labels)
    fig = figure(6, 5)
    ax = fig.add_subplot()
    for value, colour, name in ((0, "tab:red", "negative"), (1, "tab:blue", "positive")):
        pick = labels == value
        ax.scatter(coords[pick, 0], coords[pick, 1], s=3, alpha=0.4, c=colour, label=name, linewidths=0)
    ax.set_xlabel(f"PC 1 ({100 * explained[0]:.1f}% of variance)")
    ax.set_ylabel(f"PC 2 ({100 * explained[1]:.1f}% of variance)")
    ax.set_title(title)
    ax.legend(markerscale=4)
    return save(fig, path)
