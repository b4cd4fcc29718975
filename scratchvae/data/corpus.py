"""Sentence corpora for the sentence VAE (Bowman et al. 2016): reading, vocabulary, encoding.

A sentence is a list of words. The readers return lists of sentences: :func:`read_ptb` for Mikolov's Penn
Treebank split, :func:`read_text` for one sentence a line and :func:`read_csv` for a column of a CSV file.
A :class:`Vocab` built on the training sentences maps words to ids, :func:`encode_sentences` turns sentences
into padded decoder inputs ``<s> w1 .. wn`` and targets ``w1 .. wn </s>``, and :func:`word_dropout`
serves the training loop (its batches: :mod:`scratchvae.data.batching`). The reserved ids and tokens
(``PAD_ID`` ... ``EOS_ID``, :data:`SPECIALS`) are those of :mod:`scratchvae.data.reserved`.
"""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from scratchvae.data.errors import DataError
from scratchvae.data.paths import PathLike
from scratchvae.data.ptb import ensure_ptb
from scratchvae.data.reserved import BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID

Sentence = list[str]


class Vocab:
    """Word-level vocabulary: ids 0-3 are ``<pad> <unk> <s> </s>``, then the words, most frequent first."""

    def __init__(self, words: Sequence[str]) -> None:
        """A vocabulary from its words in id order; they must start with :data:`SPECIALS`."""
        if tuple(words[: len(SPECIALS)]) != SPECIALS:
            raise DataError(f"a vocabulary must start with {' '.join(SPECIALS)}; rebuild it with Vocab.build")
        self.words: tuple[str, ...] = tuple(words)
        self._ids = {word: i for i, word in enumerate(self.words)}
        if len(self._ids) != len(self.words):
            raise DataError("the vocabulary lists a word twice; rebuild it with Vocab.build")

    @classmethod
    def build(cls, sentences: Iterable[Sentence], max_size: int | None = None, min_count: int = 1) -> Vocab:
        """The vocabulary of the words seen at least ``min_count`` times in ``sentences``.

        With ``max_size`` only the most frequent words are kept (ties in alphabetical order), so that
        ``len(vocab) <= max_size``, the four reserved ids included. Special tokens in the text, such as the
        ``<unk>`` of PTB, are not counted as words: they keep their reserved ids.
        """
        if max_size is not None and max_size < len(SPECIALS):
            raise DataError(f"max_size must be at least {len(SPECIALS)}, the reserved ids; got {max_size}")
        counts = Counter(word for sentence in sentences for word in sentence)
        for special in SPECIALS:
            counts.pop(special, None)
        ranked = sorted((word for word, n in counts.items() if n >= min_count), key=lambda w: (-counts[w], w))
        if max_size is not None:
            ranked = ranked[: max_size - len(SPECIALS)]
        return cls([*SPECIALS, *ranked])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: object) -> bool:
        return word in self._ids

    def encode(self, tokens: Iterable[str]) -> list[int]:
        """The ids of ``tokens``; words outside the vocabulary get the id of ``<unk>``."""
        return [self._ids.get(token, UNK_ID) for token in tokens]

    def decode(self, ids: Iterable[int], strip_special: bool = True) -> str:
        """The words of ``ids`` joined by spaces.

        With ``strip_special`` the text ends at the first ``</s>`` and leaves out ``<pad>`` and ``<s>``;
        ``<unk>`` stays, as it stands for a word.
        """
        words = []
        for i in map(int, ids):
            if strip_special:
                if i == EOS_ID:
                    break
                if i in (PAD_ID, BOS_ID):
                    continue
            words.append(self.words[i])
        return " ".join(words)

    def to_json(self) -> str:
        """The vocabulary as JSON (its words in id order), for checkpoints."""
        return json.dumps(self.words)

    @classmethod
    def from_json(cls, text: str) -> Vocab:
        """The vocabulary saved by :meth:`to_json`."""
        try:
            words = json.loads(text)
        except json.JSONDecodeError as err:
            message = f"saved vocabulary is not valid JSON ({err}); save it again with Vocab.to_json"
            raise DataError(message) from None
        if not isinstance(words, list) or not all(isinstance(word, str) for word in words):
            raise DataError("saved vocabulary is not a JSON list of words; save it again with Vocab.to_json")
        return cls(words)


