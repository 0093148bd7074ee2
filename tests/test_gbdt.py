"""fusedloss.xgboost and fusedloss.lightgbm: custom objectives and metrics for gradient boosting.

The objectives' gradients are checked against fusedloss's own gradient (weighted here, not
by the code under test) and their Hessians against central differences of that gradient;
the training tests compare with each library's built-in objective on small synthetic data
(one thread, fixed seeds). Every library is optional: its tests skip when it is missing
(the scikit-learn estimators also need scikit-learn).
"""

import doctest
import pathlib
import pickle
import re
import subprocess
import sys

import numpy as np
import pytest

import fusedloss
from fusedloss import reference

LIBS = ("xgboost", "lightgbm")


@pytest.fixture(autouse=True)
def _one_openmp_thread():
    """XGBoost and LightGBM on one OpenMP thread: on a busy 2-core machine their
    spin-waiting threads slow these small fits down several times (the README examples
    took 55 s instead of 8 while another test run was going on)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # comes with scikit-learn
        yield
        return
    with threadpool_limits(limits=1, user_api="openmp"):
        yield


@pytest.fixture(params=LIBS)
def lib(request):
    """(the library, its fusedloss module), skipping when the library is missing."""
    module = pytest.importorskip(request.param)
    if request.param == "xgboost":
        import fusedloss.xgboost as fl_mod
    else:
        import fusedloss.lightgbm as fl_mod
    return module, fl_mod


@pytest.fixture
def xgb():
    return pytest.importorskip("xgboost")


@pytest.fixture
def lgb():
    return pytest.importorskip("lightgbm")


@pytest.fixture
def sklearn():
    return pytest.importorskip("sklearn")


def _name(library):
    return library.__name__


def _native_data(library, labels, weights=None):
    """The library's dataset object holding labels and weights (features unused)."""
    n = len(labels)
    if _name(library) == "xgboost":
        return library.DMatrix(np.zeros((n, 1)), label=labels, weight=weights)
    ds = library.Dataset(
        np.zeros((n, 1)), label=labels, weight=weights, params={"verbose": -1}
    ).construct()
    return ds


def _as_library_margins(library, x):
    """Margins in the dtype and layout the library hands to a custom objective: float32
    (XGBoost), float64 with the class axis in Fortran order (LightGBM)."""
    if _name(library) == "xgboost":
        return np.ascontiguousarray(x, dtype=np.float32)
    return np.asfortranarray(x, dtype=np.float64)


def _call_native(obj, library, preds, labels, weights):
    return obj(preds, _native_data(library, labels, weights))


def _call_sklearn(obj, library, preds, labels, weights):
    if _name(library) == "xgboost":
        if weights is None:
            return obj(labels, preds)
        return obj(labels, preds, sample_weight=weights)
    return obj(labels, preds, weights)


CALLS = {"native": _call_native, "sklearn": _call_sklearn}

# (loss, params, kind of labels)
CASES = [
    ("binary_cross_entropy_with_logits", {}, "binary"),
    ("binary_cross_entropy_with_logits", {"pos_weight": 2.5}, "binary"),
    ("sigmoid_focal_loss", {}, "binary"),
    ("sigmoid_focal_loss", {"alpha": -1.0, "gamma": 0.5}, "binary"),
    ("huber_loss", {"delta": 0.7}, "real"),
    ("mse_loss", {}, "real"),
    ("softmax_cross_entropy", {}, "classes"),
    ("softmax_cross_entropy", {"label_smoothing": 0.1, "weight": [1.0, 2.0, 0.5, 1.5]}, "classes"),
    ("softmax_focal_loss", {}, "classes"),
    ("softmax_focal_loss", {"gamma": 0.5, "alpha": [0.2, 0.3, 0.4, 0.1]}, "classes"),
]
N_CLASSES = 4


def _problem(kind, n, rng):
    """(margins float64, float labels) for a kind of loss."""
    if kind == "classes":
        x = rng.normal(scale=2.0, size=(n, N_CLASSES))
        return x, rng.integers(0, N_CLASSES, n).astype(np.float64)
    x = rng.normal(scale=2.0, size=n)
    if kind == "binary":
        return x, (rng.random(n) < 0.3).astype(np.float64)
    y = x + rng.normal(scale=1.0, size=n)
    # keep every residual away from Huber's kinks, where the one-sided Hessians differ
    e = x - y
    near = np.abs(np.abs(e) - 0.7) < 1e-3
    y[near] += 0.01
    return x, y


def _fusedloss_grad(name, x, labels, params):
    """fusedloss's own gradient of the summed loss (unweighted), in float64."""
    target = labels.astype(np.int64) if x.ndim == 2 else labels
    fn = getattr(fusedloss, name)
    return fn(x, target, reduction="sum", return_grad=True, **params)[1]


