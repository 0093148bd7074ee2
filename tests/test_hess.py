"""Second derivatives: ``return_hess=True`` / ``hess_out=`` (API.md, "Second derivatives").

Every loss whose spec has a hessian (every element-wise loss and softmax_cross_entropy),
found through the registry, is checked for:

(a) parity of (loss, grad, hess) with the NumPy twin over shapes, dtypes, the parameter
    grid and every reduction, on every compiled SIMD target; a large input on every SIMD
    target and several thread counts (bitwise identical across thread counts);
(b) the hessian against central differences of the public gradient (float64, away from
    kinks);
(c) accuracy against mpmath: the derivative, at 50 digits, of each oracle's gradient
    (tests/cases.py, written from the definitions) at the accuracy inputs, extremes
    included, relative to the magnitudes of the gradient terms' derivatives;
(d) the contract: return_hess needs return_grad, hess_out needs return_hess, hess_out is
    filled and returned (the caller's object), it may alias nothing (not the input, target,
    weight, out or grad_out) and nothing is written when it is refused; in-place gradients
    with a hessian; a mean over nothing has a zero hessian; NaN inputs give NaN hessians;
    losses without a hessian do not take the keyword;
(e) closed-form facts checked without the reference: focal with gamma 0 is BCE, focal's
    hessian is negative in places, cross-entropy's diagonal is c p (1 - p) with the row's
    total target weight c, kinks take the gradient's branch.
"""

import functools
import math

import cases
import numpy as np
import pytest
from _util import DTYPES, REDUCTIONS, assert_close
from cases import LOSSES

import fusedloss as fl
from fusedloss import _kernels
from fusedloss import reference as ref

HESS = [name for name, spec in LOSSES.items() if spec.hess]
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 17)]
SIM = pytest.mark.usefixtures("each_simd_target")
SUPPORTED_SIMD = _kernels.simd_targets()[1]


_rng, _cdt = cases.seeded_rng, cases.compute_dtype
GRID = cases.grid_params(HESS)
GRID_ENDS = cases.grid_params(HESS, ends=True)


def _case(name, variant, sym, shape, dtype, *tags, **kw):
    """cases.make_case, seeded with this file's tag: (spec, args, kwargs)."""
    return cases.make_case(name, variant, sym, shape, dtype, "hess", *tags, **kw)[:3]


def _reductions(spec):
    return REDUCTIONS + list(spec.reductions)


def _three(fn, args, kw, reduction, **more):
    res = fn(*args, reduction=reduction, return_grad=True, return_hess=True, **kw, **more)
    assert isinstance(res, tuple) and len(res) == 3
    return res


def _compare3(got, want, dtype, what):
    for part, g, w in zip(("loss", "grad", "hess"), got, want):
        assert_close(g, w, dtype, f"{part} {what}")


# ============================================================================ (a) parity


def test_which_losses_have_a_hessian():
    want = {n for n, s in LOSSES.items() if s.kind == "elementwise"}
    want |= {"softmax_cross_entropy", "softmax_focal_loss"}
    assert set(HESS) == want


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_parity_with_reference(name, variant, gid, sym, dtype):
    for shape in SHAPES:
        spec, args, kw = _case(name, variant, sym, shape, dtype)
        fn, twin = getattr(fl, name), getattr(ref, name)
        for reduction in _reductions(spec):
            got = _three(fn, args, kw, reduction)
            want = _three(twin, args, kw, reduction)
            assert got[2].shape == np.shape(args[0]) and got[2].dtype == _cdt(dtype)
            _compare3(got, want, dtype, f"{shape} {reduction}")
            # asking for the hessian changes neither the loss nor the gradient (bitwise)
            lg = fn(*args, reduction=reduction, return_grad=True, **kw)
            assert np.array_equal(lg[0], got[0], equal_nan=True)
            assert np.array_equal(lg[1], got[1], equal_nan=True)


