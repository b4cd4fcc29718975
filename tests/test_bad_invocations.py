"""Bad command lines, each run as a user runs it (a subprocess): a non-zero exit, no traceback, the error on
the last line of stderr, nothing written, and every checkpoint of the runs it points at byte-identical.

A case is (command, arguments, fragments of the error line). Arguments may name, in braces, the tiny runs
and files of the ``world`` fixture: {data}, {text}, {ptb}, {mnist}, {imdb} (run folders; their
checkpoints: {text_ckpt}, ...), {file} (a plain file) and {tmp} (an empty folder of the case's own, where it
runs).  Add cases to CASES.  The cases run at once, a few at a time (``results``); each test checks one.
"""

from __future__ import annotations

import hashlib
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from cli import assert_one_line_error, run_cli, train_tiny, write_data

TASKS = ("text", "ptb", "mnist", "imdb")
POSITIVE, NON_NEGATIVE, FINITE = "must be a positive integer", "must be a whole number >= 0", "must be a finite number"
POSITIVE_NUMBER = "must be a positive number"


def train_case(task, *flags):
    """train <task> pointed at its tiny run (--resume), with ``flags``."""
    source = ["--file", "{data}/sentences.txt"] if task == "text" else ["--data-dir", "{data}"]
    return ["train", [task, *source, "--out", f"{{{task}}}", "--resume", "--backend", "numpy", *flags]]


