"""The shared training loop: exact resume, non-finite losses, atomic checkpoints."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from scratchvae.layers import Dense, GaussianSample
from scratchvae.optim import Adam
from scratchvae.training import Checkpoint, CheckpointError, Trainer, TrainingError, load_checkpoint, save_checkpoint
from scratchvae.training.trainer import epoch_learning_rate


class ToyTask:
    """Noisy linear regression: enough to exercise batching, noise and validation."""

    name = "toy"

    def __init__(self, backend="numpy", n=64, batch=8):
        rng = np.random.default_rng(0)
        self.model = Dense(3, 1, backend=backend, dtype=np.float64, rng=rng)
        self.sample = GaussianSample(backend=backend, dtype=np.float64)
        self.x = rng.standard_normal((n, 3))  # host data: each batch goes to the device
        self.y = self.x @ np.array([[1.0], [-2.0], [0.5]])
        self.batch = batch
        self.nan_at = None
        self.B = self.model.backend

    def meta(self):
        return {"config": {"batch": self.batch}}

    def epoch_batches(self, rng):
        order = rng.permutation(len(self.x))
        return [order[i : i + self.batch] for i in range(0, len(order), self.batch)]

    def train_step(self, idx, rng, step, *, batch_mean=None):
        B = self.B
        pred = self.model.forward(B.asarray(self.x[idx]))
        noisy = self.sample.forward(pred, B.xp.full_like(pred, -4.0), B.asarray(rng.standard_normal(pred.shape)))
        diff = noisy - B.asarray(self.y[idx])
        loss = float((diff**2).mean())
        if step == self.nan_at:
            loss = float("nan")
        d_noisy, _ = self.sample.backward(2 * diff / diff.size)
        self.model.backward(d_noisy)
        return {"loss": loss}

    def validate(self):
        B = self.B
        return {"val_loss": float(((self.model.forward(B.asarray(self.x)) - B.asarray(self.y)) ** 2).mean())}


def _trainer(task, out, **kw):
    opt = Adam(task.model.parameters(), task.model.gradients(), learning_rate=0.05, backend=task.model.backend)
    return Trainer(task, opt, out, progress=False, checkpoint_every=3, **kw)


def test_training_reduces_the_loss_and_writes_files(tmp_path):
    task = ToyTask()
    before = task.validate()["val_loss"]
    after = _trainer(task, tmp_path, epochs=5).fit()["val_loss"]
    assert after < 0.2 * before
    assert (tmp_path / "last.npz").exists() and (tmp_path / "best.npz").exists()
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    epochs = [r for r in records if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3, 4, 5]
    assert all("val_loss" in r and "train_loss" in r for r in epochs)


class ScriptedTask(ToyTask):
    """ToyTask whose validation reports a scripted accuracy per epoch."""

    selection = ("val_accuracy", "max")

    def __init__(self, accuracies):
        super().__init__()
        self.accuracies, self.epochs_seen = list(accuracies), 0

    def validate(self):
        acc = self.accuracies[self.epochs_seen]
        self.epochs_seen += 1
        return {"val_loss": 1.0 / (1 + self.epochs_seen), "val_accuracy": acc}  # loss always falls


def test_best_checkpoint_follows_the_tasks_selection_metric(tmp_path):
    task = ScriptedTask([0.6, 0.9, 0.7, 0.8])
    _trainer(task, tmp_path, epochs=4).fit()
    best = load_checkpoint(tmp_path / "best.npz").meta["progress"]
    assert best["epoch"] == 2  # written after epoch 2, the most accurate, though val_loss fell later
    assert best["best"] == -0.9


def test_lr_decay_per_epoch_is_logged_and_applied(tmp_path):
    task = ToyTask()
    trainer = _trainer(task, tmp_path, epochs=3, lr_decay=0.5)
    trainer.fit()
    epochs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl") if '"epoch", "epoch"' in line]
    assert [r["lr"] for r in epochs] == [0.05, 0.025, 0.0125]
    assert trainer.optimizer.learning_rate == 0.0125


def test_step_drops_of_the_learning_rate():
    assert [epoch_learning_rate(0.5, e, 1.0, (3, 5), 0.1) for e in range(6)] == [
        0.5,
        0.5,
        0.5 * 0.1,
        0.5 * 0.1,
        0.5 * 0.1**2,
        0.5 * 0.1**2,
    ]
    # A drop by a power of two is exact: from epoch 8 on, a run started at 1e-3 with a drop of
    # 0.25 at epoch 8 trains with the very rates of one started at 2.5e-4 (bit for bit).
    for e in range(7, 20):
        assert epoch_learning_rate(1e-3, e, 0.95, (8,), 0.25) == epoch_learning_rate(2.5e-4, e, 0.95)
    assert epoch_learning_rate(1e-3, 6, 0.95, (8,), 0.25) == 1e-3 * 0.95**6


def test_lr_drops_are_logged_and_applied(tmp_path):
    _trainer(ToyTask(), tmp_path, epochs=4, lr_drop_at=(3,), lr_drop_factor=0.5).fit()
    epochs = [json.loads(line) for line in open(tmp_path / "metrics.jsonl") if '"epoch", "epoch"' in line]
    assert [r["lr"] for r in epochs] == [0.05, 0.05, 0.025, 0.025]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--lr-decay", "1.5"], "--lr-decay: must be in (0, 1], got 1.5"),
        (["--lr-drop-factor", "0"], "--lr-drop-factor: must be in (0, 1], got 0"),
        (["--lr-drop-at", "0"], "--lr-drop-at: must be a positive integer, got 0"),
        (["--lr-drop-at", "x"], "--lr-drop-at: 'x' is not a whole number"),
    ],
)
def test_train_rejects_a_bad_learning_rate_schedule(capsys, flags, message):
    from scratchvae.train import main

    with pytest.raises(SystemExit) as exc:
        main(["mnist", *flags])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("stop_at", [4, 8, 13])  # mid-epoch, at an epoch boundary, later
def test_resume_is_exact(tmp_path, backend_name, stop_at):
    full = ToyTask(backend_name)
    _trainer(full, tmp_path / "full", epochs=3, lr_decay=0.7).fit()

    first = ToyTask(backend_name)
    _trainer(first, tmp_path / "cut", epochs=3, max_steps=stop_at, lr_decay=0.7).fit()  # as if killed here
    second = ToyTask(backend_name)
    trainer = _trainer(second, tmp_path / "cut", epochs=3, lr_decay=0.7)  # the decayed rate is rebuilt
    assert trainer.resume() and trainer.global_step == stop_at
    trainer.fit()
    for k, v in full.model.state_dict().items():
        np.testing.assert_array_equal(second.model.state_dict()[k], v)


def _log_without_timings(path):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"} for line in open(path)]


def test_a_resumed_run_logs_as_if_never_stopped(tmp_path):
    """Steps logged after the last checkpoint by a killed run are logged again on resume:
    resuming drops the first records, and the log equals an uninterrupted run's."""
    _trainer(ToyTask(), tmp_path / "full", epochs=2, log_every=1).fit()
    cut = tmp_path / "cut"
    _trainer(ToyTask(), cut, epochs=2, log_every=1, max_steps=6).fit()
    checkpoint_at_6 = (cut / "last.npz").read_bytes()
    trainer = _trainer(ToyTask(), cut, epochs=2, log_every=1, max_steps=8)
    trainer.resume()
    trainer.fit()  # logs steps 7 and 8, then it is killed:
    (cut / "last.npz").write_bytes(checkpoint_at_6)  # its last checkpoint was at step 6
    assert [r["step"] for r in _log_without_timings(cut / "metrics.jsonl") if r["event"] == "step"][-2:] == [7, 8]
    trainer = _trainer(ToyTask(), cut, epochs=2, log_every=1)
    assert trainer.resume() and trainer.global_step == 6
    trainer.fit()
    assert _log_without_timings(cut / "metrics.jsonl") == _log_without_timings(tmp_path / "full" / "metrics.jsonl")
    assert not (cut / "metrics.jsonl.tmp").exists()


