"""fusedloss losses as XGBoost custom objectives and metrics.

    import xgboost as xgb
    import fusedloss.xgboost

    obj = fusedloss.xgboost.objective("sigmoid_focal_loss", gamma=2.0)
    booster = xgb.train({"base_score": 0.0}, dtrain, 100, obj=obj)  # native
    model = xgb.XGBClassifier(objective=obj).fit(X, y)  # scikit-learn

The objective gives XGBoost the per-sample gradient and Hessian diagonal of the loss on
the raw margins (as fusedloss defines the loss: ``mse_loss`` gives ``2 e`` and ``2``),
``(n_samples, n_classes)`` arrays for the multi-class losses; the sample weights of the
DMatrix (or scikit-learn's ``sample_weight``) are multiplied in and each Hessian is raised
to at least ``hess_floor`` after weighting.

Boosting starts from margin 0 only if XGBoost is told so. With a custom objective
XGBoost 3.x does not estimate ``base_score``: it uses 0.5, in the units of the objective
it has configured. ``xgb.train`` and ``XGBRegressor`` configure ``reg:squarederror``,
where that is the margin 0.5: pass ``base_score=0`` (or a zero ``base_margin``).
``XGBClassifier`` configures ``binary:logistic`` (two classes), where 0.5 is a probability
and means margin 0: leave ``base_score`` unset there (``base_score=0`` would mean a margin
of about -13.8), or ``multi:softprob`` (more classes), where it is the margin 0.5 of every
class (which softmax losses do not see): ``base_score=0`` makes it 0.
"""

import sys

from . import _gbdt

__all__ = ["objective", "metric"]


def _xgboost():
    return _gbdt.import_library("xgboost", "xgboost")


def _is_dmatrix(obj):
    xgb = sys.modules.get("xgboost")
    return xgb is not None and isinstance(obj, xgb.DMatrix)


def _from_dmatrix(dtrain):
    return dtrain.get_label(), dtrain.get_weight()


class Objective(_gbdt.Wrapper):
    """An XGBoost custom objective; make one with `fusedloss.xgboost.objective`.

    Called as ``obj(preds, dtrain)`` (``xgb.train(obj=...)``: raw margins and the
    DMatrix, whose labels and weights are used) or ``obj(y_true, y_pred,
    sample_weight=None)`` (the scikit-learn estimators). Returns ``(grad, hess)`` of the
    margins' shape and dtype (float32 from XGBoost)."""

    WHERE = "fusedloss.xgboost.objective"

    def __call__(self, y_true, y_pred, sample_weight=None):
        if _is_dmatrix(y_pred):  # native: (preds, dtrain)
            preds = y_true
            labels, sample_weight = _from_dmatrix(y_pred)
        else:  # scikit-learn: (y_true, y_pred[, sample_weight=])
            preds, labels = y_pred, y_true
        return self._loss.grad_hess(preds, labels, sample_weight)


class Metric(_gbdt.Wrapper):
    """An XGBoost custom metric: the loss's (weighted) mean on raw margins.

    Called as ``metric(preds, dmatrix)`` (``xgb.train(custom_metric=...)``) it returns
    ``(name, value)``; as ``metric(y_true, y_pred, sample_weight=None)`` (the scikit-learn
    estimators' ``eval_metric=``, which take the name from ``__name__``) the value. XGBoost
    passes raw margins to metrics when the objective is a custom one; with a built-in
    objective it would pass transformed predictions (probabilities), which this metric
    does not expect."""

    WHERE = "fusedloss.xgboost.metric"

    def __init__(self, name, params):
        super().__init__(name, None, params)
        self.__name__ = name

    def __call__(self, y_true, y_pred, sample_weight=None):
        if _is_dmatrix(y_pred):
            labels, weights = _from_dmatrix(y_pred)
            return self.__name__, self._loss.mean(y_true, labels, weights)
        return self._loss.mean(y_pred, y_true, sample_weight)


def objective(name, *, hess_floor=1e-6, **params):
    """An XGBoost custom objective computing the loss `name` with fusedloss.

    name : one of "binary_cross_entropy_with_logits", "sigmoid_focal_loss",
        "softmax_cross_entropy", "softmax_focal_loss", "huber_loss", "mse_loss".
    hess_floor : each Hessian value is raised to at least this (after the sample weight is
        multiplied in), so that XGBoost's Newton steps stay finite where the loss is flat
        or concave (focal losses, Huber outside its quadratic zone); None keeps the exact
        values, negative ones included.
    params : the loss's own parameters (e.g. ``gamma=``, ``alpha=``, ``label_smoothing=``,
        ``delta=``, class ``weight=`` for softmax_cross_entropy, ``n_threads=``); checked
        now, a ValueError if unknown or out of range.

    The multi-class losses need ``num_class`` (``xgb.train``) or an ``XGBClassifier``;
    labels are class indices 0 .. n_classes - 1, given as floats by XGBoost and checked
    to be whole numbers in range. See the module's docstring for ``base_score``.
    """
    _xgboost()
    return Objective(name, hess_floor, params)


def metric(name, **params):
    """An XGBoost custom metric: the loss `name`'s mean on raw margins, weighted by the
    sample weights; ``(name, value)`` for ``xgb.train(custom_metric=...)``, the value
    for the scikit-learn estimators' ``eval_metric=`` (lower is better). Pass
    ``disable_default_eval_metric=True`` to print only this one."""
    _xgboost()
    return Metric(name, params)
