"""The tutorial's figures of a trained MNIST VAE: latent scatter, decoded manifold, reconstructions.

Drawn with :mod:`scratchvae.plotting` (matplotlib only when a figure is drawn).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..plotting import figure, require_matplotlib, save

SIDE = 28  # MNIST images are 28 x 28
MANIFOLD_SIZE = 15  # the tutorial's 15 x 15 grid
RECONSTRUCTION_COLUMNS = 10
RECONSTRUCTION_PAIRS = 3  # rows of inputs, each followed by its row of reconstructions
ENCODE_BATCH = 1000


def tile(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows * cols, 784) images -> one (rows * 28, cols * 28) canvas, row-major."""
    return images.reshape(rows, cols, SIDE, SIDE).transpose(0, 2, 1, 3).reshape(rows * SIDE, cols * SIDE)


def _host(model, a) -> np.ndarray:
    return model.backend.to_numpy(a).astype(np.float64)


def encode_means(model, x: np.ndarray) -> np.ndarray:
    """Posterior means (N, Z) of host images x (N, 784), in batches."""
    out = []
    for start in range(0, len(x), ENCODE_BATCH):
        mean, _ = model.encode(model.backend.asarray(x[start : start + ENCODE_BATCH], dtype=model.dtype))
        out.append(_host(model, mean))
    return np.concatenate(out)


# --------------------------------------------------------------------- figures
def latent_scatter(means: np.ndarray, labels: np.ndarray, path: Path) -> None:
    """Test-set posterior means coloured by digit (for Z > 2: their two leading principal axes)."""
    Z = means.shape[1]
    if Z == 1:
        xy = np.column_stack([means[:, 0], labels + np.random.default_rng(0).uniform(-0.3, 0.3, len(labels))])
        axes = ("z", "digit (jittered)")
    elif Z == 2:
        xy, axes = means, ("z[0]", "z[1]")
    else:
        centred = means - means.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy, axes = centred @ vt[:2].T, ("principal axis 1", "principal axis 2")
    fig = figure(6.5, 5.5)
    ax = fig.add_subplot()
    points = ax.scatter(xy[:, 0], xy[:, 1], c=labels, cmap="tab10", vmin=-0.5, vmax=9.5, s=3, alpha=0.5, linewidths=0)
    fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
    ax.set(xlabel=axes[0], ylabel=axes[1], title=f"test-set means of q(z | x), latent dim {Z}")
    save(fig, path)


def manifold(model, path: Path, n: int = MANIFOLD_SIZE) -> None:
    """Decoded images over an n x n grid of Gaussian quantiles, as in the tutorial.

    z = norm.ppf(u) for u evenly spaced in [0.05, 0.95], so the grid covers the prior
    evenly in probability.  Columns run along z[0], rows along z[1] with the largest
    value at the top (matching the scatter's axes).  Any further latent units are held
    at 0, the prior mean; a 1-D code gives a single row.
    """
    from scipy.stats import norm

    Z = model.latent_dim
    q = norm.ppf(np.linspace(0.05, 0.95, n))
    rows = n if Z > 1 else 1
    z = np.zeros((rows, n, Z))
    z[:, :, 0] = q[None, :]
    if Z > 1:
        z[:, :, 1] = q[::-1, None]
    images = _host(model, model.decode(model.backend.asarray(z.reshape(-1, Z), dtype=model.dtype)))
    fig = figure(7, 7 * rows / n + 0.6)
    ax = fig.add_subplot()
    ax.imshow(tile(images, rows, n), cmap="gray", vmin=0, vmax=1)
    centres = SIDE * np.arange(n) + SIDE / 2 - 0.5
    ticks = np.arange(0, n, 2)
    ax.set_xticks(centres[ticks], [f"{v:.1f}" for v in q[ticks]])
    ax.set_xlabel("z[0]")
    if Z > 1:
        ax.set_yticks(centres[ticks], [f"{v:.1f}" for v in q[::-1][ticks]])
        ax.set_ylabel("z[1]")
    else:
        ax.set_yticks([])
    ax.set_title("decoded means over Gaussian quantiles" + (" (other units at 0)" if Z > 2 else ""))
    save(fig, path)


def reconstructions(
    model, x: np.ndarray, path: Path, cols: int = RECONSTRUCTION_COLUMNS, pairs: int = RECONSTRUCTION_PAIRS
) -> None:
    """The first test images, each row followed by its reconstruction: decode(mean of q(z | x))."""
    n = min(len(x), cols * pairs)
    pairs = n // cols if n >= cols else 1
    cols = min(cols, n)
    x = x[: pairs * cols]
    recon = _host(model, model.decode(model.encode(model.backend.asarray(x, dtype=model.dtype))[0]))
    rows = np.stack([x.reshape(pairs, cols, -1), recon.reshape(pairs, cols, -1)], axis=1)  # (pairs, 2, cols, 784)
    fig = figure(0.6 * cols + 1.2, 0.6 * 2 * pairs + 0.5)
    ax = fig.add_subplot()
    ax.imshow(tile(rows.reshape(-1, SIDE * SIDE), 2 * pairs, cols), cmap="gray", vmin=0, vmax=1)
    ax.set_yticks(SIDE * np.arange(2 * pairs) + SIDE / 2 - 0.5, ["input", "recon."] * pairs)
    ax.set_xticks([])
    ax.set_title("test images and their reconstructions")
    save(fig, path)


def save_all(model, x_test: np.ndarray, y_test: np.ndarray, out_dir: Path) -> list[Path]:
    """Write latent.png, manifold.png and reconstructions.png into out_dir; returns the paths."""
    require_matplotlib("--plots")
    paths = [out_dir / name for name in ("latent.png", "manifold.png", "reconstructions.png")]
    latent_scatter(encode_means(model, x_test), y_test, paths[0])
    manifold(model, paths[1])
    reconstructions(model, x_test, paths[2])
    return paths