def _fd_hessian(name, x, labels, params, step=1e-5):
    """Diagonal of the Hessian by central differences of fusedloss's gradient (float64);
    column by column for class losses (each row's gradient depends on its whole row)."""
    if x.ndim == 1:
        gp = _fusedloss_grad(name, x + step, labels, params)
        gm = _fusedloss_grad(name, x - step, labels, params)
        return (gp - gm) / (2 * step)
    h = np.empty_like(x)
    for j in range(x.shape[1]):
        xp, xm = x.copy(), x.copy()
        xp[:, j] += step
        xm[:, j] -= step
        gp = _fusedloss_grad(name, xp, labels, params)[:, j]
        gm = _fusedloss_grad(name, xm, labels, params)[:, j]
        h[:, j] = (gp - gm) / (2 * step)
    return h


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize(("name", "params", "kind"), CASES, ids=lambda c: str(c))
def test_grad_hess_are_fusedloss_and_finite_differences(lib, name, params, kind, call, weighted):
    library, mod = lib
    rng = np.random.default_rng(7)
    n = 64
    x, labels = _problem(kind, n, rng)
    w = None
    if weighted:
        w = rng.uniform(0.5, 3.0, n)
        w[3] = 0.0
    obj = mod.objective(name, **params)
    preds = _as_library_margins(library, x)
    g, h = CALLS[call](obj, library, preds, labels.astype(np.float32), w)

    assert g.shape == h.shape == x.shape
    if _name(library) == "xgboost":
        assert g.dtype == h.dtype == np.float32  # XGBoost's margins' dtype
    else:  # what LightGBM trains on, in the layout it flattens without copying
        assert g.dtype == h.dtype == np.float32
        assert g.flags.f_contiguous and h.flags.f_contiguous

    x64 = preds.astype(np.float64)  # the margins the objective saw
    scale = np.ones(n) if w is None else w
    scale = scale if x.ndim == 1 else scale[:, None]
    g_ref = scale * _fusedloss_grad(name, x64, labels, params)
    h_ref = np.maximum(scale * _fd_hessian(name, x64, labels, params), 1e-6)
    np.testing.assert_allclose(g, g_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h, h_ref, rtol=1e-4, atol=1e-5)
    assert np.all(h >= 1e-6)


