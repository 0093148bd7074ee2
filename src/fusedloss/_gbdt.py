"""What the XGBoost and LightGBM objectives share (fusedloss.xgboost, fusedloss.lightgbm).

One `GBDTLoss` per objective or metric: the loss's name and parameters, checked once when
it is made; `grad_hess` gives the per-sample gradient and Hessian diagonal of the loss on
raw margins (reduction "sum", so nothing is scaled by the number of samples), sample weights
multiplied in and the Hessian floored after weighting; `mean` gives the weighted mean loss.
Neither library is imported here: the two modules pass in what they read from their data.
"""

import importlib
import inspect
import math

import numpy as np

from . import losses

# name -> kind: "elementwise" losses take margins of any shape and a target of that shape;
# "classes" losses take (n_samples, n_classes) margins and class indices.
KINDS = {
    "binary_cross_entropy_with_logits": "elementwise",
    "sigmoid_focal_loss": "elementwise",
    "huber_loss": "elementwise",
    "mse_loss": "elementwise",
    "softmax_cross_entropy": "classes",
    "softmax_focal_loss": "classes",
}
# Keywords the objective sets itself (the layout too: the class axis is the last).
_RESERVED = ("reduction", "return_grad", "return_hess", "out", "grad_out", "hess_out", "axis")


