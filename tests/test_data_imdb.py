"""The IMDB loader on tiny hand-built archives, folders and Keras files (and the real archive if present)."""

import functools
import io
import json
import os
import tarfile
import threading
import warnings
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from cli import run_cli

from scratchvae.data import imdb
from scratchvae.data.errors import DataError
from scratchvae.data.imdb import ARCHIVE_NAME, ensure_imdb, load_imdb, read_imdb
from scratchvae.data.paths import ENV_VAR

# name inside the archive -> text; ids 2 and 10 check numeric (not string) ordering.
REVIEWS = {
    "train/pos/10_9.txt": "Great film.<br /><br />Loved it.",
    "train/pos/2_8.txt": "Fine acting",
    "train/neg/0_1.txt": "Awful.",
    "test/pos/0_10.txt": "Superb, a classic ✓ café",
    "test/neg/0_2.txt": "Boring",
    "test/neg/1_3.txt": "Dull",
    "train/unsup/0_0.txt": "No label here",
}
# Files of the original archive that the loader must skip.
EXTRAS = {
    "README": "Large Movie Review Dataset v1.0",
    "imdb.vocab": "the\nand\n",
    "train/labeledBow.feat": "0:9 1:1\n",
    "train/urls_pos.txt": "http://www.imdb.com/title/tt0000001/usercomments\n",
}


def write_tar(path: Path, files: dict[str, str | bytes]) -> Path:
    """Write ``files`` (relative to aclImdb/) as a .tar.gz at ``path``."""
    with tarfile.open(path, "w:gz") as tar:
        for name, content in files.items():
            data = content.encode() if isinstance(content, str) else content
            member = tarfile.TarInfo(f"aclImdb/{name}")
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
    return path


def write_folder(root: Path, files: dict[str, str]) -> Path:
    """Write ``files`` under ``root/aclImdb``."""
    for name, text in files.items():
        (root / "aclImdb" / name).parent.mkdir(parents=True, exist_ok=True)
        (root / "aclImdb" / name).write_text(text, encoding="utf-8")
    return root / "aclImdb"


