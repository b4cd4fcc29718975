"""The Large Movie Review Dataset (IMDB; Maas et al., ACL 2011) as texts and labels.

Sources, looked for in the data directory (then the per-user cache) in this order:

1. ``aclImdb/``: the extracted archive, if complete: 12,500 reviews in each of ``train/pos``,
   ``train/neg``, ``test/pos`` and ``test/neg`` and 50,000 in ``train/unsup`` (see
   :data:`FOLDER_COUNTS`). A half-extracted folder is passed over for the archive beside it,
   and is an error when there is no other source.
2. ``aclImdb_v1.tar.gz``: the archive, read as a stream without extracting its 100k
   files. The original archive and trimmed copies without ``README``, ``imdb.vocab`` or
   the ``*.feat`` files are all accepted: the layout is checked, not a checksum.
3. ``imdb.npz``: Keras's word-id version, with ``imdb_word_index.json`` next to it. It has
   no unlabelled reviews, and its texts come back lower-cased without punctuation.

Reviews come back in a fixed order: negative then positive, each by file id. Labels are
:data:`POSITIVE` (1), :data:`NEGATIVE` (0) or :data:`UNLABELLED` (-1, the 50k reviews of
``train/unsup``). Parsing the archive is cached in a ``.npz`` in the per-user cache (never in
the data folder, which may be read-only), keyed by the archive's path, size and mtime.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import re
import sys
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..progress import use_bars
from .download import download as download_file
from .errors import DataError
from .paths import PathLike, resolve_data_dir, search_dirs, user_cache_dir, writable_dir

IMDB_URL = "https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"
ARCHIVE_NAME = "aclImdb_v1.tar.gz"
FOLDER_NAME = "aclImdb"
KERAS_NPZ_NAME = "imdb.npz"
KERAS_WORD_INDEX_NAME = "imdb_word_index.json"
KERAS_WORD_INDEX_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb_word_index.json"

POSITIVE, NEGATIVE, UNLABELLED = 1, 0, -1
DECODE_ERRORS = ("strict", "replace", "ignore")

# Keras's conventions for sequences returned by ``keras.datasets.imdb.load_data``. The
# imdb.npz file itself holds raw ranks (``word_index[word]``); arrays saved after
# load_data start with START_CHAR and hold ``rank + INDEX_FROM``, with OOV_CHAR for
# dropped words.
KERAS_START_CHAR, KERAS_OOV_CHAR, KERAS_INDEX_FROM = 1, 2, 3
_KERAS_OOV_WORD = "<unk>"

# aclImdb/<group>/<id>_<rating>.txt -> the group's split and label.
_REVIEW = re.compile(r"(?:\./)?aclImdb/(train/pos|train/neg|train/unsup|test/pos|test/neg)/(\d+)_\d+\.txt")
_GROUP_LABEL = {
    "train/neg": NEGATIVE,
    "train/pos": POSITIVE,
    "test/neg": NEGATIVE,
    "test/pos": POSITIVE,
    "train/unsup": UNLABELLED,
}
#: The reviews of each group of a complete ``aclImdb/`` folder (the original distribution's layout).
FOLDER_COUNTS = {
    "train/pos": 12_500,
    "train/neg": 12_500,
    "test/pos": 12_500,
    "test/neg": 12_500,
    "train/unsup": 50_000,
}
_REVIEW_NAME = re.compile(r"\d+_\d+\.txt")
_SPLIT_GROUPS = {"train": ("train/neg", "train/pos"), "test": ("test/neg", "test/pos"), "unsup": ("train/unsup",)}
_CACHE_VERSION = 1


@dataclass(frozen=True)
class TextSplit:
    """Reviews and their int8 labels (1 positive, 0 negative, -1 unlabelled), index-aligned."""

    texts: list[str]
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)


@dataclass(frozen=True)
class Imdb:
    """The dataset: 25k labelled training reviews, 25k test reviews, 50k unlabelled reviews."""

    train: TextSplit
    test: TextSplit
    unsup: TextSplit


def ensure_imdb(
    data_dir: PathLike | None = None, *, download: bool = True, url: str = IMDB_URL, progress: bool = True
) -> Path:
    """Return the path of an IMDB source (folder, archive or Keras npz), downloading the archive if none is found.

    An incomplete ``aclImdb/`` folder is passed over (with a note when ``progress``) for the next source.
    The archive goes to the data directory, or to the per-user cache if that is read-only.

    Raises:
        DataError: no source was found and ``download`` is False, the download failed, or the only
            source is an incomplete ``aclImdb/`` folder.
    """
    incomplete = None  # (folder, what it lacks) of the first half-extracted folder passed over
    for directory in search_dirs(data_dir):
        for name in (FOLDER_NAME, ARCHIVE_NAME, KERAS_NPZ_NAME):
            path = directory / name
            if not path.exists():
                continue
            problem = folder_problem(path) if name == FOLDER_NAME else None
            if problem is None:
                if incomplete is not None and progress:
                    print(
                        f"note: {incomplete[0]} is incomplete ({incomplete[1]}); reading {path} instead",
                        file=sys.stderr,
                    )
                return path
            incomplete = incomplete or (path, problem)
    if incomplete is not None:
        raise _incomplete_folder(*incomplete)
    home = resolve_data_dir(data_dir)
    if not download:
        raise DataError(
            f"the IMDB dataset is not in {home}: download {url} into it (or extract it there as {FOLDER_NAME}/), "
            "or point --data-dir / SCRATCHVAE_DATA at the folder that holds it"
        )
    return download_file(url, writable_dir(home) / ARCHIVE_NAME, progress=progress)


def load_imdb(
    data_dir: PathLike | None = None,
    *,
    download: bool = True,
    url: str = IMDB_URL,
    errors: str = "strict",
    cache: bool = True,
    progress: bool = True,
) -> Imdb:
    """Find (or download) the dataset and read it: :func:`ensure_imdb` then :func:`read_imdb`."""
    source = ensure_imdb(data_dir, download=download, url=url, progress=progress)
    return read_imdb(source, errors=errors, cache=cache, progress=progress)


def read_imdb(source: PathLike, *, errors: str = "strict", cache: bool = True, progress: bool = True) -> Imdb:
    """Read the dataset from an ``aclImdb/`` folder, an ``aclImdb_v1.tar.gz`` archive or a Keras ``imdb.npz``.

    Args:
        source: the folder or file.
        errors: what to do with bytes that are not UTF-8: ``'strict'`` raises a DataError
            naming the review, ``'replace'`` substitutes U+FFFD, ``'ignore'`` drops them.
        cache: read and write the parse cache (archives only).
        progress: show a tqdm progress bar (on a terminal: :func:`scratchvae.progress.use_bars`).

    Raises:
        DataError: the source is missing, corrupt, truncated or not laid out like aclImdb,
            or a review is not UTF-8 and ``errors`` is ``'strict'``.
    """
    source = Path(source)
    if errors not in DECODE_ERRORS:
        raise DataError(f"errors must be one of {', '.join(DECODE_ERRORS)}, got {errors!r}")
    if source.is_dir():
        problem = folder_problem(source)
        if problem is not None:
            raise _incomplete_folder(source, problem)
        return _assemble(_folder_reviews(source, progress), source, errors)
    if not source.is_file():
        raise DataError(f"{source} does not exist; pass the {FOLDER_NAME}/ folder, {ARCHIVE_NAME} or {KERAS_NPZ_NAME}")
    if source.suffix == ".npz":
        return _read_keras_npz(source)
    return _read_archive(source, errors, cache, progress)


# --- aclImdb folder and archive ------------------------------------------------------


def _read_archive(archive: Path, errors: str, cache: bool, progress: bool) -> Imdb:
    """Parse ``archive``, or read its parse cache when ``cache`` is set and the cache is current."""
    cache_path, key = _cache_path(archive), _cache_key(archive, errors)
    data = _load_cache(cache_path, key) if cache else None
    if data is None:
        data = _assemble(_archive_reviews(archive, progress), archive, errors)
        if cache:
            _save_cache(cache_path, key, data)
    return data


def folder_problem(folder: Path) -> str | None:
    """What an extracted ``aclImdb/`` folder lacks (a group with fewer or more reviews than
    :data:`FOLDER_COUNTS`), or None when it is complete."""
    for group, expected in FOLDER_COUNTS.items():
        try:
            found = sum(1 for entry in os.scandir(folder / group) if _REVIEW_NAME.fullmatch(entry.name))
        except (FileNotFoundError, NotADirectoryError):
            found = 0
        if found != expected:
            return f"{FOLDER_NAME}/{group} has {found:,} of its {expected:,} reviews"
    return None


def _incomplete_folder(folder: Path, problem: str) -> DataError:
    return DataError(
        f"{folder} is incomplete: {problem}; extract {ARCHIVE_NAME} again (tar xzf {ARCHIVE_NAME}), "
        f"or put {ARCHIVE_NAME} beside the folder (it is then read instead), or delete the folder"
    )


def _folder_reviews(folder: Path, progress: bool) -> Iterator[tuple[str, bytes]]:
    """Yield ``(name inside the archive, bytes)`` for every ``*.txt`` two levels below ``folder``."""
    files = sorted(folder.glob("*/*/*.txt"))
    for file in tqdm(files, desc=f"reading {folder}", unit=" files", disable=not use_bars(progress)):
        yield f"{FOLDER_NAME}/{file.relative_to(folder).as_posix()}", file.read_bytes()


def _archive_reviews(archive: Path, progress: bool) -> Iterator[tuple[str, bytes]]:
    """Yield ``(member name, bytes)`` for every regular file of a ``.tar.gz``, streaming it once."""
    try:
        with (
            open(archive, "rb") as file,
            tqdm.wrapattr(
                file,
                "read",
                total=archive.stat().st_size,
                desc=f"reading {archive.name}",
                disable=not use_bars(progress),
            ) as raw,
            tarfile.open(fileobj=raw, mode="r|gz") as tar,
        ):
            for member in tar:
                if member.isfile():
                    yield member.name, tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        raise DataError(
            f"{archive} is corrupt or truncated ({error}); delete it and download it again from {IMDB_URL}"
        ) from error


def _assemble(reviews: Iterable[tuple[str, bytes]], source: Path, errors: str) -> Imdb:
    """Decode and sort the aclImdb reviews among ``reviews``.

    Every labelled group (train and test, pos and neg) must be present; ``train/unsup``
    may be missing, which gives an empty unlabelled split.
    """
    groups: dict[str, list[tuple[int, str]]] = {group: [] for group in _GROUP_LABEL}
    for name, data in reviews:
        match = _REVIEW.fullmatch(name)
        if match is None:
            continue  # README, imdb.vocab, *.feat, urls_*.txt
        try:
            text = data.decode("utf-8", errors)
        except UnicodeDecodeError as error:
            raise DataError(
                f"review {name} in {source} is not UTF-8 (bad byte at offset {error.start}); "
                "fix the file, or load with errors='replace'"
            ) from error
        groups[match[1]].append((int(match[2]), text))
    missing = [group for group, found in groups.items() if not found and group != "train/unsup"]
    if missing:
        raise DataError(
            f"{source} does not have the aclImdb layout: no reviews in {FOLDER_NAME}/{missing[0]}/; "
            f"use {ARCHIVE_NAME} from {IMDB_URL}"
        )
    return Imdb(**{split: _split(groups, names) for split, names in _SPLIT_GROUPS.items()})


def _split(groups: dict[str, list[tuple[int, str]]], names: tuple[str, ...]) -> TextSplit:
    """Concatenate the reviews of the groups ``names``, each sorted by file id, with their labels."""
    texts: list[str] = []
    labels: list[int] = []
    for name in names:
        reviews = sorted(groups[name], key=itemgetter(0))
        texts.extend(text for _, text in reviews)
        labels.extend([_GROUP_LABEL[name]] * len(reviews))
    return TextSplit(texts, np.array(labels, dtype=np.int8))


# --- parse cache ---------------------------------------------------------------------


def _cache_path(archive: Path) -> Path:
    """The cache file of ``archive``, in the per-user cache: a data folder is never written into."""
    tag = hashlib.sha1(str(archive.resolve()).encode()).hexdigest()[:12]
    return user_cache_dir() / f"{archive.name}.{tag}.parsed.npz"


def _cache_key(archive: Path, errors: str) -> str:
    """What the cache must have been built from to be valid for ``archive`` read with ``errors``."""
    stat = archive.stat()
    return json.dumps({"version": _CACHE_VERSION, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "errors": errors})


def _load_cache(path: Path, key: str) -> Imdb | None:
    """Return the cached dataset, or None if the cache is missing, stale or unreadable."""
    try:
        with np.load(path, allow_pickle=False) as arrays:
            if str(arrays["key"]) != key:
                return None
            text = arrays["text"].tobytes().decode("utf-8")
            ends, labels, sizes = arrays["ends"].tolist(), arrays["labels"], arrays["sizes"].tolist()
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None
    texts = [text[start:end] for start, end in zip([0, *ends[:-1]], ends, strict=True)]
    splits, start = {}, 0
    for split, size in zip(_SPLIT_GROUPS, sizes, strict=True):
        splits[split] = TextSplit(texts[start : start + size], labels[start : start + size])
        start += size
    return Imdb(**splits)


def _save_cache(path: Path, key: str, data: Imdb) -> None:
    """Write ``data`` to the cache file atomically; say so on stderr (and carry on) if that fails."""
    splits = (data.train, data.test, data.unsup)
    texts = [text for split in splits for text in split.texts]
    arrays = {
        "key": np.array(key),
        "text": np.frombuffer("".join(texts).encode("utf-8"), dtype=np.uint8),
        "ends": np.cumsum([len(text) for text in texts], dtype=np.int64),
        "labels": np.concatenate([split.labels for split in splits]),
        "sizes": np.array([len(split) for split in splits], dtype=np.int64),
    }
    try:
        _write_npz_atomically(path, arrays)
    except OSError as error:
        print(
            f"note: could not write the IMDB parse cache {path} ({error}); the archive is parsed again next time",
            file=sys.stderr,
        )


def _write_npz_atomically(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write ``arrays`` as an ``.npz`` (fast zlib level 1) to a temporary file, then rename it to ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file, zipfile.ZipFile(file, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as npz:
            for name, array in arrays.items():
                with npz.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, array, allow_pickle=False)
        os.chmod(temporary, 0o644)  # mkstemp creates it private; the cache is no secret
        os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)


# --- Keras imdb.npz ------------------------------------------------------------------


def _read_keras_npz(path: Path) -> Imdb:
    """Read Keras's ``imdb.npz``, turning its word ids back into (lower-cased, unpunctuated) text."""
    try:
        arrays = _load_object_npz(path)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError) as error:
        raise DataError(
            f"{path} is not a readable Keras imdb.npz ({error}); replace it, or use {ARCHIVE_NAME} from {IMDB_URL}"
        ) from error
    missing = [key for key in ("x_train", "y_train", "x_test", "y_test") if key not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks the array {missing[0]}; expected Keras's imdb.npz (x_train, y_train, x_test, y_test)"
        )
    index_word = _keras_index_word(path.parent / KERAS_WORD_INDEX_NAME)
    sequences = [*arrays["x_train"], *arrays["x_test"]]
    # Arrays saved from load_data() all start with START_CHAR; the raw file's rarely do.
    processed = all(len(seq) and seq[0] == KERAS_START_CHAR for seq in sequences)
    shift, skip = (KERAS_INDEX_FROM, 1) if processed else (0, 0)

    def split(name: str) -> TextSplit:
        texts = [
            " ".join(index_word.get(int(i) - shift, _KERAS_OOV_WORD) for i in seq[skip:]) for seq in arrays[f"x_{name}"]
        ]
        return TextSplit(texts, _keras_labels(arrays[f"y_{name}"], len(texts), path, name))

    return Imdb(split("train"), split("test"), TextSplit([], np.zeros(0, dtype=np.int8)))


