"""Library-wide settings: the default thread count, and build information."""

import os
import sys

from . import _kernels
from ._version import __version__

_MAX_THREADS = _kernels.MAX_THREADS  # fusedloss.h's FL_MAX_THREADS

_num_threads = None  # set_num_threads(), else None
_env_default = None  # FUSEDLOSS_NUM_THREADS / usable cores, read once on first use


def _usable_cores():
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _default_threads():
    env = os.environ.get("FUSEDLOSS_NUM_THREADS", "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n >= 1:
            return min(n, _MAX_THREADS)
    return min(_usable_cores(), _MAX_THREADS)


def _check_threads(n, name="n_threads"):
    try:
        n = int(n.__index__())
    except AttributeError:
        raise TypeError(f"{name} must be an integer or None, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"{name} must be >= 1, got {n}")
    return min(n, _MAX_THREADS)


def set_num_threads(n):
    """Sets the default number of threads the kernels may use (n >= 1)."""
    global _num_threads
    _num_threads = _check_threads(n, "n")


def get_num_threads():
    """The default number of threads: set_num_threads(), else FUSEDLOSS_NUM_THREADS,
    else the number of usable cores (both read once, at the first call)."""
    global _env_default
    if _num_threads is not None:
        return _num_threads
    if _env_default is None:
        _env_default = _default_threads()
    return _env_default


def resolve_threads(n_threads):
    if n_threads is None:
        return _num_threads if _num_threads is not None else get_num_threads()
    if type(n_threads) is int and 1 <= n_threads <= _MAX_THREADS:
        return n_threads
    return _check_threads(n_threads)


# Platform names accepted for FUSEDLOSS_SIMD besides the target names.
_SIMD_ALIASES = {
    "sse2": "baseline",
    "neon": "baseline",
    "asimd": "baseline",
    "generic": "baseline",
    "avx512f": "avx512",
    "avx512_skx": "avx512",
}


def _apply_simd_env():
    """Applies FUSEDLOSS_SIMD (baseline | avx2 | avx512 | best) at import.

    A target the CPU cannot run, or an unknown name, warns and keeps the best
    supported one: an environment variable must never make the import fail."""
    import warnings

    # Select the target now, at import (serialised by the import lock), so no
    # two threads can race to initialise the dispatch table on first use.
    _kernels.build_info()
    want = os.environ.get("FUSEDLOSS_SIMD", "").strip().lower()
    if not want:
        return
    want = _SIMD_ALIASES.get(want, want)
    try:
        _kernels.set_simd(want)
    except ValueError as e:
        warnings.warn(f"FUSEDLOSS_SIMD ignored: {e}", RuntimeWarning, stacklevel=3)
        _kernels.set_simd("best")


def show_config(file=None):
    """Prints the version, compiler, SIMD targets and thread default."""
    import numpy as np

    compiler, compiled, selected = _kernels.build_info()
    supported = " ".join(_kernels.simd_targets()[1])
    lines = [
        f"fusedloss {__version__}",
        f"  python:        {sys.version.split()[0]} ({sys.platform})",
        f"  numpy:         {np.__version__}",
        f"  compiler:      {compiler}",
        f"  SIMD compiled: {compiled}",
        f"  SIMD usable:   {supported}",
        f"  SIMD selected: {selected}"
        + (
            f" (FUSEDLOSS_SIMD={os.environ['FUSEDLOSS_SIMD']})"
            if os.environ.get("FUSEDLOSS_SIMD")
            else ""
        ),
        f"  threads:       {get_num_threads()} (default; usable cores {_usable_cores()})",
    ]
    print("\n".join(lines), file=file or sys.stdout)
