"""Tokenizer and pad_sequences (Keras semantics)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from scratchvae.data.errors import DataError
from scratchvae.data.reserved import PAD_ID, UNK_ID
from scratchvae.data.tokenizer import FIRST_WORD_ID, Tokenizer, pad_sequences, split_words

TEXTS = ["The cat sat.", "the DOG sat!<br /><br />The end", "a cat, a dog; a (bird) for the"]


def test_split_words_follows_keras_filters():
    assert split_words("Don't STOP<br />me-now: 10/10 <br/>!!") == ["don't", "stop", "me", "now", "10", "10"]
    assert split_words("tab\tand\nnewline") == ["tab", "and", "newline"]


def test_vocabulary_is_ranked_by_frequency_then_alphabet():
    tokenizer = Tokenizer().fit(TEXTS)
    # the 4, a 3, cat/dog/sat 2 (alphabetical), then the words seen once.
    assert tokenizer.words == ["the", "a", "cat", "dog", "sat", "bird", "end", "for"]
    assert tokenizer.vocab_size == FIRST_WORD_ID + 8
    assert Tokenizer().fit(reversed(TEXTS)).words == tokenizer.words


def test_num_words_bounds_the_ids():
    tokenizer = Tokenizer(num_words=5).fit(TEXTS)
    assert tokenizer.words == ["the", "a", "cat"] and tokenizer.vocab_size == 5
    (ids,) = tokenizer.encode(["The dog and the cat"])
    assert ids.dtype == np.int32
    assert ids.tolist() == [2, UNK_ID, UNK_ID, 2, 4]
    assert PAD_ID not in ids


@pytest.mark.parametrize("num_words", [0, 1, 2])
def test_num_words_must_leave_room_for_words(num_words):
    with pytest.raises(DataError, match="num_words >= 3"):
        Tokenizer(num_words)


def test_refitting_replaces_the_vocabulary():
    tokenizer = Tokenizer().fit(["alpha beta"]).fit(["gamma"])
    assert tokenizer.words == ["gamma"]


def test_decode_inverts_encode_up_to_normalisation_and_skips_padding():
    tokenizer = Tokenizer(num_words=6).fit(TEXTS)
    (ids,) = tokenizer.encode(["The cat saw a DOG"])
    assert tokenizer.decode(ids) == "the cat <unk> a dog"
    padded = pad_sequences([ids], maxlen=8)[0]
    assert tokenizer.decode(padded) == tokenizer.decode(ids.tolist())


@pytest.mark.parametrize("ids", [[-1], [99]])
def test_decode_rejects_ids_outside_the_vocabulary(ids):
    with pytest.raises(DataError, match="ids must lie in"):
        Tokenizer().fit(TEXTS).decode(ids)


def test_misuse_is_a_data_error():
    with pytest.raises(DataError, match="call fit"):
        Tokenizer().encode(["text"])
    with pytest.raises(DataError, match="single string"):
        Tokenizer().fit("a single review")
    with pytest.raises(DataError, match="shape"):
        Tokenizer().fit(TEXTS).decode([[2, 3]])


def test_json_round_trip():
    tokenizer = Tokenizer(num_words=6).fit([*TEXTS, "naïve café"])
    restored = Tokenizer.from_json(tokenizer.to_json())
    assert restored.words == tokenizer.words and restored.num_words == 6
    assert [a.tolist() for a in restored.encode(TEXTS)] == [a.tolist() for a in tokenizer.encode(TEXTS)]


@pytest.mark.parametrize(
    "text",
    [
        "not json",
        "[]",
        '{"format": "other", "version": 1}',
        '{"format": "scratchvae.Tokenizer", "version": 1, "num_words": null, "words": ["a", "a"]}',
    ],
)
def test_bad_json_is_a_data_error(text):
    with pytest.raises(DataError):
        Tokenizer.from_json(text)


# --- pad_sequences -------------------------------------------------------------------


def test_pad_sequences_matches_keras_examples():
    seqs = [[1], [2, 3], [4, 5, 6]]
    assert pad_sequences(seqs).tolist() == [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    assert pad_sequences(seqs, value=-1).tolist() == [[-1, -1, 1], [-1, 2, 3], [4, 5, 6]]
    assert pad_sequences(seqs, padding="post").tolist() == [[1, 0, 0], [2, 3, 0], [4, 5, 6]]
    assert pad_sequences(seqs, maxlen=2).tolist() == [[0, 1], [2, 3], [5, 6]]
    assert pad_sequences(seqs, maxlen=2, truncating="post").tolist() == [[0, 1], [2, 3], [4, 5]]
    assert pad_sequences([]).shape == (0, 0) and pad_sequences([], maxlen=3).shape == (0, 3)
    assert pad_sequences(seqs).dtype == np.int32


def reference_pad(seqs, maxlen, padding, truncating, value):
    """A plain-Python statement of Keras's pad_sequences."""
    rows = []
    for seq in seqs:
        kept = [] if maxlen == 0 else (seq[-maxlen:] if truncating == "pre" else seq[:maxlen])
        fill = [value] * (maxlen - len(kept))
        rows.append(fill + kept if padding == "pre" else kept + fill)
    return rows


@given(
    seqs=st.lists(st.lists(st.integers(0, 1000), max_size=12), max_size=8),
    maxlen=st.none() | st.integers(0, 15),
    padding=st.sampled_from(["pre", "post"]),
    truncating=st.sampled_from(["pre", "post"]),
    value=st.integers(-5, 5),
)
def test_pad_sequences_agrees_with_the_reference(seqs, maxlen, padding, truncating, value):
    out = pad_sequences([np.array(s, dtype=np.int64) for s in seqs], maxlen, padding, truncating, value)
    width = max(map(len, seqs), default=0) if maxlen is None else maxlen
    assert out.shape == (len(seqs), width)
    assert out.tolist() == reference_pad(seqs, width, padding, truncating, value)


@pytest.mark.parametrize("kwargs", [{"padding": "middle"}, {"truncating": "both"}, {"maxlen": -1}])
def test_pad_sequences_rejects_bad_arguments(kwargs):
    with pytest.raises(DataError):
        pad_sequences([[1, 2]], **kwargs)