def check_tiny(data: imdb.Imdb) -> None:
    """Assert that ``data`` is REVIEWS in the documented order: negative then positive, by file id."""
    assert data.train.texts == ["Awful.", "Fine acting", "Great film.<br /><br />Loved it."]
    assert data.train.labels.tolist() == [0, 1, 1] and data.train.labels.dtype == np.int8
    assert data.test.texts == ["Boring", "Dull", "Superb, a classic ✓ café"]
    assert data.test.labels.tolist() == [0, 0, 1]
    assert data.unsup.texts == ["No label here"] and data.unsup.labels.tolist() == [-1]


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """Isolate the per-user cache (searched for datasets) from the real one."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "scratchvae"


@pytest.fixture(autouse=True)
def tiny_counts(monkeypatch):
    """A complete folder, for these tests, holds the reviews of REVIEWS (the real one 12,500 a group)."""
    counts = {group: sum(name.startswith(f"{group}/") for name in REVIEWS) for group in imdb.FOLDER_COUNTS}
    monkeypatch.setattr(imdb, "FOLDER_COUNTS", counts)


@pytest.mark.parametrize("extras", [EXTRAS, {}], ids=["original", "trimmed"])
def test_reads_the_archive(tmp_path, extras):
    check_tiny(read_imdb(write_tar(tmp_path / ARCHIVE_NAME, {**REVIEWS, **extras}), progress=False))


@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_reading_draws_a_bar_only_on_a_terminal(tmp_path, capsys, monkeypatch, layout):
    source = write_tar(tmp_path / ARCHIVE_NAME, REVIEWS) if layout == "archive" else write_folder(tmp_path, REVIEWS)
    read_imdb(source, cache=False, progress=True)  # piped (pytest's capture): no bar, so no carriage returns
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""
    monkeypatch.setattr(imdb, "use_bars", lambda progress: progress)  # as on a terminal
    read_imdb(source, cache=False, progress=True)
    assert "reading" in capsys.readouterr().err


def test_reads_the_extracted_folder(tmp_path):
    check_tiny(read_imdb(write_folder(tmp_path, {**REVIEWS, **EXTRAS}), progress=False))


def test_load_prefers_the_folder_over_the_archive(tmp_path):
    write_tar(tmp_path / ARCHIVE_NAME, REVIEWS)
    assert ensure_imdb(tmp_path, download=False) == tmp_path / ARCHIVE_NAME
    write_folder(tmp_path, REVIEWS)
    assert ensure_imdb(tmp_path, download=False) == tmp_path / "aclImdb"
    check_tiny(load_imdb(tmp_path, download=False, progress=False))


def test_the_real_folder_counts_are_the_original_distributions(monkeypatch):
    monkeypatch.undo()  # the autouse tiny_counts
    assert imdb.FOLDER_COUNTS == {
        "train/pos": 12_500,
        "train/neg": 12_500,
        "test/pos": 12_500,
        "test/neg": 12_500,
        "train/unsup": 50_000,
    }


HALF_EXTRACTED = {k: v for k, v in REVIEWS.items() if k != "train/pos/2_8.txt"}


def test_an_incomplete_folder_gives_way_to_the_archive_beside_it(tmp_path, capsys):
    write_tar(tmp_path / ARCHIVE_NAME, REVIEWS)
    folder = write_folder(tmp_path, HALF_EXTRACTED)
    assert ensure_imdb(tmp_path, download=False) == tmp_path / ARCHIVE_NAME
    note = capsys.readouterr().err.strip()
    assert note == (
        f"note: {folder} is incomplete (aclImdb/train/pos has 1 of its 2 reviews); "
        f"reading {tmp_path / ARCHIVE_NAME} instead"
    )
    check_tiny(load_imdb(tmp_path, download=False, progress=False))


def test_an_incomplete_folder_with_too_many_reviews_gives_way_too(tmp_path):
    write_tar(tmp_path / ARCHIVE_NAME, REVIEWS)
    write_folder(tmp_path, {**REVIEWS, "test/neg/7_1.txt": "stray"})
    assert ensure_imdb(tmp_path, download=False, progress=False) == tmp_path / ARCHIVE_NAME


@pytest.mark.parametrize("download", [False, True])
def test_an_incomplete_folder_alone_is_an_error_naming_it(tmp_path, download):
    folder = write_folder(tmp_path, {k: v for k, v in REVIEWS.items() if not k.startswith("train/unsup")})
    with pytest.raises(DataError) as error:
        load_imdb(tmp_path, download=download, url="http://127.0.0.1:9/never-asked", progress=False)
    message = str(error.value)
    assert message.startswith(f"{folder} is incomplete: aclImdb/train/unsup has 0 of its 1 reviews; ")
    assert "\n" not in message and ARCHIVE_NAME in message
    with pytest.raises(DataError, match="is incomplete: aclImdb/train/unsup has 0 of its 1 reviews"):
        read_imdb(folder, progress=False)


def test_data_dir_comes_from_the_environment(tmp_path, monkeypatch):
    write_tar(tmp_path / ARCHIVE_NAME, REVIEWS)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    check_tiny(load_imdb(download=False, progress=False))


def test_parse_is_cached_until_the_archive_changes(tmp_path, monkeypatch, cache_home):
    archive = write_tar(tmp_path / ARCHIVE_NAME, REVIEWS)
    check_tiny(read_imdb(archive, progress=False))
    assert len(list(cache_home.glob(f"{ARCHIVE_NAME}.*.parsed.npz"))) == 1
    assert [p.name for p in tmp_path.iterdir() if p.name != "xdg"] == [ARCHIVE_NAME]  # nothing beside it

    def no_parsing(*args):
        raise AssertionError("parsed the archive again")

    monkeypatch.setattr(imdb, "_archive_reviews", no_parsing)
    check_tiny(read_imdb(archive, progress=False))
    os.utime(archive, ns=(0, 0))
    with pytest.raises(AssertionError, match="parsed the archive again"):
        read_imdb(archive, progress=False)


def test_the_cache_of_a_read_only_archive_goes_to_the_user_cache(tmp_path, cache_home):
    shared = tmp_path / "shared"
    shared.mkdir()
    write_tar(shared / ARCHIVE_NAME, REVIEWS)
    shared.chmod(0o555)
    try:
        check_tiny(read_imdb(shared / ARCHIVE_NAME, progress=False))
        assert [p.name for p in shared.iterdir()] == [ARCHIVE_NAME]
    finally:
        shared.chmod(0o755)
    assert len(list(cache_home.glob(f"{ARCHIVE_NAME}.*.parsed.npz"))) == 1
    check_tiny(read_imdb(shared / ARCHIVE_NAME, progress=False))


def test_an_unwritable_cache_is_a_note_not_a_warning(tmp_path, cache_home, capsys):
    archive = write_tar(tmp_path / ARCHIVE_NAME, REVIEWS)
    cache_home.parent.mkdir(parents=True)
    cache_home.write_text("a file where the cache folder should be")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_tiny(read_imdb(archive, progress=False))
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("note: could not write the IMDB parse cache ") and "parsed again" in line


def test_an_unreadable_cache_is_rebuilt(tmp_path, cache_home):
    archive = write_tar(tmp_path / ARCHIVE_NAME, REVIEWS)
    read_imdb(archive, progress=False)
    (cache,) = cache_home.glob("*.parsed.npz")
    cache.write_bytes(b"garbage")
    check_tiny(read_imdb(archive, progress=False))


@pytest.mark.parametrize("damage", ["truncated", "not gzip"])
def test_a_damaged_archive_is_a_data_error(tmp_path, damage):
    archive = write_tar(tmp_path / ARCHIVE_NAME, {**REVIEWS, "train/unsup/1_0.txt": os.urandom(50_000)})
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a tar file at all")
    with pytest.raises(DataError, match="corrupt or truncated"):
        read_imdb(archive, cache=False, progress=False)


def test_an_archive_without_the_layout_is_a_data_error(tmp_path):
    archive = write_tar(tmp_path / ARCHIVE_NAME, {k: v for k, v in REVIEWS.items() if not k.startswith("test/pos")})
    with pytest.raises(DataError, match=r"no reviews in aclImdb/test/pos/"):
        read_imdb(archive, progress=False)


def test_non_utf8_names_the_review_unless_replaced(tmp_path):
    archive = write_tar(tmp_path / ARCHIVE_NAME, {**REVIEWS, "test/neg/1_3.txt": b"Dull \xff"})
    with pytest.raises(DataError, match=r"review aclImdb/test/neg/1_3.txt .* errors='replace'"):
        read_imdb(archive, progress=False)
    assert read_imdb(archive, errors="replace", progress=False).test.texts[1] == "Dull \ufffd"


def test_missing_data_without_download_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as error:
        load_imdb(tmp_path / "empty", download=False)
    assert "\n" not in str(error.value) and str(tmp_path / "empty") in str(error.value)


@pytest.fixture
def file_server(tmp_path):
    """Serve ``tmp_path / 'served'`` over HTTP on 127.0.0.1; yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield folder, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_missing_data_is_downloaded(tmp_path, file_server):
    folder, base = file_server
    write_tar(folder / ARCHIVE_NAME, REVIEWS)
    data_dir = tmp_path / "data"
    check_tiny(load_imdb(data_dir, url=f"{base}/{ARCHIVE_NAME}", progress=False))
    assert (data_dir / ARCHIVE_NAME).read_bytes() == (folder / ARCHIVE_NAME).read_bytes()


