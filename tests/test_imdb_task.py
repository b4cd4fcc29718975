"""`python -m scratchvae.train imdb` and `python -m scratchvae.evaluate` end to end, on a tiny
aclImdb archive built in tmp_path: training, exact resume after kill -9, evaluation, the
latent plot, and every bad input's one-line error."""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from scratchvae import evaluate, train
from scratchvae.models.imdb import IMDBVAE
from scratchvae.tasks import imdb as imdb_task
from scratchvae.training import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
GOOD = "wonderful great superb touching brilliant fun".split()
BAD = "awful boring dull terrible waste stupid".split()
COMMON = "the movie film plot actor story was and a it".split()
TINY = [
    "--preset",
    "repeat",
    "--vocab-size",
    "30",
    "--max-len",
    "12",
    "--embedding-dim",
    "4",
    "--encoder-units",
    "4",
    "--hidden-units",
    "5",
    "--latent-dim",
    "3",
    "--decoder-units",
    "4",
    "--sentiment-units",
    "3",
    "--batch-size",
    "4",
    "--val-size",
    "4",
    "--no-progress",
    "--no-download",
]


def _review(rng, positive: bool) -> str:
    words = list(rng.choice(COMMON, rng.integers(3, 14))) + list(rng.choice(GOOD if positive else BAD, 3))
    rng.shuffle(words)
    return " ".join(words).capitalize() + ".<br /><br />"


def make_archive(folder: Path, n: int = 12, unsup: int = 6, override: dict | None = None) -> Path:
    """aclImdb_v1.tar.gz with n reviews in each labelled group; ``override`` {member: bytes}."""
    rng = np.random.default_rng(0)
    members = {}
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            for i in range(n):
                members[f"aclImdb/{split}/{label}/{i}_{8 if label == 'pos' else 2}.txt"] = _review(
                    rng, label == "pos"
                ).encode()
    for i in range(unsup):
        members[f"aclImdb/train/unsup/{i}_0.txt"] = _review(rng, bool(i % 2)).encode()
    members.update(override or {})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "aclImdb_v1.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("imdb")
    make_archive(folder)
    return folder


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory) -> Path:
    """A tiny run of two epochs; its output folder."""
    out = tmp_path_factory.mktemp("run")
    assert (
        train.main(
            ["imdb", "--data-dir", str(data_dir), "--out", str(out), "--epochs", "2", "--backend", "numpy", *TINY]
        )
        == 0
    )
    return out


def _params(path: Path) -> dict:
    return load_checkpoint(path).params


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    return err


# ------------------------------------------------------------------ training
def test_training_writes_checkpoints_and_metrics(trained):
    assert (trained / "last.npz").exists() and (trained / "best.npz").exists()
    records = [json.loads(line) for line in (trained / "metrics.jsonl").read_text().splitlines()]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert len(epochs) == 2
    for key in (
        "val_loss",
        "val_reconstruction",
        "val_kl",
        "val_bce",
        "val_accuracy",
        "val_nll_per_token",
        "train_accuracy",
    ):
        assert all(np.isfinite(r[key]) for r in epochs), key
    meta = load_checkpoint(trained / "last.npz").meta
    assert meta["task"] == "imdb" and meta["config"]["vocab_size"] == 30
    assert meta["data"]["max_len"] == 12 and '"words"' in meta["tokenizer"]


def settings(argv):
    """The settings ``python -m scratchvae.train`` resolves from argv."""
    return train.resolve_settings(train.build_parser().parse_args(argv))


def test_presets_and_flag_overrides(data_dir, tmp_path):
    args = settings(["imdb", *TINY, "--preset", "seed", "--data-dir", str(data_dir)])
    task = imdb_task.build_task(args)
    c = task.model.config
    assert (c.epsilon_std, c.vocab_size, c.latent_dim) == (0.01, 30, 3)  # the preset's, then the flags'
    assert task.data["padding"] == "pre" and args.batch_size == 4 and args.lr == 1e-3
    args = settings(["imdb", "--preset", "seed"])
    config, data = imdb_task.resolve_preset(args)
    assert (config.encoder_units, config.hidden_units, data["max_len"], args.batch_size) == (500, 435, 300, 10)
    assert args.lr_decay == 1.0  # the tutorial: a constant rate
    args = settings(["imdb", "--preset", "repeat"])  # the default before issue 22
    config, data = imdb_task.resolve_preset(args)
    assert (data["max_len"], args.epochs, args.lr, args.lr_decay) == (400, 3, 2e-3, 0.6)
    args = settings(["imdb", "--preset", "repeat", "--lr-decay", "0.9"])
    imdb_task.resolve_preset(args)
    assert args.lr_decay == 0.9  # a flag beats the preset


