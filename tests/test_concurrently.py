"""backend.concurrently: independent calls (a BiLSTM's two directions) run at the same time.

What the results must be is covered elsewhere: every gradient-check case, bidirectional
ones and the IMDB model included, agrees between numba and the numpy reference to 1e-12
(tests/test_backends_agree.py) and passes finite differences (tests/test_gradcheck.py),
and on a machine with two threads both backends run them through this path.  Here: the
contract (order, threads, errors, BLAS restored, fallbacks), and numba's split of more
than two threads, which a 2-core machine reaches only in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import pytest

from scratchvae.backend.numba import NumbaBackend
from scratchvae.backend.numpy_backend import NumpyBackend
from scratchvae.backend.threads import blas_thread_count, blas_threads


class _Numba(NumbaBackend):
    """A NumbaBackend that believes numba has ``threads`` threads (as after --threads)."""

    def __init__(self, threads: int):
        super().__init__()
        self._threads = threads


class _Numpy(NumpyBackend):
    """A NumpyBackend that believes BLAS has ``threads`` threads."""

    def __init__(self, threads: int):
        super().__init__()
        self.threads = threads

    def _all_threads(self):
        return self.threads


BACKENDS = [_Numpy, _Numba]


@pytest.mark.parametrize("Backend", BACKENDS)
def test_two_calls_run_at_once_each_with_one_thread(Backend):
    K = Backend(2)
    before = blas_thread_count()

    def call(tag):
        return tag, threading.get_ident(), K._thread_count(), blas_thread_count()

    (a, ident_a, share_a, blas_a), (b, ident_b, share_b, blas_b) = K.concurrently(lambda: call("a"), lambda: call("b"))
    assert (a, b) == ("a", "b")  # results in the order of the calls
    assert ident_a != ident_b
    assert share_a == share_b == 1  # numba: the serial step kernels
    assert blas_a == blas_b == 1  # BLAS: one thread per call
    assert blas_thread_count() == before  # restored afterwards
    assert K._thread_count() == 2


@pytest.mark.parametrize("Backend", BACKENDS)
def test_an_error_in_either_call_reaches_the_caller_and_restores_blas(Backend):
    K = Backend(2)
    before = blas_thread_count()

    def fail():
        raise ArithmeticError("from one call")

    for calls in [(lambda: 1, fail), (fail, lambda: 1)]:
        with pytest.raises(ArithmeticError, match="from one call"):
            K.concurrently(*calls)
    assert blas_thread_count() == before


@pytest.mark.parametrize("Backend", BACKENDS)
def test_with_fewer_threads_than_calls_they_run_in_turn_on_the_caller(Backend):
    K = Backend(1)
    me = threading.get_ident()
    assert K.concurrently(threading.get_ident, threading.get_ident) == [me, me]
    assert Backend(2).concurrently(lambda: "only") == ["only"]
    assert Backend(2).concurrently() == []


@pytest.mark.parametrize("Backend", BACKENDS)
def test_a_call_running_concurrently_runs_its_own_calls_in_turn(Backend):
    """No nesting: with 4 threads an outer pair gets 2 each; an inner pair inside one of
    them runs on that call's thread (a pool worker waiting on itself would deadlock)."""
    K = Backend(4)

    def inner():
        me = threading.get_ident()
        return K.concurrently(threading.get_ident, threading.get_ident) == [me, me]

    assert K.concurrently(inner, inner) == [True, True]


def test_blas_threads_sets_and_restores_the_count():
    before = blas_thread_count()
    with blas_threads(1):
        assert blas_thread_count() == 1
    assert blas_thread_count() == before


def test_four_threads_give_each_direction_two(tmp_path):
    """NUMBA_NUM_THREADS=4 (oversubscribed here, which is fine for correctness): each
    direction of a bidirectional LSTM runs the parallel step kernels on 2 threads from its
    own thread, and the gradients still match the reference to 1e-12."""
    script = textwrap.dedent("""
        import numba, numpy as np
        from scratchvae.backend import get_backend
        from scratchvae.gradcheck import CASES
        numba.set_num_threads(4)
        K = get_backend("numba")
        shares = []
        original = K._parts
        K._parts = lambda h, U: shares.append(K._thread_count()) or original(h, U)

        def run(backend):
            problem = CASES["Bidirectional return_sequences, mask"](backend, "float64", np.random.default_rng(1))
            B = get_backend(backend)
            return problem.loss(), {k: B.to_numpy(v) for k, v in problem.gradients().items()}

        ref_loss, ref = run("numpy")
        loss, got = run("numba")
        assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss), (loss, ref_loss)
        for k in ref:
            err = np.abs(got[k] - ref[k]).max() / np.abs(ref[k]).max()
            assert err <= 1e-12, (k, err)
        print("layer", numba.threading_layer(), "shares", sorted(set(shares)))
    """)
    env = dict(os.environ, NUMBA_NUM_THREADS="4")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    layer = out.stdout.split()[1]
    expected = "[2]" if layer in ("omp", "tbb") else "[4]"  # workqueue: one direction after the other
    assert out.stdout.strip().endswith(f"shares {expected}"), out.stdout


def test_the_numpy_reference_runs_without_threadpoolctl():
    """The reference backend reads without thread code: threadpoolctl is imported only when
    threads are first shared, so a layer runs on numpy with threadpoolctl unimportable."""
    script = textwrap.dedent("""
        import sys
        sys.modules["threadpoolctl"] = None          # import threadpoolctl now raises ImportError
        import numpy as np
        from scratchvae.layers import LSTM
        layer = LSTM(3, 4, backend="numpy", dtype=np.float64, rng=np.random.default_rng(0))
        y = layer.forward(np.ones((2, 5, 3)))
        dx = layer.backward(np.ones_like(y))
        print(dx.shape, layer.backend.concurrently(lambda: "one call"))
    """)
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "(2, 5, 3) ['one call']"
