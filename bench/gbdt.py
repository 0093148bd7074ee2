"""Gradient-boosting objectives: time per boosting round of fusedloss's objective.

    python bench/gbdt.py [--n 1000000] [--classes 10] [--repeat 7] [--libs xgboost lightgbm]

For each case (binary BCE, sigmoid focal loss, multi-class softmax cross-entropy, Huber)
and library, on one thread, the median over `repeat` rounds of:

* fusedloss: one call of ``fusedloss.<library>.objective(...)`` as the library makes it,
  ``obj(preds, dataset)`` with the margins in the library's own dtype and layout (XGBoost:
  float32, (n, k) C-ordered; LightGBM: float64, (n, k) Fortran-ordered), reading the
  labels from the dataset, plus whatever conversion the library then applies to the
  returned arrays in Python (LightGBM: flattening class by class into float32).
* NumPy: the same objective written in NumPy (the plain formulas, in the margins' dtype,
  the same Hessian floor), called and converted the same way. Before timing, its values
  are checked against fusedloss's.
* built-in: an estimate of the time the library's own objective spends on the gradient:
  the time of one round with the built-in objective (XGBoost ``Booster.update``, LightGBM
  ``Booster.update()``) minus one round from precomputed float32 gradients (XGBoost
  ``Booster.boost(grad=, hess=)``, LightGBM's ``Booster.__boost``), alternated, medians.
  The rounds grow a stump over one feature with 2 bins, so the tree is cheap and the
  difference is mostly the gradient; it also subtracts the copy of the precomputed
  gradients into the library, so it errs in the built-in's favour. The built-in
  objective is the nearest one (none is focal; XGBoost's Huber is pseudo-Huber), and
  the built-ins' Hessians differ in scale (see the README).

Times are per round, also per sample (ns). Run on a noisy machine, the figures move by
10-20 % between runs: compare ratios measured in one run.
"""

import argparse
import statistics
import time

import numpy as np

import fusedloss

FLOOR = 1e-6


# -- the objectives in NumPy ------------------------------------------------------------


def np_bce(x, y):
    with np.errstate(over="ignore"):
        p = 1 / (1 + np.exp(-x))
    h = p * (1 - p)
    np.maximum(h, FLOOR, out=h)
    return p - y, h


def np_focal(x, y, alpha=0.25, gamma=2.0):
    """torchvision's sigmoid focal loss for 0/1 labels. With s = 2y - 1, z = s x,
    sigma = sigmoid(z), u = 1 - sigma, a = alpha y + (1 - alpha)(1 - y), the loss is
    -a u^gamma log sigma; d/dx = s a u^gamma (gamma sigma log sigma - u);
    d2/dx2 = a u^gamma sigma (gamma log sigma (u - gamma sigma) + (2 gamma + 1) u)."""
    s = 2 * y - 1
    z = s * x
    log_sigma = -np.logaddexp(0, -z)
    sigma = np.exp(log_sigma)
    u = np.exp(-np.logaddexp(0, z))
    a = alpha * y + (1 - alpha) * (1 - y)
    au = a * u**gamma
    g = s * au * (gamma * sigma * log_sigma - u)
    h = au * sigma * (gamma * log_sigma * (u - gamma * sigma) + (2 * gamma + 1) * u)
    np.maximum(h, FLOOR, out=h)
    return g, h


def np_softmax_ce(x, y):
    t = y.astype(np.int64)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    p = e / e.sum(axis=1, keepdims=True)
    h = p * (1 - p)
    np.maximum(h, FLOOR, out=h)
    p[np.arange(len(t)), t] -= 1
    return p, h


def np_huber(x, y, delta=1.0):
    e = x - y
    g = np.clip(e, -delta, delta)
    h = (np.abs(e) <= delta).astype(x.dtype)
    np.maximum(h, FLOOR, out=h)
    return g, h


# name, fusedloss loss, its params, NumPy objective, labels, XGBoost / LightGBM built-in
CASES = [
    ("BCE", "binary_cross_entropy_with_logits", {}, np_bce, "binary", "binary:logistic", "binary"),
    ("focal", "sigmoid_focal_loss", {}, np_focal, "binary", "binary:logistic", "binary"),
    ("CE", "softmax_cross_entropy", {}, np_softmax_ce, "classes", "multi:softprob", "multiclass"),
    ("Huber", "huber_loss", {}, np_huber, "real", "reg:pseudohubererror", "huber"),
]


def make_data(kind, n, n_classes, rng):
    if kind == "classes":
        return rng.normal(size=(n, n_classes)), rng.integers(0, n_classes, n).astype(np.float64)
    x = rng.normal(scale=2.0, size=n)
    if kind == "binary":
        return x, (rng.random(n) < 0.3).astype(np.float64)
    return x, x + rng.normal(scale=1.5, size=n)


