"""The dense MNIST VAE: gradients, backend agreement, the IW-NLL estimate, and the
train / evaluate command lines on a tiny synthetic ``mnist.npz``."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from scipy.special import expit, logsumexp
from scipy.stats import norm

from scratchvae import evaluate, train
from scratchvae.gradcheck import CASES, check_problem, load_model_cases
from scratchvae.models.mnist import DenseVAE

load_model_cases()
MODEL_CASES = sorted(name for name in CASES if name.startswith("MNIST"))
PIXELS = 784


def tiny_model(input_dim=12, hidden=8, latent_dim=2, backend="numpy", dtype=np.float64, seed=0):
    return DenseVAE(input_dim, hidden, latent_dim, rng=np.random.default_rng(seed), backend=backend, dtype=dtype)


# ----------------------------------------------------------------------- gradients
def test_the_model_registers_its_gradient_checks():
    assert MODEL_CASES == ["MNIST dense VAE", "MNIST dense VAE binary pixels, latent 3"]


@pytest.mark.parametrize("backend", ["numpy", "numba"])
@pytest.mark.parametrize("name", MODEL_CASES)
def test_model_gradients_match_finite_differences(name, backend):
    result = check_problem(name, CASES[name](backend, "float64", np.random.default_rng(0)))
    assert result.passed, result.errors
    assert set(result.errors) == {
        f"{part}/{layer}/{p}"
        for part, layer in [
            ("encoder", "hidden"),
            ("encoder", "mean"),
            ("encoder", "log_var"),
            ("decoder", "hidden"),
            ("decoder", "logits"),
        ]
        for p in ("kernel", "bias")
    }


@pytest.mark.parametrize("name", MODEL_CASES)
def test_numba_matches_numpy_forward_and_backward(name):
    def run(backend):
        problem = CASES[name](backend, "float64", np.random.default_rng(1))
        return problem.loss(), {k: np.asarray(v) for k, v in problem.gradients().items()}

    ref_loss, ref = run("numpy")
    loss, got = run("numba")
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    for k in ref:
        assert np.abs(got[k] - ref[k]).max() <= 1e-12 * np.abs(ref[k]).max(), k


def test_default_model_has_the_tutorials_size():
    """784-256-(2+2) encoder and 2-256-784 decoder: Keras's summary counts 404,244 weights."""
    model = DenseVAE(rng=np.random.default_rng(0))
    assert model.num_parameters() == 404_244
    assert model.parameters()["decoder/logits/kernel"].shape == (256, 784)


def test_loss_is_the_sum_of_nll_and_kl_and_float32_tracks_float64():
    rng = np.random.default_rng(2)
    x, eps = rng.uniform(0, 1, (6, 12)), rng.standard_normal((6, 2))
    terms = {dt: tiny_model(dtype=dt).forward(x.astype(dt), eps.astype(dt)) for dt in (np.float32, np.float64)}
    t64 = terms[np.float64]
    assert t64["loss"] == pytest.approx(t64["nll"] + t64["kl"], rel=1e-12)
    assert t64["kl"] > 0 and t64["nll"] > 0
    for k in t64:
        assert terms[np.float32][k] == pytest.approx(t64[k], rel=1e-5)


# ----------------------------------------------------------------------- IW-NLL
def reference_iw_nll(model, x, eps):
    """-log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x)), written independently with scipy."""
    P = model.parameters()
    relu = lambda a: np.maximum(a, 0)
    h = relu(x @ P["encoder/hidden/kernel"] + P["encoder/hidden/bias"])
    mean = h @ P["encoder/mean/kernel"] + P["encoder/mean/bias"]
    std = np.exp(0.5 * (h @ P["encoder/log_var/kernel"] + P["encoder/log_var/bias"]))
    z = mean[:, None] + std[:, None] * eps  # (N, K, Z)
    g = relu(z @ P["decoder/hidden/kernel"] + P["decoder/hidden/bias"])
    p = expit(g @ P["decoder/logits/kernel"] + P["decoder/logits/bias"])  # (N, K, D)
    log_px = (x[:, None] * np.log(p) + (1 - x[:, None]) * np.log1p(-p)).sum(-1)
    log_w = log_px + norm.logpdf(z).sum(-1) - norm.logpdf(z, mean[:, None], std[:, None]).sum(-1)
    return np.log(eps.shape[1]) - logsumexp(log_w, axis=1)


def test_iw_nll_matches_a_direct_computation_whatever_the_chunking():
    model = tiny_model()
    x = np.random.default_rng(5).uniform(0, 1, (5, 12))
    K = 7
    expected = reference_iw_nll(model, x, np.random.default_rng(3).standard_normal((5, K, 2)))
    for max_rows in (14, 1000):  # chunks of 2 images, or all 5 at once
        got = model.iw_nll(x, K, np.random.default_rng(3), max_rows=max_rows)
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def blob_images(n, seed, dim=12):
    """Images with structure for a tiny model to find: one of three bright bands, plus noise."""
    rng = np.random.default_rng(seed)
    band = rng.integers(0, 3, n)
    x = rng.uniform(0, 0.2, (n, dim))
    for k in range(3):
        x[band == k, 4 * k : 4 * k + 4] += 0.75
    return x