def test_the_preset_fills_settings_not_the_parsed_flags():
    parsed = train.build_parser().parse_args(["imdb", "--preset", "seed", "--epochs", "2"])
    resolved = train.resolve_settings(parsed)
    assert (resolved.epochs, resolved.batch_size, resolved.lr, resolved.out) == (2, 10, 1e-3, "runs/imdb")
    assert (parsed.batch_size, parsed.lr, parsed.out) == (None, None, None)  # what the user typed
    with pytest.raises(AttributeError, match="read-only"):
        resolved.lr = 0.1


def test_semi_supervised_adds_unlabelled_reviews_with_weight_zero(data_dir):
    args = settings(["imdb", *TINY, "--data-dir", str(data_dir), "--unlabelled"])
    task = imdb_task.build_task(args)
    p = task.prepared
    assert len(p.train_ids) == 2 * 12 - 4 + 6 and (p.train_weights == 0).sum() == 6
    metrics = task.train_step(np.arange(len(p.train_ids))[-4:], np.random.default_rng(0), 0)
    assert "accuracy" not in metrics and np.isfinite(metrics["loss"])


KILLABLE = textwrap.dedent("""
    import sys, time
    from scratchvae import train
    from scratchvae.tasks import imdb
    step = imdb.IMDBTask.train_step
    def slow(self, *a, **kw):        # slow enough to be killed mid-run
        time.sleep(0.03)
        return step(self, *a, **kw)
    imdb.IMDBTask.train_step = slow
    sys.exit(train.main(sys.argv[1:]))
""")


@pytest.fixture
def one_numba_thread():
    """Numba's parallel kernels on tiny arrays only pay thread wake-ups (seconds on a busy machine)."""
    import numba

    before = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(before)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_kill_9_then_resume_ends_bit_identical(data_dir, tmp_path, backend, one_numba_thread):
    flags = [
        "imdb",
        "--data-dir",
        str(data_dir),
        "--backend",
        backend,
        "--epochs",
        "3",
        "--checkpoint-every",
        "2",
        *TINY,
        "--batch-size",
        "2",
    ]  # 10 steps an epoch
    reference = tmp_path / "uninterrupted"
    assert train.main([*flags, "--out", str(reference)]) == 0

    killed = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-c", KILLABLE, *flags, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    progress = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            progress = load_checkpoint(killed / "last.npz").meta["progress"]
        except Exception:  # not written yet
            progress = None
        if progress and progress["global_step"] >= 12 and progress["batch"] > 0:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert progress and progress["batch"] > 0  # killed mid-epoch, after a checkpoint
    assert train.main([*flags, "--out", str(killed), "--resume"]) == 0

    a, b = _params(reference / "last.npz"), _params(killed / "last.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    assert (
        load_checkpoint(killed / "last.npz").meta["progress"]["global_step"]
        == load_checkpoint(reference / "last.npz").meta["progress"]["global_step"]
    )