@functools.lru_cache(maxsize=4)
def _large(name, variant, gid, dtype):
    spec = LOSSES[name]
    sym = dict(cases.param_grid(spec, variant))[gid]
    _, args, kw = _case(name, variant, sym, (256, 1024), dtype, "large", as_input_shape=True)
    return args, kw


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_ENDS)
def test_large_every_simd_target_and_thread_count(name, variant, gid, sym, dtype):
    """2**18 elements (helper threads start): every SIMD target this CPU runs against the
    reference, and 1, 2 and 3 threads bitwise identical on each."""
    args, kw = _large(name, variant, gid, np.dtype(dtype).name)
    fn = getattr(fl, name)
    want = _three(getattr(ref, name), args, kw, "mean")
    before = _kernels.build_info()[2]
    try:
        for simd in SUPPORTED_SIMD:
            _kernels.set_simd(simd)
            first = _three(fn, args, kw, "mean", n_threads=1)
            _compare3(first, want, dtype, simd)
            for n in (2, 3):
                again = _three(fn, args, kw, "mean", n_threads=n)
                for a, b in zip(first, again):
                    assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), (simd, n)
    finally:
        _kernels.set_simd(before)


# ======================================================================== (b) finite differences


def _smooth_args(spec, args, kw, tag):
    args = cases.smooth_point(spec, args, kw, _rng(spec.name, "kinks", tag))
    if spec.input_domain == "prob":  # x +- h stays inside [0, 1], away from the clamp
        args = (np.clip(args[0], 0.02, 0.98),) + tuple(args[1:])
    if spec.name == "hinge_loss":  # away from the kink margin - y x == 0
        x, t = args
        margin = float(kw.get("margin", 1.0))
        z = margin - t * x
        x = np.where(np.abs(z) < 1e-3, x + 0.01 * t, x)
        args = (x, t)
    return args


@SIM
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_hessian_is_the_derivative_of_the_gradient(name, variant, gid, sym):
    spec, args, kw = _case(name, variant, sym, (3, 4), np.float64, "fd", scale=2.0)
    args = _smooth_args(spec, args, kw, gid)
    fn = getattr(fl, name)
    x, rest = args[0], args[1:]
    _, g, h = _three(fn, args, kw, "sum")
    eps = 1e-6

    def grad_at(z):
        return fn(z, *rest, reduction="sum", return_grad=True, **kw)[1]

    if spec.kind == "elementwise":  # each gradient entry depends on its own element only
        num = (grad_at(x + eps) - grad_at(x - eps)) / (2 * eps)
    else:  # class axis: one class column of every row at a time (rows are independent)
        num = np.empty_like(x)
        for j in range(x.shape[-1]):
            d = np.zeros_like(x)
            d[..., j] = eps
            num[..., j] = ((grad_at(x + d) - grad_at(x - d)) / (2 * eps))[..., j]
    scale = 1e-7 * (1 + np.abs(g).max())
    np.testing.assert_allclose(h, num, rtol=1e-5, atol=scale)
    if gid == "default" and spec.name not in ("l1_loss", "hinge_loss", "kl_div"):
        assert np.abs(h).max() > 0  # a non-trivial case (those three are 0 by definition)


# ============================================================================ (c) mpmath


def _oracle_hessian(spec, args, kw, mp):
    """(true, scale) of the hessian's diagonal: mpmath.diff of the oracle's gradient with
    respect to each element (each logit of a row), and the sum of the magnitudes of the
    derivatives of the gradient's terms."""
    oracle = cases.ORACLES[spec.name]
    x = np.asarray(args[0])
    true = np.zeros(x.shape)
    scale = np.zeros(x.shape)

    def terms(v):
        return v if isinstance(v, tuple) else (v,)

    def deriv(f, v):
        # a central difference at 150 digits with a step of 2^-160 relative: the terms of
        # a gradient can be ~1 where its derivative is ~1e-35 (a saturated softmax)
        step = mp.mpf(2) ** -160 * max(1, abs(v))
        return (f(v + step) - f(v - step)) / (2 * step)

    with mp.workdps(150):
        for i, u, target, p in cases.oracle_arguments(spec, args, kw):
            if spec.kind == "elementwise":
                n = len(terms(oracle.fn(u, target, p)[1]))
                ds = [
                    deriv(lambda v, k=k: terms(oracle.fn(v, target, p)[1])[k], u) for k in range(n)
                ]
                true[i] = float(mp.fsum(ds))
                scale[i] = float(mp.fsum(abs(d) for d in ds))
            else:
                row = tuple(i)
                for j in range(len(u)):

                    def gj(v, j=j, k=0):
                        z = list(u)
                        z[j] = v
                        return terms(oracle.fn(z, target, p)[1][j])[k]

                    n = len(terms(oracle.fn(u, target, p)[1][j]))
                    ds = [deriv(lambda v, k=k: gj(v, k=k), u[j]) for k in range(n)]
                    true[row + (j,)] = float(mp.fsum(ds))
                    scale[row + (j,)] = float(mp.fsum(abs(d) for d in ds))
    return true, scale