CASES = [
    # ---- train: the flags every task shares
    (*train_case("mnist", "--batch-size", "0"), ["argument --batch-size", POSITIVE, "got 0"]),
    (*train_case("mnist", "--batch-size", "-5"), ["argument --batch-size", POSITIVE, "got -5"]),
    (*train_case("mnist", "--batch-size", "2.5"), ["argument --batch-size", "'2.5' is not a whole number"]),
    (*train_case("mnist", "--checkpoint-every", "0"), ["argument --checkpoint-every", POSITIVE]),
    (*train_case("mnist", "--seed", "-1"), ["argument --seed", NON_NEGATIVE, "got -1"]),
    (*train_case("mnist", "--epochs", "0"), ["argument --epochs", POSITIVE]),
    (*train_case("mnist", "--max-steps", "0"), ["argument --max-steps", POSITIVE]),
    (*train_case("mnist", "--lr", "-1"), ["argument --lr", POSITIVE_NUMBER, "got -1"]),
    (*train_case("mnist", "--lr", "0"), ["argument --lr", POSITIVE_NUMBER, "got 0"]),
    (*train_case("mnist", "--lr", "nan"), ["argument --lr", FINITE, "got nan"]),
    (*train_case("mnist", "--clipnorm", "0"), ["argument --clipnorm", POSITIVE_NUMBER]),
    (*train_case("mnist", "--clipnorm", "-1"), ["argument --clipnorm", POSITIVE_NUMBER]),
    (*train_case("mnist", "--clipnorm", "nan"), ["argument --clipnorm", FINITE]),
    (*train_case("mnist", "--threads", "0"), ["argument --threads", POSITIVE]),
    (*train_case("mnist", "--lr-decay", "0"), ["argument --lr-decay", "must be in (0, 1], got 0"]),
    (*train_case("mnist", "--lr-drop-factor", "1.5"), ["argument --lr-drop-factor", "must be in (0, 1]"]),
    (*train_case("mnist", "--log-every", "0"), ["argument --log-every", POSITIVE]),
    (*train_case("mnist", "--latent-dim", "0"), ["argument --latent-dim", POSITIVE]),
    (*train_case("mnist", "--hidden", "-3"), ["argument --hidden", POSITIVE]),
    (*train_case("mnist", "--dtype", "float16"), ["argument --dtype", "invalid choice: 'float16'"]),
    # ---- train ptb and text: the objective and the data
    (*train_case("ptb", "--kl-steps", "-1"), ["argument --kl-steps", NON_NEGATIVE]),
    (*train_case("ptb", "--kl-ratio", "2"), ["argument --kl-ratio", "must be in (0, 1], got 2"]),
    (*train_case("ptb", "--kl-ratio", "0"), ["argument --kl-ratio", "must be in (0, 1], got 0"]),
    (*train_case("ptb", "--free-bits", "nan"), ["argument --free-bits", FINITE]),
    (*train_case("ptb", "--free-bits", "-0.5"), ["argument --free-bits", "must be a number >= 0"]),
    (*train_case("ptb", "--kl-k", "0"), ["argument --kl-k", POSITIVE_NUMBER]),
    (*train_case("ptb", "--kl-x0", "inf"), ["argument --kl-x0", FINITE]),
    (*train_case("ptb", "--kl-cycles", "0"), ["argument --kl-cycles", POSITIVE]),
    (*train_case("ptb", "--word-dropout", "1.5"), ["argument --word-dropout", "must be in [0, 1), got 1.5"]),
    (*train_case("ptb", "--decoder-dropout", "-0.1"), ["argument --decoder-dropout", "must be in [0, 1)"]),
    (*train_case("ptb", "--vocab-size", "4"), ["argument --vocab-size", "must be a whole number >= 5, got 4"]),
    (*train_case("text", "--valid-fraction", "1"), ["argument --valid-fraction", "must be in [0, 1), got 1"]),
    (*train_case("text", "--min-count", "0"), ["argument --min-count", POSITIVE]),
    (*train_case("text", "--max-len", "0"), ["argument --max-len", POSITIVE]),
    (*train_case("text", "--embedding-dim", "x"), ["argument --embedding-dim", "'x' is not a whole number"]),
    # ---- train imdb
    (*train_case("imdb", "--epsilon-std", "-1"), ["argument --epsilon-std", "must be a number >= 0"]),
    (*train_case("imdb", "--sentiment-weight", "nan"), ["argument --sentiment-weight", FINITE]),
    (*train_case("imdb", "--val-size", "-1"), ["argument --val-size", NON_NEGATIVE]),
    (*train_case("imdb", "--train-size", "0"), ["argument --train-size", POSITIVE]),
    (*train_case("imdb", "--unlabelled", "0"), ["argument --unlabelled", POSITIVE]),
    (*train_case("imdb", "--max-len", "-2"), ["argument --max-len", POSITIVE]),
    (*train_case("imdb", "--lr", "inf"), ["argument --lr", FINITE]),
    (*train_case("imdb", "--decoder-len", "0"), ["argument --decoder-len", POSITIVE]),
    (*train_case("imdb", "--free-bits", "-1"), ["argument --free-bits", "must be a number >= 0"]),
    (*train_case("imdb", "--word-dropout", "1"), ["argument --word-dropout", "must be in [0, 1), got 1"]),
    # ---- evaluate
    ("evaluate", [], ["the following arguments are required: CKPT"]),
    ("evaluate", ["--samples", "5", "{text_ckpt}"], ["put the checkpoint first"]),
    ("evaluate", ["{text_ckpt}", "--samples", "0"], ["argument --samples", POSITIVE]),
    ("evaluate", ["{text_ckpt}", "--batch-size", "0"], ["argument --batch-size", POSITIVE]),
    ("evaluate", ["{text_ckpt}", "--limit", "-1"], ["argument --limit", POSITIVE]),
    ("evaluate", ["{ptb_ckpt}", "--seed", "-1"], ["argument --seed", NON_NEGATIVE]),
    ("evaluate", ["{ptb_ckpt}", "--mi-batch", "0"], ["argument --mi-batch", POSITIVE]),
    ("evaluate", ["{ptb_ckpt}", "--threads", "0"], ["argument --threads", POSITIVE]),
    ("evaluate", ["{mnist_ckpt}", "--iw-samples", "-1"], ["argument --iw-samples", NON_NEGATIVE]),
    ("evaluate", ["{mnist_ckpt}", "--iw-images", "0"], ["argument --iw-images", POSITIVE]),
    ("evaluate", ["{mnist_ckpt}", "--plots", "{file}"], ["argument --plots", "is a file, not a folder"]),
    ("evaluate", ["{mnist_ckpt}", "--plots", "{file}/figures"], ["argument --plots", "is a file, not a folder"]),
    ("evaluate", ["{imdb_ckpt}", "--plot", "{file}/latent.png"], ["argument --plot", "is a file, not a folder"]),
    ("evaluate", ["{imdb_ckpt}", "--plot", "{tmp}/latent.xyz"], ["argument --plot", "is not an image file name"]),
    ("evaluate", ["{imdb_ckpt}", "--plot", "{tmp}"], ["argument --plot", "is a folder; name a file"]),
    ("evaluate", ["{imdb_ckpt}", "--test-size", "0"], ["argument --test-size", POSITIVE]),
    ("evaluate", ["{imdb_ckpt}", "--show", "-1"], ["argument --show", NON_NEGATIVE]),
    # ---- sample, interpolate, neighbours
    ("sample", ["{text_ckpt}", "--temperature", "-1"], ["argument --temperature", POSITIVE_NUMBER]),
    ("sample", ["{text_ckpt}", "--temperature", "nan"], ["argument --temperature", FINITE]),
    ("sample", ["{text_ckpt}", "-n", "0"], ["argument -n/--num", POSITIVE]),
    ("sample", ["{text_ckpt}", "--beam-width", "0"], ["argument --beam-width", POSITIVE]),
    ("sample", ["{text_ckpt}", "--max-words", "0"], ["argument --max-words", POSITIVE]),
    ("interpolate", ["{text_ckpt}", "the cat", "a dog", "--steps", "1"], ["argument --steps", ">= 2, got 1"]),
    ("interpolate", ["{text_ckpt}", "the cat", "a dog", "--temperature", "0"], ["argument --temperature"]),
    ("neighbours", ["{text_ckpt}", "the cat", "-k", "0"], ["argument -k", POSITIVE]),
    ("neighbours", ["{text_ckpt}", "the cat", "--limit", "0"], ["argument --limit", POSITIVE]),
    # ---- curves
    ("curves", ["{text}", "--out", "{tmp}/curves.xyz"], ["argument --out", "is not an image file name"]),
    ("curves", ["{text}", "--out", "{file}/curves.png"], ["argument --out", "is a file, not a folder"]),
    ("curves", ["{text}", "--out", "{tmp}"], ["argument --out", "is a folder"]),
    ("curves", ["{text}", "--skip-steps", "-1"], ["argument --skip-steps", NON_NEGATIVE]),
    # ---- gradcheck, and the console command
    ("gradcheck", ["--seed", "-1"], ["argument --seed", NON_NEGATIVE]),
    ("gradcheck", ["--backend", "tpu"], ["argument --backend", "invalid choice: 'tpu'"]),
    ("scratchvae", ["trian"], ["unknown command 'trian'", "train, evaluate"]),
    ("scratchvae", ["train", "mnist", "--batch-size", "0"], ["argument --batch-size", POSITIVE]),
]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """Tiny data, a one-epoch run of every task and a plain file: the names of CASES (and {tmp} per case)."""
    root = tmp_path_factory.mktemp("world")
    data = write_data(root / "data")
    names = {"data": data, "file": root / "notes.txt", "root": root}
    names["file"].write_text("a file, not a folder\n")
    for task in TASKS:
        names[task] = train_tiny(task, data, root / "runs" / task)
        names[f"{task}_ckpt"] = names[task] / "last.npz"
    return {k: str(v) for k, v in names.items()}