def test_softmax_focal_hessian_at_extremes():
    """The NumPy Hessian of softmax focal loss stays finite and right where the
    prediction saturates (u = 1 - p_y tiny or 0), for gamma below and above 1; checked
    against central differences of fusedloss's gradient (float64, mild saturation) and
    against the analytic limits."""

    def softmax_focal_hessian(x, t, gamma, alpha=None):
        """The hessian the softmax focal objective uses (the summed loss's)."""
        return fusedloss.softmax_focal_loss(
            x, t, gamma=gamma, alpha=alpha, reduction="sum", return_grad=True, return_hess=True
        )[2]

    x = np.array(
        [[12.0, 0.0, -1.0], [-12.0, 0.0, 1.0], [30.0, 1.0, 0.0], [0.0, 0.0, 0.0], [2.0, -3.0, 1.0]]
    )
    t = np.array([0, 0, 0, 1, 2])
    for gamma in (0.0, 0.3, 1.0, 2.0, 4.5):
        for alpha in (None, [0.3, 0.5, 0.2]):
            params = {"gamma": gamma, "alpha": alpha}
            h = softmax_focal_hessian(x, t, gamma, alpha)
            ref = _fd_hessian("softmax_focal_loss", x, t.astype(float), params, step=1e-4)
            np.testing.assert_allclose(h, ref, rtol=2e-5, atol=1e-9)
    # u underflows to 0 (p_y == 1 exactly): the limit is 0 for gamma > 0, CE's p (1 - p)
    # = 0 for gamma = 0; never NaN
    sat = np.array([[1000.0, 0.0, 0.0]])
    for gamma in (0.0, 0.5, 2.0):
        h = softmax_focal_hessian(sat, np.array([0]), gamma)
        assert np.all(np.isfinite(h)) and np.all(h == 0)
    # gamma = 0 is cross-entropy's Hessian, p (1 - p) (1 - p of a near-1 probability as
    # the sum of the others, as 1 - p would cancel)
    p = np.exp(x - x.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    one_minus_p = p.sum(1, keepdims=True) - p
    for i, j in enumerate(p.argmax(1)):
        one_minus_p[i, j] = np.delete(p[i], j).sum()
    np.testing.assert_allclose(softmax_focal_hessian(x, t, 0.0), p * one_minus_p, rtol=1e-12)
    # a non-target class dominating (p_j -> 1): 1 - p_j from the other classes' mass
    # (gamma = 0: cross-entropy's Hessian, e^-40 in both columns), float64 and float32
    for dt in (np.float64, np.float32):
        dom = np.array([[0.0, 40.0]], dt)
        want = fusedloss.softmax_cross_entropy(
            dom, np.array([0]), reduction="sum", return_grad=True, return_hess=True
        )[2]
        got = softmax_focal_hessian(dom, np.array([0]), 0.0)
        np.testing.assert_allclose(got, want, rtol=1e-6 if dt == np.float32 else 1e-12)
        assert got[0, 1] > 0
    # float32 in, float32 out, close to float64
    h32 = softmax_focal_hessian(x.astype(np.float32), t, 2.0)
    assert h32.dtype == np.float32
    np.testing.assert_allclose(h32, softmax_focal_hessian(x, t, 2.0), rtol=1e-4, atol=1e-7)
    # ignored rows contribute nothing
    h = softmax_focal_hessian(x, np.array([0, -100, 0, 1, 2]), 2.0)
    assert np.all(h[1] == 0) and np.all(h[0] != 0)


def test_hess_floor_applies_after_weighting(lib):
    library, mod = lib
    # MSE: Hessian 2 per sample; weight 1e-7 gives 2e-7, below the floor: raised to it
    # (flooring before weighting would give 2e-7)
    obj = mod.objective("mse_loss")
    preds = _as_library_margins(library, np.array([0.5, 1.0, -2.0]))
    _, h = _call_native(obj, library, preds, np.zeros(3), np.array([1e-7, 1.0, 3.0]))
    np.testing.assert_allclose(h, [1e-6, 2.0, 6.0], rtol=1e-6)
    assert h[0] >= 1e-6
    # BCE at margin 16: p (1 - p) ~ 1.1e-7, below the floor; weight 1e3 lifts it above
    # (flooring before weighting would give 1e-3)
    obj = mod.objective("binary_cross_entropy_with_logits")
    preds = _as_library_margins(library, np.array([16.0, 16.0]))
    _, h = _call_native(obj, library, preds, np.ones(2), np.array([1e3, 1.0]))
    s = 1 / (1 + np.exp(-16.0))
    np.testing.assert_allclose(h, [1e3 * s * (1 - s), 1e-6], rtol=1e-4)
    # another floor, and 0 keeps Huber's exact zero outside its quadratic zone
    preds = _as_library_margins(library, np.array([0.0, 5.0]))
    _, h = _call_native(
        mod.objective("huber_loss", hess_floor=0.25), library, preds, np.zeros(2), None
    )
    np.testing.assert_allclose(h, [1.0, 0.25])
    _, h = _call_native(
        mod.objective("huber_loss", hess_floor=0.0), library, preds, np.zeros(2), None
    )
    np.testing.assert_array_equal(h, [1.0, 0.0])
    # None keeps focal loss's negative Hessian at a confidently wrong prediction (the
    # central differences of its gradient agree on the sign)
    preds = _as_library_margins(library, np.array([-4.0, 0.0]))
    focal = mod.objective("sigmoid_focal_loss", hess_floor=None)
    _, h = _call_native(focal, library, preds, np.ones(2), None)
    fd = _fd_hessian("sigmoid_focal_loss", np.array([-4.0, 0.0]), np.ones(2), {})
    assert h[0] < 0 and fd[0] < 0
    np.testing.assert_allclose(h, fd, rtol=1e-4)


def test_float_labels_become_class_indices(lib):
    library, mod = lib
    rng = np.random.default_rng(3)
    x = rng.normal(size=(20, 3))
    t = rng.integers(0, 3, 20)
    obj = mod.objective("softmax_cross_entropy", label_smoothing=0.2)
    preds = _as_library_margins(library, x)
    for labels in (t.astype(np.float32), t.astype(np.float64), t):
        g, h = _call_sklearn(obj, library, preds, labels, None)
        ref = fusedloss.softmax_cross_entropy(
            preds.astype(np.float64), t, label_smoothing=0.2, reduction="sum", return_grad=True
        )[1]
        np.testing.assert_allclose(g, ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("bad", "value"),
    [(1.5, "1.5"), (-1.0, "-1.0"), (3.0, "3.0"), (np.nan, "nan"), (np.inf, "inf"), (1e30, "1e+30")],
)
def test_bad_class_labels_raise(lib, bad, value):
    """In the scikit-learn form (plain arrays; XGBoost's DMatrix itself refuses NaN,
    infinite and huge labels) and, for the finite ones, the native form."""
    library, mod = lib
    labels = np.array([0.0, 2.0, bad, 1.0])
    preds = _as_library_margins(library, np.zeros((4, 3)))
    message = rf"label\[2\] = {re.escape(value)} is not a class index.*whole numbers in \[0, 3\)"
    for name in ("softmax_cross_entropy", "softmax_focal_loss"):
        obj, metric = mod.objective(name), mod.metric(name)
        with pytest.raises(ValueError, match=message):
            _call_sklearn(obj, library, preds, labels, None)
        with pytest.raises(ValueError, match=message):
            metric(labels, preds)
        if abs(bad) < 10:
            with pytest.raises(ValueError, match=rf"label\[2\] = {re.escape(value)}"):
                _call_native(obj, library, preds, labels, None)
            with pytest.raises(ValueError, match=r"label\[2\]"):
                metric(preds, _native_data(library, labels))


def test_explicit_ignore_index_is_a_valid_label(lib):
    library, mod = lib
    preds = _as_library_margins(library, np.ones((3, 3)))
    obj = mod.objective("softmax_cross_entropy", ignore_index=-1)
    g, h = _call_native(obj, library, preds, np.array([0.0, -1.0, 2.0]), None)
    assert np.all(g[1] == 0) and np.all((h[1] >= 1e-6) & (h[1] < 1.01e-6))  # just the floor
    assert np.all(g[0] != 0) and np.all(h[0] > 0.1)


def test_label_count_must_match(lib):
    library, mod = lib
    preds = _as_library_margins(library, np.zeros(5))
    with pytest.raises(ValueError, match="4 labels for margins of shape"):
        mod.objective("mse_loss")(np.zeros(4), preds, None)
    preds = _as_library_margins(library, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="4 labels for 5 samples"):
        mod.objective("softmax_cross_entropy")(np.zeros(4), preds, None)
    with pytest.raises(ValueError, match=r"\(n_samples, n_classes\) margins"):
        mod.objective("softmax_cross_entropy")(np.zeros(5), np.zeros(5), None)


def test_binary_margins_reach_the_kernel_uncopied(lib, monkeypatch):
    """1-D margins (float32 from XGBoost, float64 from LightGBM) go to the kernel as the
    very array the library passed."""
    library, mod = lib
    seen = []
    real = fusedloss.losses.binary_cross_entropy_with_logits

    def spy(x, *args, **kwargs):
        seen.append(x)
        return real(x, *args, **kwargs)

    obj = mod.objective("binary_cross_entropy_with_logits")
    preds = _as_library_margins(library, np.linspace(-3, 3, 50))
    monkeypatch.setattr(fusedloss.losses, "binary_cross_entropy_with_logits", spy)
    _call_native(obj, library, preds, (preds > 0).astype(np.float32), None)
    _call_sklearn(obj, library, preds, (preds > 0).astype(np.float32), np.ones(50))
    assert len(seen) == 2 and all(s is preds for s in seen)


def test_lightgbm_multiclass_layout(lgb):
    """LightGBM hands multi-class margins over Fortran-ordered and flattens the returned
    arrays class by class into float32: the objective's arrays need no further copy."""
    import fusedloss.lightgbm as fl_lgb

    x = np.random.default_rng(0).normal(size=(30, 4))
    preds = np.asfortranarray(x)
    g, h = fl_lgb.objective("softmax_cross_entropy")(preds, _native_data(lgb, np.arange(30) % 4))
    for a in (g, h):
        flat = a.ravel(order="F")
        assert np.shares_memory(flat, a) and flat.dtype == np.float32
    ref = fusedloss.softmax_cross_entropy(x, np.arange(30) % 4, reduction="sum", return_grad=True)
    np.testing.assert_allclose(g, ref[1], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("cross_entropy",), {}, "unknown loss 'cross_entropy'"),
        (("l1_loss",), {}, "unknown loss 'l1_loss'"),
        (("mse_loss",), {"delta": 1.0}, "mse_loss has no parameter 'delta'"),
        (("sigmoid_focal_loss",), {"gama": 2.0}, "has no parameter 'gama'"),
        (("huber_loss",), {"delta": -1.0}, "delta"),
        (("sigmoid_focal_loss",), {"gamma": float("nan")}, "gamma"),
        (("softmax_cross_entropy",), {"label_smoothing": 2.0}, "label_smoothing"),
        (("softmax_focal_loss",), {"gamma": "x"}, "gamma"),
        (("mse_loss",), {"reduction": "mean"}, "reduction= is set by the objective"),
        (("mse_loss",), {"weight": 2.0}, "sample weights"),
        (("mse_loss",), {"hess_floor": -1.0}, "hess_floor"),
        (("mse_loss",), {"hess_floor": float("inf")}, "hess_floor"),
    ],
)
def test_bad_construction_raises_valueerror(lib, args, kwargs, message):
    _, mod = lib
    kwargs = dict(kwargs)
    with pytest.raises(ValueError, match=message):
        mod.objective(*args, **kwargs)
    kwargs.pop("hess_floor", None)
    if kwargs or args[0] in ("cross_entropy", "l1_loss"):
        with pytest.raises(ValueError, match=message):
            mod.metric(*args, **kwargs)