# --- Keras imdb.npz ------------------------------------------------------------------

WORD_INDEX = {"the": 1, "movie": 2, "was": 3, "great": 4, "bad": 5}


def write_keras_npz(folder: Path, x_train, x_test, word_index=WORD_INDEX) -> Path:
    """Write imdb.npz (object arrays of id lists, labels alternating 1, 0) and its word index."""

    def ragged(rows):
        array = np.empty(len(rows), dtype=object)
        array[:] = [list(row) for row in rows]
        return array

    np.savez(
        folder / "imdb.npz",
        x_train=ragged(x_train),
        y_train=np.resize([1, 0], len(x_train)),
        x_test=ragged(x_test),
        y_test=np.resize([1, 0], len(x_test)),
    )
    if word_index is not None:
        (folder / "imdb_word_index.json").write_text(json.dumps(word_index))
    return folder / "imdb.npz"


def test_reads_the_raw_keras_file(tmp_path):
    data = load_imdb(write_keras_npz(tmp_path, [[1, 2, 3, 4], [2, 3, 5]], [[1, 2]]).parent, download=False)
    assert data.train.texts == ["the movie was great", "movie was bad"]
    assert data.train.labels.tolist() == [1, 0] and data.test.texts == ["the movie"]
    assert len(data.unsup) == 0


