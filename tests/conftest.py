"""Shared fixtures.

`each_simd_target`: runs a test once per SIMD target compiled into the extension
(baseline, avx2, avx512 on x86-64), so every compiled path is exercised; a target
this CPU lacks shows up as a skip ("CPU lacks avx512"), never silently vanishes.
"""

import pathlib
import sys

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).parent))

from fusedloss import _kernels  # noqa: E402

COMPILED_SIMD_TARGETS, SUPPORTED_SIMD_TARGETS = _kernels.simd_targets()


@pytest.fixture(params=COMPILED_SIMD_TARGETS)
def each_simd_target(request):
    if request.param not in SUPPORTED_SIMD_TARGETS:
        pytest.skip(f"CPU lacks {request.param}")
    before = _kernels.build_info()[2]
    _kernels.set_simd(request.param)
    yield request.param
    _kernels.set_simd(before)
