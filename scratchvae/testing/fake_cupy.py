"""A strict stand-in for CuPy built on NumPy: it refuses what CuPy refuses, and counts.

Its ``ndarray`` wraps a NumPy array (the "device" memory) and, like CuPy's, refuses to become a
NumPy array implicitly (``np.asarray(x)``, ``__array__``), refuses NumPy arrays in operators,
ufuncs, functions and item assignment, and offers only the explicit ways across: ``asarray`` /
``array`` (host -> device), ``asnumpy`` / ``.get()`` (device -> host), ``float(x)`` / ``.item()``.
Names CuPy lacks are missing here too (an AttributeError), and keywords CuPy lacks are refused.
The backend's custom kernels (``RawModule``) run on the CPU through
:mod:`scratchvae.testing.cuda_on_cpu`: the same CUDA source, compiled by the host C++ compiler.

``counters`` counts what would cost time on a GPU:

* ``launches``: kernels; one per ufunc, reduction, copy, fill, product, custom kernel (as CuPy
  issues them, to within one or two for the composite functions); views and ``empty`` cost none;
* ``h2d`` / ``d2h``: host <-> device copies;
* ``syncs``: points where the host waits for the device: every device -> host copy (``asnumpy``,
  ``get``, ``float``, ``bool``, ``item``, printing) and every ``synchronize()``.

CUDA graphs: ``stream.begin_capture()`` on a non-default stream records the custom kernels and cuBLAS
calls issued on it (and refuses any other device work), ``end_capture()`` returns a :class:`Graph`,
and ``graph.launch()`` replays them on the arrays they were captured on, counted as one launch.
"""

from __future__ import annotations

import builtins
import sys
import types
from dataclasses import dataclass, field, fields

import numpy as np

from . import cuda_on_cpu


