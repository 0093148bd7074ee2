"""Shared helpers for the test-suite."""

import threading

import numpy as np

DTYPES = [np.float32, np.float64]
REDUCTIONS = ["mean", "sum", "none"]


def assert_close(got, want, dtype, what=""):
    """Fast vs reference: same shape and dtype, values within a tolerance fit for
    the dtype.  Relative tolerance per element plus an absolute floor scaled to
    the largest magnitude (gradient entries like p - 1 cancel, so their error is
    relative to the row scale, not to themselves)."""
    got = np.asarray(got)
    want = np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == np.dtype(dtype), (what, got.dtype, dtype)
    finite = np.isfinite(want)
    scale = float(np.max(np.abs(want[finite]), initial=1.0))
    if np.dtype(dtype) == np.float64:
        rtol, atol = 1e-11, 1e-13 * scale
    else:
        rtol, atol = 2e-5, 2e-6 * scale
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol, equal_nan=True, err_msg=what)


def compare(fast_fn, ref_fn, args, kwargs, dtype, reductions=REDUCTIONS, grads=None):
    """Calls both with every reduction and return_grad, and compares.  grads: the
    gradients of a (loss, grad) result as a tuple (default: the one gradient)."""
    for reduction in reductions:
        for return_grad in (False, True):
            got = fast_fn(*args, reduction=reduction, return_grad=return_grad, **kwargs)
            want = ref_fn(*args, reduction=reduction, return_grad=return_grad, **kwargs)
            if return_grad:
                assert_close(got[0], want[0], dtype, f"loss {reduction}")
                gg, wg = (grads(got), grads(want)) if grads else ((got[1],), (want[1],))
                assert len(gg) == len(wg)
                for k, (g, w) in enumerate(zip(gg, wg)):
                    assert_close(g, w, dtype, f"grad {k} {reduction}")
            else:
                assert_close(got, want, dtype, f"loss {reduction}")


def central_differences(total, x, h=1e-6):
    """d total / dx by central differences, one element of x at a time."""
    num = np.empty_like(x)
    for i in np.ndindex(x.shape):
        zp = x.copy()
        zp[i] += h
        zm = x.copy()
        zm[i] -= h
        num[i] = (total(zp) - total(zm)) / (2 * h)
    return num


def run_workers(worker, n):
    """Runs worker(k) for k in range(n) on n threads at once; returns once all end."""
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
