"""Racing writers and interruption (issue 8).

A class index rewritten by another thread while a kernel runs (the GIL is released)
is a data race in the caller's code; it must never become an out-of-bounds read or
write in ours.  The kernel reads each index once and bounds-checks it where it is
used: a row whose index turned invalid gets NaN and the call raises IndexError after
the kernel returns.  Buffers are guarded by canaries on both sides, so any write
past them is caught.

Ctrl-C during a long call raises KeyboardInterrupt within about 0.1 s, leaving the
inputs untouched (out/grad_out may be partly written, as documented).

These tests also run on a free-threaded CPython (tools/freethreaded.sh)."""

import os
import signal
import sys
import threading
import time

import numpy as np
import pytest

import fusedloss as fl
from fusedloss import _kernels

CE = fl.softmax_cross_entropy
CANARY = 12345.0
PAD = 64


def guarded(shape, dtype):
    """An array of `shape` inside a larger buffer whose margins hold CANARY."""
    n = int(np.prod(shape))
    raw = np.full(n + 2 * PAD, CANARY, dtype)
    inner = raw[PAD : PAD + n].reshape(shape)
    inner[...] = 0
    return raw, inner


def margins_intact(raw):
    return bool((raw[:PAD] == CANARY).all() and (raw[-PAD:] == CANARY).all())


class Racer:
    """Rewrites entries of an int64 array with invalid and valid class indices, as
    fast as it can, until stopped."""

    def __init__(self, target, n_classes, bad_values):
        self.t = target
        self.C = n_classes
        self.bad = np.asarray(bad_values, np.int64)
        self.stop = threading.Event()
        self.writes = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        t = self.t.reshape(-1)
        n = t.size
        rng = np.random.default_rng(1)
        good = t.copy()
        while not self.stop.is_set():
            pos = rng.integers(0, n, size=8)
            t[pos] = self.bad[rng.integers(0, len(self.bad), size=8)]
            t[pos] = good[pos]
            self.writes += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


BAD_VALUES = [-1, -(2**63), 2**63 - 1, 10**6, 10**12, -101]

# (rows, classes): few-class tiles (C <= 16), the row path, large rows, and sizes above
# the parallel threshold (2^18 elements) so helper threads read the indices too
SHAPES = [(4096, 10), (3000, 16), (2048, 17), (600, 1000), (40000, 10), (300, 1000)]


