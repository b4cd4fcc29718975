"""Speed and memory of every backend against PyTorch and Keras, side by side.

    python bench/run.py                    # CPU: numpy, numba, PyTorch, Keras (torch backend)
    python bench/run.py --device gpu       # GPU: cupy, PyTorch, Keras on CUDA
    python bench/run.py --quick            # tiny sizes, one thread: the smoke test, not a measurement
    python bench/run.py --threads 1        # every library on one thread (steadier on a busy machine)
    python bench/run.py --only imdb-seed   # cases whose name contains this text
    python bench/run.py --only model --impls numba,pytorch   # training steps, all cores, against PyTorch
    python bench/run.py --launches         # cupy kernel launches and syncs per step, counted without a GPU

Times kernels (LSTM forward + backward, softmax cross-entropy) and full training steps
(forward, backward, Adam) of the IMDB VAE (seed and repeat presets), the IMDB review VAE
(the default, autoregressive preset), the PTB sentence VAE and the MNIST VAE; reports per
case and implementation the median time per step, its spread, tokens/s, the speed relative
to PyTorch (paired per round; > 1 is faster), GEMM GFLOP/s against a float32 GEMM peak
measured here, and the peak memory of a step. Prints a markdown table, writes JSON
(``--out``), and ends with one line per model and implementation: ``speed <model>
<impl>/pytorch = R.RRx``, after the seed step's share of the GEMM peak and, per model, the
``ceiling``: the most any implementation could beat PyTorch by here, a step that did its
matrix products at the peak and nothing else (PyTorch's share of the peak, inverted).
See measure.py for the method.

A model case is the training step the trainer takes: on numpy and numba the batch split
across ``--cores`` cores, one worker process each (scratchvae/training/cores.py; default
every CPU, as in training), against PyTorch on every thread; ``numba-1proc`` is the same
step in one process on every thread, as training ran before the split.  The peak memory
of a split step is its trainer's process only (each worker holds about 1 / cores of the
activations besides).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))

import scratchvae  # noqa: E402  before NumPy, Numba and PyTorch load: the spin limits of their thread pools


def result_path(args) -> Path | None:
    """Where the JSON result goes: ``--out``, else bench/results/<device>.json; a --quick smoke run writes
    nothing unless ``--out`` says where (it must not leave files in the checkout)."""
    if args.out:
        return Path(args.out)
    return None if args.quick else HERE / "results" / f"{args.device}.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="tiny sizes and few repetitions (a smoke test)")
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument(
        "--only", default=None, help="run the cases whose name contains this text ('kernel' and 'model' select a kind)"
    )
    p.add_argument(
        "--impls",
        default=None,
        help="comma-separated subset of numpy,numba,cupy,pytorch,keras (default: all for the device)",
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds per case (default: 5 to 21 depending on the step time; 2 with --quick)",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 1; 2 for kernels)")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="threads for every library (BLAS, Numba, PyTorch); default: all CPUs, 1 with --quick",
    )
    p.add_argument(
        "--cores",
        type=int,
        default=None,
        help="cores the model steps of numpy and numba are split "
        "across (default: --threads, else every CPU; 2 with --quick, so the smoke test splits)",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument(
        "--out",
        default=None,
        help="JSON file to write, and a .md report beside it (default bench/results/<device>.json; with --quick, none)",
    )
    p.add_argument(
        "--launches",
        action="store_true",
        help="count the cupy backend's kernel launches and syncs per training step on the CuPy "
        "stand-in (no GPU needed) and print a line per model; no timing",
    )
    p.add_argument("--memory", default=None, help=argparse.SUPPRESS)  # internal: the memory subprocess
    return p.parse_args(argv)


def default_impls(device: str) -> list[str]:
    from cases import ONE_PROCESS

    from scratchvae.backend import available_backends

    ours = [b for b in available_backends() if (b == "cupy") == (device == "gpu")]
    ours += [ONE_PROCESS] if "numba" in ours else []
    anchors = []
    for impl, module in (("pytorch", "torch_models"), ("keras", "keras_models")):
        try:
            __import__(module)
        except ImportError as exc:
            print(f"note: no {impl} anchor ({exc})", file=sys.stderr)
            continue
        anchors.append(impl)
    return ours + anchors


def select(cases, only):
    if not only:
        return cases
    return [c for c in cases if only in c.name or only == c.kind]


def _sync(device, impls=("pytorch",)):
    if device != "gpu":
        return lambda: None
    import cupy

    torch = __import__("torch") if "pytorch" in impls else None

    def sync():
        cupy.cuda.Device().synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    return sync


# ---------------------------------------------------------------------- memory subprocess
def memory_main(args) -> int:
    """Measure the peak memory of each (case, impl) in ``args.memory`` (JSON) and print JSON."""
    import measure
    from cases import all_cases

    measure.prepare_memory_process()
    wanted = json.loads(args.memory)
    impls = sorted({impl for _, impl in wanted})
    cases = {c.name: c for c in all_cases(args.quick, impls, args.device, step_cores(args))}
    out = {}
    for name, impl in wanted:
        build = cases[name].builders[impl]
        try:
            mb = (
                measure.peak_step_memory_gpu(build, impl)
                if args.device == "gpu"
                else measure.peak_step_memory_cpu(build)
            )
        except Exception as exc:  # noqa: BLE001 - report, keep measuring the others
            print(f"memory {name} {impl}: {type(exc).__name__}: {exc}", file=sys.stderr)
            mb = None
        out[f"{name}|{impl}"] = mb
    print("MEMORY " + json.dumps(out))
    return 0


def measure_memory(args, pairs) -> dict:
    cmd = [sys.executable, str(HERE / "run.py"), "--device", args.device, "--memory", json.dumps(pairs)]
    if args.threads is not None:
        cmd += ["--threads", str(args.threads)]
    if args.quick:
        cmd.append("--quick")
    cmd += ["--cores", str(step_cores(args))]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    sys.stderr.write(proc.stderr[-4000:] if proc.returncode else "")
    for line in proc.stdout.splitlines():
        if line.startswith("MEMORY "):
            return json.loads(line[len("MEMORY ") :])
    print(f"note: memory measurement failed (exit {proc.returncode})", file=sys.stderr)
    return {}


def gemm_peaks(args, impls, n, sync) -> dict:
    """{library: best float32 GFLOP/s on (n, n) @ (n, n)}."""
    import measure

    peaks = {}
    if args.device == "gpu":
        import cupy

        peaks["cupy"] = measure.numpy_gemm_gflops(n, xp=cupy, sync=sync)
    else:
        peaks["numpy"] = measure.numpy_gemm_gflops(n)
    if "pytorch" in impls:
        import torch_models

        peaks["pytorch"] = torch_models.gemm_gflops(n, "cuda" if args.device == "gpu" else "cpu")
    return peaks


# ---------------------------------------------------------------------- report
def _fmt(x, spec, missing="–"):
    return missing if x is None else format(x, spec)


def markdown_table(rows) -> str:
    head = (
        "| case | impl | ms / step | spread | tokens/s | vs PyTorch | GFLOP/s | % of GEMM peak "
        "| peak MB |\n|---|---|--:|--:|--:|--:|--:|--:|--:|"
    )
    lines = [head]
    for r in rows:
        unit = "" if r["unit"] == "tokens" else f" {r['unit']}"
        lines.append(
            "| {case} | {impl} | {ms} | {spread} | {rate}{unit} | {ratio} | {gf} | {pct} | {mem} |".format(
                case=r["case"],
                impl=r["impl"],
                ms=_fmt(r["median_s"] * 1e3, ".1f"),
                spread=f"{100 * r['spread']:.0f}%",
                rate=_fmt(r["items_per_s"], ",.0f"),
                unit=unit,
                ratio=_fmt(r.get("speed_vs_pytorch"), ".2f") + ("x" if r.get("speed_vs_pytorch") else ""),
                gf=_fmt(r["gflops"], ".1f"),
                pct=_fmt(r["pct_of_peak"], ".0f"),
                mem=_fmt(r.get("peak_mb"), ".0f"),
            )
        )
    return "\n".join(lines)


def step_cores(args) -> int:
    """The cores a model step of numpy and numba is split across (see --cores)."""
    if args.cores is not None:
        return args.cores
    if args.quick:
        return 2
    from scratchvae.backend.threads import core_count

    return args.threads or core_count()


def gemm_share_line(rows, impl: str = "numba", case: str = "imdb-seed") -> str | None:
    """The seed step's share of the measured GEMM peak, as one line (None without that row)."""
    row = next((r for r in rows if r["case"] == case and r["impl"] == impl and r["pct_of_peak"] is not None), None)
    if row is None:
        return None
    return (
        f"gemm share {case} {impl} = {row['pct_of_peak']:.0f}% of the float32 GEMM peak ({row['gflops']:.1f} GFLOP/s)"
    )


