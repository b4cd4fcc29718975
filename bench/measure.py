"""How things are measured: interleaved timing, peak memory, the GEMM peak, the machine.

Timing. Every implementation of a case is built in one process, warmed up (JIT
compilation, allocator), then timed in rounds: each round runs one step of every
implementation, in an order that rotates from round to round.  On a shared machine the
load drifts; interleaving exposes every implementation to the same drift, and the
ratio of two implementations is taken per round (paired) before its median.  In long
cases a short sleep before each timed step lets the previous implementation's thread
pools (OpenMP, OpenBLAS) stop spinning first: in a real run only one of them is in the
process.  Short cases get no pause: after one, a step of a few milliseconds would
mostly time the wake-up of sleeping threads.

Memory. Measured afterwards in a fresh process per implementation (``python
bench/run.py --memory ...``), one case at a time: the resident set high-water mark
(``VmHWM``) during a training step, minus the resident set before the implementation
was built.  It counts parameters, optimiser state, activations, caches and temporaries
alike, for NumPy and PyTorch alike.  A throw-away instance is built and stepped first,
so JIT compilation (Numba's LLVM, Keras's tracing) is not counted, and glibc's mmap
threshold is lowered so freed arrays go back to the system at once and one case's
garbage is not reused by the next.  On a GPU: the CuPy pool's bytes, or
``torch.cuda.max_memory_allocated``.
"""

from __future__ import annotations

import ctypes
import gc
import os
import platform
import subprocess
import time
from pathlib import Path

import numpy as np


# ---------------------------------------------------------------------- timing
def time_interleaved(runners: dict, *, warmup: int, repeats: int, sync=lambda: None, settle: float = 0.0) -> dict:
    """{impl: [seconds per step]} over ``repeats`` rounds, after ``warmup`` steps each.

    ``settle`` seconds of sleep precede every timed step: the thread pools of the
    implementation that ran before (OpenMP, BLAS) stop spinning, so no implementation
    is timed while another one's idle threads still hold the cores.
    """
    for r in runners.values():
        for _ in range(warmup):
            if r.prepare:
                r.prepare()
            r.step()
    sync()
    names = list(runners)
    times = {n: [] for n in names}
    for k in range(repeats):
        for n in names[k % len(names) :] + names[: k % len(names)]:
            r = runners[n]
            if r.prepare:
                r.prepare()
            sync()
            if settle:
                time.sleep(settle)
            t = time.perf_counter()
            r.step()
            sync()
            times[n].append(time.perf_counter() - t)
    return times


def summarize(samples: list[float]) -> dict:
    a = np.asarray(samples)
    med = float(np.median(a))
    return {
        "median_s": med,
        "min_s": float(a.min()),
        "max_s": float(a.max()),
        "spread": float((a.max() - a.min()) / med) if med > 0 else 0.0,
        "samples_s": a.tolist(),
    }


def paired_speedup(reference: list[float], other: list[float]) -> float:
    """Median over rounds of reference_time / other_time (> 1: ``other`` is faster)."""
    return float(np.median(np.asarray(reference) / np.asarray(other)))


# ---------------------------------------------------------------------- memory
def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


def prepare_memory_process() -> None:
    """Return freed blocks of 64 KiB and more to the system at once (glibc mallopt)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD (also disables its dynamic growth)
        libc.mallopt(-1, 128 * 1024)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # not glibc: the numbers are upper bounds
        pass


def _warm(build) -> None:
    """Build and step once, then drop it: JIT compilation and imports happen outside the measurement."""
    runner = build()
    if runner.prepare:
        runner.prepare()
    runner.step()
    del runner
    gc.collect()


def peak_step_memory_cpu(build) -> float:
    """MB: resident high-water mark during a step, above the resident set before ``build``."""
    _warm(build)
    before = _status_kb("VmRSS")
    runner = build()
    for _ in range(2):  # warm-up steps, then a measured one
        if runner.prepare:
            runner.prepare()
        runner.step()
    if runner.prepare:
        runner.prepare()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM to the current resident set
    runner.step()
    peak = _status_kb("VmHWM")
    del runner
    gc.collect()
    return (peak - before) / 1024


def peak_step_memory_gpu(build, impl: str) -> float:
    """MB of device memory: CuPy pool bytes held, or torch's max allocated, over one step."""
    if impl in ("pytorch", "keras"):
        import torch

        runner = build()
        runner.step()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        if runner.prepare:
            runner.prepare()
        runner.step()
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() / 2**20
    import cupy

    pool = cupy.get_default_memory_pool()
    runner = build()
    runner.step()
    cupy.cuda.Device().synchronize()
    pool.free_all_blocks()
    if runner.prepare:
        runner.prepare()
    runner.step()
    cupy.cuda.Device().synchronize()
    return pool.total_bytes() / 2**20  # the pool keeps freed blocks: its size is the step's peak


# ---------------------------------------------------------------------- peak and machine
def numpy_gemm_gflops(n: int, repeats: int = 5, xp=np, sync=lambda: None) -> float:
    """Best float32 GEMM rate of ``xp`` on (n, n) @ (n, n), in GFLOP/s."""
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n)), dtype=np.float32)
    b = a.T.copy()
    c = a @ b
    sync()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        xp.matmul(a, b, out=c)
        sync()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def _cpu_model() -> str:
    """'model name (family F model M, N MHz)' from /proc/cpuinfo."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    return (
        f"{fields.get('model name', 'unknown')} (family {fields.get('cpu family')} "
        f"model {fields.get('model')}, {float(fields.get('cpu MHz', 0)):.0f} MHz)"
    )


def _caches() -> str:
    """Per-level cache sizes of CPU 0, e.g. 'L1d 32K, L2 1024K, L3 32768K (shared 0-1)'."""
    out = []
    for d in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((d / n).read_text().strip() for n in ("level", "type", "size"))
            shared = (d / "shared_cpu_list").read_text().strip()
        except OSError:
            continue
        if kind == "Instruction":
            continue
        out.append(f"L{level}{'d' if kind == 'Data' else ''} {size} (cpus {shared})")
    return ", ".join(out) or "unknown"


def _blas() -> str:
    try:
        cfg = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{cfg.get('name')} {cfg.get('version')}".strip()
    except Exception:  # noqa: BLE001 - older NumPy
        return "unknown"


def _cpu_flags() -> list[str]:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return [f for f in ("avx2", "fma", "avx512f", "avx512_bf16") if f in flags]
    except OSError:
        pass
    return []


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine() -> dict:
    """CPU, cores, load, memory, library versions and thread counts."""
    import numba

    info = {
        "cpu": _cpu_model(),
        "cpu_flags": _cpu_flags(),
        "caches": _caches(),
        "logical_cpus": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)),
        "load_average": load_average(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": _blas(),
        "numba": numba.__version__,
        "numba_threads": numba.config.NUMBA_NUM_THREADS,
        "platform": platform.platform(),
    }
    try:
        with open("/proc/meminfo") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return info
