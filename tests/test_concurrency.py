"""Concurrent calls: 8 Python threads calling every loss on shared read-only inputs,
each with its own n_threads, get exactly the serial results (bitwise), the inputs
stay untouched, and the first use of the kernels (SIMD dispatch initialisation)
is safe when it happens in several threads at once.  Runs on the free-threaded
build too (the Cython module declares freethreading_compatible).

fusedloss._kernels.set_simd is documented as not meant to be called while
kernels run in other threads (it swaps the dispatch table); it is not raced here.
"""

import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from _util import run_workers

import fusedloss as fl
from fusedloss import _kernels

N_PY_THREADS = 8


def _cases():
    rng = np.random.default_rng(42)
    cases = []
    for dtype in (np.float32, np.float64):
        # 300 x 1000 = 300K elements: above the size where the kernels start helpers
        z = (rng.normal(size=(300, 1000)) * 3).astype(dtype)
        t = rng.integers(0, 1000, size=300)
        t[::7] = -100
        y = rng.uniform(size=(300, 1000)).astype(dtype)
        w = rng.uniform(0.5, 2.0, size=1000).astype(dtype)
        small = z[:5, :7].copy()
        small_y = y[:5, :7].copy()
        cases += [
            (fl.softmax_cross_entropy, (z, t), dict(label_smoothing=0.1)),
            (fl.softmax_cross_entropy, (z, t), dict(weight=w, reduction="none")),
            (fl.softmax_cross_entropy, (z, y / y.sum(-1, keepdims=True)), dict(weight=w)),
            (fl.softmax_cross_entropy, (small, t[:5] % 7), {}),
            (fl.binary_cross_entropy_with_logits, (z, y), dict(pos_weight=w)),
            (fl.binary_cross_entropy_with_logits, (small, small_y), dict(reduction="sum")),
            (fl.sigmoid_focal_loss, (z, y), dict(gamma=1.5, reduction="none")),
            (fl.huber_loss, (z, y), dict(delta=0.5)),
            (fl.smooth_l1_loss, (z, y), dict(beta=0.0, reduction="sum")),
        ]
    return cases


def _bits(r):
    parts = r if isinstance(r, tuple) else (r,)
    return tuple(np.asarray(p).tobytes() for p in parts)


def test_threads_give_serial_results_bitwise():
    cases = _cases()
    inputs = [
        a
        for _, args, kw in cases
        for a in list(args) + list(kw.values())
        if isinstance(a, np.ndarray)
    ]
    for a in inputs:
        a.flags.writeable = False  # shared, read-only: a write would raise
    serial = [_bits(fn(*args, return_grad=True, n_threads=1, **kw)) for fn, args, kw in cases]
    barrier = threading.Barrier(N_PY_THREADS)
    errors = []
    mismatches = []

    def worker(k):
        try:
            barrier.wait()
            for rep in range(2):
                for i, (fn, args, kw) in enumerate(cases):
                    n_threads = (1, 2, 3, 4, None)[(k + i + rep) % 5]
                    got = _bits(fn(*args, return_grad=True, n_threads=n_threads, **kw))
                    if got != serial[i]:
                        mismatches.append((k, i, n_threads))
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append((k, repr(e)))

    run_workers(worker, N_PY_THREADS)
    assert not errors, errors
    assert not mismatches, mismatches


def test_threads_with_own_buffers_and_in_place():
    """Each thread writes into its own out / grad_out (and its own logits in place)."""
    rng = np.random.default_rng(3)
    z = rng.normal(size=(64, 100))
    t = rng.integers(0, 100, size=64)
    want_loss, want_grad = fl.softmax_cross_entropy(z, t, reduction="none", return_grad=True)
    barrier = threading.Barrier(N_PY_THREADS)
    errors = []

    def worker(k):
        try:
            out = np.empty(64)
            g = np.empty((64, 100))
            barrier.wait()
            for _ in range(50):
                own = z.copy()
                loss, grad = fl.softmax_cross_entropy(
                    own, t, reduction="none", return_grad=True, grad_out=own, n_threads=1 + k % 3
                )
                assert grad is own and grad.tobytes() == want_grad.tobytes()
                loss, grad = fl.softmax_cross_entropy(
                    z,
                    t,
                    reduction="none",
                    return_grad=True,
                    out=out,
                    grad_out=g,
                    n_threads=1 + k % 3,
                )
                assert loss is out and out.tobytes() == want_loss.tobytes()
                assert g.tobytes() == want_grad.tobytes()
        except Exception as e:  # noqa: BLE001
            errors.append((k, repr(e)))

    run_workers(worker, N_PY_THREADS)
    assert not errors, errors


def test_concurrent_errors_and_successes():
    """Exceptions raised in some threads do not disturb calls in others."""
    rng = np.random.default_rng(5)
    z = rng.normal(size=(32, 10))
    t = rng.integers(0, 10, size=32)
    bad = t.copy()
    bad[3] = 99
    want = fl.softmax_cross_entropy(z, t)
    barrier = threading.Barrier(N_PY_THREADS)
    errors = []

    def worker(k):
        try:
            barrier.wait()
            for _ in range(300):
                if k % 2:
                    with pytest.raises(IndexError, match=r"target\[3\] = 99"):
                        fl.softmax_cross_entropy(z, bad)
                    with pytest.raises(ValueError):
                        fl.huber_loss(z, z[:3])
                else:
                    assert fl.softmax_cross_entropy(z, t) == want
        except Exception as e:  # noqa: BLE001
            errors.append((k, repr(e)))

    run_workers(worker, N_PY_THREADS)
    assert not errors, errors


FIRST_USE = textwrap.dedent("""
    import sys, threading
    barrier = threading.Barrier(8)
    results, errors = [], []

    def worker():
        try:
            barrier.wait()
            import fusedloss as fl          # concurrent import and first kernel call
            import numpy as np
            x = np.linspace(-3, 3, 3000).reshape(300, 10)
            t = np.arange(300) % 10
            r = fl.softmax_cross_entropy(x, t, return_grad=True)
            results.append((float(r[0]), r[1].tobytes(), fl._kernels.build_info()[2]))
        except Exception as e:
            errors.append(repr(e))

    ts = [threading.Thread(target=worker) for _ in range(8)]
    for t in ts: t.start()
    for t in ts: t.join()
    assert not errors, errors
    assert len(results) == 8 and len(set(results)) == 1, len(set(results))
    print("ok", results[0][2])
""")


def test_concurrent_import_and_first_use():
    r = subprocess.run(
        [sys.executable, "-c", FIRST_USE], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]
    assert r.stdout.split()[1] == _kernels.build_info()[2]


def test_set_simd_is_documented_as_not_concurrent():
    assert "other threads" in _kernels.set_simd.__doc__


def test_free_threading_status_reported():
    """On a free-threaded interpreter, importing fusedloss must not re-enable the GIL
    (the extension declares itself free-threading compatible)."""
    is_gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if is_gil_enabled is None:
        pytest.skip("not a free-threaded capable interpreter (Python < 3.13)")
    import sysconfig

    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("GIL build")
    assert not is_gil_enabled()