# ------------------------------------------------------------------ evaluation
def test_evaluate_prints_metrics_reconstructions_and_plot(trained, data_dir, tmp_path, capsys):
    png = tmp_path / "latent.png"
    long_text = " ".join(["wonderful film"] * 20)
    assert (
        evaluate.main(
            [
                str(trained / "best.npz"),
                "--data-dir",
                str(data_dir),
                "--backend",
                "numpy",
                "--no-progress",
                "--no-download",
                "--show",
                "2",
                "--plot",
                str(png),
                "--encode",
                "a wonderful film",
                "--encode",
                long_text,
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    for text in (
        "reconstruction NLL/token",
        "token accuracy",
        "KL",
        "sentiment accuracy",
        "original:",
        "reconstructed:",
        "P(positive)",
        "truncated: 40 words, kept the last 12",
    ):
        assert text in out, text
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_encode_alone_needs_no_dataset(trained, tmp_path, capsys):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("a boring awful film\n\nsuperb and touching\n", encoding="utf-8")
    assert (
        evaluate.main(
            [
                str(trained / "last.npz"),
                "--backend",
                "numpy",
                "--data-dir",
                str(tmp_path / "none"),
                "--no-download",
                "--encode-file",
                str(reviews),
            ]
        )
        == 0
    )
    lines = [line for line in capsys.readouterr().out.splitlines() if "P(positive)" in line]
    assert len(lines) == 2


def test_pca_plot_helper(tmp_path):
    from scratchvae.tasks.imdb_plots import latent_pca_plot, pca_2d

    z = np.random.default_rng(0).standard_normal((50, 4)) * [3.0, 1.0, 0.1, 0.1]
    coords, explained = pca_2d(z)
    assert coords.shape == (50, 2) and explained[0] > explained[1] > 0
    path = latent_pca_plot(z, np.arange(50) % 2, tmp_path / "sub" / "z.png")
    assert path.read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------ bad input
def _train_error(capsys, data_dir, *extra) -> str:
    assert (
        train.main(
            ["imdb", "--data-dir", str(data_dir), "--out", str(data_dir / "out"), "--backend", "numpy", *TINY, *extra]
        )
        == 2
    )
    return _one_line_error(capsys)


def test_empty_review_file(tmp_path, capsys):
    make_archive(tmp_path, override={"aclImdb/train/pos/3_8.txt": b"  \n"})
    assert "are empty (no words)" in _train_error(capsys, tmp_path)


def test_review_that_is_not_utf8(tmp_path, capsys):
    make_archive(tmp_path, override={"aclImdb/train/neg/2_2.txt": b"bad \xff\xfe bytes"})
    assert "not UTF-8" in _train_error(capsys, tmp_path)


def test_missing_archive(tmp_path, capsys):
    assert "not in" in _train_error(capsys, tmp_path)


def test_corrupt_archive(tmp_path, capsys):
    good = make_archive(tmp_path / "good").read_bytes()
    (tmp_path / "aclImdb_v1.tar.gz").write_bytes(good[: len(good) // 2])
    assert "corrupt or truncated" in _train_error(capsys, tmp_path)


def test_vocabulary_smaller_than_the_reserved_ids(data_dir, capsys):
    assert "reserved ids" in _train_error(capsys, data_dir, "--vocab-size", "2")


def test_batch_larger_than_the_data(data_dir, capsys):
    assert "larger than the" in _train_error(capsys, data_dir, "--train-size", "6", "--batch-size", "7")


def test_unknown_dataset_name(capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        train.main(["imdbb"])
    assert exc.value.code == 2 and "invalid choice" in capsys.readouterr().err
    from scratchvae.training import Checkpoint, save_checkpoint

    save_checkpoint(tmp_path / "x.npz", Checkpoint({}, {"task": "imdbb"}))
    assert evaluate.main([str(tmp_path / "x.npz")]) == 2
    assert "unknown dataset 'imdbb'" in _one_line_error(capsys)


def test_encode_file_empty_or_not_utf8(trained, tmp_path, capsys):
    empty, binary = tmp_path / "empty.txt", tmp_path / "binary.txt"
    empty.write_text("\n \n")
    binary.write_bytes(b"caf\xe9 ok\n")
    for path, message in ((empty, "is empty"), (binary, "not UTF-8")):
        assert evaluate.main([str(trained / "last.npz"), "--backend", "numpy", "--encode-file", str(path)]) == 2
        assert message in _one_line_error(capsys)


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(data_dir, tmp_path, monkeypatch, capsys):
    forward = IMDBVAE.forward
    calls = {"n": 0}

    def poisoned(self, *args, **kwargs):
        out = forward(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 4:  # the 4th training step (validation runs only at epoch ends)
            out["loss"] = float("nan")
        return out

    monkeypatch.setattr(IMDBVAE, "forward", poisoned)
    out = tmp_path / "run"
    assert (
        train.main(
            [
                "imdb",
                "--data-dir",
                str(data_dir),
                "--out",
                str(out),
                "--backend",
                "numpy",
                "--checkpoint-every",
                "2",
                *TINY,
            ]
        )
        == 2
    )
    err = _one_line_error(capsys)
    assert "non-finite loss" in err and "step 3" in err
    ckpt = load_checkpoint(out / "last.npz")
    assert ckpt.meta["progress"]["global_step"] == 2
    assert all(np.isfinite(v).all() for v in ckpt.params.values())


def test_disk_full_keeps_the_previous_checkpoint(data_dir, tmp_path, monkeypatch, capsys):
    import scratchvae.training.checkpoint as checkpoint_module

    out = tmp_path / "run"
    real_replace, writes = os.replace, {"n": 0}

    def replace_then_fail(src, dst):
        writes["n"] += 1
        if writes["n"] >= 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace_then_fail)
    assert (
        train.main(
            [
                "imdb",
                "--data-dir",
                str(data_dir),
                "--out",
                str(out),
                "--backend",
                "numpy",
                "--checkpoint-every",
                "2",
                *TINY,
            ]
        )
        == 2
    )
    assert "No space left on device" in _one_line_error(capsys)
    assert load_checkpoint(out / "last.npz").meta["progress"]["global_step"] == 2
    assert not list(out.glob("*.tmp"))


@pytest.mark.skipif(
    not (Path(os.environ.get("SCRATCHVAE_DATA", "/nonexistent")) / "aclImdb_v1.tar.gz").exists(),
    reason="the real data: set SCRATCHVAE_DATA to the folder holding aclImdb_v1.tar.gz",
)
def test_real_data_a_few_steps(tmp_path):
    assert (
        train.main(
            [
                "imdb",
                "--out",
                str(tmp_path),
                "--backend",
                "numpy",
                *TINY,
                "--vocab-size",
                "500",
                "--max-len",
                "40",
                "--train-size",
                "40",
                "--val-size",
                "8",
                "--epochs",
                "1",
            ]
        )
        == 0
    )
    meta = load_checkpoint(tmp_path / "best.npz").meta
    assert len(json.loads(meta["tokenizer"])["words"]) == 498