@pytest.fixture(scope="module")
def mpmath():
    return pytest.importorskip("mpmath")


def _near_kink(spec, args, kw):
    """Elements within 4 ulp (of the compute dtype, relative to the operands) of a kink:
    the hessian jumps there and the kernel's rounded difference may take either side (at
    the kink itself, test_kinks_take_the_gradients_branch)."""
    x = np.asarray(args[0])
    u = 4 * np.finfo(x.dtype).eps
    x = x.astype(np.float64)
    t = np.asarray(args[1], np.float64)
    if spec.name == "hinge_loss":
        m = float(kw.get("margin", 1.0))
        return np.abs(m - t * x) <= u * (abs(m) + np.abs(x))
    ks = cases.kinks(spec, kw)
    if not ks:
        return np.zeros(x.shape, bool)
    e = x - t
    mag = np.maximum(np.abs(x), np.abs(t))
    # (or within the oracle's difference step, 2^-160 relative, of it)
    near = [
        np.abs(e - k) <= np.maximum(u * np.maximum(mag, abs(k)), 2**-150 * (1 + mag)) for k in ks
    ]
    return np.any(near, 0)


@functools.lru_cache(maxsize=None)
def _accuracy(name, variant, gid, dtype):
    import mpmath

    spec = LOSSES[name]
    sym = dict(cases.param_grid(spec, variant))[gid]
    rng = _rng(name, variant, gid, dtype, "mpmath")
    args = cases.accuracy_inputs(spec, variant, sym, dtype, rng)
    kw = cases.make_params(spec, sym, args[0].shape, np.dtype(dtype), rng)
    if spec.input_domain == "prob":  # central differences need x +- step inside [0, 1]
        x = args[0]
        args = (np.where((x > 0) & (x < 1), x, 0.5).astype(x.dtype),) + tuple(args[1:])
    return args, kw, _oracle_hessian(spec, args, kw, mpmath)


# float32 evaluates exponents (a logit gap, gamma log q) in float32: the hessian's error is
# then relative to its terms times the conditioning of exp, as for the gradients
# (test_registry.py's float32 rules); these bounds hold on every input of accuracy_inputs.
_RTOL32 = {"sigmoid_focal_loss": 3e-6, "heatmap_focal_loss": 3e-6}


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_ENDS)
def test_accuracy_against_mpmath(mpmath, name, variant, gid, sym, dtype):
    """float64 within 1e-13 and float32 within 1e-6 (focal losses 3e-6) of the terms'
    magnitudes, per element; per row's largest for the class axis in float32."""
    spec = LOSSES[name]
    dt = np.dtype(dtype)
    args, kw, (true, scale) = _accuracy(name, variant, gid, dt.name)
    h = _three(getattr(fl, name), args, kw, "none")[2]
    assert h.dtype == dt
    skip = _near_kink(spec, args, kw)
    rtol = 1e-13 if dt == np.float64 else _RTOL32.get(name, 1e-6)
    if dt == np.float32 and spec.kind == "class_axis":
        scale = np.broadcast_to(scale.max(axis=-1, keepdims=True), scale.shape)
    info = np.finfo(dt)
    with np.errstate(all="ignore"):
        over = np.abs(true) > float(info.max)
        under = scale < float(info.tiny)
        ok = np.where(
            over,
            h == np.copysign(np.inf, true),
            np.where(
                under,
                np.abs(h) < 2 * float(info.tiny),
                np.abs(h.astype(np.float64) - true) <= rtol * scale + float(info.tiny),
            ),
        )
    bad = ~ok & ~skip
    if bad.any():
        i = tuple(int(v) for v in np.unravel_index(int(np.flatnonzero(bad)[0]), h.shape))
        err = np.abs(h.astype(np.float64) - true) / np.maximum(scale, 1e-300)
        raise AssertionError(
            f"{bad.sum()} of {h.size} hessian values off; worst relative error "
            f"{float(np.max(np.where(skip, 0, err))):.3g}; first at {i}: got {float(h[i])!r}, "
            f"true {float(true[i])!r}, scale {float(scale[i]):.3g}, "
            f"inputs {[np.asarray(a)[i[: np.ndim(a)]].tolist() for a in args]}"
        )


