"""The batches of a training epoch, as arrays of row indices.

:func:`batches` cuts ``range(n)`` in random (or data) order; :func:`bucket_batches` groups rows of
similar length, so a batch needs little padding, and still varies from epoch to epoch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from .errors import DataError


def batches(
    n: int, batch_size: int, rng: np.random.Generator | None = None, shuffle: bool = True
) -> Iterator[np.ndarray]:
    """Index arrays of batches covering ``range(n)`` once, in an order drawn from ``rng`` when ``shuffle``.

    The last batch may be smaller.
    """
    _check_batch_size(batch_size)
    if shuffle and rng is None:
        raise ValueError("batches(shuffle=True) needs an rng")
    order = rng.permutation(n) if shuffle else np.arange(n)
    for start in range(0, n, batch_size):
        yield order[start : start + batch_size]


def bucket_batches(
    lengths: Sequence[int] | np.ndarray,
    batch_size: int,
    rng: np.random.Generator,
    pool_batches: int | None = 50,
) -> list[np.ndarray]:
    """Split ``range(len(lengths))`` into batches of similar lengths, in random order.

    The indices are shuffled and cut into pools of ``pool_batches * batch_size``; each pool is
    stably sorted by length and cut into batches, and the batches of all pools are shuffled.
    ``pool_batches=None`` makes the whole set one pool: the least padding, and batches that differ
    between epochs only through the order of equal lengths (the sentence task); a finite pool
    (the IMDB task's 50) mixes lengths more. Every index appears exactly once; only the last batch
    of the last pool may be smaller.

    Returns:
        a list of int64 index arrays.
    """
    _check_batch_size(batch_size)
    if pool_batches is not None and pool_batches < 1:
        raise DataError(f"pool_batches must be at least 1 (or None for one pool), got {pool_batches}")
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    pool = max(len(order), 1) if pool_batches is None else batch_size * pool_batches
    chunks = []
    for start in range(0, len(order), pool):
        members = order[start : start + pool]
        members = members[np.argsort(lengths[members], kind="stable")]
        chunks.extend(np.split(members, range(batch_size, len(members), batch_size)))
    return [chunks[i] for i in rng.permutation(len(chunks))]


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
