"""Plain NumPy reference implementations of the fusedloss losses.

This module is the readable definition of every loss in :mod:`fusedloss`, and the oracle
the test-suite compares the compiled kernels against. It favours clarity over speed, but
everything is vectorised: no Python loop runs over rows or elements.

Each function has exactly the signature of its public counterpart. How the values are
computed:

* The compute dtype follows the public API: float32 and float64 inputs keep their dtype,
  float16 is computed as float32, integer and bool inputs as float64. Targets, ``weight``
  and ``pos_weight`` are first rounded to the compute dtype (that is what the kernels see).
* Internally every quantity is evaluated in float64; only the results (the reduced scalar,
  the ``"none"`` array and the gradient) are rounded back to the compute dtype.
* ``return_grad=True`` returns ``(loss, grad)``. ``grad`` has the input's shape and is the
  closed-form derivative of the returned loss (for ``"none"``, of its sum).
* ``out`` / ``grad_out``, when given, receive the ``"none"`` losses / the gradient and are
  returned. ``n_threads`` is accepted and ignored.
* Validation is deliberately minimal (reduction, parameter ranges, shapes, class-index
  range); the full argument checking lives in the public wrappers.
* Non-finite values propagate as IEEE arithmetic gives; they never raise. Floating-point
  warnings are silenced.

The class axis is the *last* axis: logits ``(..., C)``, class-index targets ``(...)``.
"""

import math
import operator

import numpy as np

__all__ = [
    "softmax_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "huber_loss",
    "smooth_l1_loss",
    "mse_loss",
    "l1_loss",
]

_REDUCTIONS = ("mean", "sum", "none")


# ----------------------------------------------------------------------------------------
# Small shared helpers
# ----------------------------------------------------------------------------------------


def _compute_dtype(arr, name):
    """The dtype a loss is computed in for an input array of ``arr``'s dtype:
    float16/float32 -> float32; float64, longdouble, integers and bool -> float64."""
    dt = arr.dtype
    if dt.kind == "f":
        return np.dtype(np.float32 if dt.itemsize <= 4 else np.float64)
    if dt.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(f"{name} must be a real numeric array, got dtype {dt}")


def _check_numeric(arr, name):
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a real numeric array, got dtype {arr.dtype}")


def _widen(arr, cdt):
    """Round ``arr`` to the compute dtype, then return a float64 copy of it."""
    return arr.astype(cdt).astype(np.float64)


def _check_reduction(reduction):
    if not (isinstance(reduction, str) and reduction in _REDUCTIONS):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _finite_param(name, value):
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return v


def _at_least(name, value, lo, strict=False):
    """A finite parameter >= lo (> lo when strict)."""
    v = _finite_param(name, value)
    if v < lo or (strict and v == lo):
        raise ValueError(f"{name} must be {'>' if strict else '>='} {lo:g}, got {v!r}")
    return v


def _check_buffer(buf, name, shape, cdt):
    """``out`` / ``grad_out``: a writable C-contiguous array of the result's shape and dtype."""
    if buf is None:
        return
    if not isinstance(buf, np.ndarray):
        raise ValueError(f"{name} must be a numpy array")
    if buf.shape != tuple(shape) or buf.dtype != cdt:
        raise ValueError(
            f"{name} must have shape {tuple(shape)} and dtype {cdt}, "
            f"got shape {buf.shape} and dtype {buf.dtype}"
        )
    if not buf.flags.c_contiguous or not buf.flags.writeable:
        raise ValueError(f"{name} must be C-contiguous and writable")


def _check_buffers(reduction, return_grad, out, grad_out, loss_shape, grad_shape, cdt):
    if out is not None and reduction != "none":
        raise ValueError("out is only used with reduction='none'")
    if grad_out is not None and not return_grad:
        raise ValueError("grad_out is only used with return_grad=True")
    _check_buffer(out, "out", loss_shape, cdt)
    _check_buffer(grad_out, "grad_out", grad_shape, cdt)


def _store(values, cdt, buf):
    """Round a float64 result to the compute dtype; write it into ``buf`` if one was given."""
    values = np.asarray(values).astype(cdt)
    if buf is None:
        return values
    buf[...] = values
    return buf


