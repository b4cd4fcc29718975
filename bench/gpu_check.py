"""The device check: everything that needs a GPU, in one run of under 8 minutes.

    python bench/gpu_check.py                      # on a machine with an NVIDIA GPU and CuPy
    python bench/gpu_check.py --dry-run            # the plan: parts, commands, time limits
    python bench/gpu_check.py --tf32               # also the benchmark with TF32 GEMMs, and its accuracy

Setup on the GPU machine: ``pip install ".[gpu,test]"`` and a CUDA build of PyTorch for the
anchor (``pip install torch`` from the CUDA index); IMDB in $SCRATCHVAE_DATA or --data-dir.

Parts, each in its own process under its own time limit; a part that fails or runs out of time
is recorded and the next one starts:

1. tests: every test with cupy in its name (the cupy-parametrised ones, tests/test_cupy_*.py and
   the tests marked ``gpu`` there), on real CuPy;
2. bench-seed, bench-default: bench/run.py on the GPU, IMDB seed and default presets, float32,
   the cupy backend against PyTorch with cuDNN (TF32 off in both unless --tf32);
3. train-200: ``python -m scratchvae.train imdb --backend cupy`` for 200 steps, timed;
4. with --tf32: the accuracy of a float32 step with TF32 GEMMs against float64 (loss and
   gradients), and bench-seed again with TF32.

Results go to bench/results/gpu-<GPU name>-*.json (the benchmark's own files) and
bench/results/gpu-<GPU name>-check.json (every part: status, seconds, the tail of its output),
and a summary is printed at the end.  The exit status is 0 only when every part passed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BUDGET_S = 480  # the whole check: 8 minutes


@dataclass
class Part:
    name: str
    command: list[str]
    timeout_s: int
    env: dict = field(default_factory=dict)


def gpu_name() -> str:
    """The GPU's name as nvidia-smi (or CuPy) reports it; 'unknown-gpu' when neither can say."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True, text=True, timeout=20
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.TimeoutExpired):
        pass
    try:
        import cupy

        name = cupy.cuda.runtime.getDeviceProperties(0)["name"]
        return name.decode() if isinstance(name, bytes) else str(name)
    except Exception:  # no CuPy or no GPU: the check's parts will say so
        return "unknown-gpu"


def slug(name: str) -> str:
    """'NVIDIA H200' -> 'nvidia-h200': a file-name part."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unknown-gpu"


def plan(args, tag: str) -> list[Part]:
    py = sys.executable
    results = Path(args.results_dir)
    bench = [
        py,
        str(HERE / "run.py"),
        "--device",
        "gpu",
        "--impls",
        "cupy,pytorch",
        "--no-memory",
        "--repeats",
        str(args.repeats),
    ]
    no_tf32 = {"CUPY_TF32": "0", "SCRATCHVAE_TORCH_TF32": "0"}
    parts = [
        Part("tests", [py, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cupy", str(ROOT / "tests")], 150),
        Part(
            "bench-seed", bench + ["--only", "imdb-seed", "--out", str(results / f"gpu-{tag}-seed.json")], 75, no_tf32
        ),
        Part(
            "bench-default",
            bench + ["--only", "imdb-default", "--out", str(results / f"gpu-{tag}-default.json")],
            75,
            no_tf32,
        ),
        Part(
            "train-200",
            [
                py,
                "-m",
                "scratchvae.train",
                "imdb",
                "--backend",
                "cupy",
                "--max-steps",
                "200",
                "--no-progress",
                "--no-download",
                "--out",
                args.run_dir,
            ]
            + (["--data-dir", args.data_dir] if args.data_dir else []),
            170,
        ),
    ]
    if args.tf32:
        parts += [
            Part("tf32-accuracy", [py, str(HERE / "gpu_check.py"), "--accuracy-probe"], 60, {"CUPY_TF32": "1"}),
            Part(
                "bench-seed-tf32",
                bench + ["--only", "imdb-seed", "--out", str(results / f"gpu-{tag}-seed-tf32.json")],
                75,
                {"CUPY_TF32": "1", "SCRATCHVAE_TORCH_TF32": "1"},
            ),
        ]
    return parts


def run_part(part: Part) -> dict:
    """Run one part under its time limit; never raises."""
    started = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg", **part.env}
    try:
        proc = subprocess.run(part.command, capture_output=True, text=True, timeout=part.timeout_s, env=env, cwd=ROOT)
        status = "passed" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
        output = proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        status = f"timed out after {part.timeout_s} s"
        output = "".join(
            x.decode(errors="replace") if isinstance(x, bytes) else (x or "") for x in (exc.stdout, exc.stderr)
        )
    except OSError as exc:
        status, output = f"could not start ({exc})", ""
    return {
        "part": part.name,
        "status": status,
        "seconds": round(time.monotonic() - started, 1),
        "command": part.command,
        "output_tail": output[-4000:],
    }


def highlights(result: dict) -> list[str]:
    """The lines of a part's output worth repeating in the summary."""
    keep = ("speed ", "passed", "failed", "error", "launches ", "tf32 ")
    return [line for line in result["output_tail"].splitlines() if line.startswith(keep) or " passed" in line][-6:]