def _keras_index_word(path: Path) -> dict[int, str]:
    """Read ``imdb_word_index.json`` (word -> rank) as rank -> word."""
    try:
        word_index = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise DataError(
            f"{path.parent} has {KERAS_NPZ_NAME} but not {KERAS_WORD_INDEX_NAME}, which maps its ids to words; "
            f"download {KERAS_WORD_INDEX_URL} into {path.parent}"
        ) from error
    except (OSError, ValueError) as error:
        raise DataError(
            f"{path} is not readable JSON ({error}); download it again from {KERAS_WORD_INDEX_URL}"
        ) from error
    return {rank: word for word, rank in word_index.items()}


def _keras_labels(labels: np.ndarray, count: int, path: Path, name: str) -> np.ndarray:
    """Check that ``labels`` holds ``count`` zeros and ones, and return them as int8."""
    labels = np.asarray(labels)
    if labels.shape != (count,) or not np.isin(labels, (NEGATIVE, POSITIVE)).all():
        raise DataError(f"{path}: y_{name} must hold {count} labels that are 0 or 1, one per review; replace the file")
    return labels.astype(np.int8)


class _ArrayUnpickler(pickle.Unpickler):
    """Rebuilds numpy object arrays (of lists of ints) and refuses everything else.

    Keras stores the ragged sequences as object arrays, which only pickle can hold;
    restricting the globals keeps a crafted file from running code when loaded.
    """

    _ALLOWED = frozenset(
        {
            ("numpy", "ndarray"),
            ("numpy", "dtype"),
            ("numpy.core.multiarray", "_reconstruct"),
            ("numpy._core.multiarray", "_reconstruct"),
        }
    )

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}")
        return super().find_class(module, name)


def _load_object_npz(path: Path) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz``, unpickling object arrays with :class:`_ArrayUnpickler`."""
    arrays = {}
    with zipfile.ZipFile(path) as npz:
        for name in npz.namelist():
            if name.endswith(".npy"):
                arrays[name.removesuffix(".npy")] = _read_npy(io.BytesIO(npz.read(name)))
    return arrays


def _read_npy(buffer: io.BytesIO) -> np.ndarray:
    """Read one ``.npy`` stream; object arrays go through the restricted unpickler."""
    version = np.lib.format.read_magic(buffer)
    # Header formats 2.0 and 3.0 differ only in the header's text encoding.
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    _, _, dtype = read_header(buffer)
    if dtype.hasobject:
        return _ArrayUnpickler(buffer).load()
    buffer.seek(0)
    return np.lib.format.read_array(buffer, allow_pickle=False)