def test_an_epochs_train_figures_are_the_means_over_its_batches(tmp_path):
    _trainer(ToyTask(), tmp_path, epochs=2, log_every=1).fit()
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    for end in (r for r in records if r["event"] == "epoch"):
        losses = [r["loss"] for r in records if r["event"] == "step" and r["epoch"] == end["epoch"] - 1]
        assert len(losses) == 8
        assert end["train_loss"] == pytest.approx(np.mean(losses), rel=1e-12)


def test_resume_refuses_other_settings(tmp_path):
    _trainer(ToyTask(), tmp_path, epochs=1).fit()
    other = ToyTask(batch=4)
    with pytest.raises(TrainingError, match=r"different settings \(config\)"):
        _trainer(other, tmp_path, epochs=1).resume()


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(lr_decay=0.5), r"was trained with --lr-decay 1.0 \(given 0.5\)"),
        (dict(seed=3), r"was trained with --seed 0 \(given 3\)"),
        (dict(lr=0.01, clipnorm=1.0), r"was trained with --lr 0.05, --clipnorm off \(given 0.01, 1.0\)"),
        (dict(lr_drop_at=(2, 3)), r"was trained with --lr-drop-at none, --lr-drop-factor off \(given 2 3, 0.1\)"),
    ],
)
def test_resume_refuses_another_schedule_or_seed(tmp_path, change, message):
    """A resumed run must continue the run it resumes: the optimiser settings and seed that
    shape every later step are kept in the checkpoint and checked."""
    _trainer(ToyTask(), tmp_path, epochs=1, max_steps=4).fit()
    task = ToyTask()
    opt = Adam(
        task.model.parameters(),
        task.model.gradients(),
        learning_rate=change.pop("lr", 0.05),
        global_clipnorm=change.pop("clipnorm", None),
    )
    trainer = Trainer(task, opt, tmp_path, progress=False, epochs=2, **change)
    with pytest.raises(TrainingError, match=message + r"; resume with the flags it was trained with"):
        trainer.resume()


