"""fusedloss: machine-learning losses and their gradients in one fused pass."""

from . import losses, reference
from ._config import _apply_simd_env, get_num_threads, set_num_threads, show_config
from ._version import __version__
from .losses import *  # noqa: F403  (the registry's losses; listed in losses.__all__)

__all__ = [
    "__version__",
    "reference",
    *losses.__all__,
    "show_config",
    "set_num_threads",
    "get_num_threads",
]

_apply_simd_env()
del _apply_simd_env