def test_importing_fusedloss_imports_neither_library():
    code = (
        "import sys, fusedloss, fusedloss.xgboost, fusedloss.lightgbm; "
        "print(sorted(m for m in ('xgboost', 'lightgbm', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("name", LIBS)
def test_missing_library_names_the_extra(monkeypatch, name):
    import fusedloss.lightgbm
    import fusedloss.xgboost

    mod = {"xgboost": fusedloss.xgboost, "lightgbm": fusedloss.lightgbm}[name]
    monkeypatch.setitem(sys.modules, name, None)  # makes `import name` fail
    for make in (mod.objective, mod.metric):
        with pytest.raises(ImportError, match=rf'pip install "fusedloss\[{name}\]"'):
            make("mse_loss")


def test_objective_pickles(lib):
    library, mod = lib
    obj = mod.objective("softmax_focal_loss", gamma=1.5, hess_floor=1e-4)
    again = pickle.loads(pickle.dumps(obj))
    preds = _as_library_margins(library, np.random.default_rng(0).normal(size=(8, 3)))
    labels = np.arange(8) % 3
    for a, b in zip(_call_sklearn(obj, library, preds, labels, None), again(labels, preds)):
        np.testing.assert_array_equal(a, b)
    assert repr(again) == repr(obj) and "gamma=1.5" in repr(obj)


# -- metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(
    ("name", "params", "kind"),
    [
        ("binary_cross_entropy_with_logits", {}, "binary"),
        ("huber_loss", {"delta": 0.5}, "real"),
        ("softmax_cross_entropy", {"label_smoothing": 0.1}, "classes"),
        ("softmax_focal_loss", {"gamma": 1.0}, "classes"),
    ],
)
def test_metric_is_the_weighted_mean_in_each_form(lib, name, params, kind, weighted):
    library, mod = lib
    rng = np.random.default_rng(11)
    x, labels = _problem(kind, 40, rng)
    w = rng.uniform(0.1, 2.0, 40) if weighted else None
    preds = _as_library_margins(library, x)
    target = labels.astype(np.int64) if kind == "classes" else labels
    per_sample = getattr(reference, name)(
        preds.astype(np.float64), target, reduction="none", **params
    )
    expected = np.average(per_sample, weights=w)
    metric = mod.metric(name, **params)
    native = metric(preds, _native_data(library, labels, w))
    if _name(library) == "xgboost":
        assert native[0] == name and len(native) == 2
        value = metric(labels, preds) if w is None else metric(labels, preds, sample_weight=w)
        assert isinstance(value, float) and metric.__name__ == name
    else:
        assert native[0] == name and native[2] is False and len(native) == 3
        sk = metric(labels, preds, w)
        assert sk[0] == name and sk[2] is False
        value = sk[1]
    assert native[1] == pytest.approx(expected, rel=1e-5)
    assert value == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "name,params",
    [
        ("softmax_cross_entropy", {"ignore_index": 1}),
        ("softmax_cross_entropy", {"weight": np.array([0.5, 2.0, 1.0, 3.0])}),
        ("softmax_focal_loss", {"ignore_index": 2, "gamma": 1.0}),
    ],
)
def test_metric_of_class_losses_uses_the_losses_own_denominator(lib, name, params):
    """Ignored rows and class weights: without sample weights the metric is the loss's
    own "mean"; integer sample weights equal repeated rows."""
    library, mod = lib
    rng = np.random.default_rng(5)
    x, labels = _problem("classes", 30, rng)
    metric = mod.metric(name, **params)
    want = float(getattr(fusedloss, name)(x, labels.astype(np.int64), **params))
    got = metric(labels, x) if _name(library) == "xgboost" else metric(labels, x, None)[1]
    assert got == pytest.approx(want, rel=1e-12)
    w = rng.integers(1, 4, 30).astype(np.float64)
    rep = np.repeat(np.arange(30), w.astype(int))
    want_w = float(getattr(fusedloss, name)(x[rep], labels[rep].astype(np.int64), **params))
    if _name(library) == "xgboost":
        got_w = metric(labels, x, sample_weight=w)
    else:
        got_w = metric(labels, x, w)[1]
    assert got_w == pytest.approx(want_w, rel=1e-12)