@dataclass
class Counters:
    launches: int = 0
    h2d: int = 0
    d2h: int = 0
    syncs: int = 0
    custom: dict = field(default_factory=dict)  # launches of each custom kernel, by name (within launches)

    def __setattr__(self, name, value):
        if _capture.stream is not None and name != "custom" and value != getattr(self, name, value):
            raise RuntimeError(
                f"{_COUNTED[name]} inside a CUDA graph capture: this stand-in captures custom "
                "kernels and cuBLAS calls only, so a captured loop must run on buffers made "
                "before it"
            )
        super().__setattr__(name, value)

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, {} if f.name == "custom" else 0)

    def snapshot(self) -> dict:
        """The four counts (``custom`` apart)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "custom"}


class _CaptureState:
    """The stream capturing now (None: none), what it has recorded, and the current stream."""

    def __init__(self):
        self.stream, self.calls, self.current = None, [], None

    def record(self, call) -> bool:
        """Keep ``call`` for the graph when a capture is on (True), else False: run it now."""
        if self.stream is None:
            return False
        if self.current is not self.stream:
            raise RuntimeError(
                "work issued on another stream while a stream captures (CUDA's global capture mode refuses it)"
            )
        self.calls.append(call)
        return True


_capture = _CaptureState()
_COUNTED = {
    "launches": "an uncaptured kernel (ufunc, copy, fill, reduction)",
    "h2d": "a host -> device copy",
    "d2h": "a device -> host copy",
    "syncs": "a synchronisation",
}
counters = Counters()


def _refuse_numpy(value, where: str):
    raise TypeError(
        f"Unsupported type {type(value)} in {where}: a NumPy array on the device needs an "
        "explicit cupy.asarray (this stand-in refuses it as CuPy does)"
    )


def _refuse_keywords(kwargs, allowed, where):
    extra = set(kwargs) - set(allowed)
    if extra:
        raise TypeError(f"{where}() got unexpected keyword argument(s) {sorted(extra)} (CuPy lacks them)")


def _unwrap(x, where):
    """A device value -> its NumPy storage; scalars pass; NumPy arrays are refused."""
    if isinstance(x, ndarray):
        return x._a
    if isinstance(x, np.ndarray):
        _refuse_numpy(x, where)
    if isinstance(x, (list, tuple)):
        return type(x)(_unwrap(v, where) for v in x)
    return x


def _wrap(a, launches=1):
    """A NumPy result -> a device array (0-d results stay arrays, as CuPy's do)."""
    counters.launches += launches
    if isinstance(a, tuple):
        return tuple(_wrap(x, 0) for x in a)
    if isinstance(a, (np.ndarray, np.generic)):
        out = ndarray.__new__(ndarray)
        out._a = np.asarray(a)
        return out
    return a


def _is_view(result, *sources) -> bool:
    return isinstance(result, np.ndarray) and builtins.any(
        isinstance(s, np.ndarray) and np.may_share_memory(result, s) for s in sources
    )


class _Pointer:
    def __init__(self, a):
        self.ptr = a.ctypes.data


class ndarray:
    """A device array (NumPy storage)."""

    __slots__ = ("_a",)
    __array_priority__ = 100

    def __init__(self, shape, dtype=float):
        self._a = np.empty(shape, dtype=dtype)

    # -------------------------------------------------------------- the explicit ways across
    def get(self, stream=None, out=None):
        counters.d2h += 1
        counters.syncs += 1
        return self._a.copy()

    def set(self, arr):
        if not isinstance(arr, np.ndarray):
            raise TypeError("set() takes a NumPy array")
        counters.h2d += 1
        self._a[...] = arr

    def item(self):
        counters.d2h += 1
        counters.syncs += 1
        return self._a.item()

    def tolist(self):
        return self.get().tolist()

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        return bool(self.item())

    def __complex__(self):
        return complex(self.item())

    def __format__(self, spec):
        return format(self.get() if self.ndim else self.item(), spec)

    def __repr__(self):
        return repr(self.get()).replace("array", "fake_cupy.array", 1)

    __str__ = __repr__

    def __array__(self, *args, **kwargs):
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if ufunc is np.matmul and method == "__call__":
            return _matmul(*inputs, **kwargs)
        mine = _UFUNCS.get(ufunc.__name__)
        if mine is None:
            return NotImplemented
        if method == "__call__":
            return mine(*inputs, **kwargs)
        if method == "at" and hasattr(mine, "at"):
            return mine.at(*inputs, **kwargs)
        return NotImplemented

    def __array_function__(self, func, types_, args, kwargs):
        mine = getattr(_module, func.__name__, None)
        if mine is None or not callable(mine):
            return NotImplemented
        return mine(*args, **kwargs)

    @property
    def __cuda_array_interface__(self):
        return {
            "shape": self.shape,
            "typestr": self.dtype.str,
            "data": (self._a.ctypes.data, False),
            "version": 3,
            "strides": None if self.flags.c_contiguous else self.strides,
        }

    # -------------------------------------------------------------- attributes
    shape = property(lambda self: self._a.shape)
    dtype = property(lambda self: self._a.dtype)
    ndim = property(lambda self: self._a.ndim)
    size = property(lambda self: self._a.size)
    nbytes = property(lambda self: self._a.nbytes)
    itemsize = property(lambda self: self._a.itemsize)
    strides = property(lambda self: self._a.strides)
    flags = property(lambda self: self._a.flags)
    data = property(lambda self: _Pointer(self._a))
    T = property(lambda self: _wrap(self._a.T, 0))
    real = property(lambda self: _wrap(self._a.real, 0))

    @property
    def base(self):
        return None if self._a.base is None else _wrap(self._a.base, 0)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        for k in range(len(self._a)):
            yield _wrap(self._a[k], 0)

    def __getitem__(self, index):
        index = _unwrap_index(index)
        out = self._a[index]
        return _wrap(out, 0 if _is_view(out, self._a) else 1)

    def __setitem__(self, index, value):
        if isinstance(value, np.ndarray):
            _refuse_numpy(value, "item assignment")
        counters.launches += 1  # counted first: inside a capture it refuses before writing
        self._a[_unwrap_index(index)] = _unwrap(value, "item assignment")

    # -------------------------------------------------------------- methods
    def astype(self, dtype, order="K", casting=None, subok=None, copy=True):
        if not copy and np.dtype(dtype) == self.dtype:
            return self
        return _wrap(self._a.astype(dtype, order=order))

    def copy(self, order="C"):
        return _wrap(self._a.copy(order=order))

    def fill(self, value):
        counters.launches += 1
        self._a.fill(_unwrap(value, "fill"))

    def view(self, dtype=None):
        return _wrap(self._a.view(dtype) if dtype is not None else self._a.view(), 0)

    def __deepcopy__(self, memo):
        return self.copy()

    def __reduce__(self):
        raise TypeError("a device array is not pickled implicitly: asnumpy it first")


_METHODS = {
    # name: allowed keywords
    "reshape": ("order",),
    "ravel": ("order",),
    "flatten": ("order",),
    "transpose": (),
    "swapaxes": (),
    "squeeze": ("axis",),
    "sum": ("axis", "dtype", "out", "keepdims"),
    "mean": ("axis", "dtype", "out", "keepdims"),
    "max": ("axis", "out", "keepdims"),
    "min": ("axis", "out", "keepdims"),
    "argmax": ("axis", "out", "keepdims"),
    "argmin": ("axis", "out", "keepdims"),
    "cumsum": ("axis", "dtype", "out"),
    "any": ("axis", "out", "keepdims"),
    "all": ("axis", "out", "keepdims"),
    "std": ("axis", "dtype", "out", "ddof", "keepdims"),
    "var": ("axis", "dtype", "out", "ddof", "keepdims"),
    "prod": ("axis", "dtype", "out", "keepdims"),
    "clip": ("min", "max", "out"),
    "dot": ("out",),
    "nonzero": (),
    "repeat": ("axis",),
    "take": ("axis", "out"),
    "conj": (),
    "round": ("decimals", "out"),
    "argsort": ("axis",),
    "sort": ("axis",),
    "diagonal": ("offset", "axis1", "axis2"),
    "trace": ("offset", "axis1", "axis2", "dtype", "out"),
}


def _method(name, allowed):
    def method(self, *args, **kwargs):
        _refuse_keywords(kwargs, allowed, f"ndarray.{name}")
        args, kwargs = _unwrap(args, name), {k: _unwrap(v, name) for k, v in kwargs.items()}
        out = getattr(self._a, name)(*args, **kwargs)
        if name in ("sort",):
            counters.launches += 1
            return None
        return _wrap(out, 0 if _is_view(out, self._a) else 1)

    method.__name__ = name
    return method


for _name, _allowed in _METHODS.items():
    setattr(ndarray, _name, _method(_name, _allowed))


def _unwrap_index(index):
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    if isinstance(index, ndarray):
        return index._a
    if isinstance(index, (np.ndarray, list)):
        counters.h2d += 1  # CuPy copies a host index array to the device
    return index


# ------------------------------------------------------------------ ufuncs
class _Ufunc:
    def __init__(self, np_ufunc):
        self._f = np_ufunc
        self.__name__ = np_ufunc.__name__
        self.nin, self.nout = np_ufunc.nin, np_ufunc.nout

    def __call__(self, *args, out=None, dtype=None, casting="same_kind"):
        arrays = [_unwrap(a, self.__name__) for a in args]
        if not builtins.any(isinstance(a, ndarray) for a in args) and not isinstance(out, ndarray):
            raise TypeError(
                f"{self.__name__}: no device array among the arguments (CuPy takes only cupy arrays and scalars)"
            )
        if out is not None:
            if isinstance(out, tuple):
                out = out[0]
            if not isinstance(out, ndarray):
                _refuse_numpy(out, f"{self.__name__}(out=)")
            counters.launches += 1
            self._f(*arrays, out=out._a, dtype=dtype, casting=casting)
            return out
        return _wrap(self._f(*arrays, dtype=dtype, casting=casting))

    def at(self, a, indices, b=None):
        if not isinstance(a, ndarray):
            raise TypeError(f"{self.__name__}.at: the target must be a device array")
        args = (_unwrap_index(indices),) if b is None else (_unwrap_index(indices), _unwrap(b, "at"))
        counters.launches += 1
        self._f.at(a._a, *args)

    def reduce(self, a, axis=0, dtype=None, out=None, keepdims=False):
        return _wrap(self._f.reduce(_unwrap(a, "reduce"), axis=axis, dtype=dtype, keepdims=keepdims))


_UFUNC_NAMES = (
    "add subtract multiply divide true_divide floor_divide power negative positive absolute fabs sign "
    "exp exp2 expm1 log log2 log10 log1p sqrt square reciprocal sin cos tan arcsin arccos arctan arctan2 "
    "sinh cosh tanh arcsinh arccosh arctanh maximum minimum fmax fmin logaddexp logaddexp2 floor ceil "
    "rint trunc equal not_equal greater greater_equal less less_equal logical_and logical_or logical_xor "
    "logical_not isfinite isinf isnan bitwise_and bitwise_or bitwise_xor invert remainder mod fmod "
    "signbit copysign hypot"
).split()
_UFUNCS = {name: _Ufunc(getattr(np, name)) for name in _UFUNC_NAMES}
_UFUNCS["absolute"].__name__ = "absolute"


def _binary(name, reflected=False):
    uf = _UFUNCS[name]

    def op(self, other):
        if isinstance(other, np.ndarray):
            _refuse_numpy(other, f"operator {name}")
        if not isinstance(other, (ndarray, int, float, bool, complex, np.generic)):
            return NotImplemented
        return uf(other, self) if reflected else uf(self, other)

    def iop(self, other):
        if isinstance(other, np.ndarray):
            _refuse_numpy(other, f"operator {name}=")
        uf(self, other, out=self)
        return self

    return op, iop


for _op, _uf in [
    ("add", "add"),
    ("sub", "subtract"),
    ("mul", "multiply"),
    ("truediv", "true_divide"),
    ("floordiv", "floor_divide"),
    ("pow", "power"),
    ("mod", "remainder"),
    ("and", "bitwise_and"),
    ("or", "bitwise_or"),
    ("xor", "bitwise_xor"),
]:
    _f, _i = _binary(_uf)
    setattr(ndarray, f"__{_op}__", _f)
    setattr(ndarray, f"__i{_op}__", _i)
    setattr(ndarray, f"__r{_op}__", _binary(_uf, reflected=True)[0])
for _op, _uf in [
    ("lt", "less"),
    ("le", "less_equal"),
    ("gt", "greater"),
    ("ge", "greater_equal"),
    ("eq", "equal"),
    ("ne", "not_equal"),
]:
    setattr(ndarray, f"__{_op}__", _binary(_uf)[0])
ndarray.__hash__ = None
ndarray.__neg__ = lambda self: _UFUNCS["negative"](self)
ndarray.__pos__ = lambda self: _UFUNCS["positive"](self)
ndarray.__abs__ = lambda self: _UFUNCS["absolute"](self)
ndarray.__invert__ = lambda self: _UFUNCS["invert"](self)


def _matmul(a, b, out=None):
    for x in (a, b):
        if isinstance(x, np.ndarray):
            _refuse_numpy(x, "matmul")
        if not isinstance(x, ndarray):
            raise TypeError(f"matmul takes device arrays, not {type(x).__name__}")
    if out is not None:
        counters.launches += 1
        np.matmul(a._a, b._a, out=out._a)
        return out
    return _wrap(np.matmul(a._a, b._a))


ndarray.__matmul__ = lambda self, other: _matmul(self, other)
ndarray.__rmatmul__ = lambda self, other: _matmul(other, self)
ndarray.__imatmul__ = lambda self, other: _matmul(self, other, out=self)


# ------------------------------------------------------------------ creation and transfer
def _host_to_device(a, dtype=None, copy=True):
    if isinstance(a, ndarray):
        if dtype is None or np.dtype(dtype) == a.dtype:
            return a.copy() if copy else a
        return a.astype(dtype)
    counters.h2d += 1
    out = ndarray.__new__(ndarray)
    out._a = np.array(a, dtype=dtype, copy=True)
    if out._a.dtype == object:
        raise TypeError("Unsupported dtype object")
    return out


def asarray(a, dtype=None, order=None, *, blocking=False):
    return _host_to_device(a, dtype, copy=False)


def array(obj, dtype=None, copy=True, order="K", subok=False, ndmin=0, *, blocking=False):
    out = _host_to_device(obj, dtype, copy=copy)
    return out if out.ndim >= ndmin else _wrap(out._a.reshape((1,) * (ndmin - out.ndim) + out.shape), 0)


def asnumpy(a, stream=None, order="C", out=None, *, blocking=True):
    if isinstance(a, ndarray):
        return a.get()
    return np.asarray(a, order=order)


def ascontiguousarray(a, dtype=None):
    if not isinstance(a, ndarray):
        raise TypeError(f"Argument 'a' has incorrect type (expected cupy.ndarray, got {type(a).__name__})")
    if a.flags.c_contiguous and (dtype is None or np.dtype(dtype) == a.dtype):
        return a
    return _wrap(np.ascontiguousarray(a._a, dtype=dtype))


def _creation(name, launches):
    f = getattr(np, name)

    def create(shape, dtype=float, order="C"):
        return _wrap(f(shape, dtype=dtype, order=order), launches)

    create.__name__ = name
    return create


empty = _creation("empty", 0)
zeros = _creation("zeros", 1)
ones = _creation("ones", 1)


def full(shape, fill_value, dtype=None, order="C"):
    return _wrap(np.full(shape, _unwrap(fill_value, "full"), dtype=dtype, order=order))


def _like(name, launches):
    f = getattr(np, name)

    def create(a, dtype=None, order="K", subok=None, shape=None, *args):
        if isinstance(a, np.ndarray):
            _refuse_numpy(a, name)
        if not isinstance(a, ndarray):
            raise TypeError(f"{name} takes a device array, not {type(a).__name__}")
        return _wrap(f(a._a, *args, dtype=dtype, order=order, shape=shape), launches)

    create.__name__ = name
    return create


empty_like = _like("empty_like", 0)
zeros_like = _like("zeros_like", 1)
ones_like = _like("ones_like", 1)


def full_like(a, fill_value, dtype=None, order="K", subok=None, shape=None):
    return _wrap(np.full_like(_unwrap(a, "full_like"), fill_value, dtype=dtype, order=order, shape=shape))


def arange(start, stop=None, step=None, dtype=None):
    return _wrap(np.arange(start, stop, step, dtype=dtype) if stop is not None else np.arange(start, dtype=dtype))


def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    return _wrap(np.linspace(start, stop, num, endpoint=endpoint, retstep=retstep, dtype=dtype, axis=axis))


def eye(N, M=None, k=0, dtype=float, order="C"):
    return _wrap(np.eye(N, M, k, dtype=dtype, order=order))


# ------------------------------------------------------------------ functions on device arrays
def _needs_device(args, name):
    flat = []
    for a in args:
        flat.extend(a if isinstance(a, (list, tuple)) else [a])
    if not builtins.any(isinstance(a, ndarray) for a in flat):
        raise TypeError(f"{name}: takes device arrays (got {', '.join(type(a).__name__ for a in flat)})")


def _function(name, allowed, n_arrays=1, launches=1, views=False):
    f = getattr(np, name)

    def function(*args, **kwargs):
        _refuse_keywords(kwargs, allowed, name)
        _needs_device(args[:n_arrays], name)
        args = _unwrap(args, name)
        kwargs = {k: _unwrap(v, name) for k, v in kwargs.items()}
        out_arg = kwargs.get("out")
        result = f(*args, **kwargs)
        if out_arg is not None:
            counters.launches += launches
            return _wrap(result, 0)
        sources = args[0] if isinstance(args[0], (list, tuple)) else [args[0]]
        return _wrap(result, 0 if views and _is_view(result, *sources) else launches)

    function.__name__ = name
    return function


_FUNCTIONS = {
    # name: (allowed keywords, leading array arguments, launches, may return a view)
    "concatenate": (("axis", "out", "dtype"), 1, 1, False),
    "stack": (("axis", "out", "dtype"), 1, 1, False),
    "vstack": ((), 1, 1, False),
    "hstack": ((), 1, 1, False),
    "where": ((), 1, 1, False),
    "matmul": (("out",), 2, 1, False),
    "dot": (("out",), 2, 1, False),
    "vdot": ((), 2, 1, False),
    "outer": ((), 2, 1, False),
    "sum": (("axis", "dtype", "out", "keepdims"), 1, 1, False),
    "mean": (("axis", "dtype", "out", "keepdims"), 1, 1, False),
    "max": (("axis", "out", "keepdims"), 1, 1, False),
    "min": (("axis", "out", "keepdims"), 1, 1, False),
    "amax": (("axis", "out", "keepdims"), 1, 1, False),
    "amin": (("axis", "out", "keepdims"), 1, 1, False),
    "argmax": (("axis", "out", "keepdims"), 1, 1, False),
    "argmin": (("axis", "out", "keepdims"), 1, 1, False),
    "cumsum": (("axis", "dtype", "out"), 1, 1, False),
    "clip": (("out",), 1, 1, False),
    "broadcast_to": ((), 1, 0, True),
    "transpose": (("axes",), 1, 0, True),
    "reshape": (("order",), 1, 1, True),
    "ravel": (("order",), 1, 1, True),
    "squeeze": (("axis",), 1, 0, True),
    "expand_dims": (("axis",), 1, 0, True),
    "take": (("axis", "out"), 1, 1, False),
    "take_along_axis": (("axis",), 1, 1, False),
    "sort": (("axis",), 1, 1, False),
    "argsort": (("axis",), 1, 1, False),
    "einsum": (("out", "dtype", "optimize"), 0, 1, False),
    "split": (("axis",), 1, 0, True),
    "repeat": (("axis",), 1, 1, False),
    "tile": ((), 1, 1, False),
    "flip": (("axis",), 1, 0, True),
    "any": (("axis", "out", "keepdims"), 1, 1, False),
    "all": (("axis", "out", "keepdims"), 1, 1, False),
    "count_nonzero": (("axis",), 1, 1, False),
    "std": (("axis", "dtype", "out", "ddof", "keepdims"), 1, 1, False),
    "var": (("axis", "dtype", "out", "ddof", "keepdims"), 1, 1, False),
    "diag": (("k",), 1, 1, False),
    "triu": (("k",), 1, 1, False),
    "tril": (("k",), 1, 1, False),
    "nonzero": ((), 1, 1, False),
    "array_equal": (("equal_nan",), 2, 1, False),
    "allclose": (("rtol", "atol", "equal_nan"), 2, 1, False),
    "isclose": (("rtol", "atol", "equal_nan"), 2, 1, False),
    "pad": (("mode", "constant_values"), 1, 1, False),
    "moveaxis": ((), 1, 0, True),
    "swapaxes": ((), 1, 0, True),
    "atleast_2d": ((), 1, 0, True),
    "prod": (("axis", "dtype", "out", "keepdims"), 1, 1, False),
    "unique": (("return_counts",), 1, 1, False),
    "searchsorted": (("side",), 1, 1, False),
    "bincount": (("weights", "minlength"), 1, 1, False),
}
for _name, (_allowed, _n, _l, _v) in _FUNCTIONS.items():
    globals()[_name] = _function(_name, _allowed, _n, _l, _v)
globals().update(_UFUNCS)
abs = _UFUNCS["absolute"]  # cupy.abs, as numpy.abs


def copyto(dst, src, casting="same_kind", where=None):
    if not isinstance(dst, ndarray):
        raise TypeError("copyto: the destination must be a device array")
    for x in (src, where):
        if isinstance(x, np.ndarray):
            _refuse_numpy(x, "copyto")
    kwargs = {} if where is None else {"where": _unwrap(where, "copyto")}
    counters.launches += 1
    np.copyto(dst._a, _unwrap(src, "copyto"), casting=casting, **kwargs)


def shares_memory(a, b, max_work=None):
    return np.shares_memory(_unwrap(a, "shares_memory"), _unwrap(b, "shares_memory"))


def may_share_memory(a, b, max_work=None):
    return np.may_share_memory(_unwrap(a, "may_share_memory"), _unwrap(b, "may_share_memory"))


def get_array_module(*args):
    return _module if builtins.any(isinstance(a, ndarray) for a in args) else np


# dtypes and constants, as CuPy re-exports them
for _name in (
    "float16 float32 float64 int8 int16 int32 int64 uint8 uint16 uint32 uint64 bool_ intp "
    "dtype finfo iinfo result_type can_cast issubdtype promote_types integer floating "
    "signedinteger number inf nan pi e newaxis"
).split():
    globals()[_name] = getattr(np, _name)


# ------------------------------------------------------------------ cupy.cublas
def _gemm(transa, transb, a, b, out=None, alpha=1.0, beta=0.0):
    """cupy.cublas.gemm: out = alpha op(a) op(b) + beta out, one cuBLAS launch."""
    ops = {"N": lambda x: x, "T": lambda x: x.T}
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, ndarray) or x.ndim != 2:
            raise TypeError(f"cublas.gemm: {name} must be a 2-d device array")
    if a.dtype != b.dtype or transa not in ops or transb not in ops:
        raise TypeError("cublas.gemm: a and b of one dtype, trans 'N' or 'T'")
    shape = (a.shape[0] if transa == "N" else a.shape[1], b.shape[1] if transb == "N" else b.shape[0])
    if out is None:
        counters.launches += 1
        return _wrap(alpha * (ops[transa](a._a) @ ops[transb](b._a)), 0)
    if not isinstance(out, ndarray) or out.shape != shape or out.dtype != a.dtype:
        raise TypeError(f"cublas.gemm: out must be a {shape} {a.dtype} device array")

    def run():
        product = ops[transa](a._a) @ ops[transb](b._a)
        if alpha == 1.0 and beta == 1.0:
            out._a += product
        elif beta == 0.0:  # cuBLAS does not read out then (it may hold garbage)
            out._a[...] = alpha * product
        else:
            out._a[...] = alpha * product + beta * out._a

    if not _capture.record(run):
        counters.launches += 1
        run()
    return out


