"""fusedloss losses as LightGBM custom objectives and metrics.

    import lightgbm as lgb
    import fusedloss.lightgbm

    obj = fusedloss.lightgbm.objective("softmax_cross_entropy", label_smoothing=0.1)
    booster = lgb.train({"objective": obj, "num_class": 5}, train_set, 100)  # native
    model = lgb.LGBMClassifier(objective=obj).fit(X, y)  # scikit-learn

The objective gives LightGBM the per-sample gradient and Hessian diagonal of the loss on
the raw margins (as fusedloss defines the loss: ``mse_loss`` gives ``2 e`` and ``2``);
the sample weights of the Dataset (or scikit-learn's ``sample_weight``) are multiplied in
and each Hessian is raised to at least ``hess_floor`` after weighting. LightGBM starts a
custom objective's boosting from margin 0 (unless the Dataset has an ``init_score``).

Layouts (LightGBM 4.x): the margins come as float64, 1-D for one output and
``(n_samples, n_classes)`` Fortran-ordered for several classes; LightGBM trains on float32
gradients, flattened class by class. The objective returns float32 arrays in exactly that
layout (1-D, or ``(n_samples, n_classes)`` Fortran-ordered), so LightGBM uses them without a
further copy; 1-D margins are passed to the kernel as they are, multi-class margins are
copied once into the C order the kernels need.

With a custom objective, ``LGBMClassifier.predict`` and ``predict_proba`` return raw
margins (LightGBM's behaviour): apply the link yourself (sigmoid / softmax, or argmax).
"""

import sys

import numpy as np

from . import _gbdt

__all__ = ["objective", "metric"]

_F32 = np.dtype(np.float32)


def _lightgbm():
    return _gbdt.import_library("lightgbm", "lightgbm")


def _is_dataset(obj):
    lgb = sys.modules.get("lightgbm")
    return lgb is not None and isinstance(obj, lgb.Dataset)


class Objective(_gbdt.Wrapper):
    """A LightGBM custom objective; make one with `fusedloss.lightgbm.objective`.

    Called as ``obj(preds, train_set)`` (native ``lgb.train``: raw margins and the
    Dataset, whose labels and weights are used) or ``obj(y_true, y_pred, weight)`` (the
    scikit-learn estimators, which pass the weight because the call takes three
    arguments). Returns float32 ``(grad, hess)`` in LightGBM's layout (1-D, or
    ``(n_samples, n_classes)`` Fortran-ordered)."""

    WHERE = "fusedloss.lightgbm.objective"

    def __call__(self, y_true, y_pred, weight=None):
        if _is_dataset(y_pred):  # native: (preds, train_set)
            preds = y_true
            labels, weight = y_pred.get_label(), y_pred.get_weight()
        else:  # scikit-learn: (y_true, y_pred, weight)
            preds, labels = y_pred, y_true
        shape = np.shape(preds)
        out = (np.empty(shape, _F32, order="F"), np.empty(shape, _F32, order="F"))
        return self._loss.grad_hess(preds, labels, weight, out=out)


class Metric(_gbdt.Wrapper):
    """A LightGBM custom metric: ``(name, value, False)``, the loss's (weighted) mean on
    raw margins; lower is better. LightGBM passes raw margins to metrics when the
    objective is a custom one."""

    WHERE = "fusedloss.lightgbm.metric"

    def __init__(self, name, params):
        super().__init__(name, None, params)
        self.__name__ = name

    def __call__(self, y_true, y_pred, weight=None):
        if _is_dataset(y_pred):
            preds, labels, weight = y_true, y_pred.get_label(), y_pred.get_weight()
        else:
            preds, labels = y_pred, y_true
        return self.__name__, self._loss.mean(preds, labels, weight), False


def objective(name, *, hess_floor=1e-6, **params):
    """A LightGBM custom objective computing the loss `name` with fusedloss.

    name : one of "binary_cross_entropy_with_logits", "sigmoid_focal_loss",
        "softmax_cross_entropy", "softmax_focal_loss", "huber_loss", "mse_loss".
    hess_floor : each Hessian value is raised to at least this (after the sample weight is
        multiplied in), so that LightGBM's Newton steps stay finite where the loss is flat
        or concave (focal losses, Huber outside its quadratic zone); None keeps the exact
        values, negative ones included.
    params : the loss's own parameters (e.g. ``gamma=``, ``alpha=``, ``label_smoothing=``,
        ``delta=``, class ``weight=`` for softmax_cross_entropy, ``n_threads=``); checked
        now, a ValueError if unknown or out of range.

    Pass it as ``params={"objective": obj}`` to ``lgb.train`` (with ``num_class`` for the
    multi-class losses) or as ``objective=obj`` to the scikit-learn estimators. Labels are
    class indices 0 .. n_classes - 1 for the multi-class losses, given as floats by
    LightGBM and checked to be whole numbers in range.
    """
    _lightgbm()
    return Objective(name, hess_floor, params)


def metric(name, **params):
    """A LightGBM custom metric, the loss `name`'s mean on raw margins weighted by the
    sample weights: ``(name, value, False)`` (lower is better), for ``lgb.train(feval=...)``
    and the scikit-learn estimators' ``eval_metric=``."""
    _lightgbm()
    return Metric(name, params)
