"""The public loss functions: validate, normalise, call one fused C kernel.

Semantics follow PyTorch's functions of the same names with the class axis
last (see the API contract).  Every check runs before anything is written.
"""
import math

import numpy as np

from . import _kernels
from ._config import get_num_threads, resolve_threads
from ._validate import (
    as_numeric,
    broadcast_weight,
    check_outputs,
    check_reduction,
    compute_dtype,
    contiguous,
    finite_param,
    int_param,
    param_in_dtype,
    to_array,
)

__all__ = [
    "softmax_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "huber_loss",
    "smooth_l1_loss",
]

_INT64_MAX = np.iinfo(np.int64).max
_I64 = np.dtype(np.int64)


def _finish(reduction, total, denom, dtype, out, return_grad, grad, user_out=None,
            user_grad=None):
    """Turns the kernel's summed loss into the returned value.  The caller's own
    out / grad_out objects (user_out, user_grad) are returned when given."""
    if reduction == "mean" and denom == 0 and grad is not None:
        grad.fill(0)  # a mean over nothing has a zero gradient, even for non-finite logits
    if user_out is not None:
        out = user_out
    if user_grad is not None:
        grad = user_grad
    if reduction == "none":
        loss = out
    else:
        value = total if reduction == "sum" else (total / denom if denom != 0 else np.nan)
        with np.errstate(over="ignore"):  # beyond float32's range: inf, silently
            loss = dtype.type(value)
    return (loss, grad) if return_grad else loss


def _mean_scale(reduction, denom):
    """Gradient scale: 1/denominator for a mean (0 for a mean over nothing)."""
    if reduction != "mean":
        return 1.0
    return 1.0 / denom if denom != 0 else 0.0


def _fast_threads(n_threads):
    """n_threads for the compiled fast paths (which accept only a plain int)."""
    return get_num_threads() if n_threads is None else n_threads


def _alloc(shape, dtype, given, wanted):
    if not wanted:
        return None
    return given if given is not None else np.empty(shape, dtype=dtype)


# --------------------------------------------------------------------------
# softmax cross-entropy


def _index_targets(target, batch_shape, n_classes):
    """Class-index targets as C-contiguous int64 of shape batch_shape."""
    if target.shape != batch_shape:
        raise ValueError(
            f"class-index target has shape {target.shape}, expected logits.shape[:-1] = "
            f"{batch_shape} (logits have {n_classes} classes on the last axis)"
        )
    if target.dtype is _I64 and target.flags.c_contiguous and target.flags.aligned:
        return target
    if target.dtype.kind == "u" and target.dtype.itemsize == 8 and target.size:
        # uint64 values above the int64 range cannot be valid class indices.
        big = np.flatnonzero(target.reshape(-1) > _INT64_MAX)
        if big.size:
            pos = int(big[0])
            _raise_index(target, pos, int(target.reshape(-1)[pos]), n_classes)
    return contiguous(target, _I64)


def _raise_index(target, pos, value, n_classes):
    raise IndexError(_kernels.index_message(target, pos, value, n_classes))