# -- training ----------------------------------------------------------------------------------

XGB_PARAMS = {"max_depth": 3, "eta": 0.3, "tree_method": "hist", "nthread": 1}
LGB_PARAMS = {
    "num_leaves": 8,
    "learning_rate": 0.3,
    "verbose": -1,
    "num_threads": 1,
    "deterministic": True,
}


def _binary_data(n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    logit = X[:, 0] - 0.5 * X[:, 1] ** 2 + 0.3 * X[:, 2] * X[:, 3]
    return X, (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.float64)


def _multiclass_data(n, seed, k=4):
    weights = np.random.default_rng(100).normal(size=(6, k))  # one problem, two draws
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    z = 1.5 * (X @ weights + 0.5 * np.sin(2 * X[:, :k]))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    y = (rng.random(n)[:, None] > p.cumsum(1)).sum(1)
    return X, np.minimum(y, k - 1).astype(np.float64)


def _log_loss(margins, y):
    m = margins - margins.max(1, keepdims=True)
    logp = m - np.log(np.exp(m).sum(1, keepdims=True))
    return -logp[np.arange(len(y)), y.astype(np.int64)].mean()


def _auc(score, y):
    """Area under the ROC curve by the rank-sum formula (ties get their average rank)."""
    uniq, inv, counts = np.unique(score, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each value
    ranks = avg_rank[inv]
    pos = y == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_auc_helper():
    assert _auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == 0.75
    assert _auc(np.array([1.0, 1.0, 2.0]), np.array([0, 1, 1])) == 0.75


def _train(library, objective, X, y, rounds, params=None, weight=None):
    """Raw training margins from the native API; `objective` is a built-in name or ours."""
    if _name(library) == "xgboost":
        p = {**XGB_PARAMS, **(params or {})}
        d = library.DMatrix(X, y, weight=weight)
        if isinstance(objective, str):
            booster = library.train({**p, "objective": objective}, d, rounds)
        else:
            booster = library.train({"base_score": 0.0, **p}, d, rounds, obj=objective)
        return lambda Z: booster.predict(library.DMatrix(Z), output_margin=True)
    p = {**LGB_PARAMS, **(params or {}), "objective": objective}
    booster = library.train(p, library.Dataset(X, y, weight=weight), rounds)
    return lambda Z: booster.predict(Z, raw_score=True)


def test_bce_reproduces_the_builtin_logistic_margins(lib):
    """The built-in logistic objective started from margin 0 (XGBoost: binary:logistic
    with base_score=0.5, a probability; LightGBM: binary without boost_from_average)
    and the custom BCE objective build the same trees: margins equal to float32 rounding
    (XGBoost keeps float32 margins: 1e-5 absolute on margins up to ~5), 1e-6 (LightGBM)."""
    library, mod = lib
    X, y = _binary_data(2000, 0)
    if _name(library) == "xgboost":
        builtin = _train(library, "binary:logistic", X, y, 30, {"base_score": 0.5})
        tol = 1e-5
    else:
        builtin = _train(library, "binary", X, y, 30, {"boost_from_average": False})
        tol = 1e-6
    ours = _train(library, mod.objective("binary_cross_entropy_with_logits"), X, y, 30)
    a, b = builtin(X), ours(X)
    assert np.abs(a).max() > 2  # the models did learn
    np.testing.assert_allclose(b, a, rtol=0, atol=tol)


def test_multiclass_cross_entropy_reaches_the_builtin(lib):
    """The custom softmax cross-entropy against XGBoost's multi:softprob / LightGBM's
    multiclass on held-out data: accuracy within 0.02 and log loss within 0.03 of the
    built-in's. (The built-ins scale the Hessian: XGBoost by 2, LightGBM by k/(k-1); the
    steps, hence the models, differ a little.)"""
    library, mod = lib
    X, y = _multiclass_data(3000, 1)
    Xt, yt = _multiclass_data(3000, 2)
    params = {"num_class": 4}
    builtin = "multi:softprob" if _name(library) == "xgboost" else "multiclass"
    lr = {"eta": 0.2} if _name(library) == "xgboost" else {"learning_rate": 0.2}
    results = {}
    for key, objective in [
        ("builtin", builtin),
        ("ce", mod.objective("softmax_cross_entropy")),
        ("ce smoothed", mod.objective("softmax_cross_entropy", label_smoothing=0.05)),
    ]:
        margins = _train(library, objective, X, y, 40, {**params, **lr})(Xt)
        results[key] = ((margins.argmax(1) == yt).mean(), _log_loss(margins, yt))
    acc0, ll0 = results["builtin"]
    assert acc0 > 0.6  # well above chance (0.25): the comparison means something
    for key in ("ce", "ce smoothed"):
        acc, ll = results[key]
        assert abs(acc - acc0) <= 0.02, results
        assert ll <= ll0 + 0.03 if key == "ce" else ll <= ll0 + 0.06, results


def test_focal_on_imbalanced_data_reaches_the_builtin_auc(lib):
    """Sigmoid focal loss (alpha 0.25, gamma 2) against the built-in logistic objective
    on a 5 %-positive problem: held-out AUC at least the built-in's minus 0.005.
    min_child_weight / min_sum_hessian_in_leaf are lowered for both: focal Hessians of
    easy negatives are tiny and would otherwise forbid most splits."""
    library, mod = lib
    rng = np.random.default_rng(0)
    coef = rng.normal(size=8)

    def draw(n):
        X = rng.normal(size=(n, 8))
        z = X @ coef + X[:, 0] * X[:, 1] - 5.0
        return X, (rng.random(n) < 1 / (1 + np.exp(-z))).astype(np.float64)

    X, y = draw(4000)
    Xt, yt = draw(4000)
    assert 0.02 < y.mean() < 0.08
    if _name(library) == "xgboost":
        params, builtin = {"eta": 0.1, "min_child_weight": 0.01}, "binary:logistic"
    else:
        params, builtin = {"learning_rate": 0.1, "min_sum_hessian_in_leaf": 1e-5}, "binary"
    auc_builtin = _auc(_train(library, builtin, X, y, 100, params)(Xt), yt)
    focal = mod.objective("sigmoid_focal_loss", alpha=0.25, gamma=2.0)
    auc_focal = _auc(_train(library, focal, X, y, 100, params)(Xt), yt)
    assert auc_builtin > 0.8
    assert auc_focal >= auc_builtin - 0.005, (auc_focal, auc_builtin)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("binary_cross_entropy_with_logits", "binary"),
        ("softmax_cross_entropy", "classes"),
        ("mse_loss", "real"),
    ],
)
def test_integer_weights_equal_duplicated_rows(lib, name, kind):
    """Integer sample weights and rows repeated that many times give the same model.
    Features take 12 values (every value its own histogram bin, so both datasets get the
    same bins); LightGBM grows 4 leaves with no count-based limits (with 8 leaves its
    estimated leaf counts differ between weights and repeats, for its built-in
    objectives too)."""
    library, mod = lib
    rng = np.random.default_rng(0)
    n = 600
    X = rng.integers(0, 12, size=(n, 4)).astype(np.float64)
    if kind == "binary":
        y = (X[:, 0] + rng.normal(scale=3.0, size=n) > 6).astype(np.float64)
    elif kind == "classes":
        y = ((X[:, 0] + rng.normal(scale=3.0, size=n)) // 5).clip(0, 2)
    else:
        y = X[:, 1] + rng.normal(size=n)
    w = rng.integers(1, 4, n).astype(np.float64)
    rep = np.repeat(np.arange(n), w.astype(np.int64))
    params = {"num_class": 3} if kind == "classes" else {}
    if _name(library) == "lightgbm":
        params.update(
            num_leaves=4, min_data_in_leaf=1, min_data_in_bin=1, min_sum_hessian_in_leaf=0
        )
    obj = mod.objective(name)
    weighted = _train(library, obj, X, y, 10, params, weight=w)(X)
    repeated = _train(library, obj, X[rep], y[rep], 10, params)(X)
    assert np.abs(weighted).max() > 0.5
    np.testing.assert_allclose(weighted, repeated, rtol=0, atol=1e-5)


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("binary_cross_entropy_with_logits", "binary"),
        ("softmax_focal_loss", "classes"),
        ("huber_loss", "real"),
    ],
)
@pytest.mark.filterwarnings("ignore:The argument 'eval_set' is deprecated")
def test_native_and_sklearn_apis_train_the_same_model(lib, sklearn, name, kind):
    """The scikit-learn estimators (weights through fit's sample_weight, our metric as
    eval_metric) and the native API (weights in the dataset) give the same margins, and
    the metric they report is the metric of the final margins."""
    library, mod = lib
    if kind == "classes":
        X, y = _multiclass_data(500, 5)
    else:
        X, y = _binary_data(500, 5)
        if kind == "real":
            y = y + X[:, 0]
    w = np.random.default_rng(5).uniform(0.2, 3.0, len(y))
    obj, metric = mod.objective(name), mod.metric(name)
    params = {"num_class": 4} if kind == "classes" else {}
    native = _train(library, obj, X, y, 10, params, weight=w)(X)
    if _name(library) == "xgboost":
        est = library.XGBRegressor if kind == "real" else library.XGBClassifier
        extra = {} if kind == "binary" else {"base_score": 0.0}  # see the margin-0 test
        model = est(
            objective=obj,
            eval_metric=metric,
            n_estimators=10,
            max_depth=3,
            learning_rate=0.3,
            tree_method="hist",
            n_jobs=1,
            **extra,
        )
        model.fit(X, y, sample_weight=w, eval_set=[(X, y)], sample_weight_eval_set=[w])
        margins = model.predict(X, output_margin=True)
        reported = model.evals_result()["validation_0"][name][-1]
        if kind == "binary":  # XGBClassifier configured binary:logistic: probabilities
            p = model.predict_proba(X)[:, 1]
            np.testing.assert_allclose(p, 1 / (1 + np.exp(-margins)), rtol=1e-5)
    else:
        est = library.LGBMRegressor if kind == "real" else library.LGBMClassifier
        model = est(
            objective=obj,
            n_estimators=10,
            num_leaves=8,
            learning_rate=0.3,
            n_jobs=1,
            deterministic=True,
            verbose=-1,
            metric="None",  # no built-in metric (it would read the margins as probabilities)
        )
        model.fit(
            X, y, sample_weight=w, eval_set=[(X, y)], eval_sample_weight=[w], eval_metric=metric
        )
        margins = model.predict(X, raw_score=True)
        # the eval set is the training set: LightGBM names it "training"
        (reported,) = [v[name][-1] for v in model.evals_result_.values()]
    np.testing.assert_allclose(margins, native, rtol=0, atol=1e-6)
    target = y.astype(np.int64) if kind == "classes" else y
    per_sample = getattr(reference, name)(margins.astype(np.float64), target, reduction="none")
    assert reported == pytest.approx(np.average(per_sample, weights=w), rel=1e-5)