def ceiling_lines(rows) -> list[str]:
    """Per model, the most any implementation could beat PyTorch by on this machine: a step doing its
    matrix products at the measured GEMM peak and nothing else, against PyTorch's measured step."""
    return [
        f"ceiling {r['case']} = {100 / r['pct_of_peak']:.2f}x PyTorch (PyTorch's step at {r['pct_of_peak']:.0f}% "
        f"of the GEMM peak: its products at the peak and nothing else would take {r['pct_of_peak']:.0f}% of its time)"
        for r in rows
        if r["kind"] == "model" and r["impl"] == "pytorch" and r.get("pct_of_peak")
    ]


def set_threads(threads: int | None) -> None:
    """Thread counts for every library; must run before NumPy, Numba and PyTorch are imported."""
    if threads is None:
        return
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)


SETTLE_S = 0.2  # pause before each timed step of a long case (see measure.time_interleaved)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads is None and args.quick:
        args.threads = 1  # a smoke test: no thread pools to wait for on a busy machine
    set_threads(args.threads)
    if args.device == "cpu":
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # anchors on the CPU even on a GPU machine
    if args.memory:
        return memory_main(args)
    if args.launches:
        import launches

        return launches.main(args.quick, args.only)
    if args.device == "gpu":
        from scratchvae.backend import BackendError, get_backend

        try:
            get_backend("cupy")
        except BackendError as exc:
            print(f"error: --device gpu: {exc}", file=sys.stderr)
            return 2

    import measure
    import numpy as np
    from cases import all_cases

    impls = args.impls.split(",") if args.impls else default_impls(args.device)
    if args.device == "gpu" and "pytorch" in impls:
        import torch

        if not torch.cuda.is_available():
            print(
                f"note: no pytorch anchor on the GPU (torch {torch.__version__} sees no CUDA device: "
                "install a CUDA build of PyTorch)",
                file=sys.stderr,
            )
            impls = [i for i in impls if i != "pytorch"]
    sync = _sync(args.device, impls)
    info = measure.machine()
    info["load_average_start"] = info.pop("load_average")
    info["threads_option"] = args.threads
    info["step_cores"] = step_cores(args)
    info.update({variable: os.environ.get(variable) for variable in scratchvae.SPIN_LIMITS})
    print(
        f"# bench on {info['cpu']} ({info['usable_cpus']} CPUs), device {args.device}, "
        f"load {info['load_average_start'][0]:.1f}; implementations: {', '.join(impls)}",
        flush=True,
    )

    n = 256 if args.quick else 2048
    peaks = gemm_peaks(args, impls, n, sync)
    if "pytorch" in impls:
        import torch

        info.update(torch=torch.__version__, torch_threads=torch.get_num_threads())
    if "keras" in impls:
        import keras

        info["keras"] = f"{keras.__version__} ({keras.backend.backend()} backend)"
    print(
        f"# float32 GEMM peak ({n}x{n}): " + ", ".join(f"{k} {v:.0f}" for k, v in peaks.items()) + " GFLOP/s",
        flush=True,
    )

    cases = select(all_cases(args.quick, impls, args.device, step_cores(args)), args.only)
    rows = []
    started = time.time()
    for case in cases:
        runners = {impl: build() for impl, build in case.builders.items()}
        warmup = args.warmup if args.warmup is not None else (2 if case.kind == "kernel" else 1)
        probe = measure.time_interleaved(runners, warmup=warmup, repeats=1, sync=sync)
        round_s = sum(t[0] for t in probe.values())
        # a pause before long steps only: after a pause a short step would mostly time the wake-up
        settle = SETTLE_S if not args.quick and round_s / len(runners) >= 0.5 else 0.0
        if args.repeats is not None:
            repeats = args.repeats
        elif args.quick:
            repeats = 2
        else:
            repeats = int(min(21, max(5, 60 / max(round_s, 1e-9))))
        times = measure.time_interleaved(runners, warmup=0, repeats=repeats, sync=sync, settle=settle)
        del runners
        ref = times.get("pytorch")
        for impl, samples in times.items():
            s = measure.summarize(samples)
            gflops = case.flops / s["median_s"] / 1e9 if case.flops else None
            row = dict(
                case=case.name,
                kind=case.kind,
                impl=impl,
                sizes=case.sizes,
                unit=case.unit,
                items_per_step=case.items,
                flops_per_step=case.flops,
                **s,
                items_per_s=case.items / s["median_s"],
                gflops=gflops,
                pct_of_peak=None,
            )
            if ref is not None:
                row["speed_vs_pytorch"] = measure.paired_speedup(ref, samples)
                row["speed_vs_pytorch_of_medians"] = float(np.median(ref) / s["median_s"])
            rows.append(row)
            print(
                f"{case.name:28s} {impl:8s} {s['median_s'] * 1e3:10.1f} ms  spread {100 * s['spread']:4.0f}%"
                + (f"  {row['speed_vs_pytorch']:.2f}x PyTorch" if ref is not None else ""),
                flush=True,
            )

    # the peak again at the end: load can only lower a measured peak, so keep the best of both
    peaks = {k: max(v, peaks[k]) for k, v in gemm_peaks(args, impls, n, sync).items()}
    peak = max(peaks.values())
    for r in rows:
        if r["gflops"] is not None:
            r["pct_of_peak"] = 100 * r["gflops"] / peak

    if not args.no_memory:
        mem = {}
        for impl in dict.fromkeys(r["impl"] for r in rows):  # one fresh process per implementation
            mem.update(measure_memory(args, [[r["case"], r["impl"]] for r in rows if r["impl"] == impl]))
        for r in rows:
            r["peak_mb"] = mem.get(f"{r['case']}|{r['impl']}")

    info["load_average_end"] = measure.load_average()
    info["wall_s"] = round(time.time() - started, 1)
    table = markdown_table(rows)
    print()
    print(table)
    print()
    result = {
        "device": args.device,
        "quick": args.quick,
        "machine": info,
        "gemm_peak_gflops": peaks,
        "gemm_peak_used": peak,
        "rows": rows,
        "table": table,
    }
    speed = [
        f"speed {r['case']} {r['impl']}/pytorch = {r['speed_vs_pytorch']:.2f}x"
        for r in rows
        if r["kind"] == "model" and r["impl"] != "pytorch" and r.get("speed_vs_pytorch") is not None
    ]
    share = gemm_share_line(rows)
    result["gemm_share"] = share
    result["ceilings"] = ceiling_lines(rows)
    out = result_path(args)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        out.with_suffix(".md").write_text(markdown_report(result, speed))
    wrote = f"wrote {out} and {out.with_suffix('.md').name}" if out else "wrote no file (--quick without --out)"
    print(
        f"# {wrote}; load average "
        f"{info['load_average_start'][0]:.1f} at the start, {info['load_average_end'][0]:.1f} at the end"
    )
    if share:
        print(share)
    for line in result["ceilings"] + speed:
        print(line)
    return 0


def markdown_report(result, speed) -> str:
    """The run as a markdown page: machine, GEMM peak, table, speed lines."""
    m = result["machine"]
    skip = {"load_average_start", "load_average_end"}
    lines = [
        f"# bench/run.py{' --quick' if result['quick'] else ''} --device {result['device']}",
        "",
        "| machine | |",
        "|---|---|",
    ]
    lines += [f"| {k} | {v} |" for k, v in m.items() if k not in skip]
    lines += [
        f"| load average (1, 5, 15 min) | start {m['load_average_start']}, end {m['load_average_end']} |",
        "",
        "float32 GEMM peak measured here (GFLOP/s): "
        + ", ".join(f"{k} {v:.0f}" for k, v in result["gemm_peak_gflops"].items()),
        "",
        result["table"],
        "",
        "```",
        *([result["gemm_share"]] if result.get("gemm_share") else []),
        *result.get("ceilings", []),
        *speed,
        "```",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