def _finish(losses, grad, denom, reduction, cdt, return_grad, out, grad_out):
    """Reduce float64 per-sample/per-element ``losses`` and package the results.

    ``grad`` is the float64 gradient of ``losses.sum()`` (None when not requested) and
    ``denom`` the divisor of ``"mean"``. A mean over nothing (``denom == 0``) is NaN and its
    gradient is zero.
    """
    if reduction == "none":
        loss = _store(losses, cdt, out)
    else:
        total = losses.sum()
        if reduction == "mean":
            total = total / denom if denom != 0 else np.nan
        loss = cdt.type(total)
    if not return_grad:
        return loss
    if reduction == "mean":
        grad = grad / denom if denom != 0 else np.zeros_like(grad)
    return loss, _store(grad, cdt, grad_out)


def _softplus(x):
    """log(1 + exp(x)) without overflow or loss of precision."""
    return np.maximum(x, 0.0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid_pair(x):
    """Return ``(sigmoid(x), sigmoid(-x))``, both accurate for logits of any magnitude.

    Computing ``sigmoid(-x)`` directly (instead of ``1 - sigmoid(x)``) keeps its tiny
    values when ``x`` is large and positive.
    """
    e = np.exp(-np.abs(x))  # in (0, 1]; NaN stays NaN
    s_abs = 1.0 / (1.0 + e)  # sigmoid(|x|)
    s_neg_abs = e / (1.0 + e)  # sigmoid(-|x|)
    nonneg = x >= 0
    return np.where(nonneg, s_abs, s_neg_abs), np.where(nonneg, s_neg_abs, s_abs)


# ----------------------------------------------------------------------------------------
# Cross-entropy over the last axis
# ----------------------------------------------------------------------------------------


def softmax_cross_entropy(
    logits,
    target,
    *,
    weight=None,
    ignore_index=-100,
    label_smoothing=0.0,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Softmax cross-entropy (``torch.nn.functional.cross_entropy`` with the class axis last).

    With ``w`` the class weights (ones without ``weight``), ``eps = label_smoothing`` and
    ``-logp = log(sum(exp(z))) - z`` per row:

    * class-index targets ``t`` (integer array of shape ``logits.shape[:-1]``)::

          loss_i = (1 - eps) * w[t_i] * -logp[i, t_i] + (eps / C) * sum_c w[c] * -logp[i, c]

      Rows with ``t_i == ignore_index`` contribute exactly 0 loss and 0 gradient, whatever
      their logits. ``"mean"`` divides by ``sum(w[t_i])`` over the other rows.
    * class-probability targets ``y`` (floating array of the logits' shape)::

          y'     = (1 - eps) * y + eps / C
          loss_i = -sum_c w[c] * y'[i, c] * logp[i, c]

      ``"mean"`` divides by the number of rows.

    Gradient with respect to the logits, ``p = softmax(z)``, ``W = sum(w)``:

    * indices:        ``p_j * ((1-eps) w[t] + (eps/C) W) - (1-eps) w[t] [j == t] - (eps/C) w[j]``
    * probabilities:  ``p_j * sum_c(w_c y'_c) - w_j y'_j``

    (divided by the mean's denominator for ``"mean"``).
    """
    _check_reduction(reduction)
    eps = _finite_param("label_smoothing", label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1], got {label_smoothing!r}")
    ignore_index = operator.index(ignore_index)

    logits = np.asarray(logits)
    target = np.asarray(target)
    cdt = _compute_dtype(logits, "logits")
    if logits.ndim == 0:
        raise ValueError("logits must have at least one dimension (the class axis)")
    n_classes = logits.shape[-1]
    batch_shape = logits.shape[:-1]
    n_rows = math.prod(batch_shape)

    # Which kind of target: integer class indices, or floating class probabilities.
    if target.dtype == np.bool_:
        raise TypeError(
            "target must hold integer class indices or floating probabilities, got bool"
        )
    if target.dtype.kind in "iu":
        soft = False
        if target.shape != batch_shape:
            raise ValueError(
                f"target of class indices must have shape {batch_shape}, got {target.shape}"
            )
    elif target.dtype.kind == "f":
        soft = True
        if target.shape == batch_shape:
            raise ValueError(
                "target: class indices must be integers (got a floating array "
                f"of shape {target.shape})"
            )
        if target.shape != logits.shape:
            raise ValueError(
                f"target of class probabilities must have shape {logits.shape}, got {target.shape}"
            )
        if ignore_index != -100:
            raise ValueError("ignore_index is not supported with class-probability targets")
    else:
        raise TypeError(f"target must be a real numeric array, got dtype {target.dtype}")

    if weight is None:
        w = np.ones(n_classes)
    else:
        weight = np.asarray(weight)
        _check_numeric(weight, "weight")
        if weight.shape != (n_classes,):
            raise ValueError(f"weight must have shape ({n_classes},), got {weight.shape}")
        w = _widen(weight, cdt)

    if not soft:
        t = target.reshape(n_rows)
        ignored = t == ignore_index
        bad = ~ignored & ((t < 0) | (t >= n_classes))
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            where = ", ".join(str(int(i)) for i in np.unravel_index(first, batch_shape))
            position = f"target[{where}]" if batch_shape else "target"
            raise IndexError(
                f"{position} = {int(t[first])} is out of range for {n_classes} classes"
            )

    _check_buffers(reduction, return_grad, out, grad_out, batch_shape, logits.shape, cdt)

    with np.errstate(all="ignore"):
        z = _widen(logits, cdt).reshape(n_rows, n_classes)

        # log-softmax with the row maximum shifted out: -logp = log(sum(exp(z - m))) - (z - m)
        shifted = z - np.max(z, axis=1, keepdims=True, initial=-np.inf)
        expd = np.exp(shifted)
        sumexp = expd.sum(axis=1, keepdims=True)
        neg_logp = np.log(sumexp) - shifted
        smooth = eps / n_classes if n_classes else 0.0  # weight of the uniform part

        if soft:
            y = _widen(target, cdt).reshape(n_rows, n_classes)
            wy = w * ((1.0 - eps) * y + smooth)  # w_c * y'_c
            losses = (wy * neg_logp).sum(axis=1)
            denom = n_rows
            grad = None
            if return_grad:
                grad = expd / sumexp * wy.sum(axis=1, keepdims=True) - wy
        else:
            keep = ~ignored
            rows = np.flatnonzero(keep)
            cols = t[rows].astype(np.intp)
            # weight of each row's target class; 0 on ignored rows
            w_t = np.zeros(n_rows)
            w_t[rows] = w[cols]
            nll_t = np.zeros(n_rows)
            nll_t[rows] = neg_logp[rows, cols]
            losses = (1.0 - eps) * w_t * nll_t
            if eps > 0:
                losses = losses + smooth * (w * neg_logp).sum(axis=1)
            # Ignored rows are exactly zero even when their logits are NaN or infinite.
            losses = np.where(keep, losses, 0.0)
            denom = w_t.sum()
            grad = None
            if return_grad:
                coef = (1.0 - eps) * w_t + smooth * w.sum()
                grad = expd / sumexp * coef[:, None] - smooth * w
                grad[rows, cols] -= (1.0 - eps) * w_t[rows]
                grad = np.where(keep[:, None], grad, 0.0)

        losses = losses.reshape(batch_shape)
        if grad is not None:
            grad = grad.reshape(logits.shape)
        return _finish(losses, grad, denom, reduction, cdt, return_grad, out, grad_out)


# ----------------------------------------------------------------------------------------
# Element-wise losses
# ----------------------------------------------------------------------------------------


def _elementwise_inputs(x, target, x_name, reduction, return_grad, out, grad_out):
    """Shared checks of the element-wise losses; returns (x, target, compute dtype)."""
    _check_reduction(reduction)
    x = np.asarray(x)
    target = np.asarray(target)
    cdt = _compute_dtype(x, x_name)
    _check_numeric(target, "target")
    if target.shape != x.shape:
        raise ValueError(f"target must have the shape of {x_name} {x.shape}, got {target.shape}")
    _check_buffers(reduction, return_grad, out, grad_out, x.shape, x.shape, cdt)
    return x, target, cdt


def _broadcast_weight(value, name, shape, cdt):
    """``weight`` / ``pos_weight`` as float64, broadcast to the logits' shape (None stays None)."""
    if value is None:
        return None
    value = np.asarray(value)
    _check_numeric(value, name)
    try:
        return np.broadcast_to(_widen(value, cdt), shape)
    except ValueError:
        raise ValueError(f"{name} of shape {value.shape} does not broadcast to {shape}") from None


def _weighted(losses, grad, weight, shape, cdt):
    """Multiplies the per-element losses and gradient by ``weight`` (broadcast to
    ``shape``, rounded to the compute dtype); None leaves them as they are."""
    w = _broadcast_weight(weight, "weight", shape, cdt)
    if w is None:
        return losses, grad
    return w * losses, (None if grad is None else w * grad)


def binary_cross_entropy_with_logits(
    logits,
    target,
    *,
    weight=None,
    pos_weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Binary cross-entropy on logits (``torch.nn.functional.binary_cross_entropy_with_logits``).

    Per element, with ``w = weight`` and ``pw = pos_weight`` (both default 1)::

        loss = w * (pw * t * softplus(-x) + (1 - t) * softplus(x))
        grad = w * ((1 - t) * sigmoid(x) - pw * t * sigmoid(-x))

    ``"mean"`` is the mean over all elements (not divided by the summed weights).
    """
    x, target, cdt = _elementwise_inputs(
        logits, target, "logits", reduction, return_grad, out, grad_out
    )
    w = _broadcast_weight(weight, "weight", x.shape, cdt)
    pw = _broadcast_weight(pos_weight, "pos_weight", x.shape, cdt)

    with np.errstate(all="ignore"):
        z = _widen(x, cdt)
        t = _widen(target, cdt)
        pos_t = t if pw is None else pw * t  # weight of the "positive" part
        losses = pos_t * _softplus(-z) + (1.0 - t) * _softplus(z)
        if w is not None:
            losses = w * losses
        grad = None
        if return_grad:
            sig, sig_neg = _sigmoid_pair(z)
            grad = (1.0 - t) * sig - pos_t * sig_neg
            if w is not None:
                grad = w * grad
        return _finish(losses, grad, z.size, reduction, cdt, return_grad, out, grad_out)


def sigmoid_focal_loss(
    logits,
    target,
    *,
    alpha=0.25,
    gamma=2.0,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Sigmoid focal loss (``torchvision.ops.sigmoid_focal_loss``, default reduction ``"mean"``).

    Per element, with ``p = sigmoid(x)``::

        ce   = t * softplus(-x) + (1 - t) * softplus(x)      # BCE with logits
        q    = 1 - p_t = p * (1 - t) + sigmoid(-x) * t
        a_t  = alpha * t + (1 - alpha) * (1 - t)   if alpha >= 0 else 1
        loss = a_t * ce * q**gamma
        grad = a_t * ((p - t) * q**gamma + gamma * ce * q**gamma * p (1 - p) / q * (1 - 2t))

    The second gradient term is its analytic limit 0 where ``q == 0`` (a saturated, correct
    prediction), where PyTorch's autograd gives NaN for ``gamma < 1``, and where
    ``p (1 - p) == 0`` (|x| so large that sigmoid saturates, including x = +-inf, where
    ``ce`` is infinite but ``p (1 - p)`` decays exponentially faster).
    """
    alpha = _finite_param("alpha", alpha)
    gamma = _at_least("gamma", gamma, 0.0)
    x, target, cdt = _elementwise_inputs(
        logits, target, "logits", reduction, return_grad, out, grad_out
    )

    with np.errstate(all="ignore"):
        z = _widen(x, cdt)
        t = _widen(target, cdt)
        p, p_neg = _sigmoid_pair(z)  # sigmoid(x), sigmoid(-x)
        ce = t * _softplus(-z) + (1.0 - t) * _softplus(z)
        q = p * (1.0 - t) + p_neg * t  # 1 - p_t, without cancellation
        # log q from the side that keeps its precision: near q = 1 it is log1p(-(1 - q)),
        # 1 - q = p t + sigmoid(-x) (1 - t) from the accurate sigmoids, which matters for a
        # huge gamma (q rounds to 1 but q**gamma does not)
        one_minus_q = p * t + p_neg * (1.0 - t)
        log_q = np.where(one_minus_q <= 0.5, np.log1p(-one_minus_q), np.log(q))
        modulator = np.exp(gamma * log_q) if gamma != 0 else np.ones_like(q)  # q**0 == 1
        a_t = alpha * t + (1.0 - alpha) * (1.0 - t) if alpha >= 0 else 1.0
        losses = a_t * ce * modulator
        grad = None
        if return_grad:
            p_minus_t = p * (1.0 - t) - p_neg * t
            grad = p_minus_t * modulator
            if gamma != 0:
                # p (1 - p) / q lies in [0, 1] for targets in [0, 1]; divide before multiplying.
                ratio = p * p_neg / q
                # gamma q**gamma, in log-space: no overflow (it is at most gamma) and no
                # early underflow of q**gamma for a huge gamma
                g_mod = np.exp(gamma * log_q + np.log(gamma))
                focus = g_mod * ratio * ce * (1.0 - 2.0 * t)
                grad = grad + np.where((q == 0) | (ratio == 0), 0.0, focus)
            grad = a_t * grad
        losses, grad = _weighted(losses, grad, weight, z.shape, cdt)
        return _finish(losses, grad, z.size, reduction, cdt, return_grad, out, grad_out)


def huber_loss(
    input,
    target,
    *,
    delta=1.0,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Huber loss (``torch.nn.functional.huber_loss``), ``e = input - target``::

        loss = 0.5 * e**2                     if |e| <= delta
               delta * (|e| - 0.5 * delta)    otherwise
        grad = clamp(e, -delta, delta)        (NaN stays NaN)

    ``weight`` multiplies both; ``"mean"`` divides by the number of elements.
    """
    delta = _at_least("delta", delta, 0.0, strict=True)

    def form(e):
        abs_e = np.abs(e)
        losses = np.where(abs_e <= delta, 0.5 * e * e, delta * (abs_e - 0.5 * delta))
        return losses, np.clip(e, -delta, delta)

    return _error_loss(input, target, weight, reduction, return_grad, out, grad_out, form)


def smooth_l1_loss(
    input,
    target,
    *,
    beta=1.0,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Smooth L1 loss (``torch.nn.functional.smooth_l1_loss``), ``e = input - target``::

        loss = 0.5 * e * (e / beta)     if |e| < beta
               |e| - 0.5 * beta         otherwise
        grad = e / beta                 if |e| < beta
               sign(e)                  otherwise

    ``beta == 0`` is the L1 loss: ``|e|`` with gradient ``sign(e)`` (``sign(0) == 0``).
    """
    beta = _at_least("beta", beta, 0.0)

    def form(e):
        abs_e = np.abs(e)
        if beta == 0:
            return abs_e, np.sign(e)
        inside = abs_e < beta
        return (
            np.where(inside, 0.5 * e * (e / beta), abs_e - 0.5 * beta),
            np.where(inside, e / beta, np.sign(e)),
        )

    return _error_loss(input, target, weight, reduction, return_grad, out, grad_out, form)


def _error_loss(input, target, weight, reduction, return_grad, out, grad_out, form):
    """An element-wise loss of e = input - target: ``form(e)`` gives the float64
    losses and gradient (of their sum) before the weight."""
    x, target, cdt = _elementwise_inputs(
        input, target, "input", reduction, return_grad, out, grad_out
    )
    with np.errstate(all="ignore"):
        e = _widen(x, cdt) - _widen(target, cdt)
        losses, grad = form(e)
        losses, grad = _weighted(losses, grad if return_grad else None, weight, e.shape, cdt)
        return _finish(losses, grad, e.size, reduction, cdt, return_grad, out, grad_out)


def mse_loss(
    input,
    target,
    *,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Mean squared error (``torch.nn.functional.mse_loss``), ``e = input - target``::

        loss = w * e**2
        grad = w * 2 e

    ``"mean"`` divides by the number of elements (not by the summed weights).
    """
    return _error_loss(
        input, target, weight, reduction, return_grad, out, grad_out, lambda e: (e * e, 2.0 * e)
    )


def l1_loss(
    input,
    target,
    *,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """L1 loss (``torch.nn.functional.l1_loss``), ``e = input - target``::

        loss = w * |e|
        grad = w * sign(e)        (sign(0) == 0, NaN stays NaN)

    ``"mean"`` divides by the number of elements (not by the summed weights).
    """
    return _error_loss(
        input,
        target,
        weight,
        reduction,
        return_grad,
        out,
        grad_out,
        lambda e: (np.abs(e), np.sign(e)),
    )