cublas = types.ModuleType("cupy.cublas", "The stand-in's cupy.cublas: gemm.")
cublas.gemm = _gemm


# ------------------------------------------------------------------ custom kernels
class RawKernel:
    """A kernel of a :class:`RawModule`: ``kernel(grid, block, args)`` runs it on the CPU."""

    def __init__(self, cpu_kernel: cuda_on_cpu.CpuKernel):
        self._k = cpu_kernel

    def __call__(self, grid, block, args, *, shared_mem=0, stream=None, enable_cooperative_groups=False):
        host = []
        for a in args:
            if isinstance(a, np.ndarray):
                _refuse_numpy(a, "a kernel launch")
            if a is None:
                raise TypeError("None as a kernel argument: pass a device array")
            host.append(a._a if isinstance(a, ndarray) else a)
        if _capture.record(lambda: self._k(grid, block, host)):
            return
        counters.launches += 1
        counters.custom[self._k.name] = counters.custom.get(self._k.name, 0) + 1
        self._k(grid, block, host)


class RawModule:
    """``cupy.RawModule(code=..., options=..., name_expressions=...)``, built for the CPU."""

    def __init__(
        self,
        code=None,
        *,
        path=None,
        options=(),
        backend="nvrtc",
        translate_cucomplex=False,
        enable_cooperative_groups=False,
        name_expressions=None,
        jitify=False,
    ):
        if code is None:
            raise TypeError("RawModule: this stand-in builds from code= only")
        self._cpu = cuda_on_cpu.CpuModule(code, name_expressions or ())

    def get_function(self, name):
        return RawKernel(self._cpu.get_function(name))


