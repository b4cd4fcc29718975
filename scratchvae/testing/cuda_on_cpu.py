"""CUDA C kernels run on the CPU: the very source text CuPy compiles, built by the host C++ compiler.

A kernel is compiled once into a shared library whose entry point runs every thread of the grid one
after another, with ``blockIdx``, ``threadIdx``, ``blockDim`` and ``gridDim`` set as CUDA sets them.
Arguments arrive as CUDA's ``cuLaunchKernel`` takes them (an array of pointers to each argument), and
each argument's size is checked against the kernel's parameter before the launch: a Python int passed
for an ``int`` parameter, or a float32 array for a ``double*``, fails here instead of reading garbage
on a GPU.

What is emulated is exactly what a serial run can reproduce: kernels whose threads do not cooperate
(no ``__shared__`` memory, ``__syncthreads`` or warp shuffles: those names are undefined here, so such
a kernel does not compile).  ``atomicAdd`` is a plain add.  Floating point is compiled with
``-ffp-contract=off``, as the GPU build uses ``--fmad=false``: both round every operation.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

PRELUDE = r"""
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <type_traits>
#include <utility>
struct dim3 { unsigned int x, y, z; };
static dim3 threadIdx, blockIdx, blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
using std::min; using std::max; using std::exp; using std::log; using std::tanh; using std::sqrt;
using std::fabs; using std::log1p; using std::expm1;
template <typename T> inline T atomicAdd(T* address, T value) { T old = *address; *address = old + value; return old; }
"""

LAUNCHER = r"""
template <typename A> static constexpr int scratch_pointee_size() {
    if constexpr (std::is_pointer<A>::value) {
        using P = typename std::remove_cv<typename std::remove_pointer<A>::type>::type;
        if constexpr (std::is_void<P>::value) return 0; else return (int)sizeof(P);
    } else { return -1; }
}
template <typename... A, std::size_t... I>
static void scratch_call(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_cv<A>::type*>(args[I])...);
}
template <typename... A>
static void scratch_run(void (*f)(A...), const unsigned* grid, const unsigned* block, void** args) {
    gridDim = {grid[0], grid[1], grid[2]};
    blockDim = {block[0], block[1], block[2]};
    for (unsigned bz = 0; bz < grid[2]; ++bz) for (unsigned by = 0; by < grid[1]; ++by)
    for (unsigned bx = 0; bx < grid[0]; ++bx) {
        blockIdx = {bx, by, bz};
        for (unsigned tz = 0; tz < block[2]; ++tz) for (unsigned ty = 0; ty < block[1]; ++ty)
        for (unsigned tx = 0; tx < block[0]; ++tx) {
            threadIdx = {tx, ty, tz};
            scratch_call(f, args, std::index_sequence_for<A...>{});
        }
    }
}
template <typename... A> static int scratch_signature(void (*)(A...), int* sizes, int* pointees) {
    int k = 0;
    ((sizes[k] = (int)sizeof(A), pointees[k] = scratch_pointee_size<A>(), ++k), ...);
    return (int)sizeof...(A);
}
"""

_ENTRY = r"""
extern "C" void scratch_launch_{k}(const unsigned* grid, const unsigned* block, void** args) {{
    scratch_run(&{expr}, grid, block, args);
}}
extern "C" int scratch_signature_{k}(int* sizes, int* pointees) {{
    return scratch_signature(&{expr}, sizes, pointees);
}}
"""


class CompilerMissing(RuntimeError):
    """No C++ compiler: the CUDA kernels cannot run on this CPU."""


def compiler() -> str:
    found = shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++") or shutil.which("clang++")
    if not found:
        raise CompilerMissing(
            "no C++ compiler (g++, c++ or clang++) on PATH to run the CUDA kernels on the CPU; "
            "install one (apt-get install g++)"
        )
    return found


def _cache_dir() -> str:
    path = os.path.join(tempfile.gettempdir(), f"scratchvae-cuda-on-cpu-{os.getuid()}")
    os.makedirs(path, exist_ok=True)
    return path


_libraries: dict[str, ctypes.CDLL] = {}


def _build(source: str) -> ctypes.CDLL:
    key = hashlib.sha256(source.encode()).hexdigest()[:24]
    if key in _libraries:
        return _libraries[key]
    directory = _cache_dir()
    lib_path = os.path.join(directory, f"{key}.so")
    if not os.path.exists(lib_path):
        src_path = os.path.join(directory, f"{key}.{os.getpid()}.cpp")
        with open(src_path, "w") as f:
            f.write(source)
        tmp_path = f"{lib_path}.{os.getpid()}.tmp"
        cmd = [compiler(), "-std=c++17", "-O2", "-ffp-contract=off", "-shared", "-fPIC", src_path, "-o", tmp_path]
        done = subprocess.run(cmd, capture_output=True, text=True)
        os.remove(src_path)
        if done.returncode != 0:
            raise RuntimeError(f"the CUDA source does not compile as C++ on the CPU:\n{done.stderr}")
        os.replace(tmp_path, lib_path)  # atomic: concurrent test processes may build the same library
    _libraries[key] = ctypes.CDLL(lib_path)
    return _libraries[key]


_SCALARS = {
    np.dtype(np.int8): ctypes.c_int8,
    np.dtype(np.int16): ctypes.c_int16,
    np.dtype(np.int32): ctypes.c_int32,
    np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint8): ctypes.c_uint8,
    np.dtype(np.uint32): ctypes.c_uint32,
    np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float,
    np.dtype(np.float64): ctypes.c_double,
    np.dtype(np.bool_): ctypes.c_bool,
}


class CpuKernel:
    """One kernel of a module: call as ``kernel(grid, block, args)``, like ``cupy.RawKernel``.

    ``args`` holds numpy arrays (passed as their data pointers) and numpy scalars; a Python int or
    float is taken as CuPy takes it (int64, float64), so a mismatch with the C parameter is caught.
    """

    def __init__(self, library: ctypes.CDLL, index: int, name: str):
        self.name = name
        self._launch = getattr(library, f"scratch_launch_{index}")
        sizes, pointees = (ctypes.c_int * 64)(), (ctypes.c_int * 64)()
        n = getattr(library, f"scratch_signature_{index}")(sizes, pointees)
        self.param_sizes, self.pointee_sizes = list(sizes[:n]), list(pointees[:n])

    def __call__(self, grid, block, args):
        grid, block = _dim3(grid), _dim3(block)
        if len(args) != len(self.param_sizes):
            raise TypeError(f"kernel {self.name} takes {len(self.param_sizes)} arguments, got {len(args)}")
        keep, pointers = [], (ctypes.c_void_p * max(len(args), 1))()
        for k, (arg, size, pointee) in enumerate(zip(args, self.param_sizes, self.pointee_sizes)):
            if isinstance(arg, np.ndarray):
                if pointee < 0:
                    raise TypeError(f"kernel {self.name} argument {k}: an array passed for a {size}-byte scalar")
                if pointee and arg.dtype.itemsize != pointee:
                    raise TypeError(
                        f"kernel {self.name} argument {k}: {arg.dtype} array passed for a pointer "
                        f"to {pointee}-byte elements"
                    )
                value = ctypes.c_void_p(arg.ctypes.data)
            else:
                if isinstance(arg, (bool, np.bool_)):
                    arg = np.bool_(arg)
                elif isinstance(arg, int):
                    arg = np.int64(arg)
                elif isinstance(arg, float):
                    arg = np.float64(arg)
                if not isinstance(arg, np.generic) or arg.dtype not in _SCALARS:
                    raise TypeError(f"kernel {self.name} argument {k}: unsupported {type(arg).__name__}")
                if arg.dtype.itemsize != size:
                    raise TypeError(
                        f"kernel {self.name} argument {k}: {arg.dtype} ({arg.dtype.itemsize} bytes) "
                        f"passed for a {size}-byte parameter"
                    )
                value = _SCALARS[arg.dtype](arg.item())
            keep.append(value)
            pointers[k] = ctypes.cast(ctypes.pointer(value), ctypes.c_void_p)
        self._launch((ctypes.c_uint * 3)(*grid), (ctypes.c_uint * 3)(*block), pointers)


def _dim3(d) -> tuple[int, int, int]:
    d = (d,) if isinstance(d, (int, np.integer)) else tuple(d)
    if not 1 <= len(d) <= 3 or any(int(x) < 1 for x in d):
        raise ValueError(f"grid and block sizes must be 1 to 3 positive integers, got {d}")
    return tuple(int(x) for x in d) + (1,) * (3 - len(d))


class CpuModule:
    """The CPU build of a CUDA source, like ``cupy.RawModule(code=..., name_expressions=...)``."""

    def __init__(self, code: str, name_expressions):
        self.names = list(name_expressions)
        entries = "".join(_ENTRY.format(k=k, expr=expr) for k, expr in enumerate(self.names))
        self._library = _build(PRELUDE + code + LAUNCHER + entries)

    def get_function(self, name: str) -> CpuKernel:
        if name not in self.names:
            raise KeyError(f"{name!r} is not among the module's name_expressions {self.names}")
        return CpuKernel(self._library, self.names.index(name), name)
