"""A Keras-style word tokenizer and padding.

Text is normalised the way ``keras.preprocessing.text.Tokenizer`` does it by default:
lower-cased, the punctuation in :data:`FILTERS` replaced by spaces, split on whitespace.
HTML line breaks (``<br />``, frequent in IMDB reviews) are removed first.

Ids (the reserved ones from :mod:`scratchvae.data.reserved`):

* ``0`` (``PAD_ID``, ``<pad>``): padding, never a word; :func:`pad_sequences` fills with it.
* ``1`` (``UNK_ID``, ``<unk>``): any word outside the vocabulary.
* ``2`` (:data:`FIRST_WORD_ID`) and up: the vocabulary, most frequent word first.
"""

from __future__ import annotations

import itertools
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from .errors import DataError
from .reserved import PAD, PAD_ID, UNK, UNK_ID

FIRST_WORD_ID = UNK_ID + 1  # Keras reserves padding and the unknown word only

#: Keras's default ``filters``: each of these characters is replaced by a space.
FILTERS = '!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n'

_LINE_BREAK = re.compile(r"<br\s*/?>")
_FILTER_TABLE = str.maketrans(FILTERS, " " * len(FILTERS))
_JSON_FORMAT = "scratchvae.Tokenizer"
_JSON_VERSION = 1


def split_words(text: str) -> list[str]:
    """Normalise ``text`` and split it into words (see the module docstring)."""
    return _LINE_BREAK.sub(" ", text.lower()).translate(_FILTER_TABLE).split()


class Tokenizer:
    """Maps text to word ids and back, with a frequency-ranked vocabulary.

    Args:
        num_words: the size of the id space, reserved ids included: the vocabulary holds
            the ``num_words - 2`` most frequent words (so ids are ``< num_words``). ``None``
            keeps every word seen by :meth:`fit`. Must be at least 3.

    Words of equal frequency are ranked alphabetically, so the vocabulary depends only on
    the word counts, not on the order of the texts.
    """

    def __init__(self, num_words: int | None = None) -> None:
        if num_words is not None and num_words <= FIRST_WORD_ID:
            raise DataError(
                f"num_words={num_words} leaves no room for words after the reserved ids "
                f"{PAD_ID} ({PAD}) and {UNK_ID} ({UNK}); use num_words >= {FIRST_WORD_ID + 1}"
            )
        self.num_words = num_words
        self._set_words([])

    def _set_words(self, words: list[str]) -> None:
        self._tokens = [PAD, UNK, *words]
        self._index = {word: i for i, word in enumerate(words, start=FIRST_WORD_ID)}

    @property
    def vocab_size(self) -> int:
        """The number of ids in use, reserved ids included (the embedding table's row count)."""
        return len(self._tokens)

    @property
    def words(self) -> list[str]:
        """The vocabulary in id order: ``words[i]`` has id ``i + FIRST_WORD_ID``."""
        return self._tokens[FIRST_WORD_ID:]

    def fit(self, texts: Iterable[str]) -> Tokenizer:
        """Build the vocabulary from ``texts`` (replacing any earlier one) and return ``self``."""
        counts: Counter[str] = Counter()
        for text in _checked_texts(texts):
            counts.update(split_words(text))
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        if self.num_words is not None:
            ranked = ranked[: self.num_words - FIRST_WORD_ID]
        self._set_words([word for word, _ in ranked])
        return self

    def encode(self, texts: Iterable[str]) -> list[np.ndarray]:
        """Return one int32 id array per text; words outside the vocabulary become ``UNK_ID``."""
        if not self._index:
            raise DataError("the tokenizer has no vocabulary; call fit(texts) or load one with from_json")
        lookup = self._index.get
        encoded = []
        for text in _checked_texts(texts):
            words = split_words(text)
            ids = map(lookup, words, itertools.repeat(UNK_ID))
            encoded.append(np.fromiter(ids, dtype=np.int32, count=len(words)))
        return encoded

    def decode(self, ids: Sequence[int] | np.ndarray) -> str:
        """Return the words of the 1-D id sequence ``ids`` joined by spaces, skipping padding."""
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1:
            raise DataError(
                f"decode takes one sequence of ids, got an array of shape {ids.shape}; decode rows one by one"
            )
        if ids.size and (ids.min() < 0 or ids.max() >= self.vocab_size):
            raise DataError(
                f"ids must lie in [0, {self.vocab_size}) for this vocabulary, got {ids.min()}..{ids.max()}; "
                "decode with the tokenizer that encoded them"
            )
        return " ".join(self._tokens[i] for i in ids.tolist() if i != PAD_ID)

    def to_json(self) -> str:
        """Serialise the tokenizer (settings and vocabulary) to a JSON string."""
        return json.dumps(
            {"format": _JSON_FORMAT, "version": _JSON_VERSION, "num_words": self.num_words, "words": self.words},
            ensure_ascii=False,
        )

    @classmethod
    def from_json(cls, text: str) -> Tokenizer:
        """Rebuild a tokenizer saved with :meth:`to_json`."""
        try:
            state = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"the tokenizer JSON is not valid JSON ({error}); save it again with to_json()") from error
        if not isinstance(state, dict) or state.get("format") != _JSON_FORMAT or state.get("version") != _JSON_VERSION:
            raise DataError(
                f"the JSON is not a version-{_JSON_VERSION} {_JSON_FORMAT}; save the tokenizer again with to_json()"
            )
        num_words, words = state.get("num_words"), state.get("words")
        if not (num_words is None or isinstance(num_words, int)) or not _distinct_strings(words):
            raise DataError(
                "the tokenizer JSON needs 'num_words' (an integer or null) and 'words' (a list of distinct strings); "
                "save it again with to_json()"
            )
        tokenizer = cls(num_words)
        tokenizer._set_words(words)
        return tokenizer