def softmax_cross_entropy(logits, target, *, weight=None, ignore_index=-100,
                          label_smoothing=0.0, reduction="mean", return_grad=False, out=None,
                          grad_out=None, n_threads=None):
    """Softmax cross-entropy over the last axis, as ``torch.nn.functional.cross_entropy``
    with the class axis last.

    target is either integer class indices of shape ``logits.shape[:-1]`` or
    floating class probabilities of shape ``logits.shape``.  Returns the loss,
    or ``(loss, grad)`` with ``return_grad=True``; the gradient (with respect
    to the logits) comes from the same fused pass.
    """
    if weight is None and out is None:
        # Canonical inputs (the common training call) skip the Python-level
        # conversions; anything else returns NotImplemented and is validated here.
        r = _kernels.ce_index_fast(logits, target, ignore_index, label_smoothing, reduction,
                                   return_grad, grad_out,
                                   get_num_threads() if n_threads is None else n_threads)
        if r is not NotImplemented:
            return r
    reduction = check_reduction(reduction)
    x = as_numeric(logits, "logits")
    if x.ndim == 0:
        raise ValueError("logits must have at least one dimension (classes are the last axis)")
    n_classes = x.shape[-1]
    batch_shape = x.shape[:-1]
    n_rows = math.prod(batch_shape)
    if n_classes == 0 and n_rows != 0:
        raise ValueError(f"logits of shape {x.shape} have no classes (last axis is empty)")
    dtype = compute_dtype(x.dtype)
    eps = finite_param(label_smoothing, "label_smoothing")
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {eps}")
    ignore_index = int_param(ignore_index, "ignore_index")
    threads = resolve_threads(n_threads)

    t = to_array(target, "target")
    kind = t.dtype.kind
    if kind == "b":
        raise TypeError("target must be integer class indices or floating probabilities, "
                        "not bool")
    if kind in "iu":
        probs = False
    elif kind == "f":
        probs = True
        if t.shape != x.shape:
            if t.shape == batch_shape:
                raise ValueError(
                    f"target of shape {t.shape} has the shape of class indices, but class "
                    f"indices must be integers (got dtype {t.dtype}); probability targets "
                    f"need the logits' shape {x.shape}")
            raise ValueError(f"probability target has shape {t.shape}, expected the logits' "
                             f"shape {x.shape}")
        if ignore_index != -100:
            raise ValueError("ignore_index is only supported for class-index targets, not "
                             "probability targets")
    else:
        raise TypeError(f"target must be integer class indices or floating probabilities, "
                        f"got dtype {t.dtype}")

    w_user = w = None
    if weight is not None:
        w_user = as_numeric(weight, "weight")
        if w_user.shape != (n_classes,):
            raise ValueError(f"weight must have shape ({n_classes},) (one per class), got "
                             f"{w_user.shape}")
        w = contiguous(w_user, dtype)

    tc = _index_targets(t, batch_shape, n_classes) if not probs else contiguous(t, dtype)
    xc = contiguous(x, dtype)
    user_out, user_grad = out, grad_out
    out, grad_out = check_outputs(reduction, return_grad, out, grad_out, batch_shape, x.shape,
                                  dtype, [t, tc, w_user, w], (x, xc))

    loss_out = _alloc(batch_shape, dtype, out, reduction == "none")
    grad = _alloc(x.shape, dtype, grad_out, return_grad)
    if n_classes == 0:  # an empty batch without classes: nothing to compute
        denom, total = 0.0, 0.0
    elif probs:
        denom = float(n_rows)
        total = _kernels.ce_prob(xc, tc, n_rows, n_classes, w, eps,
                                 _mean_scale(reduction, denom), loss_out, grad, threads)
    else:
        # The indices are checked in the same call, before the kernel writes; an index
        # that another thread made invalid while the kernel ran is reported after it.
        bad, value, denom, total = _kernels.ce_index_checked(
            xc, tc, n_rows, n_classes, w, ignore_index, eps, reduction == "mean", loss_out,
            grad, threads)
        if bad >= 0:
            _raise_index(t, bad, value, n_classes)
    return _finish(reduction, total, denom, dtype, loss_out, return_grad, grad, user_out,
                   user_grad)


# --------------------------------------------------------------------------
# element-wise losses


def _elementwise_inputs(input, target, names):
    """Both arrays, converted to the input's compute dtype; target must match exactly."""
    x = as_numeric(input, names[0])
    t = as_numeric(target, names[1])
    if t.shape != x.shape:
        raise ValueError(f"{names[1]} has shape {t.shape} but {names[0]} has shape {x.shape}; "
                         f"element-wise losses need exactly the same shape (no broadcasting)")
    dtype = compute_dtype(x.dtype)
    return x, t, dtype


def _elementwise_run(x, t, dtype, reduction, return_grad, out, grad_out, extra_inputs,
                     call):
    """Validates the buffers, runs `call(xc, tc, scale, loss_out, grad)`, reduces."""
    xc = contiguous(x, dtype)
    tc = contiguous(t, dtype)
    user_out, user_grad = out, grad_out
    out, grad_out = check_outputs(reduction, return_grad, out, grad_out, x.shape, x.shape,
                                  dtype, [t, tc] + extra_inputs, (x, xc))
    denom = float(x.size)
    loss_out = _alloc(x.shape, dtype, out, reduction == "none")
    grad = _alloc(x.shape, dtype, grad_out, return_grad)
    total = call(xc, tc, _mean_scale(reduction, denom), loss_out, grad)
    return _finish(reduction, total, denom, dtype, loss_out, return_grad, grad, user_out,
                   user_grad)