# Reading files

_TOKEN = re.compile(
    r"<unk>"  # PTB's unknown-word marker, kept whole so PTB-style text reads the same as read_ptb
    r"|\d+(?:[.,]\d+)+"  # numbers with separators: 3.5, 1,000
    r"|\w+(?:['’-]\w+)*"  # words, with inner apostrophes and hyphens: don't, snack-food
    r"|[^\w\s]"  # any other character, alone: punctuation
)


def tokenize(text: str) -> Sentence:
    """Lower-cased words of ``text``, punctuation split off: ``"Hi, it's 3.5!"`` -> ``hi , it's 3.5 !``."""
    return _TOKEN.findall(text.lower())


def read_lines(path: PathLike) -> Iterator[str]:
    """The lines of a UTF-8 text file (a byte-order mark is dropped); DataError for bad bytes."""
    path = Path(path)
    try:
        file = path.open("rb")
    except OSError as err:
        raise DataError(f"cannot read {path}: {err.strerror}; check the path") from None
    with file:
        for number, raw in enumerate(file, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}, line {number}: byte 0x{raw[err.start]:02x} at position {err.start + 1} is not "
                    "UTF-8; convert the file to UTF-8"
                ) from None
            yield line.removeprefix("\ufeff") if number == 1 else line


def _read_sentences(path: Path, split_line: Callable[[str], Sentence]) -> list[Sentence]:
    """The non-blank lines of ``path`` split into words by ``split_line``; DataError if there are none."""
    sentences = [words for line in read_lines(path) if (words := split_line(line))]
    if not sentences:
        raise DataError(f"{path} is empty; expected one sentence a line")
    return sentences


def read_ptb(
    data_dir: PathLike | None, split: str, *, download: bool = False, progress: bool = False
) -> list[Sentence]:
    """Sentences of ``ptb/ptb.{split}.txt`` of Mikolov's Penn Treebank split (train, valid or test).

    The file is looked for in the data directory (``data_dir``, else ``$SCRATCHVAE_DATA``), then in the
    per-user cache, and with ``download`` fetched when missing (:func:`scratchvae.data.ptb.ensure_ptb`).
    The text is already tokenised and lower-cased, with ``<unk>`` for rare words, so lines are only split
    on spaces; ``<unk>`` maps to the reserved id of :class:`Vocab`.
    """
    return _read_sentences(ensure_ptb(data_dir, split, download=download, progress=progress), str.split)


def read_text(path: PathLike) -> list[Sentence]:
    """Sentences of a UTF-8 text file, one a line, lower-cased and tokenised by :func:`tokenize`."""
    return _read_sentences(Path(path), tokenize)


def csv_columns(path: PathLike) -> list[str]:
    """The names in the header row of a CSV file; DataError if it has none."""
    path = Path(path)
    try:
        header = next(csv.reader(read_lines(path)), None)
    except csv.Error as err:
        raise DataError(f"{path}, line 1: {err}; fix the CSV quoting") from None
    if not header:
        raise DataError(f"{path} is empty; expected a CSV file with a header row")
    return header


def read_csv(path: PathLike, column: str) -> list[Sentence]:
    """Sentences in ``column`` of a CSV file with a header row (e.g. ``question1`` of Quora question pairs).

    Cells are tokenised by :func:`tokenize`; quoted cells may span lines; empty or missing cells are skipped.
    """
    path = Path(path)
    rows = csv.reader(read_lines(path))
    try:
        header = next(rows, None)
        if header is None:
            raise DataError(f"{path} is empty; expected a CSV file with a header row")
        if column not in header:
            raise DataError(f"{path} has no column {column!r}; its columns are: {', '.join(header)}")
        index = header.index(column)
        sentences = [words for row in rows if len(row) > index and (words := tokenize(row[index]))]
    except csv.Error as err:
        raise DataError(f"{path}, line {rows.line_num}: {err}; fix the CSV quoting") from None
    if not sentences:
        raise DataError(f"{path} has no text in column {column!r}")
    return sentences


