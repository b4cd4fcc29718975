"""``python bench/run.py --quick`` runs end to end: a smoke test, no timing assertions; and bench/cases.py's
synthetic IMDB model batch builds."""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODELS = {"imdb-seed", "imdb-repeat", "imdb-default", "ptb-sentence", "mnist"}


def test_quick_benchmark_runs_and_reports_every_case(tmp_path):
    out = tmp_path / "quick.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]

    result = json.loads(out.read_text())
    rows = result["rows"]
    impls = {r["impl"] for r in rows}
    assert {"numpy", "numba"} <= impls
    assert "numba-1proc" in {r["impl"] for r in rows if r["kind"] == "model"}  # the one-process step beside
    assert "numba-1proc" not in {r["impl"] for r in rows if r["kind"] == "kernel"}
    assert result["machine"]["step_cores"] == 2  # --quick splits the model steps across 2 cores
    assert re.fullmatch(
        r"gemm share imdb-seed numba = \d+% of the float32 GEMM peak \(\d+\.\d GFLOP/s\)", result["gemm_share"]
    ), result["gemm_share"]
    assert result["gemm_share"] in proc.stdout
    assert MODELS <= {r["case"] for r in rows if r["kind"] == "model"}
    assert {r["case"].split()[0] for r in rows if r["kind"] == "kernel"} == {"lstm", "softmax-ce"}
    for r in rows:
        assert r["median_s"] > 0 and r["items_per_s"] > 0, r
        assert len(r["samples_s"]) >= 2
    assert result["machine"]["cpu"] and result["gemm_peak_used"] > 0
    assert "| case | impl |" in proc.stdout and result["table"] in proc.stdout

    # the last lines: one per model and implementation, when the PyTorch anchor ran
    speed = [line for line in proc.stdout.splitlines() if line.startswith("speed ")]
    if "pytorch" in impls:
        ours = {(r["case"], r["impl"]) for r in rows if r["kind"] == "model" and r["impl"] != "pytorch"}
        assert len(speed) == len(ours) == len(MODELS) * (len(impls) - 1) - ("keras" in impls)  # imdb-default: no Keras
        assert all(re.fullmatch(r"speed \S+ \S+/pytorch = \d+\.\d\dx", line) for line in speed), speed
        assert proc.stdout.rstrip().splitlines()[-1] == speed[-1]
        assert all(r.get("peak_mb") is not None for r in rows)  # memory measured for every row
    else:
        assert speed == []


def _bench_run():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_quick_writes_no_file_unless_out_names_one():
    bench = _bench_run()
    assert bench.result_path(bench.parse_args(["--quick"])) is None
    assert bench.result_path(bench.parse_args(["--quick", "--out", "q.json"])) == Path("q.json")
    assert bench.result_path(bench.parse_args([])) == ROOT / "bench" / "results" / "cpu.json"
    assert bench.result_path(bench.parse_args(["--device", "gpu"])) == ROOT / "bench" / "results" / "gpu.json"


def test_the_ceiling_is_pytorchs_share_of_the_gemm_peak_inverted():
    rows = [
        dict(kind="model", case="imdb-seed", impl="pytorch", pct_of_peak=72.0),
        dict(kind="model", case="imdb-seed", impl="numba", pct_of_peak=85.0),  # not an anchor
        dict(kind="model", case="mnist", impl="pytorch", pct_of_peak=25.0),
        dict(kind="model", case="tiny", impl="pytorch", pct_of_peak=0.0),  # --quick: no GFLOP/s to speak of
        dict(kind="kernel", case="lstm B1 T2 U3", impl="pytorch", pct_of_peak=50.0),
    ]
    lines = _bench_run().ceiling_lines(rows)
    heads = [line.split(" (")[0] for line in lines]
    assert heads == ["ceiling imdb-seed = 1.39x PyTorch", "ceiling mnist = 4.00x PyTorch"]
    assert "PyTorch's step at 72% of the GEMM peak" in lines[0]