# ------------------------------------------------------------------ cupy.cuda
class _Stream:
    """A stream; ``with stream:`` makes it the current one.  Capture (``begin_capture`` ..
    ``end_capture``) records the custom kernels and cuBLAS calls issued on it instead of running them,
    and refuses any other device work, as the captured loop must stay valid on replay."""

    def __init__(self, null=False):
        self.null, self._outer = null, []

    def synchronize(self):
        counters.syncs += 1

    def __enter__(self):
        self._outer.append(_capture.current)
        _capture.current = self
        return self

    def __exit__(self, *exc):
        _capture.current = self._outer.pop()
        return False

    def begin_capture(self, mode=None):
        if self.null:
            raise RuntimeError("cudaErrorStreamCaptureUnsupported: the legacy default stream cannot capture")
        if _capture.stream is not None:
            raise RuntimeError("a stream is capturing already")
        _capture.stream, _capture.calls = self, []

    def is_capturing(self):
        return _capture.stream is self

    def end_capture(self):
        if _capture.stream is not self:
            raise RuntimeError("end_capture on a stream that is not capturing")
        calls, _capture.stream, _capture.calls = _capture.calls, None, []
        return Graph(calls)


class Graph:
    """A captured sequence of kernels: ``launch()`` replays them, counted as one launch."""

    def __init__(self, calls):
        self._calls = tuple(calls)

    def launch(self, stream=None):
        if _capture.stream is not None:
            raise RuntimeError("a graph launched while a stream captures")
        counters.launches += 1
        counters.custom["graph"] = counters.custom.get("graph", 0) + 1
        for call in self._calls:
            call()

    @property
    def kernels(self) -> int:
        """How many kernels the graph holds."""
        return len(self._calls)


