"""A run never loses work: stop signals, re-runs, a second writer, divergence, bad checkpoints, output.

Runs are tiny MNIST-shaped models on synthetic data, as subprocesses where the user's view
(exit status, stderr, signals) is what is tested.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from test_mnist_model import write_synthetic_mnist
from test_training import ToyTask, _trainer

from scratchvae import evaluate, progress, train
from scratchvae.training import TrainingError, load_checkpoint, save_checkpoint
from scratchvae.training.log import read_log
from scratchvae.training.run_dir import RunLock

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "NUMBA_NUM_THREADS": "1"}
SLOW = textwrap.dedent("""
    import sys, time
    from scratchvae import train
    from scratchvae.tasks import mnist
    step = mnist.MnistTask.train_step
    def slow(self, *a, **kw):        # slow enough to be signalled mid-epoch
        time.sleep(0.03)
        return step(self, *a, **kw)
    mnist.MnistTask.train_step = slow
    sys.exit(train.main(sys.argv[1:]))
""")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("mnist")
    write_synthetic_mnist(path)  # 300 training images: 12 steps an epoch at batch 25
    return path


def flags(data, out, *extra):
    return [
        "mnist",
        "--data-dir",
        str(data),
        "--out",
        str(out),
        "--hidden",
        "8",
        "--batch-size",
        "25",
        "--backend",
        "numpy",
        "--epochs",
        "3",
        "--checkpoint-every",
        "5",
        *map(str, extra),
    ]


def cli(args, script=None):
    code = ["-c", script] if script else ["-m", "scratchvae.train"]
    return subprocess.run([sys.executable, *code, *args], env=ENV, capture_output=True, text=True, timeout=120)


def assert_refused(proc, *fragments):
    """Non-zero exit, no traceback, the error on the last line of stderr."""
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr and "Warning" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in last, last
    return last


def params(path):
    return load_checkpoint(path).params


# ------------------------------------------------------------------ stop signals
@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """An uninterrupted run of :func:`flags`."""
    out = tmp_path_factory.mktemp("reference")
    assert cli(flags(data, out, "--overwrite")).returncode == 0
    return out


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_mid_epoch_saves_and_resume_ends_bit_identical(data, reference, tmp_path, signum):
    out = tmp_path / "stopped"
    args = flags(data, out)
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW, *args], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:  # into epoch 2, past a checkpoint
        try:
            if load_checkpoint(out / "last.npz").meta["progress"]["global_step"] >= 15:
                break
        except Exception:
            pass
        time.sleep(0.02)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert "Traceback" not in stderr
    progress_at_stop = load_checkpoint(out / "last.npz").meta["progress"]
    assert 0 < progress_at_stop["batch"] < 12  # mid-epoch
    lines = stderr.strip().splitlines()
    assert (
        f"stopped by {signal.Signals(signum).name} at epoch 2, step {progress_at_stop['global_step']}; "
        f"checkpoint written to {out / 'last.npz'}" in lines[-2]
    )
    command = "python -m scratchvae.train " + " ".join(args) + " --resume"
    assert lines[-1] == f"resume with: {command}"

    resumed = cli(command.split()[3:])
    assert resumed.returncode == 0, resumed.stderr
    a, b = params(reference / "last.npz"), params(out / "last.npz")
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


# ------------------------------------------------------------------ re-runs and a second writer
def test_a_rerun_without_resume_is_refused_and_keeps_the_run(data, tmp_path):
    out = tmp_path / "run"
    first = cli(flags(data, out, "--max-steps", 4, "--log-every", 2))
    assert first.returncode == 0, first.stderr
    before = {name: (out / name).read_bytes() for name in ("last.npz", "best.npz", "metrics.jsonl")}
    assert_refused(cli(flags(data, out, "--epochs", 1)), "already holds a run", "--resume", "--overwrite")
    assert {name: (out / name).read_bytes() for name in before} == before

    replaced = cli(flags(data, out, "--epochs", 1, "--overwrite"))
    assert replaced.returncode == 0, replaced.stderr
    assert load_checkpoint(out / "last.npz").meta["progress"]["global_step"] == 12
    assert [r["epoch"] for r in read_log(out).epochs] == [1]  # one run in the log, not two


def test_resume_with_nothing_to_resume(data, tmp_path):
    assert_refused(cli(flags(data, tmp_path / "none", "--resume")), "--resume", "no run folder")
    assert not (tmp_path / "none").exists()
    (tmp_path / "empty").mkdir()
    assert_refused(cli(flags(data, tmp_path / "empty", "--resume")), "--resume", "no", "last.npz", "drop --resume")
    assert_refused(cli(flags(data, tmp_path / "empty", "--resume", "--overwrite")), "give one of them")


def test_a_second_writer_is_refused_naming_the_pid(data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    with RunLock(out):
        last = assert_refused(cli(flags(data, out)), f"(PID {os.getpid()})", str(out))
    assert "another training run" in last
    assert not (out / "last.npz").exists()
    assert cli(flags(data, out, "--max-steps", 2)).returncode == 0  # the lock ended with its holder


def test_a_finished_run_resumed_says_so_and_temp_files_are_removed(data, tmp_path):
    out = tmp_path / "run"
    assert cli(flags(data, out, "--epochs", 1)).returncode == 0
    (out / "last.npz.abc123.tmp").write_bytes(b"half a checkpoint")
    proc = cli(flags(data, out, "--epochs", 1, "--resume"))
    assert proc.returncode == 0
    assert proc.stdout.strip().splitlines() == [
        f"nothing to do: {out / 'last.npz'} has finished --epochs 1 "
        "(epoch 1, step 12); give a larger --epochs to train on"
    ]
    assert not list(out.glob("*.tmp"))


def test_resume_of_another_task_or_other_data_names_the_cause(data, tmp_path):
    out = tmp_path / "run"
    assert cli(flags(data, out, "--max-steps", 2)).returncode == 0
    text = tmp_path / "t.txt"
    text.write_text("a b c\n" * 40)
    other = cli(["text", "--file", str(text), "--out", str(out), "--resume", "--backend", "numpy"])
    assert_refused(other, "is a run of the 'mnist' task, not 'text'")
    first = ToyTask()
    first.meta = lambda: {"config": {"batch": 8}, "data": {"rows": 64, "file": "a.txt"}}
    _trainer(first, tmp_path / "toy", epochs=1, max_steps=2).fit()
    changed = ToyTask()
    changed.meta = lambda: {"config": {"batch": 8}, "data": {"rows": 65, "file": "a.txt"}}
    with pytest.raises(
        TrainingError,
        match=r"different settings \(data\): data.rows was 64, now 65; the data "
        r"changed \(an edited or another data file",
    ):
        _trainer(changed, tmp_path / "toy", epochs=1).resume()


# ------------------------------------------------------------------ --out and failed writes
def test_out_that_cannot_hold_a_run_is_refused_before_any_work(data, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert_refused(cli(flags(data, afile)), "is a file, not a folder")
    assert_refused(cli(flags(data, afile / "sub")), "cannot create the run folder")
    assert afile.read_text() == "x"


def test_a_failed_log_append_is_one_line_and_keeps_the_checkpoint(tmp_path, monkeypatch, capsys):
    import scratchvae.training.log as log

    real_open, calls = open, {"n": 0}

    def full_disk(path, mode="r", *a, **kw):
        if mode == "a":
            calls["n"] += 1
            if calls["n"] == 2:
                raise OSError(28, "No space left on device")
        return real_open(path, mode, *a, **kw)

    monkeypatch.setattr(log, "open", full_disk, raising=False)
    trainer = _trainer(ToyTask(), tmp_path, epochs=2, log_every=4)
    with pytest.raises(
        Exception,
        match=r"could not append to .*metrics.jsonl: No space left on device; "
        r"free disk space .*last good checkpoint is .*last.npz \(written after "
        r"step 6\)",
    ):
        trainer.fit()
    assert load_checkpoint(tmp_path / "last.npz").meta["progress"]["global_step"] == 6


# ------------------------------------------------------------------ divergence
def test_a_diverging_run_never_writes_a_non_finite_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    proc = cli(flags(data, out, "--lr", 1000, "--checkpoint-every", 1, "--log-every", 1, "--no-progress"))
    last = assert_refused(proc, "non-finite", "training stopped", "the last good checkpoint is", "--lr", "GloVe", "KL")
    named = Path(last.split("the last good checkpoint is ")[1].split(" (")[0])
    assert named == out / "last.npz"
    step = int(last.split("written after step ")[1].split(")")[0])
    ckpt = load_checkpoint(named)
    assert ckpt.meta["progress"]["global_step"] == step
    for arrays in (ckpt.params, ckpt.optim):
        assert all(np.isfinite(v).all() for v in arrays.values())
    for line in (out / "metrics.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"{c} in metrics.jsonl"))

    early = tmp_path / "early"
    assert_refused(cli(flags(data, early, "--lr", 1000, "--checkpoint-every", 100)), "no checkpoint was written yet")
    assert not (early / "last.npz").exists()


class NanGradientTask(ToyTask):
    """A finite loss whose gradient is NaN from step 5 on: the parameters turn NaN after the update."""

    def train_step(self, idx, rng, step, *, batch_mean=None):
        metrics = super().train_step(idx, rng, step, batch_mean=batch_mean)
        if step >= 5:
            self.model.gradients()["kernel"][...] = np.nan
        return metrics


def test_non_finite_parameters_are_never_written(tmp_path):
    trainer = _trainer(NanGradientTask(), tmp_path, epochs=2)  # checkpoints every 3 steps
    with pytest.raises(
        TrainingError,
        match=r"non-finite gradient norm at epoch 1, step 6; .*last good "
        r"checkpoint is .*last.npz \(written after step 3\)",
    ):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt.meta["progress"]["global_step"] == 3
    assert all(np.isfinite(v).all() for v in [*ckpt.params.values(), *ckpt.optim.values()])


class ScriptedValidation(ToyTask):
    def __init__(self, figures):
        super().__init__()
        self.figures = list(figures)

    def validate(self):
        return {"val_loss": self.figures.pop(0)}


def test_a_non_finite_validation_is_never_best_and_the_log_stays_json(tmp_path):
    _trainer(ScriptedValidation([float("nan"), 2.0, float("-inf"), 3.0]), tmp_path, epochs=4).fit()
    best = load_checkpoint(tmp_path / "best.npz").meta["progress"]
    assert best["epoch"] == 2 and best["best"] == 2.0
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=lambda c: pytest.fail(c)) for line in lines]
    assert [r["val_loss"] for r in records if r["event"] == "epoch"] == [None, 2.0, None, 3.0]
    assert [r["val_loss"] for r in read_log(tmp_path).epochs] == [None, 2.0, None, 3.0]


# ------------------------------------------------------------------ damaged checkpoints
@pytest.mark.parametrize(
    "damage, message",
    [
        ("empty", "is empty (0 bytes"),
        ("missing", "does not fit the model"),
        ("misshapen", "does not fit the model"),
        ("no task", "records no task"),
    ],
)
def test_a_damaged_checkpoint_is_a_one_line_error(data, tmp_path, capsys, damage, message):
    out = tmp_path / "run"
    assert train.main(flags(data, out, "--max-steps", 2, "--no-progress")) == 0
    path = out / "last.npz"
    if damage == "empty":
        path.write_bytes(b"")
    else:
        ckpt = load_checkpoint(path)
        name = sorted(ckpt.params)[0]
        if damage == "missing":
            del ckpt.params[name]
        elif damage == "misshapen":
            ckpt.params[name] = ckpt.params[name][..., :1]
        else:
            del ckpt.meta["task"]
        save_checkpoint(path, ckpt)
    capsys.readouterr()
    assert (
        evaluate.main([str(path), "--data-dir", str(data), "--backend", "numpy", "--iw-samples", "0", "--no-progress"])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and message in err[0], err


# ------------------------------------------------------------------ what a run reports
def test_piped_output_has_lines_a_summary_and_no_carriage_returns(data, tmp_path):
    out = tmp_path / "run"
    proc = cli(flags(data, out, "--epochs", 2, "--log-every", 5))  # progress on, but piped: lines
    assert proc.returncode == 0, proc.stderr
    assert "\r" not in proc.stdout and "\r" not in proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("mnist: 300 training examples, 12 steps an epoch (batch 25), 2 epochs; ")
    assert "parameters; backend numpy" in lines[0]
    assert any(line.startswith("epoch 1/2  step 5/12  loss ") for line in lines)
    assert any(line.startswith("epoch 2/2  12 steps") and "val_loss" in line for line in lines)
    summary = lines[lines.index(next(x for x in lines if x.startswith("done: 2 epochs, 24 steps"))) :]
    assert summary[1].startswith("best (val_loss): epoch ")
    files = summary[2].removeprefix("checkpoints: ").split(", ")
    assert files == [str(out / "last.npz"), str(out / "best.npz")] and all(Path(f).exists() for f in files)
    assert summary[3] == f"next: python -m scratchvae.evaluate {out / 'best.npz'}"

    quiet = cli(flags(data, tmp_path / "quiet", "--epochs", 1, "--no-progress"))
    quiet_lines = quiet.stdout.splitlines()
    assert any(line.startswith("epoch 1/1  12 steps") and "val_loss" in line for line in quiet_lines)
    assert not any(" step " in line and "/12  loss" in line for line in quiet_lines)  # no --log-every: per epoch
    assert "12 steps an epoch (batch 25), 1 epoch; " in quiet_lines[0]
    assert any(line.startswith("done: 1 epoch, 12 steps") for line in quiet_lines)


def test_a_max_steps_run_validates_and_keeps_a_best_checkpoint(data, tmp_path):
    out = tmp_path / "run"
    proc = cli(flags(data, out, "--max-steps", 5))
    assert proc.returncode == 0, proc.stderr
    assert "stopped at --max-steps 5 (epoch 1, step 5 of the epoch)  val_loss" in proc.stdout
    assert "best (val_loss): step 5 (where --max-steps stopped, 5 of the 12 steps of epoch 1)" in proc.stdout
    assert load_checkpoint(out / "best.npz").meta["progress"]["global_step"] == 5


def test_bars_only_on_a_terminal(monkeypatch):
    class Tty:
        def isatty(self):
            return True

        def write(self, text):
            pass

        def flush(self):
            pass

    assert not progress.use_bars(True)  # pytest captures: not a terminal
    monkeypatch.setattr(sys, "stdout", Tty())
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress.use_bars(True) and not progress.use_bars(False)
    assert progress.progress_bar(total=3, progress=False).disable
    bar = progress.progress_bar(total=3, progress=True)
    assert not bar.disable
    bar.close()


def test_the_expected_time_of_an_epoch_is_printed_once_steps_are_timed(tmp_path, capsys):
    _trainer(ToyTask(n=64, batch=2), tmp_path, epochs=2).fit()  # 32 steps an epoch
    timing = [line for line in capsys.readouterr().out.splitlines() if line.startswith("timing: ")]
    assert len(timing) == 1 and timing[0].endswith("an epoch of 32 steps") and " s a step, about " in timing[0]


SLOW_LOAD = textwrap.dedent("""
    import sys, time
    from scratchvae import train
    from scratchvae.tasks import mnist
    load = mnist.load_mnist
    def slow(*a, **k):
        print("loading", flush=True)
        time.sleep(30)
    mnist.load_mnist = slow
    sys.exit(train.main(sys.argv[1:]))