def import_library(module, extra):
    """Import `module` (xgboost, lightgbm) or say how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"fusedloss.{extra} needs the {module} package: "
            f'pip install "fusedloss[{extra}]" (or pip install {module})'
        ) from e


def _floor_value(floor, dtype):
    """`floor` in `dtype`, rounded up: the floored Hessian is >= floor itself."""
    f = dtype.type(floor)
    if f < floor:
        f = np.nextafter(f, dtype.type(np.inf))
    return f


def weights_or_none(weights, n):
    """Sample weights as an (n,) array, or None when there are none (XGBoost gives an
    empty array, LightGBM None)."""
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.size == 0:
        return None
    if w.shape != (n,):
        if w.size == n:
            return w.reshape(n)
        raise ValueError(f"sample weights have shape {w.shape}, expected ({n},) (one per sample)")
    return w


def _store(dst, src, w=None):
    """dst[...] = src (times w per row), cast to dst's dtype. Between 2-D layouts that
    differ (C-ordered results into LightGBM's Fortran-ordered arrays) the transposing copy
    goes through blocks of rows that stay in cache: NumPy's whole-array copy strides across
    memory and is about three times slower."""
    if w is not None:
        w = w[:, None] if src.ndim == 2 else w
    if src.ndim == 1 or dst.flags.c_contiguous == src.flags.c_contiguous:
        blocks = [slice(None)]
    else:
        step = max(64, 32768 // src.shape[1])
        blocks = [slice(i, i + step) for i in range(0, src.shape[0], step)]
    for b in blocks:
        if w is None:
            np.copyto(dst[b], src[b], casting="same_kind")
        else:
            np.multiply(src[b], w[b], out=dst[b], casting="same_kind")


class GBDTLoss:
    """A fusedloss loss, its parameters checked, as a boosting objective or metric.

    `where` names the public call in messages, e.g. "fusedloss.xgboost.objective"."""

    def __init__(self, where, name, params, hess_floor=1e-6):
        if not isinstance(name, str) or name not in KINDS:
            raise ValueError(
                f"{where}: unknown loss {name!r}; the objectives are: " + ", ".join(KINDS)
            )
        self.where = where
        self.name = name
        self.kind = KINDS[name]
        fn = getattr(losses, name)
        sig = inspect.signature(fn).parameters
        allowed = [k for k, p in sig.items() if p.kind is p.KEYWORD_ONLY and k not in _RESERVED]
        if self.kind == "elementwise":
            # per-sample weights come from the dataset (or scikit-learn's sample_weight)
            allowed.remove("weight")
        for k in params:
            if k in _RESERVED:
                raise ValueError(f"{where}: {k}= is set by the objective itself")
            if k == "weight" and self.kind == "elementwise":
                raise ValueError(
                    f"{where}: {name}'s weight= is not a parameter of the objective; give "
                    f"sample weights to the dataset (weight=) or to fit (sample_weight=)"
                )
            if k not in allowed:
                raise ValueError(
                    f"{where}: {name} has no parameter {k!r}; its parameters are: "
                    + ", ".join(allowed)
                )
        self.params = dict(params)
        if hess_floor is not None:
            number = isinstance(hess_floor, (int, float, np.integer, np.floating))
            if (
                not number
                or isinstance(hess_floor, (bool, np.bool_))
                or not (math.isfinite(hess_floor) and hess_floor >= 0)
            ):
                raise ValueError(
                    f"{where}: hess_floor must be a finite number >= 0, got {hess_floor!r}"
                )
            hess_floor = float(hess_floor)
        self.hess_floor = hess_floor
        self._defaults = {k: sig[k].default for k in allowed}
        self._check_params()

    def param(self, key):
        return self.params.get(key, self._defaults.get(key))

    def describe(self):
        args = [repr(self.name)]
        if self.hess_floor is not None:
            args.append(f"hess_floor={self.hess_floor!r}")
        args += [f"{k}={v!r}" for k, v in self.params.items()]
        return f"{self.where}({', '.join(args)})"

    def _check_params(self):
        """Values checked by the loss itself, once, on a tiny input."""
        if self.kind == "classes":
            per_class = [self.params.get(k) for k in ("weight", "alpha")]
            per_class = [np.shape(v) for v in per_class if v is not None]
            n_classes = per_class[0][0] if per_class and len(per_class[0]) == 1 else 2
            x, t = np.zeros((1, n_classes)), np.zeros(1, dtype=np.int64)
        else:
            pw = self.params.get("pos_weight")
            width = np.shape(pw)[-1:] if pw is not None else ()
            x = np.zeros((1,) + tuple(width))
            t = np.zeros_like(x)
        try:
            getattr(losses, self.name)(x, t, reduction="sum", return_grad=True, **self.params)
        except (TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{self.describe()}: {e}") from None

    # -- inputs -------------------------------------------------------------------------

    def _margins(self, preds):
        x = np.asarray(preds)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"{self.where}: predictions must be numeric, got dtype {x.dtype}")
        if self.kind == "classes":
            if x.ndim != 2 or x.shape[1] < 2:
                raise ValueError(
                    f"{self.where}: {self.name} needs (n_samples, n_classes) margins with "
                    f"n_classes >= 2, got shape {x.shape} (set the number of classes: "
                    f"num_class for the native APIs)"
                )
            # the class axis last, C-contiguous (LightGBM's multi-class margins are
            # Fortran-ordered: this is their one copy)
            x = np.ascontiguousarray(x)
        elif x.ndim not in (1, 2):
            raise ValueError(f"{self.where}: margins must be 1-D or 2-D, got shape {x.shape}")
        return x

    def _elementwise_target(self, labels, x):
        y = np.asarray(labels)
        if y.shape != x.shape:
            if y.size != x.size:
                raise ValueError(
                    f"{self.where}: {y.size} labels for margins of shape {x.shape}; "
                    f"{self.name} needs one label per margin"
                )
            y = y.reshape(x.shape)
        return y

    def class_indices(self, labels, n, n_classes):
        """Float labels as int64 class indices; whole numbers in [0, n_classes) (or the
        ignore_index given as a parameter), else a ValueError naming the first bad one."""
        y = np.asarray(labels)
        if y.shape != (n,):
            if y.size != n:
                raise ValueError(
                    f"{self.where}: {y.size} labels for {n} samples; {self.name} needs one "
                    f"class index per sample"
                )
            y = y.reshape(n)
        if y.dtype.kind not in "fiu":
            raise ValueError(
                f"{self.where}: labels must be class indices (whole numbers), got dtype {y.dtype}"
            )
        with np.errstate(invalid="ignore"):
            t = y.astype(np.int64)
        ignore = self.params.get("ignore_index")  # only one given explicitly is a label
        if n == 0 or (
            ignore is None
            and t.min() >= 0
            and t.max() < n_classes
            and (y.dtype.kind != "f" or np.array_equal(t, y))
        ):
            return t
        ok = (t >= 0) & (t < n_classes)
        if ignore is not None:
            ok |= t == ignore
        if y.dtype.kind == "f":
            ok &= t == y
        bad = np.flatnonzero(~ok)
        if not bad.size:
            return t
        i = int(bad[0])
        also = f" or {ignore} (ignore_index)" if ignore is not None else ""
        raise ValueError(
            f"{self.where}: label[{i}] = {y[i].item()!r} is not a class index: {self.name} needs "
            f"labels that are whole numbers in [0, {n_classes}){also}"
        )

    # -- the objective ------------------------------------------------------------------

    def grad_hess(self, preds, labels, weights, out=None):
        """(grad, hess) of the summed loss with respect to the margins, each sample's
        weight multiplied in, the Hessian raised to at least hess_floor after weighting.

        Without `out` they are new arrays of the margins' shape and compute dtype;
        `out=(grad, hess)` receives them instead (any dtype or memory order: the copy into
        them is also the weighting pass where there is one)."""
        x = self._margins(preds)
        fn = getattr(losses, self.name)
        w = weights_or_none(weights, x.shape[0])
        if self.kind == "elementwise":
            y = self._elementwise_target(labels, x)
            kw = {} if w is None else {"weight": w if x.ndim == 1 else w[:, None]}
            _, g, h = fn(
                x, y, reduction="sum", return_grad=True, return_hess=True, **kw, **self.params
            )
            w = None  # weighted by the kernel
        else:
            t = self.class_indices(labels, x.shape[0], x.shape[1])
            _, g, h = fn(x, t, reduction="sum", return_grad=True, return_hess=True, **self.params)
        if out is None:
            if w is not None:
                w = w.astype(g.dtype, copy=False)[:, None]
                g *= w
                h *= w
        else:
            g_out, h_out = out
            _store(g_out, g, w)
            _store(h_out, h, w)
            g, h = g_out, h_out
        if self.hess_floor is not None:
            np.maximum(h, _floor_value(self.hess_floor, h.dtype), out=h)
        return g, h

    # -- the metric ---------------------------------------------------------------------

    def mean(self, preds, labels, weights):
        """The loss's mean on raw margins, weighted by the sample weights when there are
        any, as a Python float: sum of w_i loss_i over the sum of w_i d_i, d_i the sample's
        share of the loss's own mean denominator (1 for an element-wise loss, averaged over
        its elements for 2-D margins; for the class losses 0 where ignore_index, the
        class weight of its label for cross-entropy with weight=).  Without sample weights
        it is the loss's reduction="mean"."""
        x = self._margins(preds)
        fn = getattr(losses, self.name)
        w = weights_or_none(weights, x.shape[0])
        if self.kind == "elementwise":
            y = self._elementwise_target(labels, x)
            if w is None:
                return float(fn(x, y, reduction="mean", **self.params))
            s = fn(x, y, weight=w if x.ndim == 1 else w[:, None], reduction="sum", **self.params)
            per_sample = x[0].size if x.shape[0] else 1
            return float(s) / (float(np.sum(w, dtype=np.float64)) * per_sample)
        t = self.class_indices(labels, x.shape[0], x.shape[1])
        if w is None:  # the loss's own mean (ignored rows, class weights: its denominator)
            return float(fn(x, t, reduction="mean", **self.params))
        # each row's share of the mean's denominator: its class weight (cross-entropy;
        # 1 for softmax focal loss, whose alpha does not count), 0 where ignored
        rows = fn(x, t, reduction="none", **self.params).astype(np.float64, copy=False)
        ignore = self.param("ignore_index")
        valid = t != ignore
        share = valid.astype(np.float64)
        cw = self.params.get("weight") if self.name == "softmax_cross_entropy" else None
        if cw is not None:
            share *= np.asarray(cw, dtype=np.float64)[np.where(valid, t, 0)]
        w = w.astype(np.float64, copy=False)
        den = float(np.dot(w, share))
        return float(np.dot(w, rows) / den) if den != 0 else math.nan


class Wrapper:
    """What a library's objective and metric objects share: the checked GBDTLoss, its
    name, parameters and floor, and the repr."""

    WHERE = ""  # e.g. "fusedloss.xgboost.objective"

    def __init__(self, name, hess_floor, params):
        self._loss = GBDTLoss(self.WHERE, name, params, hess_floor)

    @property
    def name(self):
        return self._loss.name

    @property
    def params(self):
        return dict(self._loss.params)

    @property
    def hess_floor(self):
        return self._loss.hess_floor

    def __repr__(self):
        return self._loss.describe()
