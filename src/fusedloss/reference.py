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
* ``return_hess=True`` (with ``return_grad=True``; element-wise losses and
  ``softmax_cross_entropy``) returns ``(loss, grad, hess)``: ``hess`` is the closed-form
  second derivative of the returned loss with respect to each input element (the diagonal
  of the hessian), scaled as the gradient, NaN where an input is NaN.
* ``out`` / ``grad_out`` / ``hess_out``, when given, receive the ``"none"`` losses / the
  gradient / the hessian and are returned. ``n_threads`` is accepted and ignored.
* Validation is deliberately minimal (reduction, parameter ranges, shapes, class-index
  range); the full argument checking lives in the public wrappers.
* Non-finite values propagate as IEEE arithmetic gives; they never raise. Floating-point
  warnings are silenced.

The class axis is the *last* axis: logits ``(..., C)``, class-index targets ``(...)``.
"""

import math
import operator

import numpy as np

try:  # numpy >= 1.25
    _AxisError = np.exceptions.AxisError
except AttributeError:  # pragma: no cover
    _AxisError = np.AxisError

__all__ = [
    "softmax_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "huber_loss",
    "smooth_l1_loss",
    "mse_loss",
    "l1_loss",
    "binary_cross_entropy",
    "hinge_loss",
    "exponential_loss",
    "kl_div",
    "heatmap_focal_loss",
    "nll_loss",
    "softmax_focal_loss",
    "multi_margin_loss",
    "dice_loss",
    "margin_ranking_loss",
    "triplet_margin_loss",
    "contrastive_loss",
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


def _check_reduction(reduction, extra=()):
    allowed = _REDUCTIONS + tuple(extra)
    if not (isinstance(reduction, str) and reduction in allowed):
        names = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"reduction must be one of {names}, got {reduction!r}")


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


def _check_buffers(
    reduction,
    return_grad,
    out,
    grad_out,
    loss_shape,
    grad_shape,
    cdt,
    return_hess=False,
    hess_out=None,
):
    if out is not None and reduction != "none":
        raise ValueError("out is only used with reduction='none'")
    if grad_out is not None and not return_grad:
        raise ValueError("grad_out is only used with return_grad=True")
    if return_hess and not return_grad:
        raise ValueError("return_hess=True needs return_grad=True")
    if hess_out is not None and not return_hess:
        raise ValueError("hess_out is only used with return_hess=True")
    _check_buffer(out, "out", loss_shape, cdt)
    _check_buffer(grad_out, "grad_out", grad_shape, cdt)
    _check_buffer(hess_out, "hess_out", grad_shape, cdt)


def _store(values, cdt, buf):
    """Round a float64 result to the compute dtype; write it into ``buf`` if one was given."""
    values = np.asarray(values).astype(cdt)
    if buf is None:
        return values
    buf[...] = values
    return buf


def _finish(
    losses, grad, denom, reduction, cdt, return_grad, out, grad_out, hess=None, hess_out=None
):
    """Reduce float64 per-sample/per-element ``losses`` and package the results.

    ``grad`` is the float64 gradient of ``losses.sum()`` (None when not requested),
    ``hess`` its second derivative per element (None when not requested) and ``denom``
    the divisor of ``"mean"``. A mean over nothing (``denom == 0``) is NaN and its
    gradient and hessian are zero.
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
        if hess is not None:
            hess = hess / denom if denom != 0 else np.zeros_like(hess)
    if hess is not None:
        return loss, _store(grad, cdt, grad_out), _store(hess, cdt, hess_out)
    return loss, _store(grad, cdt, grad_out)


def _axis_index(axis, ndim):
    """The class axis in [0, ndim), as numpy's ``axis`` (an integer, not a bool)."""
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"axis must be an integer, got {axis!r}")
    axis = operator.index(axis)
    if not -ndim <= axis < ndim:
        raise _AxisError(axis, ndim)
    return axis % ndim


def _moved_class_axis(fn, args, first):
    """``fn`` (a class-axis twin) called with its arguments ``args`` (its locals()) on
    the class axis moved last, the gradient and hessian moved back; None when the axis
    is already the last (or the input has no axis: ``fn`` reports it)."""
    x = np.asarray(args[first])
    if x.ndim == 0:
        return None
    ax = _axis_index(args["axis"], x.ndim)
    if ax == x.ndim - 1:
        return None
    kw = dict(args, axis=-1)
    t = np.asarray(kw.pop("target"))
    if t.dtype.kind == "f" and t.shape == x.shape:  # probabilities: the logits' layout
        t = np.moveaxis(t, ax, -1)
    bufs = (kw.pop("grad_out"), kw.pop("hess_out", None))
    if bufs[0] is not None and not args["return_grad"]:
        raise ValueError("grad_out is only used with return_grad=True")
    if bufs[1] is not None and not args.get("return_hess"):
        raise ValueError("hess_out is only used with return_hess=True")
    del kw[first]
    res = fn(np.moveaxis(x, ax, -1), t, **kw)
    if not isinstance(res, tuple):
        return res
    back = [res[0]]
    for arr, buf, name in zip(res[1:], bufs, ("grad_out", "hess_out")):
        arr = np.ascontiguousarray(np.moveaxis(arr, -1, ax))
        if buf is not None:
            _check_buffer(buf, name, arr.shape, arr.dtype)
            buf[...] = arr
            arr = buf
        back.append(arr)
    return tuple(back)