def summary(results: list[dict]) -> str:
    lines = ["", "# gpu_check summary"]
    for r in results:
        lines.append(f"{r['part']:16s} {r['status']:28s} {r['seconds']:7.1f} s")
        lines += [f"    {h}" for h in highlights(r)]
    passed = sum(r["status"] == "passed" for r in results)
    lines.append(f"{passed}/{len(results)} parts passed in {sum(r['seconds'] for r in results):.0f} s")
    return "\n".join(lines)


def train_seconds_per_step(run_dir: str) -> dict | None:
    """From the 200-step run's metrics.jsonl: the steps logged and their mean time."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.exists():
        return None
    steps = [json.loads(line) for line in path.read_text().splitlines() if '"event": "step"' in line]
    return {"logged_steps": len(steps), "last": steps[-1] if steps else None}


# ------------------------------------------------------------------ the TF32 accuracy probe
def accuracy_probe() -> int:
    """Loss and gradients of one IMDB default-preset step: float32 (TF32 if CUPY_TF32=1) vs float64."""
    import numpy as np

    from scratchvae.backend import get_backend
    from scratchvae.models.imdb import IMDBVAE
    from scratchvae.tasks.imdb import PRESETS

    preset = PRESETS["default"]
    B = get_backend("cupy")
    ids = np.random.default_rng(0).integers(4, preset.model.vocab_size, (preset.batch_size, preset.max_len))
    labels = np.random.default_rng(1).integers(0, 2, preset.batch_size)
    out = {}
    for dtype in (np.float64, np.float32):
        model = IMDBVAE(preset.model, rng=np.random.default_rng(0), backend=B, dtype=dtype)
        model.zero_grad()
        loss = model.forward(
            B.asarray(ids, dtype=np.int64), labels, model.noise(np.random.default_rng(2), preset.batch_size)
        )
        model.backward()
        out[dtype] = (loss, {k: B.to_numpy(g).astype(np.float64) for k, g in model.gradients().items()})
    (ref_loss, ref), (loss, got) = out[np.float64], out[np.float32]
    worst = max(np.abs(got[k] - ref[k]).max() / max(np.abs(ref[k]).max(), 1e-30) for k in ref)
    mode = "TF32" if os.environ.get("CUPY_TF32") == "1" else "float32"
    print(
        f"tf32 accuracy ({mode} GEMMs): loss {json.dumps(loss, default=float)} vs float64 "
        f"{json.dumps(ref_loss, default=float)}; worst relative gradient difference {worst:.2e}"
    )
    return 0


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--dry-run", action="store_true", help="print the parts and their limits; run nothing")
    p.add_argument("--tf32", action="store_true", help="also measure TF32 GEMMs: accuracy and seed-preset speed")
    p.add_argument(
        "--data-dir", default=os.environ.get("SCRATCHVAE_DATA"), help="where IMDB is (default $SCRATCHVAE_DATA)"
    )
    p.add_argument("--repeats", type=int, default=7, help="timed rounds per benchmark case (default 7)")
    p.add_argument("--gpu-name", default=None, help="name the results after this instead of the detected GPU")
    p.add_argument("--results-dir", default=str(HERE / "results"), help="where to write (default bench/results)")
    p.add_argument("--accuracy-probe", action="store_true", help=argparse.SUPPRESS)  # internal: one part
    args = p.parse_args(argv)
    if args.repeats < 1:
        p.error(f"--repeats must be at least 1, got {args.repeats}")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.accuracy_probe:
        return accuracy_probe()
    name = args.gpu_name or ("dry-run" if args.dry_run else gpu_name())
    tag = slug(name)
    args.run_dir = str(Path(tempfile.gettempdir()) / f"scratchvae-gpu-check-{tag}")
    parts = plan(args, tag)
    total = sum(p.timeout_s for p in parts)
    print(
        f"# gpu_check on {name}: {len(parts)} parts, at most {total} s "
        f"({'within' if total <= BUDGET_S else 'over'} the {BUDGET_S} s budget"
        f"{'; --tf32 adds its parts on top' if args.tf32 else ''})",
        flush=True,
    )
    if args.dry_run:
        for p in parts:
            env = " ".join(f"{k}={v}" for k, v in p.env.items())
            print(f"{p.name:16s} {p.timeout_s:4d} s  {env + ' ' if env else ''}{' '.join(p.command)}")
        return 0
    results = []
    for p in parts:
        print(f"# {p.name} (limit {p.timeout_s} s) ...", flush=True)
        results.append(run_part(p))
        print(f"# {p.name}: {results[-1]['status']} in {results[-1]['seconds']} s", flush=True)
    report = {
        "gpu": name,
        "parts": results,
        "train_200": train_seconds_per_step(args.run_dir),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    out = Path(args.results_dir) / f"gpu-{tag}-check.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1) + "\n")
    print(summary(results))
    print(f"# wrote {out}")
    return 0 if all(r["status"] == "passed" for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