def binary_cross_entropy_with_logits(logits, target, *, weight=None, pos_weight=None,
                                     reduction="mean", return_grad=False, out=None,
                                     grad_out=None, n_threads=None):
    """Binary cross-entropy on logits, as
    ``torch.nn.functional.binary_cross_entropy_with_logits``.

    ``weight`` and ``pos_weight`` broadcast to the logits' shape (``pos_weight``
    typically of shape ``(C,)``).  Stable for logits of any magnitude.
    """
    if weight is None and pos_weight is None and out is None:
        r = _kernels.elementwise_fast(0, logits, target, 0.0, 0.0, reduction, return_grad,
                                      grad_out, _fast_threads(n_threads))
        if r is not NotImplemented:
            return r
    reduction = check_reduction(reduction)
    x, t, dtype = _elementwise_inputs(logits, target, ("logits", "target"))
    threads = resolve_threads(n_threads)
    extra = []
    w_desc = pw_desc = None
    if weight is not None:
        w_user, w_c, w_desc = broadcast_weight(weight, x.shape, dtype, "weight")
        extra += [w_user, w_c]
    if pos_weight is not None:
        pw_user, pw_c, pw_desc = broadcast_weight(pos_weight, x.shape, dtype, "pos_weight")
        extra += [pw_user, pw_c]

    def call(xc, tc, scale, loss_out, grad):
        return _kernels.bce(xc, tc, w_desc, pw_desc, scale, loss_out, grad, threads)

    return _elementwise_run(x, t, dtype, reduction, return_grad, out, grad_out, extra, call)


def sigmoid_focal_loss(logits, target, *, alpha=0.25, gamma=2.0, reduction="mean",
                       return_grad=False, out=None, grad_out=None, n_threads=None):
    """Sigmoid focal loss, as ``torchvision.ops.sigmoid_focal_loss`` (but with
    ``reduction="mean"`` by default).  ``alpha < 0`` disables the alpha
    weighting; ``gamma >= 0``.  The gradient is the finite analytic limit where
    autograd would give NaN (gamma < 1 at saturated, correct predictions).
    """
    reduction = check_reduction(reduction)
    alpha = finite_param(alpha, "alpha")
    gamma = finite_param(gamma, "gamma")
    if gamma < 0:
        raise ValueError(f"gamma must be >= 0, got {gamma}")
    if out is None:
        r = _kernels.elementwise_fast(1, logits, target, alpha, gamma, reduction, return_grad,
                                      grad_out, _fast_threads(n_threads))
        if r is not NotImplemented:
            return r
    x, t, dtype = _elementwise_inputs(logits, target, ("logits", "target"))
    param_in_dtype(alpha, dtype, "alpha")
    param_in_dtype(gamma, dtype, "gamma")
    threads = resolve_threads(n_threads)

    def call(xc, tc, scale, loss_out, grad):
        return _kernels.focal(xc, tc, alpha, gamma, scale, loss_out, grad, threads)

    return _elementwise_run(x, t, dtype, reduction, return_grad, out, grad_out, [], call)


def huber_loss(input, target, *, delta=1.0, reduction="mean", return_grad=False, out=None,
               grad_out=None, n_threads=None):
    """Huber loss, as ``torch.nn.functional.huber_loss`` (``delta > 0``).  The
    gradient is with respect to ``input``: ``clamp(input - target, -delta, delta)``.
    """
    reduction = check_reduction(reduction)
    delta = finite_param(delta, "delta")
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if out is None:
        r = _kernels.elementwise_fast(2, input, target, delta, 0.0, reduction, return_grad,
                                      grad_out, _fast_threads(n_threads))
        if r is not NotImplemented:
            return r
    x, t, dtype = _elementwise_inputs(input, target, ("input", "target"))
    param_in_dtype(delta, dtype, "delta", scale_like=True)
    threads = resolve_threads(n_threads)

    def call(xc, tc, scale, loss_out, grad):
        return _kernels.regression(0, xc, tc, delta, scale, loss_out, grad, threads)

    return _elementwise_run(x, t, dtype, reduction, return_grad, out, grad_out, [], call)


def smooth_l1_loss(input, target, *, beta=1.0, reduction="mean", return_grad=False,
                   out=None, grad_out=None, n_threads=None):
    """Smooth-L1 loss, as ``torch.nn.functional.smooth_l1_loss`` (``beta >= 0``;
    ``beta == 0`` is the L1 loss, with gradient ``sign(input - target)``)."""
    reduction = check_reduction(reduction)
    beta = finite_param(beta, "beta")
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    if out is None:
        r = _kernels.elementwise_fast(3, input, target, beta, 0.0, reduction, return_grad,
                                      grad_out, _fast_threads(n_threads))
        if r is not NotImplemented:
            return r
    x, t, dtype = _elementwise_inputs(input, target, ("input", "target"))
    param_in_dtype(beta, dtype, "beta", scale_like=True)
    threads = resolve_threads(n_threads)

    def call(xc, tc, scale, loss_out, grad):
        return _kernels.regression(1, xc, tc, beta, scale, loss_out, grad, threads)

    return _elementwise_run(x, t, dtype, reduction, return_grad, out, grad_out, [], call)