def _others_sum(w):
    """sum_{c != j} w_c for each j: the sums before j and after it, added (not
    w.sum() - w_j, which cancels when w_j dominates)."""
    before = np.concatenate(([0.0], np.cumsum(w)[:-1]))
    after = np.concatenate((np.cumsum(w[::-1])[::-1][1:], [0.0]))
    return before + after


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
    axis=-1,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
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

    (divided by the mean's denominator for ``"mean"``). The hessian's diagonal
    (``return_hess``) is ``c p_j (1 - p_j)``, ``c`` the row's total target weight:
    ``(1-eps) w[t] + (eps/C) W`` for indices (0 on ignored rows), ``sum_c w_c y'_c`` for
    probabilities.
    """
    moved = _moved_class_axis(softmax_cross_entropy, locals(), "logits")
    if moved is not None:
        return moved
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

    _check_buffers(
        reduction,
        return_grad,
        out,
        grad_out,
        batch_shape,
        logits.shape,
        cdt,
        return_hess,
        hess_out,
    )

    with np.errstate(all="ignore"):
        z = _widen(logits, cdt).reshape(n_rows, n_classes)

        # log-softmax with the row maximum shifted out: -logp = log(sum(exp(z - m))) - (z - m)
        shifted = z - np.max(z, axis=1, keepdims=True, initial=-np.inf)
        expd = np.exp(shifted)
        sumexp = expd.sum(axis=1, keepdims=True)
        # the entries at the row maximum (exp 1; k of them) and the mass below it: the
        # log-sum is log1p((k - 1) + below), exact as the maximum dominates (log(sumexp)
        # of a sum near 1 loses the small part's relative accuracy)
        at_max = expd == 1.0
        below = np.where(at_max, 0.0, expd).sum(axis=1, keepdims=True)
        k = at_max.sum(axis=1, keepdims=True)
        hess = None
        if return_hess:
            # p (1 - p), with 1 - p from the other entries' mass, exact as p -> 1: for an
            # entry at the row maximum the others' sum is (k - 1) + below (sumexp - 1
            # would cancel)
            others = np.where(at_max, (k - 1.0) + below, sumexp - expd)
            p_q = expd / sumexp * (others / sumexp)
        neg_logp = np.log1p((k - 1.0) + below) - shifted
        smooth = eps / n_classes if n_classes else 0.0  # weight of the uniform part

        if soft:
            y = _widen(target, cdt).reshape(n_rows, n_classes)
            wy = w * ((1.0 - eps) * y + smooth)  # w_c * y'_c
            losses = (wy * neg_logp).sum(axis=1)
            denom = n_rows
            grad = None
            if return_grad:
                grad = expd / sumexp * wy.sum(axis=1, keepdims=True) - wy
            if return_hess:
                hess = p_q * wy.sum(axis=1, keepdims=True)
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
                if eps > 0:
                    # a single dominant class j (exp 1, the only one) other than the
                    # target: coef p_j - smooth w_j cancels as p_j -> 1; the same value as
                    # (coef - smooth w_j) - coef (1 - p_j), with coef - smooth w_j summed
                    # from its non-negative parts and 1 - p_j from the others' mass
                    single = at_max & (k == 1)
                    single[rows, cols] = False  # the target's entry: below
                    head = ((1.0 - eps) * w_t)[:, None] + smooth * _others_sum(w)
                    grad = np.where(single, head - coef[:, None] * (below / sumexp), grad)
                grad[rows, cols] -= (1.0 - eps) * w_t[rows]
                grad = np.where(keep[:, None], grad, 0.0)
            if return_hess:
                coef = (1.0 - eps) * w_t + smooth * w.sum()
                hess = np.where(keep[:, None], p_q * coef[:, None], 0.0)

        losses = losses.reshape(batch_shape)
        if grad is not None:
            grad = grad.reshape(logits.shape)
        if hess is not None:
            hess = hess.reshape(logits.shape)
        return _finish(
            losses, grad, denom, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


# ----------------------------------------------------------------------------------------
# Element-wise losses
# ----------------------------------------------------------------------------------------


def _elementwise_inputs(
    x, target, x_name, reduction, return_grad, out, grad_out, return_hess=False, hess_out=None
):
    """Shared checks of the element-wise losses; returns (x, target, compute dtype)."""
    _check_reduction(reduction)
    x = np.asarray(x)
    target = np.asarray(target)
    cdt = _compute_dtype(x, x_name)
    _check_numeric(target, "target")
    if target.shape != x.shape:
        raise ValueError(f"target must have the shape of {x_name} {x.shape}, got {target.shape}")
    _check_buffers(
        reduction, return_grad, out, grad_out, x.shape, x.shape, cdt, return_hess, hess_out
    )
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


def _weighted_hess(hess, weight, shape, cdt):
    """The hessian (None when not asked for) times ``weight``, as ``_weighted``."""
    w = _broadcast_weight(weight, "weight", shape, cdt)
    if hess is None or w is None:
        return hess
    return w * hess


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
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Binary cross-entropy on logits (``torch.nn.functional.binary_cross_entropy_with_logits``).

    Per element, with ``w = weight`` and ``pw = pos_weight`` (both default 1)::

        loss = w * (pw * t * softplus(-x) + (1 - t) * softplus(x))
        grad = w * ((1 - t) * sigmoid(x) - pw * t * sigmoid(-x))

    ``"mean"`` is the mean over all elements (not divided by the summed weights). The
    hessian is ``w * (pw * t + 1 - t) * sigmoid(x) * sigmoid(-x)``.
    """
    x, target, cdt = _elementwise_inputs(
        logits,
        target,
        "logits",
        reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
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
        hess = None
        if return_hess:
            sig, sig_neg = _sigmoid_pair(z)
            hess = (pos_t + 1.0 - t) * sig * sig_neg
            if w is not None:
                hess = w * hess
        return _finish(
            losses, grad, z.size, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


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
    return_hess=False,
    hess_out=None,
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

    The hessian, with ``s = p (1 - p)``, ``k = 1 - 2t``, ``r = s / q`` (in [0, 1]) and
    ``d = p - t``::

        hess = a_t * q**gamma * (s + 2 gamma d k r + gamma (gamma - 1) ce k**2 r**2
                                 + gamma ce k r (1 - 2p))

    (the terms with ``r`` are 0 where the gradient's second term is): it may be negative.
    """
    alpha = _finite_param("alpha", alpha)
    gamma = _at_least("gamma", gamma, 0.0)
    x, target, cdt = _elementwise_inputs(
        logits,
        target,
        "logits",
        reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
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
        hess = None
        if return_hess:
            s = p * p_neg
            k = 1.0 - 2.0 * t
            d = p * (1.0 - t) - p_neg * t
            hess = s * modulator
            if gamma != 0:
                r = s / q
                g_mod = np.exp(gamma * log_q + np.log(gamma))  # gamma q**gamma
                extra = g_mod * (
                    2.0 * d * k * r + (gamma - 1.0) * ce * (k * r) ** 2 + ce * k * r * (p_neg - p)
                )
                hess = hess + np.where((q == 0) | (r == 0), 0.0, extra)
            hess = _weighted_hess(a_t * hess, weight, z.shape, cdt)
        losses, grad = _weighted(losses, grad, weight, z.shape, cdt)
        return _finish(
            losses, grad, z.size, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


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
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Huber loss (``torch.nn.functional.huber_loss``), ``e = input - target``::

        loss = 0.5 * e**2                     if |e| <= delta
               delta * (|e| - 0.5 * delta)    otherwise
        grad = clamp(e, -delta, delta)        (NaN stays NaN)
        hess = 1 if |e| <= delta else 0       (NaN where e is NaN)

    ``weight`` multiplies both; ``"mean"`` divides by the number of elements.
    """
    delta = _at_least("delta", delta, 0.0, strict=True)

    def form(e):
        abs_e = np.abs(e)
        losses = np.where(abs_e <= delta, 0.5 * e * e, delta * (abs_e - 0.5 * delta))
        return losses, np.clip(e, -delta, delta), _nan_or(np.where(abs_e <= delta, 1.0, 0.0), e)

    return _error_loss(
        input, target, weight, reduction, return_grad, out, grad_out, form, return_hess, hess_out
    )


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
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Smooth L1 loss (``torch.nn.functional.smooth_l1_loss``), ``e = input - target``::

        loss = 0.5 * e * (e / beta)     if |e| < beta
               |e| - 0.5 * beta         otherwise
        grad = e / beta                 if |e| < beta
               sign(e)                  otherwise
        hess = 1 / beta if |e| < beta else 0     (NaN where e is NaN)

    ``beta == 0`` is the L1 loss: ``|e|`` with gradient ``sign(e)`` (``sign(0) == 0``).
    """
    beta = _at_least("beta", beta, 0.0)

    def form(e):
        abs_e = np.abs(e)
        if beta == 0:
            return abs_e, np.sign(e), _nan_or(np.zeros_like(e), e)
        inside = abs_e < beta
        return (
            np.where(inside, 0.5 * e * (e / beta), abs_e - 0.5 * beta),
            np.where(inside, e / beta, np.sign(e)),
            _nan_or(np.where(inside, 1.0 / beta, 0.0), e),
        )

    return _error_loss(
        input, target, weight, reduction, return_grad, out, grad_out, form, return_hess, hess_out
    )


def _error_loss(
    input, target, weight, reduction, return_grad, out, grad_out, form, return_hess, hess_out
):
    """An element-wise loss of e = input - target: ``form(e)`` gives the float64
    losses, gradient (of their sum) and hessian before the weight."""
    x, target, cdt = _elementwise_inputs(
        input,
        target,
        "input",
        reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
    )
    with np.errstate(all="ignore"):
        e = _widen(x, cdt) - _widen(target, cdt)
        losses, grad, hess = form(e)
        hess = _weighted_hess(hess if return_hess else None, weight, e.shape, cdt)
        losses, grad = _weighted(losses, grad if return_grad else None, weight, e.shape, cdt)
        return _finish(
            losses, grad, e.size, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


def mse_loss(
    input,
    target,
    *,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Mean squared error (``torch.nn.functional.mse_loss``), ``e = input - target``::

        loss = w * e**2
        grad = w * 2 e
        hess = w * 2          (NaN where e is NaN)

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
        lambda e: (e * e, 2.0 * e, _nan_or(np.full_like(e, 2.0), e)),
        return_hess,
        hess_out,
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
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """L1 loss (``torch.nn.functional.l1_loss``), ``e = input - target``::

        loss = w * |e|
        grad = w * sign(e)        (sign(0) == 0, NaN stays NaN)
        hess = 0                  (NaN where e is NaN)

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
        lambda e: (np.abs(e), np.sign(e), _nan_or(np.zeros_like(e), e)),
        return_hess,
        hess_out,
    )


# ----------------------------------------------------------------------------------------
# The wider family: shared helpers
# ----------------------------------------------------------------------------------------


def _position(name, flat, shape):
    """``name[i, j]`` for the flat index ``flat`` of an array of ``shape`` (``name`` when 0-d)."""
    if not shape:
        return name
    where = ", ".join(str(int(i)) for i in np.unravel_index(flat, shape))
    return f"{name}[{where}]"


def _check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {value!r}")
    return bool(value)


def _param_in(value, cdt):
    """A float parameter as the kernels see it: rounded to the compute dtype."""
    return float(cdt.type(value))


def _nan_or(mask_values, z):
    """``mask_values`` where ``z`` is a number, NaN where ``z`` is NaN (NaN propagates into
    the gradient of the piecewise losses)."""
    return np.where(np.isnan(z), np.nan, mask_values)


def _check_probabilities(x, xw, fname):
    """``input`` of binary_cross_entropy: values in [0, 1] (NaN allowed)."""
    bad = (xw < 0) | (xw > 1)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        value = float(xw.reshape(-1)[first])
        raise ValueError(
            f"{_position('input', first, x.shape)} = {value!r} is outside [0, 1] "
            f"({fname} takes probabilities)"
        )


def _check_signs(t, tw):
    """Labels in {-1, +1} (NaN allowed: it propagates)."""
    bad = ~((tw == 1) | (tw == -1) | np.isnan(tw))
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(-1))[0])
        value = float(tw.reshape(-1)[first])
        raise ValueError(
            f"{_position('target', first, t.shape)} = {value!r} is not a label in {{-1, +1}}"
        )


def _class_index_inputs(
    x,
    target,
    x_name,
    reduction,
    return_grad,
    out,
    grad_out,
    ignore_index,
    return_hess=False,
    hess_out=None,
):
    """Shared checks of the class-index losses (class axis last, integer targets of shape
    ``x.shape[:-1]``); returns (x, flat targets (int64), ignored mask, cdt)."""
    _check_reduction(reduction)
    x = np.asarray(x)
    target = np.asarray(target)
    cdt = _compute_dtype(x, x_name)
    if x.ndim == 0:
        raise ValueError(f"{x_name} must have at least one dimension (the class axis)")
    batch_shape, n_classes = x.shape[:-1], x.shape[-1]
    kind = target.dtype.kind
    if kind == "b":
        raise TypeError("target must hold integer class indices, got bool")
    if kind == "f":
        raise ValueError(
            f"target must hold integer class indices (shape {batch_shape}), got a floating "
            f"array of shape {target.shape}"
        )
    if kind not in "iu":
        raise TypeError(f"target must hold integer class indices, got dtype {target.dtype}")
    if target.shape != batch_shape:
        raise ValueError(
            f"target of class indices must have shape {batch_shape}, got {target.shape}"
        )
    t = target.reshape(-1)
    ignored = np.zeros(t.shape, bool) if ignore_index is None else (t == ignore_index)
    bad = ~ignored & ((t < 0) | (t >= n_classes))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise IndexError(
            f"{_position('target', first, batch_shape)} = {int(t[first])} is out of range "
            f"for {n_classes} classes"
        )
    _check_buffers(
        reduction,
        return_grad,
        out,
        grad_out,
        batch_shape,
        x.shape,
        cdt,
        return_hess,
        hess_out,
    )
    t = np.where(ignored, 0, t).astype(np.int64)
    return x, t, ignored, cdt


def _class_weight(weight, name, n_classes, cdt):
    """Per-class weights (float64 of the compute dtype's values); ones when None."""
    if weight is None:
        return np.ones(n_classes)
    weight = np.asarray(weight)
    _check_numeric(weight, name)
    if weight.shape != (n_classes,):
        raise ValueError(f"{name} must have shape ({n_classes},), got {weight.shape}")
    return _widen(weight, cdt)


def _rows_norm(v, p):
    """``||v||_p`` over the last axis, and its gradient ``sign(v) |v|^(p-1) / ||v||^(p-1)``
    (0 where v_j == 0 and where the norm is 0)."""
    a = np.abs(v)
    if p == 2.0:
        norm = np.sqrt((v * v).sum(axis=-1))
    elif p == 1.0:
        norm = a.sum(axis=-1)
    else:
        norm = np.power(np.power(a, p).sum(axis=-1), 1.0 / p)
    n = norm[..., None]
    if p == 1.0:
        g = np.sign(v)
    else:
        g = np.sign(v) * np.power(a / n, p - 1.0)
    g = np.where((v == 0) | (n == 0), 0.0, g)
    return norm, g


# ----------------------------------------------------------------------------------------
# The wider family: element-wise losses
# ----------------------------------------------------------------------------------------


_BCE_EPS = float(np.float32(1e-12))  # PyTorch's EPSILON in binary_cross_entropy_backward


def binary_cross_entropy(
    input,
    target,
    *,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Binary cross-entropy on probabilities (``torch.nn.functional.binary_cross_entropy``).

    Per element, ``x`` a probability in [0, 1] (anything else is a ValueError; NaN
    propagates), each log clamped to >= -100 as PyTorch::

        loss = -w * (t * max(log x, -100) + (1 - t) * max(log1p(-x), -100))
        grad = w * (x - t) / max(x * (1 - x), 1e-12)      (PyTorch's backward, whose
                                                           1e-12 is a C float: 9.99999996e-13)
        hess = w * (t / x**2 + (1 - t) / (1 - x)**2)      (w / 1e-12 where the clamp holds,
                                                           the derivative of that gradient)

    ``"mean"`` divides by the number of elements.
    """
    x, target, cdt = _elementwise_inputs(
        input,
        target,
        "input",
        reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
    )
    xw = _widen(x, cdt)
    _check_probabilities(x, xw, "binary_cross_entropy")
    with np.errstate(all="ignore"):
        t = _widen(target, cdt)
        log_x = np.maximum(np.log(xw), -100.0)
        log_1mx = np.maximum(np.log1p(-xw), -100.0)
        # np.maximum keeps NaN
        losses = -(t * log_x + (1.0 - t) * log_1mx)
        grad = None
        if return_grad:
            grad = (xw - t) / np.maximum(xw * (1.0 - xw), _BCE_EPS)
        hess = None
        if return_hess:
            clamped = xw * (1.0 - xw) < _BCE_EPS
            free = t / (xw * xw) + (1.0 - t) / ((1.0 - xw) * (1.0 - xw))
            hess = np.where(clamped, _nan_or(np.full_like(t, 1.0 / _BCE_EPS), t), free)
            hess = _weighted_hess(hess, weight, xw.shape, cdt)
        losses, grad = _weighted(losses, grad, weight, xw.shape, cdt)
        return _finish(
            losses, grad, xw.size, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


def hinge_loss(
    input,
    target,
    *,
    margin=1.0,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Hinge loss, labels ``y`` in {-1, +1} (any other target is a ValueError; NaN
    propagates). Per element, ``z = margin - y * x``::

        loss = w * max(0, z)
        grad = w * -y   where z > 0,   0 where z <= 0 (0 at the kink),   NaN where z is NaN
        hess = 0                                                         NaN where z is NaN

    ``"mean"`` divides by the number of elements.
    """
    margin = _finite_param("margin", margin)
    x, target, cdt = _elementwise_inputs(
        input,
        target,
        "input",
        reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
    )
    margin = _param_in(margin, cdt)
    t = _widen(target, cdt)
    _check_signs(target, t)
    with np.errstate(all="ignore"):
        z = margin - t * _widen(x, cdt)
        losses = np.maximum(z, 0.0)
        grad = _nan_or(np.where(z > 0, -t, 0.0), z) if return_grad else None
        hess = _nan_or(np.zeros_like(z), z) if return_hess else None
        hess = _weighted_hess(hess, weight, z.shape, cdt)
        losses, grad = _weighted(losses, grad, weight, z.shape, cdt)
        return _finish(
            losses, grad, z.size, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


def exponential_loss(
    input,
    target,
    *,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Exponential loss (AdaBoost's), labels ``y`` in {-1, +1} (any other target is a
    ValueError; NaN propagates)::

        loss = w * exp(-y * x)
        grad = w * -y * exp(-y * x)
        hess = w * y**2 * exp(-y * x)

    ``"mean"`` divides by the number of elements.
    """
    x, target, cdt = _elementwise_inputs(
        input,
        target,
        "input",
        reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
    )
    t = _widen(target, cdt)
    _check_signs(target, t)
    with np.errstate(all="ignore"):
        e = np.exp(-t * _widen(x, cdt))
        grad = -t * e if return_grad else None
        hess = _weighted_hess(t * t * e if return_hess else None, weight, e.shape, cdt)
        losses, grad = _weighted(e, grad, weight, e.shape, cdt)
        return _finish(
            losses, grad, e.size, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


def kl_div(
    input,
    target,
    *,
    log_target=False,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Kullback-Leibler divergence (``torch.nn.functional.kl_div``); ``input`` holds
    log-probabilities ``x``. Per element::

        loss = w * (xlogy(t, t) - t * x)     (xlogy(0, y) = 0: a zero target gives 0,
                                              but 0 * x = NaN for x = -inf, as PyTorch)
        grad = w * -t
        log_target:  loss = w * exp(t) * (t - x),   grad = w * -exp(t)
        hess = 0 (linear in x), NaN where x or t is NaN

    ``reduction`` also takes ``"batchmean"``: the sum divided by ``input.shape[0]`` (the
    sum for a 0-d input; NaN with a zero gradient for an empty first axis). ``"mean"``
    divides by the number of elements.
    """
    log_target = _check_bool("log_target", log_target)
    _check_reduction(reduction, ("batchmean",))
    batchmean = reduction == "batchmean"
    x, target, cdt = _elementwise_inputs(
        input,
        target,
        "input",
        "mean" if batchmean else reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
    )
    with np.errstate(all="ignore"):
        z = _widen(x, cdt)
        t = _widen(target, cdt)
        if log_target:
            et = np.exp(t)
            losses = et * (t - z)
            grad = -et if return_grad else None
        else:
            xlogy = np.where(t == 0, 0.0, t * np.log(t))
            losses = xlogy - t * z
            grad = -t if return_grad else None
        hess = None
        if return_hess:
            hess = np.where(np.isnan(z) | np.isnan(t), np.nan, 0.0)
            hess = _weighted_hess(hess, weight, z.shape, cdt)
        losses, grad = _weighted(losses, grad, weight, z.shape, cdt)
        denom = (z.shape[0] if z.ndim else 1) if batchmean else z.size
        return _finish(
            losses,
            grad,
            denom,
            "mean" if batchmean else reduction,
            cdt,
            return_grad,
            out,
            grad_out,
            hess,
            hess_out,
        )


def heatmap_focal_loss(
    logits,
    heatmap,
    *,
    alpha=2.0,
    beta=4.0,
    weight=None,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """CenterNet / CornerNet penalty-reduced focal loss, from the logits.

    Per element, ``p = sigmoid(x)``, ``t`` the heatmap, in log space (``log p =
    -softplus(-x)``, ``log(1 - p) = -softplus(x)``)::

        t == 1:  loss = -(1 - p)**alpha * log p
                 grad = (1 - p)**alpha * (alpha * p * log p - (1 - p))
        else:    loss = -(1 - t)**beta * p**alpha * log(1 - p)
                 grad = (1 - t)**beta * p**alpha * (p - alpha * (1 - p) * log(1 - p))

    (``p log p`` and ``(1 - p) log(1 - p)`` are 0 where ``p`` resp. ``1 - p`` is 0, their
    limits), times ``w``. The hessian, ``s = p (1 - p)``::

        t == 1:  hess = (1 - p)**alpha * (alpha p log p (1 - p - alpha p) + (2 alpha + 1) s)
        else:    hess = (1 - t)**beta * p**alpha
                        * (alpha (1 - p) log(1 - p) (p - alpha (1 - p)) + (2 alpha + 1) s)

    ``"mean"`` divides by ``max(1, number of t == 1)`` over the whole input (the weight
    does not change the count): an empty input gives 0, not NaN.
    """
    alpha = _at_least("alpha", alpha, 0.0)
    beta = _at_least("beta", beta, 0.0)
    x, target, cdt = _elementwise_inputs(
        logits,
        heatmap,
        "logits",
        reduction,
        return_grad,
        out,
        grad_out,
        return_hess,
        hess_out,
    )
    alpha, beta = _param_in(alpha, cdt), _param_in(beta, cdt)
    with np.errstate(all="ignore"):
        z = _widen(x, cdt)
        t = _widen(target, cdt)
        pos = t == 1
        p, q = _sigmoid_pair(z)  # p and 1 - p
        nlog_p = _softplus(-z)  # -log p
        nlog_q = _softplus(z)  # -log(1 - p)
        q_a = np.power(q, alpha)  # 0**0 == 1
        p_a = np.power(p, alpha)
        red = np.power(1.0 - t, beta)
        losses = np.where(pos, q_a * nlog_p, red * p_a * nlog_q)
        grad = None
        if return_grad:
            p_log_p = np.where(p == 0, 0.0, -p * nlog_p)
            q_log_q = np.where(q == 0, 0.0, -q * nlog_q)
            g_pos = q_a * (alpha * p_log_p - q)
            g_neg = red * p_a * (p - alpha * q_log_q)
            grad = np.where(pos, g_pos, g_neg)
        hess = None
        if return_hess:
            p_log_p = np.where(p == 0, 0.0, -p * nlog_p)
            q_log_q = np.where(q == 0, 0.0, -q * nlog_q)
            s2 = (2.0 * alpha + 1.0) * p * q
            h_pos = q_a * (alpha * p_log_p * (q - alpha * p) + s2)
            h_neg = red * p_a * (alpha * q_log_q * (p - alpha * q) + s2)
            hess = _weighted_hess(np.where(pos, h_pos, h_neg), weight, z.shape, cdt)
        losses, grad = _weighted(losses, grad, weight, z.shape, cdt)
        denom = max(1, int(np.count_nonzero(pos)))
        return _finish(
            losses, grad, denom, reduction, cdt, return_grad, out, grad_out, hess, hess_out
        )


# ----------------------------------------------------------------------------------------
# The wider family: class-index losses (class axis last)
# ----------------------------------------------------------------------------------------


def nll_loss(
    input,
    target,
    *,
    weight=None,
    ignore_index=-100,
    axis=-1,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Negative log-likelihood (``torch.nn.functional.nll_loss`` with the class axis last);
    ``input`` holds log-probabilities, ``target`` integer class indices of shape
    ``input.shape[:-1]``. Per row::

        loss = -w[y] * x[y]
        grad = -w[y] at the target class, 0 elsewhere

    Rows with ``y == ignore_index`` give 0 loss and 0 gradient (whatever their values);
    ``"mean"`` divides by the summed ``w[y]`` of the other rows.
    """
    moved = _moved_class_axis(nll_loss, locals(), "input")
    if moved is not None:
        return moved
    ignore_index = operator.index(ignore_index)
    x, t, ignored, cdt = _class_index_inputs(
        input, target, "input", reduction, return_grad, out, grad_out, ignore_index
    )
    batch_shape, n_classes = x.shape[:-1], x.shape[-1]
    w = _class_weight(weight, "weight", n_classes, cdt)
    n_rows = t.size
    keep = ~ignored
    with np.errstate(all="ignore"):
        z = _widen(x, cdt).reshape(n_rows, n_classes)
        rows = np.flatnonzero(keep)
        w_t = np.zeros(n_rows)
        w_t[rows] = w[t[rows]]
        x_t = np.zeros(n_rows)
        x_t[rows] = z[rows, t[rows]]
        losses = np.where(keep, -w_t * x_t, 0.0)
        grad = None
        if return_grad:
            grad = np.zeros((n_rows, n_classes))
            grad[rows, t[rows]] = -w_t[rows]
            grad = grad.reshape(x.shape)
        return _finish(
            losses.reshape(batch_shape), grad, w_t.sum(), reduction, cdt, return_grad, out, grad_out
        )


def softmax_focal_loss(
    logits,
    target,
    *,
    alpha=None,
    gamma=2.0,
    ignore_index=-100,
    axis=-1,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    return_hess=False,
    hess_out=None,
    n_threads=None,
):
    """Multi-class focal loss on ``p = softmax(z)`` over the last axis, integer class
    indices ``y``. Per row, ``lp = log p_y``, ``q = 1 - p_y`` (the other classes' mass,
    summed: no cancellation)::

        loss   = -alpha[y] * q**gamma * lp
        c      = alpha[y] * q**gamma * (1 - gamma * p_y * lp / q)    (lp / q -> -1 at q == 0)
        grad_j = c * p_j     (j != y)
        grad_y = -c * q

    ``alpha`` None means 1 for every class. Rows with ``y == ignore_index`` give 0 loss and
    0 gradient; ``"mean"`` divides by the number of the other rows (not by summed alpha).
    ``gamma = 0`` with ``alpha = None`` is softmax_cross_entropy.

    The hessian's diagonal by the chain rule through ``P = p_y``: with ``f(P) = -(1 -
    P)**gamma log P`` (``u = 1 - P``), ``h_j = alpha[y] (f''(P) (dP/dz_j)**2 + f'(P)
    d2P/dz_j2)``, ``dP/dz_j = P ([j == y] - p_j)``::

        h_y = alpha[y] (F2 u**2 + F1 u (u - P)),   h_j = alpha[y] (F2 p_j**2 + F1 p_j (2 p_j - 1))
        F1 = P f'(P)    = gamma u**(gamma - 1) P log P - u**gamma
        F2 = P**2 f''(P) = -gamma (gamma - 1) u**(gamma - 2) P**2 log P
                           + 2 gamma u**(gamma - 1) P + u**gamma

    (0 where ``u == 0``: every ``p_j`` of the row is then 0 or 1).
    """
    moved = _moved_class_axis(softmax_focal_loss, locals(), "logits")
    if moved is not None:
        return moved
    gamma = _at_least("gamma", gamma, 0.0)
    ignore_index = operator.index(ignore_index)
    x, t, ignored, cdt = _class_index_inputs(
        logits,
        target,
        "logits",
        reduction,
        return_grad,
        out,
        grad_out,
        ignore_index,
        return_hess,
        hess_out,
    )
    batch_shape, n_classes = x.shape[:-1], x.shape[-1]
    a = _class_weight(alpha, "alpha", n_classes, cdt)
    n_rows = t.size
    keep = ~ignored
    with np.errstate(all="ignore"):
        z = _widen(x, cdt).reshape(n_rows, n_classes)
        m = np.max(z, axis=1, keepdims=True, initial=-np.inf)
        e = np.exp(z - m)
        s = e.sum(axis=1)
        onehot = np.zeros((n_rows, n_classes), bool)
        if n_classes:
            onehot[np.arange(n_rows), t] = True
        other = np.where(onehot, 0.0, e).sum(axis=1)
        e_y = np.where(onehot, e, 0.0).sum(axis=1)
        z_y = np.where(onehot, z - m, 0.0).sum(axis=1)
        q = other / s
        p_y = e_y / s
        lp = np.where(q < 0.5, np.log1p(-q), z_y - np.log(s))
        mod = np.power(q, gamma)  # 0**0 == 1
        a_y = a[t] if n_classes else np.ones(n_rows)
        losses = np.where(keep, -a_y * mod * lp, 0.0)
        grad = None
        if return_grad:
            ratio = np.where(q == 0, -1.0, lp / q)
            c = a_y * mod * (1.0 - gamma * p_y * ratio)
            grad = c[:, None] * e / s[:, None]
            grad = np.where(onehot, -(c * q)[:, None], grad)
            grad = np.where(keep[:, None], grad, 0.0).reshape(x.shape)
        hess = None
        if return_hess:
            u, P = q[:, None], p_y[:, None]
            logP = lp[:, None]
            F1 = gamma * u ** (gamma - 1) * P * logP - u**gamma
            F2 = (
                -gamma * (gamma - 1) * u ** (gamma - 2) * P * P * logP
                + 2 * gamma * u ** (gamma - 1) * P
                + u**gamma
            )
            if gamma == 0:
                F1, F2 = -np.ones_like(u), np.ones_like(u)
            p = e / s[:, None]
            h = np.where(onehot, F2 * u * u + F1 * u * (u - P), F2 * p * p + F1 * p * (2 * p - 1))
            h = np.where((u == 0) | ~keep[:, None], 0.0, a_y[:, None] * h)
            hess = h.reshape(x.shape)
        denom = int(np.count_nonzero(keep))
        return _finish(
            losses.reshape(batch_shape),
            grad,
            denom,
            reduction,
            cdt,
            return_grad,
            out,
            grad_out,
            hess,
            hess_out,
        )


def multi_margin_loss(
    input,
    target,
    *,
    p=1,
    margin=1.0,
    weight=None,
    axis=-1,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Multi-class hinge loss (``torch.nn.functional.multi_margin_loss`` with the class
    axis last), ``p`` in {1, 2}. Per row, ``z_j = margin - x[y] + x[j]``::

        loss   = w[y] / C * sum_{j != y} max(0, z_j)**p
        grad_j = w[y] / C * (1 if p == 1 else 2 z_j)   where z_j > 0, else 0   (j != y)
        grad_y = -sum_{j != y} grad_j

    (NaN where ``z_j`` is NaN.) Every class index is checked (no ignore_index);
    ``"mean"`` divides by the number of rows.
    """
    moved = _moved_class_axis(multi_margin_loss, locals(), "input")
    if moved is not None:
        return moved
    p = _finite_param("p", p)
    if p not in (1.0, 2.0):
        raise ValueError(f"p must be in {{1, 2}}, got {p!r}")
    margin = _finite_param("margin", margin)
    x, t, _, cdt = _class_index_inputs(
        input, target, "input", reduction, return_grad, out, grad_out, None
    )
    batch_shape, n_classes = x.shape[:-1], x.shape[-1]
    w = _class_weight(weight, "weight", n_classes, cdt)
    margin = _param_in(margin, cdt)  # as the kernels take it (float32: 1e-124 is 0)
    n_rows = t.size
    with np.errstate(all="ignore"):
        zx = _widen(x, cdt).reshape(n_rows, n_classes)
        onehot = np.zeros((n_rows, n_classes), bool)
        if n_classes:
            onehot[np.arange(n_rows), t] = True
        x_y = np.where(onehot, zx, 0.0).sum(axis=1)
        z = (zx - x_y[:, None]) + margin  # the difference first: exact for small margins
        h = np.maximum(z, 0.0)
        if p == 2.0:
            h = h * h
        w_y = (w[t] if n_classes else np.ones(n_rows)) / max(n_classes, 1)
        losses = w_y * np.where(onehot, 0.0, h).sum(axis=1)
        grad = None
        if return_grad:
            d = np.where(z > 0, 1.0 if p == 1.0 else 2.0 * z, 0.0)
            d = _nan_or(d, z)
            d = np.where(onehot, 0.0, d) * w_y[:, None]
            grad = np.where(onehot, -d.sum(axis=1, keepdims=True), d).reshape(x.shape)
        return _finish(
            losses.reshape(batch_shape), grad, n_rows, reduction, cdt, return_grad, out, grad_out
        )


# ----------------------------------------------------------------------------------------
# The wider family: per sample
# ----------------------------------------------------------------------------------------


def dice_loss(
    logits,
    target,
    *,
    smooth=1.0,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Soft Dice loss per sample on ``p = sigmoid(x)``.

    The first axis is the sample axis; every other axis is summed within a sample (a 1-D
    input is N samples of one element; a 0-d input is a ValueError). Per sample::

        Num  = 2 * sum(p * t) + smooth
        Den  = sum(p) + sum(t) + smooth
        loss = 1 - Num / Den
        grad = p * (1 - p) * (Num - 2 * t * Den) / Den**2

    ``"none"`` gives shape ``(N,)``; ``"mean"`` divides by N.
    """
    smooth = _at_least("smooth", smooth, 0.0)
    _check_reduction(reduction)
    x = np.asarray(logits)
    target = np.asarray(target)
    cdt = _compute_dtype(x, "logits")
    if x.ndim == 0:
        raise ValueError("logits must have at least one dimension (the sample axis)")
    _check_numeric(target, "target")
    if target.shape != x.shape:
        raise ValueError(f"target must have the shape of logits {x.shape}, got {target.shape}")
    n = x.shape[0]
    _check_buffers(reduction, return_grad, out, grad_out, (n,), x.shape, cdt)
    with np.errstate(all="ignore"):
        z = _widen(x, cdt).reshape(n, -1) if x.size else np.zeros((n, 0))
        t = _widen(target, cdt).reshape(z.shape)
        p, q = _sigmoid_pair(z)
        num = 2.0 * (p * t).sum(axis=1) + smooth
        den = p.sum(axis=1) + t.sum(axis=1) + smooth
        losses = 1.0 - num / den
        grad = None
        if return_grad:
            grad = p * q * (num[:, None] - 2.0 * t * den[:, None]) / (den * den)[:, None]
            grad = grad.reshape(x.shape)
        return _finish(losses, grad, n, reduction, cdt, return_grad, out, grad_out)


# ----------------------------------------------------------------------------------------
# The wider family: several differentiable inputs
# ----------------------------------------------------------------------------------------


def _multi_inputs(
    arrays, names, n_grads, rows, target_shape_rows, reduction, return_grad, out, grad_out
):
    """Shared checks of the several-input losses. ``arrays``: the positional arguments;
    the first ``n_grads`` are differentiable (one shape, the compute dtype of the first);
    a remaining target has the loss's shape. Returns (arrays, cdt, loss shape, grad_outs)."""
    _check_reduction(reduction)
    arrays = [np.asarray(a) for a in arrays]
    cdt = _compute_dtype(arrays[0], names[0])
    for a, name in zip(arrays, names):
        _check_numeric(a, name)
    shape = arrays[0].shape
    for a, name in zip(arrays[1:n_grads], names[1:n_grads]):
        if a.shape != shape:
            raise ValueError(f"{name} must have the shape of {names[0]} {shape}, got {a.shape}")
    if rows and not shape:
        raise ValueError(f"{names[0]} must have at least one dimension (the row axis)")
    lshape = shape[:-1] if rows else shape
    for a, name in zip(arrays[n_grads:], names[n_grads:]):
        want = lshape if target_shape_rows else shape
        if a.shape != want:
            raise ValueError(f"{name} must have shape {want}, got {a.shape}")
    if out is not None and reduction != "none":
        raise ValueError("out is only used with reduction='none'")
    _check_buffer(out, "out", lshape, cdt)
    if grad_out is not None:
        if not return_grad:
            raise ValueError("grad_out is only used with return_grad=True")
        if not isinstance(grad_out, (tuple, list)) or len(grad_out) != n_grads:
            raise ValueError(f"grad_out must be a tuple of {n_grads} arrays (or None)")
        for k, g in enumerate(grad_out):
            _check_buffer(g, f"grad_out[{k}]", shape, cdt)
        grad_out = tuple(grad_out)
    else:
        grad_out = (None,) * n_grads
    return arrays, cdt, lshape, grad_out


def _finish_multi(losses, grads, denom, reduction, cdt, return_grad, out, grad_out):
    """_finish with a tuple of gradients."""
    if reduction == "none":
        loss = _store(losses, cdt, out)
    else:
        total = losses.sum()
        if reduction == "mean":
            total = total / denom if denom != 0 else np.nan
        loss = cdt.type(total)
    if not return_grad:
        return loss
    result = []
    for g, buf in zip(grads, grad_out):
        if reduction == "mean":
            g = g / denom if denom != 0 else np.zeros_like(g)
        result.append(_store(g, cdt, buf))
    return loss, tuple(result)


def margin_ranking_loss(
    input1,
    input2,
    target,
    *,
    margin=0.0,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Margin ranking loss (``torch.nn.functional.margin_ranking_loss``). Per element,
    ``z = -y * (x1 - x2) + margin`` (targets not checked)::

        loss             = max(0, z)
        (grad1, grad2)   = (-y, y)   where z >= 0 (PyTorch's clamp_min passes ties), else 0
                           (NaN where z is NaN)

    ``return_grad=True`` returns ``(loss, (grad1, grad2))``; ``"mean"`` divides by the
    number of elements.
    """
    margin = _finite_param("margin", margin)
    (x1, x2, y), cdt, lshape, grad_out = _multi_inputs(
        (input1, input2, target),
        ("input1", "input2", "target"),
        2,
        False,
        False,
        reduction,
        return_grad,
        out,
        grad_out,
    )
    with np.errstate(all="ignore"):
        a, b, t = _widen(x1, cdt), _widen(x2, cdt), _widen(y, cdt)
        z = -t * (a - b) + margin
        losses = np.maximum(z, 0.0)
        grads = None
        if return_grad:
            g2 = _nan_or(np.where(z >= 0, t, 0.0), z)
            grads = (-g2, g2)
        return _finish_multi(losses, grads, z.size, reduction, cdt, return_grad, out, grad_out)


def triplet_margin_loss(
    anchor,
    positive,
    negative,
    *,
    margin=1.0,
    p=2.0,
    eps=1e-6,
    swap=False,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Triplet margin loss (``torch.nn.functional.triplet_margin_loss``) over rows of the
    last axis (a 1-D input is one row: a 0-d loss). With ``d(u, v) = ||u - v + eps||_p``
    (PyTorch's pairwise_distance)::

        d_neg = d(a, n), or with swap min(d(a, n), d(p, n))   (a tie splits the gradient
                                                               half / half, as torch.min)
        loss  = max(0, d(a, p) - d_neg + margin)

    The gradient passes where the clamp's argument is >= 0; the gradient of ``||v||_p`` is
    ``sign(v_j) |v_j|^(p-1) / ||v||^(p-1)`` (0 where ``v_j == 0`` or the norm is 0).
    ``return_grad=True`` returns ``(loss, (grad_anchor, grad_positive, grad_negative))``;
    ``"mean"`` divides by the number of rows.
    """
    margin = _finite_param("margin", margin)
    p = _at_least("p", p, 0.0, strict=True)
    eps = _finite_param("eps", eps)
    swap = _check_bool("swap", swap)
    (a, pos, neg), cdt, lshape, grad_out = _multi_inputs(
        (anchor, positive, negative),
        ("anchor", "positive", "negative"),
        3,
        True,
        True,
        reduction,
        return_grad,
        out,
        grad_out,
    )
    with np.errstate(all="ignore"):
        a, pos, neg = _widen(a, cdt), _widen(pos, cdt), _widen(neg, cdt)
        d_ap, g_ap = _rows_norm(a - pos + eps, p)
        d_an, g_an = _rows_norm(a - neg + eps, p)
        w_an = np.ones(lshape)
        w_pn = np.zeros(lshape)
        d_neg = d_an
        g_pn = np.zeros_like(g_an)
        if swap:
            d_pn, g_pn = _rows_norm(pos - neg + eps, p)
            d_neg = np.minimum(d_an, d_pn)
            w_an = np.where(d_an < d_pn, 1.0, np.where(d_an == d_pn, 0.5, 0.0))
            w_pn = np.where(d_pn < d_an, 1.0, np.where(d_an == d_pn, 0.5, 0.0))
            # NaN distances: np.minimum propagates NaN; the gradient is NaN as well
            nan = np.isnan(d_an) | np.isnan(d_pn)
            w_an = np.where(nan, np.nan, w_an)
            w_pn = np.where(nan, np.nan, w_pn)
        z = d_ap - d_neg + margin
        losses = np.maximum(z, 0.0)
        grads = None
        if return_grad:
            s = _nan_or(np.where(z >= 0, 1.0, 0.0), z)[..., None]
            wa, wp = w_an[..., None], w_pn[..., None]
            ga = s * (g_ap - wa * g_an)
            gp = s * (-g_ap - wp * g_pn)
            gn = s * (wa * g_an + wp * g_pn)
            grads = (ga, gp, gn)
        return _finish_multi(losses, grads, losses.size, reduction, cdt, return_grad, out, grad_out)


def contrastive_loss(
    x1,
    x2,
    target,
    *,
    margin=1.0,
    eps=1e-6,
    reduction="mean",
    return_grad=False,
    out=None,
    grad_out=None,
    n_threads=None,
):
    """Contrastive loss over rows of the last axis; ``target`` (shape
    ``x1.shape[:-1]``) is 1 for a similar pair. With ``u = x1 - x2 + eps`` and ``d =
    ||u||_2`` per row::

        loss  = y * d**2 + (1 - y) * max(0, margin - d)**2
        grad1 = (2 y - 2 (1 - y) * max(0, margin - d) / d) * u   (the second term 0 where
                                                               d == 0 or margin - d <= 0)
        grad2 = -grad1

    ``return_grad=True`` returns ``(loss, (grad1, grad2))``; ``"mean"`` divides by the
    number of rows.
    """
    margin = _finite_param("margin", margin)
    eps = _finite_param("eps", eps)
    (a, b, y), cdt, lshape, grad_out = _multi_inputs(
        (x1, x2, target),
        ("x1", "x2", "target"),
        2,
        True,
        True,
        reduction,
        return_grad,
        out,
        grad_out,
    )
    with np.errstate(all="ignore"):
        u = _widen(a, cdt) - _widen(b, cdt) + eps
        t = _widen(y, cdt)
        d2 = (u * u).sum(axis=-1)
        d = np.sqrt(d2)
        h = np.maximum(margin - d, 0.0)
        losses = t * d2 + (1.0 - t) * h * h
        grads = None
        if return_grad:
            push = np.where((d == 0) | ~(margin - d > 0), 0.0, h / d)
            push = _nan_or(push, d)
            c = 2.0 * t - 2.0 * (1.0 - t) * push
            g1 = c[..., None] * u
            grads = (g1, -g1)
        return _finish_multi(losses, grads, losses.size, reduction, cdt, return_grad, out, grad_out)
