"""The text task's data: pinned files (evaluate, neighbours and resume refuse a changed one), CSV columns,
and a KL schedule that scales with the run (PTB's stays as it was)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from tiny_data import TINY, sentences

from scratchvae import train
from scratchvae.models.annealing import KLSchedule
from scratchvae.tasks import sentence
from scratchvae.training import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def cli(*argv) -> subprocess.CompletedProcess:
    """``python -m scratchvae.<argv[0]> argv[1:]`` in a subprocess, as a user runs it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", f"scratchvae.{argv[0]}", *map(str, argv[1:])],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def assert_refused(proc: subprocess.CompletedProcess, *fragments: str) -> str:
    """A non-zero exit, no traceback, and the error (with ``fragments``) on the last line of stderr."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in last, last
    return last


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(sentences(120)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def trained(tmp_path, corpus_file) -> Path:
    out = tmp_path / "run"
    assert train.main(["text", "--file", str(corpus_file), "--out", str(out), "--epochs", "1", *TINY]) == 0
    return out


# ------------------------------------------------------------------ pinned data
def test_the_checkpoint_pins_the_file_and_the_split(trained, corpus_file):
    pinned = load_checkpoint(trained / "last.npz").meta["pinned"]
    data = corpus_file.read_bytes()
    assert pinned["files"] == {"file": {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}}
    assert pinned["split"]["train"] + pinned["split"]["valid"] == 120 and pinned["split"]["valid"] == 6
    assert len(pinned["split"]["held_out_sha256"]) == 64
    assert load_checkpoint(trained / "best.npz").meta["pinned"] == pinned


def test_a_valid_file_is_pinned_too(tmp_path, corpus_file):
    valid = tmp_path / "valid.txt"
    valid.write_text("\n".join(sentences(10, 1)) + "\n")
    out = tmp_path / "run"
    assert (
        train.main(
            [
                "text",
                "--file",
                str(corpus_file),
                "--valid-file",
                str(valid),
                "--out",
                str(out),
                "--max-steps",
                "2",
                *TINY,
            ]
        )
        == 0
    )
    pinned = load_checkpoint(out / "last.npz").meta["pinned"]
    assert set(pinned["files"]) == {"file", "valid_file"}
    assert pinned["files"]["valid_file"]["sha256"] == hashlib.sha256(valid.read_bytes()).hexdigest()
    assert pinned["split"] == {"train": 120, "valid": 10}


def test_evaluate_neighbours_and_resume_refuse_a_changed_file(trained, corpus_file):
    original = corpus_file.read_bytes()
    with open(corpus_file, "a", encoding="utf-8") as file:
        file.write("\n".join(sentences(10, 7)) + "\n")
    ckpt = trained / "best.npz"
    last = assert_refused(
        cli("evaluate", ckpt, "--samples", 2, "--backend", "numpy", "--no-progress"),
        f"{corpus_file} has changed since the model was trained on it",
        "put the original file back",
    )
    assert f"{len(original):,} bytes" in last
    assert_refused(
        cli("neighbours", ckpt, "the cat sat", "--backend", "numpy"), f"{corpus_file} has changed", "retrain"
    )
    before = (trained / "last.npz").read_bytes()
    assert_refused(
        cli("train", "text", "--file", corpus_file, "--out", trained, "--epochs", 2, "--resume", *TINY),
        f"{corpus_file} has changed",
        "point --file at the original file",
    )
    assert (trained / "last.npz").read_bytes() == before
    corpus_file.write_bytes(original)  # the original back: all is well again
    proc = cli("evaluate", ckpt, "--samples", 2, "--backend", "numpy", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert "held-out part of corpus.txt: 6 sentences" in proc.stdout


def test_an_edit_that_keeps_the_size_is_caught_by_the_digest(trained, corpus_file, capsys):
    from scratchvae import evaluate as evaluate_cli

    data = bytearray(corpus_file.read_bytes())
    data[0:3] = b"XYZ"
    corpus_file.write_bytes(bytes(data))
    assert evaluate_cli.main([str(trained / "best.npz"), "--backend", "numpy", "--no-progress"]) == 2
    assert "has changed since the model was trained on it" in capsys.readouterr().err


def test_a_changed_split_is_refused_even_for_an_unchanged_file(tmp_path, corpus_file):
    source = {
        "dataset": "text",
        "file": str(corpus_file),
        "column": None,
        "valid_file": None,
        "valid_fraction": 0.05,
        "seed": 0,
    }
    pinned = sentence.read_corpus(source).pinned
    with pytest.raises(
        sentence.DataError,
        match="now splits into 114 training and 6 held-out sentences, "
        "not the 113 training and 6 held-out sentences trained on",
    ):
        sentence.read_corpus(source, pinned={**pinned, "split": {**pinned["split"], "train": 113}})
    with pytest.raises(sentence.DataError, match="now holds out other sentences than those held out in training"):
        sentence.read_corpus(source, pinned={**pinned, "split": {**pinned["split"], "held_out_sha256": "0" * 64}})
    assert sentence.read_corpus(source, pinned=pinned).pinned == pinned


def test_a_checkpoint_without_pins_still_evaluates(trained, capsys):
    from scratchvae import evaluate as evaluate_cli
    from scratchvae.training import save_checkpoint

    ckpt = load_checkpoint(trained / "best.npz")
    del ckpt.meta["pinned"]
    save_checkpoint(trained / "old.npz", ckpt)
    assert evaluate_cli.main([str(trained / "old.npz"), "--samples", "2", "--backend", "numpy", "--no-progress"]) == 0


# ------------------------------------------------------------------ CSV
def test_a_csv_without_column_is_refused_listing_its_columns(tmp_path):
    path = tmp_path / "questions.csv"
    path.write_text("id,question1,question2\n1,what is a cat,what is a dog\n2,why,why not\n")
    assert_refused(
        cli("train", "text", "--file", path, "--out", tmp_path / "run", *TINY),
        "questions.csv is a CSV file",
        "--column",
        "one of: id, question1, question2",
    )
    assert not (tmp_path / "run" / "last.npz").exists()


# ------------------------------------------------------------------ KL schedule
def test_the_text_task_on_300_lines_ends_with_a_kl_weight_of_at_least_one_half(tmp_path, capsys):
    path = tmp_path / "300.txt"
    path.write_text("\n".join(sentences(300, 3)) + "\n")
    out = tmp_path / "run"
    assert train.main(["text", "--file", str(path), "--out", str(out), "--epochs", "3", *TINY]) == 0
    assert "note: the KL weight" not in capsys.readouterr().err
    meta = load_checkpoint(out / "last.npz").meta
    steps = meta["progress"]["global_step"]
    assert steps == 3 * 18  # 285 training sentences in batches of 16
    schedule = KLSchedule(**meta["objective"]["kl_schedule"])
    assert schedule.kind == "logistic" and schedule.x0 == round(0.2 * steps)
    assert schedule(steps - 1) >= 0.5 and schedule(0) < 0.01  # annealed from near 0, ends near 1
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    betas = [r["beta"] for r in logged if r["event"] == "step"]
    assert betas and betas[-1] >= 0.5
    epochs = [r for r in logged if r["event"] == "epoch"]
    assert epochs[-1]["train_beta"] > epochs[0]["train_beta"]


def test_ptbs_fixed_schedule_on_a_short_text_run_is_named_in_a_note(tmp_path, corpus_file, capsys):
    out = tmp_path / "run"
    assert (
        train.main(
            [
                "text",
                "--file",
                str(corpus_file),
                "--out",
                str(out),
                "--epochs",
                "2",
                "--kl-x0",
                "2500",
                "--kl-k",
                "0.0025",
                *TINY,
            ]
        )
        == 0
    )
    (note,) = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note: ")]
    assert "the KL weight ends at 0.00" in note and "of the run's 16 steps" in note and "--kl-x0" in note


@pytest.mark.parametrize(
    "kind, field, value", [("linear", "steps", 22), ("cyclical", "steps", 54), ("logistic", "x0", 11.0)]
)
def test_unset_schedule_parameters_scale_with_the_run(kind, field, value):
    args = train.build_parser("text").parse_args(["text", "--file", "f.txt", "--kl-schedule", kind])
    schedule = sentence.kl_schedule(args, 54)
    assert getattr(schedule, field) == value and schedule(53) >= 0.5
    if kind == "logistic":
        assert schedule.k == pytest.approx(6.25 / 11)


def test_ptb_keeps_its_own_defaults():
    args = train.build_parser("ptb").parse_args(["ptb"])
    assert (args.kl_schedule, args.kl_steps, args.kl_k, args.kl_x0) == ("logistic", 10_000, 0.0025, 2500)
    assert sentence.kl_schedule(args, 54) == KLSchedule(
        "logistic", steps=10_000, k=0.0025, x0=2500.0, cycles=4, ratio=0.5
    )


def test_a_resumed_run_keeps_its_scaled_schedule_when_extended(tmp_path, corpus_file):
    out = tmp_path / "run"
    base = ["text", "--file", str(corpus_file), "--out", str(out), *TINY]
    assert train.main([*base, "--epochs", "1"]) == 0
    first = load_checkpoint(out / "last.npz").meta["objective"]["kl_schedule"]
    assert train.main([*base, "--epochs", "2", "--resume"]) == 0
    resumed = load_checkpoint(out / "last.npz").meta
    assert resumed["objective"]["kl_schedule"] == first and resumed["progress"]["epoch"] == 2