def test_iw_nll_tightens_the_negative_elbo():
    """E[IW-NLL_K] <= -ELBO, decreasing in K; K = 1 is a one-sample ELBO (same expectation)."""
    model = tiny_model(seed=4)
    x = blob_images(400, seed=6)
    nll, kl = model.negative_elbo(x, np.random.default_rng(0), batch_size=128)
    neg_elbo = nll + kl
    iw = {K: model.iw_nll(x, K, np.random.default_rng(K)) for K in (1, 20, 500)}
    diff = iw[1] - neg_elbo  # same expectation, per image
    assert abs(diff.mean()) < 4 * diff.std() / np.sqrt(len(x))
    assert iw[500].mean() < iw[20].mean() < neg_elbo.mean()
    assert neg_elbo.mean() - iw[500].mean() > 0.05  # a real gap, far above the noise
    assert np.all(iw[500] > 0)  # continuous pixels: still a positive "NLL" here


# ----------------------------------------------------------------------- command line
def write_synthetic_mnist(path, n_train=300, n_test=60, seed=0):
    """A Keras-layout mnist.npz whose 'digits' are vertical bars at a label-dependent column."""
    rng = np.random.default_rng(seed)

    def split(n):
        labels = rng.integers(0, 10, n)
        images = rng.integers(0, 40, (n, 28, 28)).astype(np.uint8)
        for i, d in enumerate(labels):
            images[i, 4:24, 2 + 2 * d : 6 + 2 * d] = 230
        return images, labels.astype(np.uint8)

    (x_train, y_train), (x_test, y_test) = split(n_train), split(n_test)
    np.savez(path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 3-epoch run of ``python -m scratchvae.train mnist`` on synthetic data: (data dir, run dir)."""
    data = tmp_path_factory.mktemp("data")
    write_synthetic_mnist(data)
    out = tmp_path_factory.mktemp("run")
    code = train.main(
        [
            "mnist",
            "--data-dir",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "3",
            "--batch-size",
            "25",
            "--hidden",
            "32",
            "--backend",
            "numpy",
            "--no-progress",
        ]
    )
    assert code == 0
    return data, out


def test_resume_with_an_unreadable_log_is_a_one_line_error(tmp_path, capsys):
    write_synthetic_mnist(tmp_path)
    args = [
        "mnist",
        "--data-dir",
        str(tmp_path),
        "--out",
        str(tmp_path / "run"),
        "--max-steps",
        "2",
        "--batch-size",
        "25",
        "--hidden",
        "8",
        "--backend",
        "numpy",
        "--no-progress",
    ]
    assert train.main(args) == 0
    (tmp_path / "run" / "metrics.jsonl").write_text('{"event": "step", "step": 1}\ngarbage\n{"step": 2}\n')
    assert train.main(args + ["--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "metrics.jsonl, line 2" in err and err.count("\n") == 1


def test_training_from_the_cli_lowers_the_loss(trained):
    _, out = trained
    epochs = [r for r in map(json.loads, (out / "metrics.jsonl").read_text().splitlines()) if r["event"] == "epoch"]
    assert [r["epoch"] for r in epochs] == [1, 2, 3]
    val = [r["val_loss"] for r in epochs]
    assert val[0] > val[1] > val[2]
    assert val[0] < 784 * np.log(2)  # below a model that knows nothing (p = 1/2 everywhere)
    assert val[2] == pytest.approx(epochs[2]["val_nll"] + epochs[2]["val_kl"])
    assert (out / "best.npz").exists() and (out / "last.npz").exists()


def test_evaluate_prints_elbo_and_iw_nll_and_writes_the_three_plots(trained, tmp_path, capsys):
    data, out = trained
    plots = tmp_path / "plots"
    code = evaluate.main(
        [
            str(out / "best.npz"),
            "--data-dir",
            str(data),
            "--backend",
            "numpy",
            "--iw-samples",
            "20",
            "--plots",
            str(plots),
            "--no-progress",
        ]
    )
    text = capsys.readouterr().out
    assert code == 0
    assert "test negative ELBO" in text and "test IW-NLL, K=20" in text
    for name in ("latent.png", "manifold.png", "reconstructions.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_evaluate_without_matplotlib_fails_fast_with_one_line(trained, tmp_path, monkeypatch, capsys):
    data, out = trained
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # makes `import matplotlib` fail
    code = evaluate.main([str(out / "best.npz"), "--data-dir", str(data), "--plots", str(tmp_path / "p")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.strip().splitlines() == [
        "error: --plots needs matplotlib: pip install matplotlib (or pip install 'scratchvae[plot]')"
    ]
    assert captured.out == "" and not (tmp_path / "p").exists()


def test_binarize_flag_thresholds_the_pixels(trained):
    from scratchvae.tasks import task_module

    data, _ = trained
    args = train.build_parser().parse_args(
        ["mnist", "--binarize", "--data-dir", str(data), "--no-progress", "--latent-dim", "3", "--hidden", "16"]
    )
    task = task_module("mnist").build_task(args)
    assert set(np.unique(task.data.x_train)) == {0.0, 1.0}
    assert task.meta() == {
        "config": {"input_dim": PIXELS, "hidden": 16, "latent_dim": 3},
        "dtype": "float32",
        "binarize": True,
        "batch_size": task_module("mnist").DEFAULTS["batch_size"],
    }
