"""scratchvae.data.batching: batches and bucket_batches (pooled for IMDB, one pool for sentences)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvae.data.batching import batches, bucket_batches
from scratchvae.data.errors import DataError

# --- batches -------------------------------------------------------------------------


@given(st.integers(0, 100), st.integers(1, 16), st.booleans())
def test_batches_cover_every_index_once(n: int, batch_size: int, shuffle: bool) -> None:
    parts = list(batches(n, batch_size, np.random.default_rng(0), shuffle=shuffle))
    assert all(len(part) == batch_size for part in parts[:-1])
    indices = np.concatenate(parts) if parts else np.array([], dtype=int)
    assert sorted(indices) == list(range(n))
    if not shuffle:
        np.testing.assert_array_equal(indices, np.arange(n))


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        next(batches(10, 0, np.random.default_rng(0)))


# --- bucket_batches ------------------------------------------------------------------


@given(
    lengths=st.lists(st.integers(0, 500), max_size=300),
    batch_size=st.integers(1, 40),
    pool_batches=st.one_of(st.integers(1, 5), st.none()),
    seed=st.integers(0, 2**32 - 1),
)
def test_bucket_batches_uses_every_index_once(lengths, batch_size, pool_batches, seed):
    batches = bucket_batches(lengths, batch_size, np.random.default_rng(seed), pool_batches)
    assert sorted(np.concatenate([np.zeros(0, np.int64), *batches]).tolist()) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= batch_size for batch in batches)
    assert sum(len(batch) < batch_size for batch in batches) <= 1


def test_bucket_batches_cut_padding_and_vary_with_the_seed():
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 1000, size=5000)

    def padding(batches):
        return sum(int(lengths[b].max()) * len(b) - int(lengths[b].sum()) for b in batches)

    bucketed = bucket_batches(lengths, 32, np.random.default_rng(1))
    shuffled = np.array_split(rng.permutation(len(lengths)), len(bucketed))
    assert padding(bucketed) < padding(shuffled) / 10
    again = bucket_batches(lengths, 32, np.random.default_rng(1))
    assert all((a == b).all() for a, b in zip(bucketed, again, strict=True))
    other = bucket_batches(lengths, 32, np.random.default_rng(2))
    assert any(len(a) != len(b) or (a != b).any() for a, b in zip(bucketed, other, strict=True))


@given(st.lists(st.integers(1, 30), max_size=100), st.integers(1, 16))
def test_one_pool_batches_never_overlap_in_length(lengths: list[int], batch_size: int) -> None:
    lengths_ = np.array(lengths, dtype=np.int32)
    parts = bucket_batches(lengths_, batch_size, np.random.default_rng(0), pool_batches=None)
    assert sorted(i for part in parts for i in part) == list(range(len(lengths)))
    # Sorted by length before cutting: batches never overlap in length range.
    spans = sorted((lengths_[part].min(), lengths_[part].max()) for part in parts)
    assert all(high <= next_low for (_, high), (next_low, _) in zip(spans, spans[1:]))


def _whole_set_reference(lengths, batch_size, rng):
    """The sentence task's bucketing as it was written before the two functions became one:
    checkpoints resume into the same batch order only if bucket_batches(pool_batches=None) draws
    exactly these batches."""
    order = rng.permutation(len(lengths))
    order = order[np.argsort(lengths[order], kind="stable")]
    chunks = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    return [chunks[i] for i in rng.permutation(len(chunks))]


@given(st.lists(st.integers(1, 12), max_size=200), st.integers(1, 16), st.integers(0, 2**32 - 1))
def test_one_pool_is_the_sentence_tasks_order_for_a_seed(lengths, batch_size, seed):
    lengths = np.array(lengths, dtype=np.int32)
    rng, ref_rng = np.random.default_rng(seed), np.random.default_rng(seed)
    got = bucket_batches(lengths, batch_size, rng, pool_batches=None)
    want = _whole_set_reference(lengths, batch_size, ref_rng)
    assert len(got) == len(want) and all((a == b).all() for a, b in zip(got, want))
    assert rng.random() == ref_rng.random()  # and the generator is left where it was


def test_bucket_batches_rejects_a_bad_batch_size():
    with pytest.raises(DataError, match="batch_size"):
        bucket_batches([1, 2], 0, np.random.default_rng(0))
    with pytest.raises(DataError, match="pool_batches must be at least 1"):
        bucket_batches([1, 2], 2, np.random.default_rng(0), pool_batches=0)
