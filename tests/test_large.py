"""Sizes beyond 2^31 elements: sizes and indices are Py_ssize_t / ptrdiff_t end to end.

The arrays are np.zeros, whose untouched pages all map the kernel's shared zero
page, so 2 x 8 GiB of float32 cost no physical memory to read; only the few
pages written at the end are real.  Runs only on 64-bit Linux (where calloc of
large blocks is lazily mapped) and takes a few seconds.
"""

import sys

import numpy as np
import pytest

import fusedloss as fl

N = 2**31 + 4096  # elements: more than an int32 can index


@pytest.mark.skipif(
    sys.platform != "linux" or sys.maxsize <= 2**32,
    reason="needs lazily mapped zero pages (64-bit Linux)",
)
@pytest.mark.slow
def test_elementwise_beyond_int32_indices():
    try:
        x = np.zeros(N, dtype=np.float32)
        t = np.zeros(N, dtype=np.float32)
    except MemoryError:
        pytest.skip("cannot reserve 16 GiB of address space here")
    x[-3:] = 3.0  # past 2^31: only reached if indices do not wrap
    x[2**31 - 1] = -2.0
    # Huber(delta=1) of an error e with |e| > 1 is |e| - 0.5
    total = fl.huber_loss(x, t, reduction="sum", n_threads=2)
    assert total == pytest.approx(3 * 2.5 + 1.5)
    mean = fl.huber_loss(x, t, n_threads=1)
    assert mean == pytest.approx((3 * 2.5 + 1.5) / N, rel=1e-6)