@pytest.mark.parametrize("shape", SHAPES, ids=[f"{r}x{c}" for r, c in SHAPES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["loss", "grad", "grad_inplace", "validating"])
def test_racing_class_indices_never_corrupt_memory(each_simd_target, shape, dtype, mode):
    rows, C = shape
    rng = np.random.default_rng(rows + C)
    logits = rng.normal(size=shape).astype(dtype)
    target = rng.integers(0, C, size=rows)
    outcomes = {"ok": 0, "index_error": 0}
    deadline = time.monotonic() + 0.3
    with Racer(target, C, BAD_VALUES):
        calls = 0
        # at least a few calls however slow the machine (a racer hogging the GIL
        # must not turn the test into one that checks nothing)
        while calls < 3 or time.monotonic() < deadline:
            calls += 1
            kw = {"n_threads": 2}
            raw_g = raw_x = None
            if mode == "grad":
                raw_g, g = guarded(shape, dtype)
                kw.update(return_grad=True, grad_out=g)
            elif mode == "grad_inplace":
                raw_x, x = guarded(shape, dtype)
                x[...] = logits
                kw.update(return_grad=True, grad_out=x)
            elif mode == "validating":  # the Python-level path: weights and out=
                raw_l, lo = guarded((rows,), dtype)
                kw.update(weight=np.ones(C, dtype), reduction="none", out=lo, return_grad=True)
            x_in = x if mode == "grad_inplace" else logits
            try:
                res = CE(x_in, target, **kw)
            except IndexError as e:
                assert "out of range for" in str(e)
                outcomes["index_error"] += 1
            else:
                outcomes["ok"] += 1
                loss = res[0] if isinstance(res, tuple) else res
                loss = np.asarray(loss)
                assert np.isfinite(loss).all() and (loss >= 0).all(), (
                    "a valid result must be a real loss"
                )
            if raw_g is not None:
                assert margins_intact(raw_g), "gradient written out of bounds"
            if raw_x is not None:
                assert margins_intact(raw_x), "in-place gradient out of bounds"
            if mode == "validating":
                assert margins_intact(raw_l), "loss written out of bounds"
    assert outcomes["ok"] + outcomes["index_error"] > 0


def test_invalid_index_seen_only_by_the_kernel_gives_nan_rows_and_index_error():
    """Deterministic version of the race: the check pass sees valid indices and the
    kernel an invalid one (a racing writer timed exactly), by flipping an index from
    a thread that waits until the check pass has read past it.  Without such timing
    control in Python, this goes through the C API's contract instead: the kernel
    entry point itself bounds-checks (csrc/tests and the fuzzer call it directly
    with invalid indices); here we check the Python wrapper's reporting."""
    x = np.zeros((3, 4))
    t = np.array([0, 1, 2])
    # the wrapper reports a kernel-detected index like a pre-checked one
    msg = _kernels.index_message(t, 2, 99, 4)
    assert msg == "target[2] = 99 is out of range for 4 classes"
    t2 = np.zeros((2, 3), np.int64)
    assert _kernels.index_message(t2, 4, -7, 5) == "target[1, 1] = -7 is out of range for 5 classes"
    assert CE(x, t) == pytest.approx(np.log(4))


# ----------------------------------------------------------------- Ctrl-C


def _sigint_after(delay):
    def fire():
        time.sleep(delay)
        os.kill(os.getpid(), signal.SIGINT)

    th = threading.Thread(target=fire, daemon=True)
    th.start()
    return th


LONG_CALLS = {
    # lazily mapped zero pages: gigabytes of virtual input that cost no memory to read
    "focal_loss_only": lambda x: fl.sigmoid_focal_loss(x, x, gamma=1.5, n_threads=1),
    "focal_two_threads": lambda x: fl.sigmoid_focal_loss(x, x, gamma=1.5, n_threads=2),
    "ce_rows": lambda x: CE(x.reshape(-1, 4096), np.zeros(x.size // 4096, np.int64), n_threads=1),
}


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill(SIGINT) ends the process")
@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(),
    reason="signals reach the main thread only",
)
@pytest.mark.parametrize("call", sorted(LONG_CALLS))
def test_ctrl_c_interrupts_a_long_call_quickly(call):
    n = 1 << 31
    x = np.zeros(n, np.float32)  # calloc: zero pages, mapped on read
    t0 = time.monotonic()
    LONG_CALLS[call](x[: 1 << 22])  # warm-up: the call works
    small = time.monotonic() - t0
    # the full call would take seconds; it must stop soon after the signal
    th = _sigint_after(0.2)
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        LONG_CALLS[call](x)
        # (if the call finished before the signal arrived, wait for it here)
        time.sleep(5)
    elapsed = time.monotonic() - t0
    th.join()
    assert elapsed < 0.2 + 0.5 + 10 * small, f"KeyboardInterrupt after {elapsed:.2f} s"


@pytest.mark.skipif(sys.platform == "win32", reason="os.kill(SIGINT) ends the process")
def test_ctrl_c_leaves_inputs_untouched_and_the_library_usable():
    n = 1 << 27
    x = np.zeros(n, np.float32)
    t = np.zeros(n, np.float32)
    g = np.empty(n, np.float32)
    th = _sigint_after(0.05)
    try:
        for _ in range(200):  # until the signal lands inside a call
            fl.sigmoid_focal_loss(x, t, gamma=1.5, return_grad=True, grad_out=g, n_threads=1)
        time.sleep(2)
    except KeyboardInterrupt:
        pass
    th.join()
    assert not x.any() and not t.any()
    # the next call works normally
    loss, grad = fl.sigmoid_focal_loss(x[:1000], t[:1000], gamma=1.5, return_grad=True)
    assert np.isfinite(loss) and np.isfinite(grad).all()


def test_other_threads_are_not_interrupted():
    """Signal handlers run on the main thread only: a long call on another thread
    finishes normally even while the main thread handles signals."""
    x = np.zeros(1 << 26, np.float32)
    result = {}

    def work():
        result["loss"] = fl.sigmoid_focal_loss(x, x, gamma=1.5, n_threads=1)

    th = threading.Thread(target=work)
    th.start()
    th.join()
    assert np.isfinite(result["loss"])