""")


def test_a_signal_while_data_loads_stops_at_once_without_a_traceback(data, tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", SLOW_LOAD, *flags(data, tmp_path / "run")],
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline() == "loading\n"
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == "stopped by SIGINT before training started; no checkpoint was written"
    assert not (tmp_path / "run" / "last.npz").exists()


class SignallingTask(ToyTask):
    """Sends itself signals: ``during_step`` {step: count}, and one while validating epoch ``during_validation``."""

    def __init__(self, during_step=None, during_validation=None, signum=signal.SIGINT):
        super().__init__()
        self.during_step, self.during_validation, self.signum = during_step or {}, during_validation, signum
        self.validations = 0

    def train_step(self, idx, rng, step, *, batch_mean=None):
        for _ in range(self.during_step.get(step, 0)):
            os.kill(os.getpid(), self.signum)
        return super().train_step(idx, rng, step, batch_mean=batch_mean)

    def validate(self):
        self.validations += 1
        if self.validations == self.during_validation:
            os.kill(os.getpid(), self.signum)
        return super().validate()


@pytest.mark.parametrize("where", ["step", "validation"])
def test_a_stopped_trainer_resumes_to_the_uninterrupted_result(tmp_path, where):
    from scratchvae.training import RunStopped

    full = ToyTask()
    _trainer(full, tmp_path / "full", epochs=3).fit()
    task = SignallingTask(during_step={5: 1}) if where == "step" else SignallingTask(during_validation=2)
    with pytest.raises(RunStopped, match=r"stopped by SIGINT at epoch (1, step 6|2, step 16); checkpoint written"):
        _trainer(task, tmp_path / "cut", epochs=3).fit()
    progress_at_stop = load_checkpoint(tmp_path / "cut" / "last.npz").meta["progress"]
    assert (progress_at_stop["global_step"], progress_at_stop["batch"]) == ((6, 6) if where == "step" else (16, 8))
    resumed = ToyTask()
    trainer = _trainer(resumed, tmp_path / "cut", epochs=3)
    assert trainer.resume()
    trainer.fit()
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(resumed.model.state_dict()[k], v)


def test_a_second_signal_stops_at_once_naming_the_last_checkpoint(tmp_path):
    from scratchvae.training import RunStopped

    with pytest.raises(
        RunStopped,
        match=r"at once \(a second signal\); the last good checkpoint is .*last.npz "
        r"\(written after step 3\)",
    ) as stopped:
        _trainer(SignallingTask(during_step={4: 2}), tmp_path, epochs=2).fit()  # checkpoints every 3 steps
    assert stopped.value.checkpoint == tmp_path / "last.npz"
    assert load_checkpoint(tmp_path / "last.npz").meta["progress"]["global_step"] == 3
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handlers are put back
