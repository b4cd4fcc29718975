"""Pretrained word vectors in GloVe text format, as an embedding matrix aligned to a :class:`Vocab`.

A GloVe file has one ``word v1 .. vD`` a line, values separated by single spaces; word2vec text files add a
header line ``count D``, which is recognised and skipped. A few words of GloVe 840B contain spaces, so a
line's word is everything before its last D values.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from scratchvae.data.corpus import Vocab, read_lines
from scratchvae.data.errors import DataError
from scratchvae.data.paths import PathLike
from scratchvae.data.reserved import PAD_ID, SPECIALS


@dataclass(frozen=True)
class PretrainedEmbedding:
    """An embedding matrix for a vocabulary, and how many of its words the vector file had.

    ``weights`` is (len(vocab), D) float32; ``found`` of the ``total`` words of the vocabulary (the reserved
    tokens not counted) got their pretrained vector.
    """

    weights: np.ndarray
    found: int
    total: int

    @property
    def coverage(self) -> float:
        """The fraction of the vocabulary's words that got a pretrained vector."""
        return self.found / self.total if self.total else 0.0

    def __str__(self) -> str:
        return f"pretrained vectors for {self.found:,} of {self.total:,} words ({self.coverage:.1%})"


def load_glove(
    path: PathLike, vocab: Vocab, dim: int | None = None, init_std: float = 0.1, seed: int = 0
) -> PretrainedEmbedding:
    """An embedding matrix whose rows are the GloVe vectors of the words of ``vocab``.

    Words missing from the file, and ``<unk> <s> </s>``, get values drawn from N(0, init_std²) with
    ``seed``; the ``<pad>`` row is zero. ``dim``, when given, must match the file's dimension.
    """
    words = vocab.words[len(SPECIALS) :]
    dim, vectors = read_vectors(path, set(words), dim)
    weights = np.random.default_rng(seed).normal(0.0, init_std, (len(vocab), dim)).astype(np.float32)
    weights[PAD_ID] = 0.0
    for i, word in enumerate(words, start=len(SPECIALS)):
        if word in vectors:
            weights[i] = vectors[word]
    return PretrainedEmbedding(weights, found=len(vectors), total=len(words))


def read_vectors(path: PathLike, words: Container[str], dim: int | None = None) -> tuple[int, dict[str, np.ndarray]]:
    """The dimension of a GloVe file and the float32 vectors of those of ``words`` that it has.

    Every line's number of values is checked; only the vectors of ``words`` are parsed (the first one of a
    word that appears twice). A line that breaks the format raises DataError naming the line.
    """
    path = Path(path)
    vectors: dict[str, np.ndarray] = {}
    file_dim = None
    for number, line in enumerate(read_lines(path), start=1):
        fields = line.rstrip().split(" ")
        where = f"{path}, line {number}"
        if fields == [""]:
            continue
        if file_dim is None:
            file_dim = _first_line_dim(fields, dim, where)
            if _is_header(fields):
                continue
        if len(fields) < file_dim + 1:
            raise DataError(
                f"{where}: {len(fields) - 1} values after the word, expected {file_dim}; "
                "the file is truncated or not in GloVe format"
            )
        word = " ".join(fields[:-file_dim])
        if word in words and word not in vectors:
            vectors[word] = _parse_vector(word, fields[-file_dim:], where)
    if file_dim is None:
        raise DataError(f"{path} is empty; expected GloVe vectors, one 'word v1 v2 ...' a line")
    return file_dim, vectors


def _first_line_dim(fields: list[str], dim: int | None, where: str) -> int:
    """The vector dimension given by the first line's fields, checked against the expected ``dim``."""
    file_dim = int(fields[1]) if _is_header(fields) else len(fields) - 1
    if file_dim < 1:
        raise DataError(f"{where}: no vector values; expected 'word v1 v2 ...' lines")
    if dim is not None and file_dim != dim:
        raise DataError(
            f"{where}: vectors have {file_dim} values, expected {dim}; "
            f"use {dim}-dimensional vectors or an embedding size of {file_dim}"
        )
    return file_dim


def _parse_vector(word: str, values: list[str], where: str) -> np.ndarray:
    """The float32 vector of ``values``; DataError naming ``where`` if one is not a number."""
    try:
        return np.array(values, dtype=np.float32)
    except ValueError:
        raise DataError(f"{where}: a value of {word!r} is not a number; fix the line") from None


def _is_header(fields: list[str]) -> bool:
    """Whether the fields of a first line are a word2vec header ``count dim``."""
    return len(fields) == 2 and all(field.isdigit() for field in fields)