def test_resume_may_extend_a_run_and_reads_checkpoints_without_settings(tmp_path):
    _trainer(ToyTask(), tmp_path, epochs=1).fit()
    assert _trainer(ToyTask(), tmp_path, epochs=3).resume()  # more epochs: allowed
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt.meta["training"] == {
        "optimizer": "adam",
        "lr": 0.05,
        "lr_decay": 1.0,
        "lr_drop_at": [],
        "lr_drop_factor": None,
        "clipnorm": None,
        "seed": 0,
    }
    for key in ("lr_drop_at", "lr_drop_factor"):  # settings added later
        del ckpt.meta["training"][key]
    save_checkpoint(tmp_path / "last.npz", ckpt)
    assert _trainer(ToyTask(), tmp_path, epochs=3).resume()
    del ckpt.meta["training"]  # as written before they were kept
    save_checkpoint(tmp_path / "last.npz", ckpt)
    trainer = _trainer(ToyTask(), tmp_path, epochs=3, lr_decay=0.5)
    assert trainer.resume() and trainer.epoch == 1
    trainer.fit()
    assert load_checkpoint(tmp_path / "last.npz").meta["training"]["lr_decay"] == 0.5


def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    task = ToyTask()
    task.nan_at = 7
    trainer = _trainer(task, tmp_path, epochs=3)
    with pytest.raises(TrainingError, match=r"non-finite loss at epoch 1, step 7; .*last good checkpoint"):
        trainer.fit()
    ckpt = load_checkpoint(tmp_path / "last.npz")
    assert ckpt.meta["progress"]["global_step"] == 6
    assert all(np.all(np.isfinite(v)) for v in ckpt.params.values())


def test_checkpoint_round_trip(tmp_path):
    ckpt = Checkpoint({"a/b": np.arange(3.0)}, {"task": "toy", "x": [1, 2]}, {"m/a/b": np.ones(3)})
    save_checkpoint(tmp_path / "c.npz", ckpt)
    back = load_checkpoint(tmp_path / "c.npz")
    np.testing.assert_array_equal(back.params["a/b"], np.arange(3.0))
    assert back.meta == {"task": "toy", "x": [1, 2]}
    np.testing.assert_array_equal(back.optim["m/a/b"], np.ones(3))


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.npz"
    save_checkpoint(path, Checkpoint({"w": np.zeros(2)}, {"step": 1}))

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", disk_full)
    with pytest.raises(CheckpointError, match="No space left on device; .*previous checkpoint is intact"):
        save_checkpoint(path, Checkpoint({"w": np.ones(2)}, {"step": 2}))
    assert load_checkpoint(path).meta == {"step": 1}
    assert os.listdir(tmp_path) == ["last.npz"]  # no temp file left behind


def test_corrupt_or_missing_checkpoint_messages(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.npz")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip file")
    with pytest.raises(CheckpointError, match="unreadable or corrupt"):
        load_checkpoint(bad)


def test_threads_flag_limits_blas_and_numba():
    import numba
    from threadpoolctl import threadpool_info

    from scratchvae.train import limit_threads

    before = numba.get_num_threads()
    try:
        limit_threads(1)
        assert numba.get_num_threads() == 1
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
        with pytest.raises(TrainingError, match="--threads must be at least 1"):
            limit_threads(0)
    finally:
        numba.set_num_threads(before)
        from threadpoolctl import threadpool_limits

        threadpool_limits(before)
