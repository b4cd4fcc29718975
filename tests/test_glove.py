"""Tests of scratchvae.data.glove: reading GloVe text files into an embedding matrix for a Vocab."""

from pathlib import Path

import numpy as np
import pytest

from scratchvae.data.corpus import Vocab
from scratchvae.data.errors import DataError
from scratchvae.data.glove import load_glove, read_vectors
from scratchvae.data.reserved import PAD_ID

VOCAB = Vocab.build([["the", "cat", "sat"], ["the", "zebra"]])  # words: the cat sat zebra
GLOVE = "the 0.1 0.2 0.3\ncat -1 2.5 1e-3\ndog 4 5 6\n. . . 7 8 9\nsat 0 0 1\n"


def glove_file(tmp_path: Path, text: str | bytes) -> Path:
    """A GloVe file in ``tmp_path`` holding ``text``."""
    path = tmp_path / "vectors.txt"
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def row(word: str) -> int:
    """The embedding row of ``word`` in a matrix for VOCAB."""
    return VOCAB.encode([word])[0]


def test_rows_of_found_words_get_their_vectors(tmp_path: Path) -> None:
    embedding = load_glove(glove_file(tmp_path, GLOVE), VOCAB)
    weights = embedding.weights
    assert weights.shape == (len(VOCAB), 3) and weights.dtype == np.float32
    np.testing.assert_array_equal(weights[row("the")], np.float32([0.1, 0.2, 0.3]))
    np.testing.assert_array_equal(weights[row("cat")], np.float32([-1, 2.5, 1e-3]))
    np.testing.assert_array_equal(weights[row("sat")], np.float32([0, 0, 1]))
    np.testing.assert_array_equal(weights[PAD_ID], 0.0)
    assert (embedding.found, embedding.total) == (3, 4)
    assert embedding.coverage == 0.75
    assert str(embedding) == "pretrained vectors for 3 of 4 words (75.0%)"


def test_missing_words_get_small_seeded_random_rows(tmp_path: Path) -> None:
    path = glove_file(tmp_path, GLOVE)
    first, again, other = (load_glove(path, VOCAB, seed=seed) for seed in (1, 1, 2))
    zebra = first.weights[row("zebra")]
    assert (zebra != 0).all() and (np.abs(zebra) < 1).all()
    np.testing.assert_array_equal(first.weights, again.weights)
    assert not np.array_equal(zebra, other.weights[row("zebra")])


def test_word2vec_header_and_words_with_spaces(tmp_path: Path) -> None:
    dim, vectors = read_vectors(glove_file(tmp_path, "5 3\n" + GLOVE), {"cat", ". . ."}, dim=3)
    assert dim == 3 and sorted(vectors) == [". . .", "cat"]
    np.testing.assert_array_equal(vectors[". . ."], np.float32([7, 8, 9]))


def test_first_vector_of_a_repeated_word_wins(tmp_path: Path) -> None:
    _, vectors = read_vectors(glove_file(tmp_path, "cat 1 2\ncat 3 4\n"), {"cat"})
    np.testing.assert_array_equal(vectors["cat"], np.float32([1, 2]))


def test_dimension_mismatch(tmp_path: Path) -> None:
    path = glove_file(tmp_path, GLOVE)
    with pytest.raises(DataError, match="line 1: vectors have 3 values, expected 300; use 300-dimensional"):
        load_glove(path, VOCAB, dim=300)


def test_header_dimension_mismatch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="line 1: vectors have 50 values, expected 3"):
        load_glove(glove_file(tmp_path, "5 50\n" + GLOVE), VOCAB, dim=3)


def test_short_line_names_its_number(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 3: 2 values after the word, expected 3"):
        load_glove(glove_file(tmp_path, "the 1 2 3\ncat 1 2 3\ndog 1 2\n"), VOCAB)


def test_value_that_is_not_a_number(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: a value of 'cat' is not a number"):
        load_glove(glove_file(tmp_path, "the 1 2 3\ncat 1 x 3\n"), VOCAB)


def test_line_without_values(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="line 1: no vector values"):
        load_glove(glove_file(tmp_path, "the\n"), VOCAB)


@pytest.mark.parametrize("text", ["", "\n\n"])
def test_empty_file(tmp_path: Path, text: str) -> None:
    with pytest.raises(DataError, match="is empty"):
        load_glove(glove_file(tmp_path, text), VOCAB)


def test_not_utf8(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"line 2: byte 0xe9 .* not UTF-8"):
        load_glove(glove_file(tmp_path, "the 1 2 3\ncaf\xe9 1 2 3\n".encode("latin-1")), VOCAB)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cannot read .*nope.txt"):
        load_glove(tmp_path / "nope.txt", VOCAB)