class _Device:
    compute_capability = "90"

    def __init__(self, device=0):
        self.id = int(device)

    def synchronize(self):
        counters.syncs += 1

    def use(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _MemoryPool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_stream = _Stream(null=True)
cuda = types.ModuleType("cupy.cuda", "The stand-in's cupy.cuda: one device, one stream (no nccl).")
cuda.runtime = types.SimpleNamespace(
    getDeviceCount=lambda: 1,
    getDeviceProperties=lambda i: {
        "name": b"fake_cupy (NumPy on the CPU)",
        "totalGlobalMem": 0,
        "major": 9,
        "minor": 0,
    },
    runtimeGetVersion=lambda: 12040,
    driverGetVersion=lambda: 12040,
)
cuda.Device = _Device
cuda.Stream = lambda non_blocking=False, null=False, ptds=False: _stream if null else _Stream()
cuda.get_current_stream = lambda device_id=-1: _capture.current or _stream
cuda.Graph = Graph
cuda.is_available = lambda: True


def get_default_memory_pool():
    return _MemoryPool()


def get_default_pinned_memory_pool():
    return _MemoryPool()


__version__ = "13.0.0+fake"
_module = sys.modules[__name__]


# ------------------------------------------------------------------ for tests and bench
def install() -> None:
    """Make ``import cupy`` import this stand-in (in this process)."""
    sys.modules["cupy"] = _module
    sys.modules["cupy.cuda"] = cuda
    sys.modules["cupy.cublas"] = cublas


def cupy_backend():
    """The cupy backend on this stand-in (a new instance; kernels built once per process)."""
    from ..backend.cupy_backend import CupyBackend

    return CupyBackend(cupy_module=_module)
