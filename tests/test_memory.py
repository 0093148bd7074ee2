"""No memory growth across 10^5 calls of every loss, on every path.

The workload mixes canonical arguments, used as they are (cross-entropy and
element-wise), arguments that are converted (conversions, weights, out / grad_out
buffers, in place), the error
paths (each documented exception), and calls big enough to start helper threads
(created and joined per call).  After a warm-up, Python allocations
(tracemalloc, which also sees NumPy's array buffers) and the resident set size
(/proc/self/statm, or getrusage's peak elsewhere) must not grow, and no reference
to an input is leaked (sys.getrefcount).  About 5-10 s.
"""

import gc
import os
import sys
import tracemalloc

import numpy as np
import pytest

import fusedloss as fl

CALLS = int(os.environ.get("FUSEDLOSS_LEAK_CALLS", "100000"))


def _rss_bytes():
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        import resource  # peak, not current: growth still shows

        r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return r if sys.platform == "darwin" else r * 1024


def _workload():
    rng = np.random.default_rng(0)
    x32 = rng.normal(size=(8, 10)).astype(np.float32)
    x64 = rng.normal(size=(8, 10))
    t = rng.integers(0, 10, size=8)
    t_bad = t.copy()
    t_bad[5] = 10
    y64 = rng.uniform(size=(8, 10))
    y32 = y64.astype(np.float32)
    probs = np.full((8, 10), 0.1)
    w = rng.uniform(size=10)
    out8 = np.empty(8)
    out80 = np.empty((8, 10))
    g64 = np.empty((8, 10))
    g32 = np.empty((8, 10), np.float32)
    inplace = x64.copy()
    x16 = x32.astype(np.float16)
    xint = rng.integers(-3, 3, size=(8, 10))
    big = np.zeros(1 << 18, np.float32)  # >= the threading threshold
    bigt = np.ones(1 << 18, np.float32)
    CE, BCE = fl.softmax_cross_entropy, fl.binary_cross_entropy_with_logits
    FOC, HUB, SL1 = fl.sigmoid_focal_loss, fl.huber_loss, fl.smooth_l1_loss

    def raises(exc, f, *a, **k):
        try:
            f(*a, **k)
        except exc:
            return
        raise AssertionError("did not raise")

    calls = [
        # canonical arguments, used as they are
        lambda: CE(x32, t),
        lambda: CE(x64, t, return_grad=True, reduction="none"),
        lambda: CE(x64, t, return_grad=True, grad_out=g64, label_smoothing=0.1),
        lambda: CE(inplace, t, return_grad=True, grad_out=inplace),
        lambda: BCE(x32, y32, return_grad=True),
        lambda: FOC(x64, y64, reduction="none"),
        lambda: HUB(x32, y32, return_grad=True, grad_out=g32),
        lambda: SL1(x64, y64, reduction="sum", return_grad=True),
        # validating path
        lambda: CE(x64, t, weight=w, reduction="none", out=out8, return_grad=True),
        lambda: CE(x16, t.astype(np.int32), label_smoothing=0.2),
        lambda: CE(x64, probs, return_grad=True, weight=w),
        lambda: BCE(x64, y64, pos_weight=w, weight=w[:1], return_grad=True, grad_out=g64),
        lambda: FOC(x64[:, ::2], y64[:, ::2], gamma=0.5, alpha=-1.0, return_grad=True),
        lambda: HUB(xint, y64, reduction="none", out=out80),
        lambda: SL1(x64, y64.tolist(), beta=0.0, return_grad=True),
        # error paths
        lambda: raises(IndexError, CE, x64, t_bad, return_grad=True, grad_out=g64),
        lambda: raises(ValueError, CE, x64, t, reduction="avg"),
        lambda: raises(TypeError, BCE, x64, y64.astype(complex)),
        lambda: raises(ValueError, HUB, x64, y64, return_grad=True, grad_out=g32),
        lambda: raises(TypeError, FOC, x64, y64, gamma="2"),
        lambda: raises(ValueError, SL1, x64, y64[:3]),
        lambda: raises(ValueError, CE, x64, t, weight=w[:3]),
    ]
    threaded = lambda: HUB(big, bigt, return_grad=True, n_threads=2)  # noqa: E731
    keep = [
        x32,
        x64,
        t,
        t_bad,
        y64,
        y32,
        probs,
        w,
        out8,
        out80,
        g64,
        g32,
        inplace,
        x16,
        xint,
        big,
        bigt,
    ]

    def run(n):
        k = len(calls)
        for i in range(n):
            calls[i % k]()
            if i % 500 == 0:
                threaded()

    return run, keep


def test_no_growth_over_many_calls():
    run, keep = _workload()
    refs = [sys.getrefcount(a) for a in keep]
    run(20000)  # warm-up: caches, allocator arenas, NumPy's small-block cache
    gc.collect()
    tracemalloc.start()
    try:
        run(2000)
        gc.collect()
        traced0 = tracemalloc.get_traced_memory()[0]
        rss0 = _rss_bytes()
        run(CALLS)
        gc.collect()
        traced1 = tracemalloc.get_traced_memory()[0]
        rss1 = _rss_bytes()
    finally:
        tracemalloc.stop()
    print(
        f"\n{CALLS} calls: tracemalloc {traced0} -> {traced1} bytes "
        f"({traced1 - traced0:+d}); RSS {rss0 / 2**20:.2f} -> {rss1 / 2**20:.2f} MiB "
        f"({(rss1 - rss0) / 2**10:+.0f} KiB)"
    )
    assert [sys.getrefcount(a) for a in keep] == refs, "a reference to an input leaked"
    # A leak of even 1 byte per call would show as 100 KB here.
    assert traced1 - traced0 < 32 * 1024
    assert rss1 - rss0 < 2 * 2**20


@pytest.mark.parametrize("fn", [fl.softmax_cross_entropy, fl.huber_loss])
def test_refcounts_stable_on_every_path(fn):
    """The call path returns new references only: inputs, buffers and
    in-place logits keep their reference counts across calls and exceptions."""
    x = np.random.default_rng(1).normal(size=(6, 7))
    t = np.arange(6) % 7 if fn is fl.softmax_cross_entropy else np.zeros((6, 7))
    g = np.empty_like(x)
    objs = [x, t, g]
    before = [sys.getrefcount(o) for o in objs]
    for _ in range(1000):
        fn(x, t, return_grad=True)
        fn(x, t, return_grad=True, grad_out=g)
        fn(x, t, return_grad=True, grad_out=x)
        try:
            fn(x, t, reduction="bad")
        except ValueError:
            pass
    del _
    assert [sys.getrefcount(o) for o in objs] == before
