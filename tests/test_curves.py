"""Reading a run's metrics.jsonl back, and python -m scratchvae.curves (table and figure)."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from scratchvae.curves import main, running_mean
from scratchvae.training.log import LogError, read_log, trim_log

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def write_log(path, records, tail=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records) + tail)
    return path


def sentence_like_run(run_dir, epochs=3, steps_per_epoch=50, log_every=10, kl_scale=1.0):
    """A log shaped like the sentence VAE's: loss, rec, kl and the KL weight beta per step."""
    records, step = [], 0
    for e in range(epochs):
        for _ in range(steps_per_epoch // log_every):
            step += log_every
            beta = 1 / (1 + np.exp(-0.05 * (step - 60)))
            records.append(
                {
                    "event": "step",
                    "epoch": e,
                    "step": step,
                    "grad_norm": 1.0,
                    "loss": 100 - step / 10,
                    "rec": 98 - step / 10,
                    "kl": kl_scale * 2.0,
                    "beta": float(beta),
                }
            )
        records.append(
            {
                "event": "epoch",
                "epoch": e + 1,
                "step": step,
                "seconds": 1.0,
                "lr": 0.001,
                "train_loss": 95.0,
                "val_loss": 96.0 - e,
                "val_rec": 94.0 - e,
                "val_kl": 2.0,
            }
        )
    return write_log(run_dir / "metrics.jsonl", records)


# ---------------------------------------------------------------------- the log
def test_read_log_keeps_the_last_record_of_a_step_and_skips_a_cut_last_line(tmp_path):
    write_log(
        tmp_path / "metrics.jsonl",
        [
            {"event": "step", "epoch": 0, "step": 10, "loss": 5.0},
            {"event": "step", "epoch": 0, "step": 20, "loss": 4.0},  # logged, then the run was killed
            {"event": "step", "epoch": 0, "step": 20, "loss": 3.5},  # logged again after resuming
            {"event": "epoch", "epoch": 1, "step": 20, "val_loss": 3.0},
        ],
        tail='{"event": "step", "epo',
    )
    log = read_log(tmp_path)  # the run's directory works too
    assert [(r["step"], r["loss"]) for r in log.steps] == [(10, 5.0), (20, 3.5)]
    assert [r["val_loss"] for r in log.epochs] == [3.0]
    assert log.step_keys() == ["loss"] and log.epoch_keys() == ["val_loss"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("", "has no records yet"),
        ('{"event": "step", "step": 1}\nnot json\n{"event": "step", "step": 2}\n', "line 2"),
        ('[1, 2]\n{"event": "step", "step": 2}\n', "line 1: not a record of a step"),
    ],
)
def test_read_log_errors_name_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "metrics.jsonl"
    path.write_text(content)
    with pytest.raises(LogError, match=message):
        read_log(path)


def test_read_log_of_a_missing_run(tmp_path):
    with pytest.raises(LogError, match="does not exist; give a run's --out directory"):
        read_log(tmp_path / "nowhere")


def test_trim_log_drops_the_records_after_a_step(tmp_path):
    path = write_log(tmp_path / "metrics.jsonl", [{"event": "step", "step": s} for s in (10, 20, 30)], tail='{"cut sh')
    trim_log(path, 20)
    assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [10, 20]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.jsonl"]  # no temporary left
    trim_log(tmp_path / "absent.jsonl", 5)  # nothing to trim: no error


def test_running_mean_is_the_mean_of_each_trailing_window():
    x = np.array([4.0, 2.0, 6.0, 0.0, 8.0])
    expected = [np.mean(x[max(0, k - 2) : k + 1]) for k in range(len(x))]
    np.testing.assert_allclose(running_mean(x, 3), expected, rtol=1e-15)
    np.testing.assert_array_equal(running_mean(x, 1), x)


# ---------------------------------------------------------------------- the command
def test_curves_prints_each_runs_epochs_and_draws_the_panels(tmp_path, capsys):
    a = sentence_like_run(tmp_path / "a").parent
    b = sentence_like_run(tmp_path / "b", epochs=2, kl_scale=2.0).parent
    out = tmp_path / "figs" / "curves.png"
    assert (
        main(
            [
                str(a),
                str(b / "metrics.jsonl"),
                "--out",
                str(out),
                "--metrics",
                "loss,kl,rec",
                "--label",
                "first, 512 units",
                "--label",
                "second",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "first, 512 units (" in text and "second (" in text and f"wrote {out}" in text
    lines = text.splitlines()
    header = lines.index(next(line for line in lines if line.split()[:2] == ["epoch", "step"]))
    assert lines[header].split() == ["epoch", "step", "lr", "loss", "rec", "kl"]
    assert lines[header + 1].split() == ["1", "50", "0.001", "96.00", "94.00", "2.00"]
    assert out.read_bytes().startswith(PNG_SIGNATURE) and out.stat().st_size > 10_000


def test_curves_names_each_run_after_its_folder_given_the_folder_or_the_file(tmp_path, capsys):
    a = sentence_like_run(tmp_path / "run-a").parent
    b = sentence_like_run(tmp_path / "run-b")
    assert main([str(a), str(b)]) == 0
    text = capsys.readouterr().out
    assert f"run-a ({a / 'metrics.jsonl'})" in text and f"run-b ({b})" in text


def test_curves_draws_a_run_still_in_its_first_epoch(tmp_path, capsys):
    run = sentence_like_run(tmp_path / "run", epochs=1).parent
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    write_log(run / "metrics.jsonl", [r for r in records if r["event"] == "step"])
    assert main([str(run), "--out", str(tmp_path / "c.png")]) == 0
    assert "5 logged steps, 0 epochs" in capsys.readouterr().out
    assert (tmp_path / "c.png").read_bytes().startswith(PNG_SIGNATURE)


def test_curves_validation_only(tmp_path, capsys):
    run = sentence_like_run(tmp_path / "run").parent
    assert main([str(run), "--validation-only", "--metrics", "kl", "--out", str(tmp_path / "v.svg")]) == 0
    svg = (tmp_path / "v.svg").read_text()
    assert "kl: validation" in svg and "training (line)" not in svg


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--metrics", "perplexity"], "no run logged the metric 'perplexity'; --metrics can name kl, loss, rec"),
        (["--label", "x", "--label", "y"], "--label names 2 runs but 1 were given"),
        (["--smooth", "0"], "--smooth must be at least 1, got 0"),
        (["--metrics", ","], "--metrics is empty"),
    ],
)
def test_curves_bad_options_are_one_line_errors(tmp_path, capsys, extra, message):
    run = sentence_like_run(tmp_path / "run").parent
    assert main([str(run), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_curves_without_matplotlib_fails_before_reading(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    assert main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "c.png")]) == 2
    assert capsys.readouterr().err == (
        "error: --out needs matplotlib: pip install matplotlib (or pip install 'scratchvae[plot]')\n"
    )