# ============================================================================ (d) contract


def _simple(name, dtype=np.float64, shape=(4, 5)):
    spec = LOSSES[name]
    variant = cases.target_variants(spec)[0]
    _, args, kw = _case(name, variant, {}, shape, dtype, "contract", as_input_shape=True)
    return spec, getattr(fl, name), args, kw


@pytest.mark.parametrize("name", HESS)
def test_return_hess_needs_return_grad(name):
    _, fn, args, kw = _simple(name)
    with pytest.raises(ValueError, match="return_hess=True needs return_grad=True"):
        fn(*args, return_hess=True, **kw)
    h = np.full(np.shape(args[0]), 7.0)
    with pytest.raises(ValueError, match="hess_out was given but return_hess is False"):
        fn(*args, return_grad=True, hess_out=h, **kw)
    assert (h == 7.0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", HESS)
def test_hess_out_is_filled_and_returned(name, dtype):
    _, fn, args, kw = _simple(name, dtype)
    want = _three(fn, args, kw, "none")
    hb = np.full(np.shape(args[0]), -3.5, _cdt(dtype))
    got = _three(fn, args, kw, "none", hess_out=hb)
    assert got[2] is hb
    assert np.array_equal(hb, want[2], equal_nan=True)

    class Sub(np.ndarray):
        pass

    hs = np.zeros(np.shape(args[0]), _cdt(dtype)).view(Sub)
    got = _three(fn, args, kw, "mean", hess_out=hs)
    assert got[2] is hs and isinstance(got[2], Sub)
    assert np.abs(np.asarray(hs)).max() > 0 or name in ("l1_loss", "hinge_loss", "kl_div")


@pytest.mark.parametrize("name", HESS)
def test_hess_out_may_alias_nothing(name):
    spec, fn, args, kw = _simple(name)
    x = np.ascontiguousarray(args[0], np.float64)
    rest = args[1:]
    args = (x,) + tuple(rest)
    shape = x.shape
    elementwise = spec.kind == "elementwise"
    cases_ = [("the input", lambda: (x, {}))]
    if elementwise:
        t = np.ascontiguousarray(args[1], np.float64)
        args = (x, t)
        cases_.append(("the target", lambda: (t, {})))
        w = np.full(shape, 0.5)
        cases_.append(("the weight", lambda: (w, {"weight": w})))
        o = np.zeros(shape)
        cases_.append(("out", lambda: (o, {"out": o, "reduction": "none"})))
    g = np.zeros(shape)
    cases_.append(("grad_out", lambda: (g, {"grad_out": g})))
    big = np.zeros((2,) + shape)
    cases_.append(("grad_out, overlapping", lambda: (big[0], {"grad_out": big[0]})))
    before = [np.array(a, copy=True) for a in args]
    for what, make in cases_:
        hb, extra = make()
        if what == "grad_out, overlapping":
            hb = big.reshape(-1)[1 : 1 + x.size].reshape(shape)  # shares grad_out's memory
        call_kw = dict(kw)
        call_kw.update(extra)
        reduction = call_kw.pop("reduction", "mean")
        grad_out = call_kw.pop("grad_out", None)
        snap = [np.array(b, copy=True) for b in (g, big)]
        with pytest.raises(ValueError, match="hess_out"):
            fn(
                *args,
                reduction=reduction,
                return_grad=True,
                return_hess=True,
                grad_out=grad_out,
                hess_out=hb,
                **call_kw,
            )
        for a, b in zip(args, before):
            np.testing.assert_array_equal(a, b, err_msg=what)
        assert all(np.array_equal(s, b) for s, b in zip(snap, (g, big))), what


@pytest.mark.parametrize(
    "bad,match",
    [
        (lambda s: np.zeros(s, np.float32), "dtype"),
        (lambda s: np.zeros(s[:-1] + (s[-1] + 1,)), "shape"),
        (lambda s: np.zeros(s[::-1]).T, "C-contiguous"),
        (lambda s: np.broadcast_to(np.zeros(s), s), "writ"),
        (lambda s: [[0.0] * s[-1]] * s[0], "ndarray"),
    ],
    ids=["dtype", "shape", "layout", "readonly", "list"],
)
@pytest.mark.parametrize("name", ["mse_loss", "softmax_cross_entropy"])
def test_bad_hess_out_is_refused(name, bad, match):
    _, fn, args, kw = _simple(name)
    g = np.full(np.shape(args[0]), 9.0)
    with pytest.raises(ValueError, match=match):
        fn(*args, return_grad=True, return_hess=True, grad_out=g, hess_out=bad(args[0].shape), **kw)
    assert (g == 9.0).all()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name", HESS)
def test_gradient_in_place_with_a_hessian(name, dtype):
    _, fn, args, kw = _simple(name, dtype)
    x = np.ascontiguousarray(args[0], _cdt(dtype))
    args = (x,) + tuple(args[1:])
    want = _three(fn, args, kw, "sum")
    x2 = x.copy()
    got = fn(x2, *args[1:], reduction="sum", return_grad=True, return_hess=True, grad_out=x2, **kw)
    assert got[1] is x2
    for a, b in zip(want, got):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_mean_over_nothing_has_a_zero_hessian(dtype):
    z = np.full((4, 3), np.nan, dtype)
    t = np.full(4, -100)
    h = np.full((4, 3), 5.0, dtype)
    loss, g, hh = fl.softmax_cross_entropy(z, t, return_grad=True, return_hess=True, hess_out=h)
    assert np.isnan(loss) and (g == 0).all() and hh is h and (h == 0).all()
    for name in HESS:
        spec, fn, args, kw = _simple(name, dtype, (0, 3))
        loss, g, hh = _three(fn, args, kw, "mean")
        assert hh.shape == (0, 3) and hh.dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", HESS)
def test_nan_input_gives_a_nan_hessian_there_only(name):
    spec, fn, args, kw = _simple(name)
    x = np.array(args[0], np.float64)
    i = (1, 2)
    x[i] = np.nan
    h = _three(fn, (x,) + tuple(args[1:]), kw, "none")[2]
    if spec.kind == "class_axis":
        t = np.asarray(args[1])
        row = h[i[0]]
        assert np.isnan(row).all() or (t.ndim == 1 and t[i[0]] == -100 and (row == 0).all())
        others = np.delete(h, i[0], axis=0)
    else:
        assert np.isnan(h[i])
        others = np.delete(h.reshape(-1), np.ravel_multi_index(i, h.shape))
    assert not np.isnan(others).any()


@pytest.mark.parametrize("name", [n for n, s in LOSSES.items() if not s.hess])
def test_losses_without_a_hessian_do_not_take_the_keyword(name):
    with pytest.raises(TypeError, match="return_hess"):
        getattr(fl, name)(np.zeros((2, 3)), np.zeros((2, 3)), return_grad=True, return_hess=True)


# ============================================================================ (e) closed forms


def test_focal_with_gamma_0_is_bce():
    rng = _rng("focal-bce")
    x = rng.normal(size=1000) * 6
    t = rng.uniform(size=1000)
    a = fl.sigmoid_focal_loss(x, t, alpha=-1, gamma=0, return_grad=True, return_hess=True)[2]
    b = fl.binary_cross_entropy_with_logits(x, t, return_grad=True, return_hess=True)[2]
    np.testing.assert_allclose(a, b, rtol=1e-15, atol=0)


def test_focal_hessian_is_negative_in_places():
    """At gamma = 2 a share of the hessians is negative (the loss is not convex in x): the
    GBDT objectives must floor them, and the kernel must not hide them."""
    rng = _rng("focal-neg")
    x = rng.normal(size=100_000) * 3
    t = (rng.uniform(size=100_000) < 0.3).astype(np.float64)
    h = fl.sigmoid_focal_loss(x, t, gamma=2, reduction="sum", return_grad=True, return_hess=True)[2]
    share = float((h < 0).mean())
    assert 0.02 < share < 0.5, share
    # the sign agrees with central differences of the gradient where the kernel says < 0
    neg = np.flatnonzero(h < -1e-3)[:50]
    eps = 1e-6
    gp = fl.sigmoid_focal_loss(x + eps, t, gamma=2, reduction="sum", return_grad=True)[1]
    gm = fl.sigmoid_focal_loss(x - eps, t, gamma=2, reduction="sum", return_grad=True)[1]
    assert ((gp - gm)[neg] < 0).all()


@pytest.mark.parametrize("C", [3, 10, 40])
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_cross_entropy_hessian_is_c_p_1_minus_p(C, dtype):
    """s c p_j (1 - p_j), c = (1 - eps) w[y] + eps / C sum(w), s = 1 / sum of w[y] over the
    rows that count, from a softmax computed here in float64."""
    rng = _rng("ce-cp", C, np.dtype(dtype).str)
    n, eps = 50, 0.15
    z = (rng.normal(size=(n, C)) * 3).astype(dtype)
    y = rng.integers(0, C, n)
    y[::7] = -100
    w = rng.uniform(0.5, 2.0, C).astype(dtype)
    _, _, h = fl.softmax_cross_entropy(
        z, y, weight=w, label_smoothing=eps, return_grad=True, return_hess=True
    )
    zz = z.astype(np.float64)
    p = np.exp(zz - zz.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    wd = w.astype(np.float64)
    keep = y != -100
    c = np.where(keep, (1 - eps) * wd[np.where(keep, y, 0)] + eps / C * wd.sum(), 0.0)
    want = c[:, None] * p * (1 - p) / wd[y[keep]].sum()
    tol = 1e-14 if np.dtype(dtype) == np.float64 else 2e-6
    np.testing.assert_allclose(h, want, rtol=tol, atol=tol * want.max())
    assert (h[~keep] == 0).all()


def test_cross_entropy_hessian_of_a_saturated_row_keeps_its_tiny_values():
    """p_t -> 1: p_t (1 - p_t) ~ e^-80 from the other classes' mass, not 1 - p_t = 0."""
    z = np.array([[80.0, 0.0, 0.0], [0.0, 80.0, -80.0]])
    t = np.array([0, 1])
    for dtype in (np.float64, np.float32):
        h = fl.softmax_cross_entropy(
            z.astype(dtype), t, reduction="sum", return_grad=True, return_hess=True
        )[2]
        e = math.exp(-80)
        want = np.array([[2 * e, e, e], [e, e + math.exp(-160), math.exp(-160)]])
        np.testing.assert_allclose(
            h[:, :2], want[:, :2], rtol=1e-6 if dtype == np.float32 else 1e-14
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("C", [2, 5, 40])
def test_cross_entropy_hessian_where_another_class_dominates(C, dtype):
    """The dominant class is not the target: its p (1 - p) ~ e^-40 comes from the other
    classes' mass in the kernel and in the reference alike (1 - p would be 0)."""
    z = np.zeros((1, C), dtype)
    z[0, -1] = 40.0
    e = math.exp(-40)
    s = 1 + (C - 1) * e
    want = np.full((1, C), e / s * (1 - e / s))
    want[0, -1] = (1 / s) * ((C - 1) * e / s)
    kw = dict(reduction="sum", return_grad=True, return_hess=True)
    tol = 1e-14 if np.dtype(dtype) == np.float64 else 2e-6
    for fn in (fl.softmax_cross_entropy, ref.softmax_cross_entropy):
        h = fn(z, np.array([0]), **kw)[2]
        np.testing.assert_allclose(h, want, rtol=tol, err_msg=fn.__module__)


def test_kinks_take_the_gradients_branch():
    """Huber at |e| == delta: the quadratic piece (1); smooth-L1 at |e| == beta: the linear
    piece (0); L1 at 0: 0; hinge at the margin: 0."""
    e = np.array([-1.0, 1.0, 0.0])
    t = np.zeros(3)
    kw = dict(reduction="sum", return_grad=True, return_hess=True)
    assert list(fl.huber_loss(e, t, delta=1.0, **kw)[2]) == [1.0, 1.0, 1.0]
    assert list(fl.smooth_l1_loss(e, t, beta=1.0, **kw)[2]) == [0.0, 0.0, 1.0]
    assert list(fl.l1_loss(e, t, **kw)[2]) == [0.0, 0.0, 0.0]
    assert list(fl.hinge_loss(np.array([1.0, -1.0]), np.array([1.0, -1.0]), **kw)[2]) == [0, 0]


def test_weights_and_mean_scale_the_hessian():
    rng = _rng("scale")
    x = rng.normal(size=(6, 4))
    t = rng.uniform(size=(6, 4))
    w = rng.uniform(0.5, 2.0, size=4)
    kw = dict(return_grad=True, return_hess=True)
    plain = fl.binary_cross_entropy_with_logits(x, t, reduction="sum", **kw)[2]
    weighted = fl.binary_cross_entropy_with_logits(x, t, weight=w, reduction="mean", **kw)[2]
    np.testing.assert_allclose(weighted, plain * w / x.size, rtol=1e-15)
