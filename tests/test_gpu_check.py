"""bench/gpu_check.py, the device check, in the parts that need no GPU: its plan, its time
limits, and that it records a failing or hanging part and goes on to the next."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

import gpu_check  # noqa: E402 - bench/ is a folder of scripts, importable once on the path


def test_the_plan_fits_in_eight_minutes_and_names_results_after_the_gpu(capsys, tmp_path):
    assert gpu_check.main(["--dry-run", "--gpu-name", "NVIDIA H200", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("# gpu_check on NVIDIA H200: 4 parts, at most 470 s (within the 480 s budget)")
    for part in ("tests", "bench-seed", "bench-default", "train-200"):
        assert f"\n{part} " in out
    assert str(tmp_path / "gpu-nvidia-h200-seed.json") in out and "--only imdb-default" in out
    assert "--max-steps 200" in out and "CUPY_TF32=0 SCRATCHVAE_TORCH_TF32=0" in out
    assert list(tmp_path.iterdir()) == []  # a dry run writes nothing


def test_tf32_is_an_option_with_its_accuracy_measured(capsys, tmp_path):
    assert gpu_check.main(["--dry-run", "--tf32", "--gpu-name", "x", "--results-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "tf32-accuracy" in out and "CUPY_TF32=1" in out and "--accuracy-probe" in out
    assert "gpu-x-seed-tf32.json" in out


def test_a_failing_or_hanging_part_is_recorded_and_the_next_one_runs(monkeypatch, tmp_path, capsys):
    py = sys.executable
    parts = [
        gpu_check.Part("fails", [py, "-c", "import sys; print('error: broken'); sys.exit(3)"], 30),
        gpu_check.Part("hangs", [py, "-c", "import time; print('started', flush=True); time.sleep(30)"], 1),
        gpu_check.Part("missing", [str(tmp_path / "no-such-program")], 5),
        gpu_check.Part("works", [py, "-c", "print('speed imdb-seed cupy/pytorch = 0.70x')"], 30),
    ]
    monkeypatch.setattr(gpu_check, "plan", lambda args, tag: parts)
    assert gpu_check.main(["--gpu-name", "Test GPU", "--results-dir", str(tmp_path)]) == 1
    report = json.loads((tmp_path / "gpu-test-gpu-check.json").read_text())
    status = {r["part"]: r["status"] for r in report["parts"]}
    assert status["fails"] == "failed (exit 3)" and status["hangs"] == "timed out after 1 s"
    assert status["missing"].startswith("could not start") and status["works"] == "passed"
    assert "started" in report["parts"][1]["output_tail"]
    out = capsys.readouterr().out
    assert "1/4 parts passed" in out and "speed imdb-seed cupy/pytorch = 0.70x" in out and "error: broken" in out


def test_bad_arguments(capsys):
    with pytest.raises(SystemExit) as exc:
        gpu_check.main(["--repeats", "0"])
    assert exc.value.code == 2 and "--repeats must be at least 1, got 0" in capsys.readouterr().err


def test_gpu_names_become_file_names():
    assert gpu_check.slug("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert gpu_check.slug("  ") == "unknown-gpu"