def _distinct_strings(words: object) -> bool:
    """Whether ``words`` is a list of distinct strings."""
    return isinstance(words, list) and all(isinstance(w, str) for w in words) and len(set(words)) == len(words)


def _checked_texts(texts: Iterable[str]) -> Iterable[str]:
    """Reject a bare string, which would otherwise be taken for a sequence of one-letter texts."""
    if isinstance(texts, str):
        raise DataError("expected a list of texts but got a single string; wrap it in a list")
    return texts


def pad_sequences(
    sequences: Sequence[Sequence[int]],
    maxlen: int | None = None,
    padding: str = "pre",
    truncating: str = "pre",
    value: int = 0,
) -> np.ndarray:
    """Stack integer sequences into an int32 ``(len(sequences), maxlen)`` array, as Keras does.

    Args:
        sequences: the sequences (lists or arrays of ints).
        maxlen: the output width; ``None`` uses the longest sequence's length.
        padding: ``'pre'`` pads at the start of each row, ``'post'`` at the end.
        truncating: ``'pre'`` drops the start of a longer sequence, ``'post'`` its end.
        value: the padding value.
    """
    for name, choice in (("padding", padding), ("truncating", truncating)):
        if choice not in ("pre", "post"):
            raise DataError(f"{name} must be 'pre' or 'post', got {choice!r}")
    if maxlen is None:
        maxlen = max(map(len, sequences), default=0)
    elif maxlen < 0:
        raise DataError(f"maxlen must be non-negative, got {maxlen}")
    out = np.full((len(sequences), maxlen), value, dtype=np.int32)
    # One slice copy per row: much faster than a single fancy-indexed scatter of all elements.
    for row, seq in enumerate(sequences):
        kept = seq[max(len(seq) - maxlen, 0) :] if truncating == "pre" else seq[:maxlen]
        if padding == "pre":
            out[row, maxlen - len(kept) :] = kept
        else:
            out[row, : len(kept)] = kept
    return out