def test_the_spread_of_runs_is_the_range_of_each_figure(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spread = importlib.import_module("spread")

    def run(speed, torch_s, pct):
        rows = [
            dict(kind="model", case="mnist", impl="numba", speed_vs_pytorch=speed, median_s=0.003, pct_of_peak=pct),
            dict(kind="model", case="mnist", impl="pytorch", speed_vs_pytorch=1.0, median_s=torch_s, pct_of_peak=25.0),
            dict(kind="kernel", case="lstm B1 T2", impl="numba", speed_vs_pytorch=9.0, median_s=1.0, pct_of_peak=1.0),
        ]
        return dict(rows=rows, machine={})

    table = spread.spread_table([run(1.31, 0.0051, 30.2), run(1.18, 0.0046, 27.9), run(1.24, 0.0049, 29.0)])
    assert table.splitlines()[-1] == "| mnist | 1.18x-1.31x | 4.6-5.1 | 28-30 % | 4.00x |"
    assert len(table.splitlines()) == 3  # header, rule, the one model: kernels are not model steps


def test_spread_refuses_a_report_and_an_unknown_implementation_in_one_line():
    result = ROOT / "bench" / "results" / "models-2026-12-04b" / "run1.json"
    cases = [
        ([str(result.with_suffix(".md"))], "is not a bench/run.py result (the .json it writes, not the .md)"),
        ([str(result), "--impl", "nope"], "error: --impl nope: these results have numba, numba-1proc"),
    ]
    for args, message in cases:
        command = [sys.executable, str(ROOT / "bench" / "spread.py"), *args]
        proc = subprocess.run(command, capture_output=True, text=True)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert message in proc.stderr.strip().splitlines()[-1] and len(proc.stderr.strip().splitlines()) == 1


def test_the_imdb_model_batch_builds_any_sizes_cheaply(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))  # bench/ is a folder of scripts, as bench/run.py runs them
    cases = importlib.import_module("cases")
    model, ids, labels, eps = cases.imdb_model_batch(
        4,
        7,
        backend="numpy",
        vocab_size=50,
        encoder_units=6,
        decoder_units=5,
        latent_dim=4,
        hidden_units=8,
        embedding_dim=3,
        sentiment_units=2,
    )
    assert ids.shape == (4, 7) and eps.shape == (4, 4) and model.config.vocab_size == 50
    terms = model.forward(ids, labels, eps)
    model.backward()
    assert np.isfinite(terms["loss"])


def test_quick_design_comparison_times_every_design_of_every_model():
    """bench/cores.py --quick: one thread, K threads, (a) threads with replicas, (b) processes, per model."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "cores.py"), "--quick"], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    rows = [
        line.split(" | ")[:2] for line in proc.stdout.splitlines() if line.startswith("| ") and "s / step" not in line
    ]
    designs = ["1 thread", "2 threads", "(a) 2 threads, replicas", "(b) 2 processes"]
    assert rows == [
        [f"| {case}", d]
        for case in ("imdb-seed", "imdb-repeat", "imdb-default", "ptb-sentence", "mnist")
        for d in designs
    ], proc.stdout


def test_launch_counts_of_a_cupy_step_without_a_gpu(tmp_path):
    """Issue 20's budget, counted on the stand-in: at most 2 + 2 launches per LSTM time step and direction
    (masks included), and a default-preset training step within 3,000 launches and 3 synchronisations."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--launches", "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    found = {}
    for line in proc.stdout.splitlines():
        m = re.match(
            r"launches (\S+) cupy = (\d+) per step, syncs = (\d+) per step \(optimizer (\d+), "
            r"zero_grad (\d+),",
            line,
        )
        if m:
            found[m[1]] = tuple(int(x) for x in m.groups()[1:])
    assert set(found) == MODELS | {"imdb-repeat-T8"}, proc.stdout
    for model, (launches, syncs, optimizer, zero_grad) in found.items():
        assert optimizer == 4, model  # norm (partials, sum, sqrt) + one fused Adam, whatever the model
        assert zero_grad == 1, model  # one multi-tensor zero
        assert 0 < launches and syncs <= 7, model
        assert syncs == 1, model  # the loss terms, read back in one transfer
    for model in ("imdb-default", "imdb-repeat", "imdb-repeat-T8"):
        launches, syncs = found[model][:2]
        assert launches <= 3000 and syncs <= 3, (model, launches, syncs)
    lstm = [line for line in proc.stdout.splitlines() if line.startswith("launches lstm")]
    assert lstm and all(re.search(r"\d+\.\d per time step \(budget 4\), syncs = 0$", line) for line in lstm)
    steps = [
        re.fullmatch(
            r"launches step-kernels mask=(yes|no) sequences=(yes|no) cupy = (\S+) forward \+ "
            r"(\S+) backward per time step and direction \(budget 2 \+ 2, kernel by kernel\), "
            r"syncs = (\S+)",
            line,
        )
        for line in proc.stdout.splitlines()
        if "step-kernels" in line
    ]
    assert len(steps) == 4 and all(steps), proc.stdout
    assert {(m[1], m[2]) for m in steps} == {("yes", "yes"), ("yes", "no"), ("no", "yes"), ("no", "no")}
    for m in steps:
        assert 0 < float(m[3]) <= 2 and 0 < float(m[4]) <= 2 and float(m[5]) == 0, m[0]


def test_bench_on_gpu_without_cupy_is_a_one_line_error(tmp_path):
    import pytest

    from scratchvae.backend import BackendError, get_backend

    try:
        get_backend("cupy")
        pytest.skip("CuPy and a GPU work here: nothing to refuse")
    except BackendError:
        pass
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--device", "gpu"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: --device gpu: the cupy backend needs CuPy: pip install")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
