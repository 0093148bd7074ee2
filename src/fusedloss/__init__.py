"""fusedloss: machine-learning losses and their gradients in one fused pass."""
from . import reference
from ._config import _apply_simd_env, get_num_threads, set_num_threads, show_config
from ._version import __version__
from .losses import (
    binary_cross_entropy_with_logits,
    huber_loss,
    sigmoid_focal_loss,
    smooth_l1_loss,
    softmax_cross_entropy,
)

__all__ = [
    "__version__",
    "reference",
    "softmax_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "huber_loss",
    "smooth_l1_loss",
    "show_config",
    "set_num_threads",
    "get_num_threads",
]

_apply_simd_env()
del _apply_simd_env