def median_time(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# -- per library ------------------------------------------------------------------------


def xgboost_case(case, x, y, repeat):
    import xgboost as xgb

    import fusedloss.xgboost as fx

    label, name, params, np_obj, kind, builtin, _ = case
    n = len(y)
    feature = (np.arange(n) % 2).astype(np.float32)[:, None]
    d = xgb.DMatrix(feature, y)
    preds = np.ascontiguousarray(x, dtype=np.float32)
    obj = fx.objective(name, **params)

    def numpy_obj(p, dtrain):
        return np_obj(p, dtrain.get_label().reshape(p.shape[:1]))

    check(obj(preds, d), numpy_obj(preds, d), label)
    t_fl = median_time(lambda: obj(preds, d), repeat)
    t_np = median_time(lambda: numpy_obj(preds, d), repeat)

    p = {"tree_method": "hist", "max_depth": 1, "max_bin": 2, "nthread": 1, "objective": builtin}
    if kind == "classes":
        p["num_class"] = x.shape[1]
    booster = xgb.Booster(p, [d])
    g, h = obj(preds, d)
    booster.update(d, 0)
    booster.boost(d, 1, grad=g, hess=h)
    t_update, t_boost = [], []
    for i in range(repeat):
        t0 = time.perf_counter()
        booster.update(d, 2 * i + 2)
        t1 = time.perf_counter()
        booster.boost(d, 2 * i + 3, grad=g, hess=h)
        t2 = time.perf_counter()
        t_update.append(t1 - t0)
        t_boost.append(t2 - t1)
    t_builtin = statistics.median(t_update) - statistics.median(t_boost)
    return t_fl, t_np, t_builtin


def lightgbm_case(case, x, y, repeat):
    import lightgbm as lgb

    import fusedloss.lightgbm as fl_lgb

    label, name, params, np_obj, kind, _, builtin = case
    n = len(y)
    feature = (np.arange(n) % 2).astype(np.float64)[:, None]
    common = {"num_threads": 1, "verbose": -1, "max_bin": 2, "force_col_wise": True}
    d = lgb.Dataset(feature, y, params=common).construct()
    preds = np.asfortranarray(x, dtype=np.float64)
    obj = fl_lgb.objective(name, **params)

    def as_lightgbm(gh):  # what Booster.__boost does to the returned arrays
        return tuple(np.asarray(a.ravel(order="F"), dtype=np.float32) for a in gh)

    def numpy_obj(p, ds):
        return np_obj(p, ds.get_label())

    check(obj(preds, d), numpy_obj(preds, d), label)
    t_fl = median_time(lambda: as_lightgbm(obj(preds, d)), repeat)
    t_np = median_time(lambda: as_lightgbm(numpy_obj(preds, d)), repeat)

    p = {**common, "objective": builtin, "num_leaves": 2, "boost_from_average": False}
    if kind == "classes":
        p["num_class"] = x.shape[1]
    booster = lgb.Booster(params=p, train_set=d)
    # custom gradients need a booster without objective (LightGBM checks)
    d_custom = lgb.Dataset(feature, y, params=common).construct()
    custom = lgb.Booster(params={**p, "objective": "none"}, train_set=d_custom)
    g, h = obj(preds, d)
    boost = custom._Booster__boost  # the step update(fobj=...) takes after the objective
    booster.update()
    boost(grad=g, hess=h)
    t_update, t_boost = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        booster.update()
        t1 = time.perf_counter()
        boost(grad=g, hess=h)
        t2 = time.perf_counter()
        t_update.append(t1 - t0)
        t_boost.append(t2 - t1)
    t_builtin = statistics.median(t_update) - statistics.median(t_boost)
    return t_fl, t_np, t_builtin


def check(ours, theirs, label):
    for a, b, what in zip(ours, theirs, ("gradient", "Hessian")):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        if not np.allclose(a, b, rtol=1e-4, atol=1e-5):
            raise AssertionError(f"{label}: the NumPy objective's {what} differs from fusedloss's")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000, help="samples")
    ap.add_argument("--classes", type=int, default=10, help="classes of the CE case")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--libs", nargs="+", default=["xgboost", "lightgbm"])
    args = ap.parse_args(argv)
    fusedloss.set_num_threads(1)
    rows = []
    for lib in args.libs:
        run = {"xgboost": xgboost_case, "lightgbm": lightgbm_case}[lib]
        version = __import__(lib).__version__
        for case in CASES:
            x, y = make_data(case[4], args.n, args.classes, np.random.default_rng(0))
            t_fl, t_np, t_builtin = run(case, x, y, args.repeat)
            builtin = case[5] if lib == "xgboost" else case[6]
            label = case[0] + (f" ({args.classes} classes)" if case[4] == "classes" else "")
            rows.append((label, f"{lib} {version}", t_fl, t_np, t_builtin, builtin))
    per = 1e9 / args.n
    print(f"n = {args.n:,} samples, one thread, median of {args.repeat} rounds; ms per round")
    print("(ns per sample in parentheses)\n")
    print("| objective | library | fusedloss | NumPy | NumPy / fusedloss | built-in (est.) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, lib, t_fl, t_np, t_b, builtin in rows:
        # a difference of two noisy medians: below 0 it only says "too small to see"
        est = f"{t_b * 1e3:.1f} ({t_b * per:.1f})" if t_b > 0 else "< noise"
        print(
            f"| {label} | {lib} | {t_fl * 1e3:.1f} ({t_fl * per:.1f}) "
            f"| {t_np * 1e3:.1f} ({t_np * per:.1f}) | {t_np / t_fl:.1f}x "
            f"| {est} `{builtin}` |"
        )


if __name__ == "__main__":
    main()
