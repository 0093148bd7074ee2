"""Shared fixtures.

`each_simd_target`: runs a test once per SIMD target this CPU supports
(baseline, avx2, avx512 on x86-64), so every compiled path is exercised.
"""
import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from fusedloss import _kernels  # noqa: E402

SIMD_TARGETS = _kernels.simd_targets()[1]


@pytest.fixture(params=SIMD_TARGETS)
def each_simd_target(request):
    before = _kernels.build_info()[2]
    _kernels.set_simd(request.param)
    yield request.param
    _kernels.set_simd(before)