def test_boosting_starts_from_margin_0_as_documented(xgb, lgb, sklearn):
    """The settings the README gives for a start at margin 0, as the installed libraries
    behave: the margins the objective sees in the first round."""
    import fusedloss.lightgbm as fl_lgb
    import fusedloss.xgboost as fl_xgb

    seen = []  # not an attribute: lgb.train deep-copies its params, the objective too

    class XGBSpy(fl_xgb.Objective):
        def __call__(self, y_true, y_pred, sample_weight=None):
            native = isinstance(y_pred, xgb.DMatrix)
            seen.append(np.array(y_true if native else y_pred))
            return super().__call__(y_true, y_pred, sample_weight)

    class LGBSpy(fl_lgb.Objective):
        def __call__(self, y_true, y_pred, weight=None):
            native = isinstance(y_pred, lgb.Dataset)
            seen.append(np.array(y_true if native else y_pred))
            return super().__call__(y_true, y_pred, weight)

    def first_margins(spy_class, name, fit):
        seen.clear()
        fit(spy_class(name, 1e-6, {}))
        return seen[0]

    X, y = _binary_data(200, 3)
    X3, y3 = _multiclass_data(200, 3)
    d, d3 = xgb.DMatrix(X, y), xgb.DMatrix(X3, y3)
    bce, ce = "binary_cross_entropy_with_logits", "softmax_cross_entropy"
    quiet = {"verbose": -1}
    cases = {
        "xgb.train base_score=0": (
            XGBSpy,
            bce,
            lambda o: xgb.train({"base_score": 0}, d, 1, obj=o),
        ),
        "xgb.train multi-class base_score=0": (
            XGBSpy,
            ce,
            lambda o: xgb.train({"base_score": 0, "num_class": 4}, d3, 1, obj=o),
        ),
        "XGBClassifier binary, base_score unset": (
            XGBSpy,
            bce,
            lambda o: xgb.XGBClassifier(n_estimators=1, objective=o).fit(X, y),
        ),
        "XGBClassifier multi-class base_score=0": (
            XGBSpy,
            ce,
            lambda o: xgb.XGBClassifier(n_estimators=1, objective=o, base_score=0).fit(X3, y3),
        ),
        "XGBRegressor base_score=0": (
            XGBSpy,
            "mse_loss",
            lambda o: xgb.XGBRegressor(n_estimators=1, objective=o, base_score=0).fit(X, y),
        ),
        "lgb.train": (
            LGBSpy,
            bce,
            lambda o: lgb.train({"objective": o, **quiet}, lgb.Dataset(X, y), 1),
        ),
        "lgb.train multi-class": (
            LGBSpy,
            ce,
            lambda o: lgb.train({"objective": o, "num_class": 4, **quiet}, lgb.Dataset(X3, y3), 1),
        ),
        "LGBMClassifier": (
            LGBSpy,
            bce,
            lambda o: lgb.LGBMClassifier(n_estimators=1, objective=o, **quiet).fit(X, y),
        ),
    }
    for key, (spy_class, name, fit) in cases.items():
        m = first_margins(spy_class, name, fit)
        assert m.size >= 200 and np.all(m == 0), (key, m.ravel()[:4])
    # the traps the README warns about: margin 0.5 by default in xgb.train, and
    # base_score=0 in a binary XGBClassifier is a probability (a margin of about -13.8)
    m = first_margins(XGBSpy, bce, lambda o: xgb.train({}, d, 1, obj=o))
    assert np.all(m == 0.5)
    m = first_margins(
        XGBSpy,
        bce,
        lambda o: xgb.XGBClassifier(n_estimators=1, objective=o, base_score=0).fit(X, y),
    )
    assert np.all(m < -10)


def _readme_section():
    """The README's gradient-boosting section (its examples are doctests)."""
    root = pathlib.Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    found = re.search(r"^## Gradient boosting.*?(?=^## |\Z)", text, re.S | re.M)
    assert found, "README.md has no '## Gradient boosting' section"
    return found.group(0)


def test_readme_examples_run(xgb, lgb, sklearn):
    section = _readme_section()
    test = doctest.DocTestParser().get_doctest(section, {}, "README gradient boosting", None, 0)
    assert len(test.examples) > 20
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