def test_reads_keras_load_data_conventions(tmp_path):
    # start_char=1, oov_char=2, index_from=3: "the" (rank 1) is 4, "great" (rank 4) is 7.
    data = read_imdb(write_keras_npz(tmp_path, [[1, 4, 5, 6, 7], [1, 5, 2]], [[1, 8]]))
    assert data.train.texts == ["the movie was great", "movie <unk>"]
    assert data.test.texts == ["bad"]


def test_keras_file_without_word_index_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"imdb_word_index\.json"):
        read_imdb(write_keras_npz(tmp_path, [[1]], [[1]], word_index=None))


def test_keras_file_with_other_pickled_objects_is_refused(tmp_path):
    evil = np.empty(1, dtype=object)
    evil[0] = io.BytesIO(b"not an id list")
    np.savez(tmp_path / "imdb.npz", x_train=evil, y_train=np.ones(1), x_test=evil, y_test=np.ones(1))
    with pytest.raises(DataError, match="refusing to unpickle"):
        read_imdb(tmp_path / "imdb.npz")


# --- the real archive ----------------------------------------------------------------

REAL_DATA = os.environ.get(ENV_VAR)


@pytest.mark.skipif(
    not REAL_DATA or not (Path(REAL_DATA) / ARCHIVE_NAME).is_file(), reason=f"needs {ENV_VAR}/{ARCHIVE_NAME}"
)
def test_real_archive(monkeypatch):
    monkeypatch.undo()  # use the real per-user cache, so re-runs read the parse cache
    data = read_imdb(Path(REAL_DATA) / ARCHIVE_NAME, progress=False)
    assert (len(data.train), len(data.test), len(data.unsup)) == (25_000, 25_000, 50_000)
    for split in (data.train, data.test):
        assert np.bincount(split.labels).tolist() == [12_500, 12_500]
    assert (data.unsup.labels == -1).all()
    assert all(data.train.texts[:100]) and "<br />" in "".join(data.train.texts[:100])


def test_training_on_an_incomplete_folder_alone_is_refused_before_it_starts(tmp_path):
    folder = write_folder(tmp_path / "data", REVIEWS)  # a handful of reviews: far from 12,500 a group
    proc = run_cli(
        "train",
        "imdb",
        "--data-dir",
        tmp_path / "data",
        "--out",
        tmp_path / "run",
        "--backend",
        "numpy",
        "--no-progress",
        env={"XDG_CACHE_HOME": str(tmp_path / "xdg")},
    )
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert f"{folder} is incomplete: aclImdb/train/pos has 2 of its 12,500 reviews" in last
    assert not (tmp_path / "run" / "last.npz").exists()