def checkpoints(world: dict) -> dict[str, str]:
    """The hash of every checkpoint in the runs' folders."""
    return {
        str(p): hashlib.sha256(p.read_bytes()).hexdigest()
        for task in TASKS
        for p in sorted(Path(world[task]).glob("*.npz"))
    }


@pytest.fixture(scope="module")
def results(world) -> dict:
    """Every case run at once (a subprocess each, in its own empty folder {tmp}, also its working directory),
    and the runs' checkpoints before and after: case index -> (result, its folder)."""

    def run(i):
        tmp = Path(world["root"]) / f"case{i}"
        tmp.mkdir()
        command, args, _ = CASES[i]
        return run_cli(command, *[a.format(**world, tmp=tmp) for a in args], cwd=tmp), tmp

    before = checkpoints(world)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 2)) as pool:
        out = dict(enumerate(pool.map(run, range(len(CASES)))))
    return {"cases": out, "before": before, "after": checkpoints(world)}


@pytest.mark.parametrize("i", range(len(CASES)), ids=[f"{c}-{' '.join(a[:1] + a[-2:])}" for c, a, _ in CASES])
def test_a_bad_invocation_is_a_one_line_error_and_changes_nothing(results, i):
    result, tmp = results["cases"][i]
    assert_one_line_error(result, *CASES[i][2])
    assert result.returncode == 2
    assert not any(tmp.iterdir()), "a failed command left files behind"
    assert results["after"] == results["before"], "a bad invocation changed a run's checkpoint"


def test_the_table_covers_every_command_and_task():
    commands = {c for c, _, _ in CASES}
    assert commands >= {"train", "evaluate", "sample", "interpolate", "neighbours", "curves", "gradcheck"}
    assert {a[0] for c, a, _ in CASES if c == "train"} == set(TASKS)
    assert len(CASES) >= 50