# Encoding


@dataclass(frozen=True)
class EncodedSentences:
    """N sentences as padded int32 decoder arrays of T steps, T = the longest sentence's words + 1.

    ``inputs`` (N, T) is ``<s> w1 .. wn`` then ``<pad>``; ``targets`` (N, T) is ``w1 .. wn </s>`` then
    ``<pad>``; ``lengths`` (N,) is n + 1, the number of steps before the padding.
    """

    inputs: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.lengths)

    def __getitem__(self, index: np.ndarray) -> EncodedSentences:
        """The rows ``index`` (e.g. a batch of indices), cut to the steps of their longest sentence."""
        lengths = self.lengths[index]
        steps = int(lengths.max())
        return EncodedSentences(self.inputs[index, :steps], self.targets[index, :steps], lengths)


def encode_sentences(
    sentences: Sequence[Sentence],
    vocab: Vocab,
    max_len: int,
    on_long: Literal["drop", "truncate"] = "drop",
) -> EncodedSentences:
    """Decoder inputs and targets of ``sentences``; those over ``max_len`` words are dropped or truncated."""
    if max_len < 1:
        raise DataError(f"max_len must be at least 1 word; got {max_len}")
    if on_long == "drop":
        kept = [sentence for sentence in sentences if len(sentence) <= max_len]
    elif on_long == "truncate":
        kept = [sentence[:max_len] for sentence in sentences]
    else:
        raise DataError(f"on_long must be 'drop' or 'truncate'; got {on_long!r}")
    if not kept:
        raise DataError(f"no sentence of at most {max_len} words to encode; raise max_len or truncate")
    lengths = np.array([len(sentence) + 1 for sentence in kept], dtype=np.int32)
    inputs = np.full((len(kept), lengths.max()), PAD_ID, dtype=np.int32)
    targets = inputs.copy()
    for row, (sentence, steps) in enumerate(zip(kept, lengths)):
        ids = vocab.encode(sentence)
        inputs[row, :steps] = [BOS_ID, *ids]
        targets[row, :steps] = [*ids, EOS_ID]
    return EncodedSentences(inputs, targets, lengths)


def encode_text(texts: Sequence[str], vocab: Vocab, max_len: int) -> EncodedSentences:
    """Encode sentences a user typed (e.g. the ends of an interpolation), tokenised by :func:`tokenize`.

    Unlike training data, each sentence must have a word of the vocabulary and at most ``max_len`` words.
    """
    sentences = [tokenize(text) for text in texts]
    for text, words in zip(texts, sentences):
        if all(i == UNK_ID for i in vocab.encode(words)):
            raise DataError(f"no known word in {text!r}; words must be in the training vocabulary")
        if len(words) > max_len:
            raise DataError(f"{text!r} has {len(words)} words, over max_len={max_len}; shorten it")
    return encode_sentences(sentences, vocab, max_len)


# Training


def word_dropout(
    inputs: np.ndarray,
    rate: float,
    rng: np.random.Generator,
    unk_id: int = UNK_ID,
    keep: tuple[int, ...] = (PAD_ID, BOS_ID),
) -> np.ndarray:
    """A copy of decoder ``inputs`` whose tokens become ``unk_id`` with probability ``rate``.

    Word dropout (Bowman et al. 2016) makes the decoder lean on the latent code; tokens in ``keep``
    (padding and ``<s>``) are never replaced.
    """
    if not 0.0 <= rate <= 1.0:
        raise DataError(f"word dropout rate must be in [0, 1]; got {rate}")
    dropped = (rng.random(inputs.shape) < rate) & ~np.isin(inputs, keep)
    out = inputs.copy()
    out[dropped] = unk_id
    return out
