"""Nothing crashes, nothing is lost: every kind of bad input raises a documented
exception before anything is written, buffers and inputs are left untouched, and
edge cases (empty, 0-d, misaligned, byte-swapped, subclassed arrays) give the
reference's results.  Complements test_validation.py (messages) and test_fuzz.py
(random calls)."""

import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

import fusedloss as fl
from fusedloss import reference as ref

CE = fl.softmax_cross_entropy
BCE = fl.binary_cross_entropy_with_logits
FOCAL = fl.sigmoid_focal_loss
HUBER = fl.huber_loss
SL1 = fl.smooth_l1_loss
ELEMENTWISE = [BCE, FOCAL, HUBER, SL1]
ALL = [CE] + ELEMENTWISE
PARAM = {CE: "label_smoothing", FOCAL: "gamma", HUBER: "delta", SL1: "beta"}
ids = [f.__name__ for f in ALL]
rng = np.random.default_rng(7)


def args_for(fn, dtype=np.float64, shape=(4, 5)):
    x = rng.normal(size=shape).astype(dtype)
    if fn is CE:
        return x, rng.integers(0, shape[-1], size=shape[:-1])
    return x, rng.uniform(size=shape).astype(dtype)


def unaligned(a):
    """A copy of `a` at an odd byte address (misaligned for its dtype)."""
    raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
    v = raw.view(a.dtype).reshape(a.shape)
    v[...] = a
    assert not v.flags.aligned
    return v


# ---------------------------------------------------------------- bad parameters

BAD_SCALARS = [  # value, exception (for every real-valued parameter)
    ("a", TypeError),
    ("0.5", TypeError),
    (b"1", TypeError),
    (None, TypeError),
    ([1.0], TypeError),
    ((1.0,), TypeError),
    (np.array([0.5]), TypeError),
    (np.array([0.5, 0.5]), TypeError),
    (1 + 0j, TypeError),
    (np.complex128(0.5), TypeError),
    (np.array(0.5 + 0j), TypeError),
    (np.datetime64(1, "D"), TypeError),
    (object(), TypeError),
    ({}, TypeError),
    (np.nan, ValueError),
    (np.inf, ValueError),
    (-np.inf, ValueError),
    (np.float32(np.nan), ValueError),
    (10**400, ValueError),
    (-(10**400), ValueError),
]


@pytest.mark.parametrize("fn", [CE, FOCAL, HUBER, SL1], ids=lambda f: f.__name__)
@pytest.mark.parametrize("value,exc", BAD_SCALARS, ids=[repr(v)[:20] for v, _ in BAD_SCALARS])
def test_non_numeric_or_non_finite_parameter(fn, value, exc):
    x, t = args_for(fn)
    with pytest.raises(exc, match=PARAM[fn]):
        fn(x, t, **{PARAM[fn]: value})
    if fn is FOCAL:
        with pytest.raises(exc, match="alpha"):
            fn(x, t, alpha=value)


@pytest.mark.parametrize("fn", [CE, FOCAL, HUBER, SL1], ids=lambda f: f.__name__)
@pytest.mark.parametrize(
    "value", [np.float32(0.5), np.float64(0.5), np.array(0.5), 1, True, np.int8(1)]
)
def test_real_scalar_like_parameters_accepted(fn, value):
    x, t = args_for(fn)
    got = fn(x, t, **{PARAM[fn]: value})
    want = getattr(ref, fn.__name__)(x, t, **{PARAM[fn]: float(value)})
    assert got == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize(
    "value,exc",
    [
        (0, ValueError),
        (-3, ValueError),
        (1.0, TypeError),
        ("4", TypeError),
        ([2], TypeError),
        (np.float64(2), TypeError),
        (-(2**70), ValueError),
    ],
)
def test_bad_n_threads(fn, value, exc):
    with pytest.raises(exc, match="n_threads"):
        fn(*args_for(fn), n_threads=value)


@pytest.mark.parametrize(
    "value,exc",
    [
        ("a", TypeError),
        (None, TypeError),
        (1.5, TypeError),
        (2**63, ValueError),
        (-(2**63) - 1, ValueError),
        (np.uint64(2**64 - 1), ValueError),
    ],
)
def test_bad_ignore_index(value, exc):
    with pytest.raises(exc, match="ignore_index"):
        CE(*args_for(CE), ignore_index=value)


@pytest.mark.parametrize("eps", [-1e-300, 1 + 1e-15, 2.0])
def test_label_smoothing_out_of_range(eps):
    with pytest.raises(ValueError, match="label_smoothing"):
        CE(*args_for(CE), label_smoothing=eps)


@pytest.mark.parametrize(
    "fn,kw",
    [
        (HUBER, dict(delta=0.0)),
        (HUBER, dict(delta=-0.0)),
        (HUBER, dict(delta=-1e-300)),
        (SL1, dict(beta=-1e-300)),
        (FOCAL, dict(gamma=-1e-300)),
    ],
)
def test_parameter_ranges(fn, kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        fn(*args_for(fn), **kw)


# ---------------------------------------------------------------- bad arrays

NON_NUMERIC = [
    np.complex64,
    np.complex128,
    object,
    "U4",
    "S4",
    "datetime64[s]",
    "timedelta64[s]",
    [("a", "f8")],
]


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("dtype", NON_NUMERIC, ids=str)
def test_non_numeric_arrays_are_type_errors(fn, dtype):
    x, t = args_for(fn)
    bad_x = np.zeros(x.shape, dtype)
    with pytest.raises(TypeError, match="logits|input"):
        fn(bad_x, t)
    bad_t = np.zeros(t.shape if fn is CE else x.shape, dtype)
    with pytest.raises(TypeError, match="target"):
        fn(x, bad_t)


@pytest.mark.parametrize("name", ["weight", "pos_weight"])
@pytest.mark.parametrize("dtype", NON_NUMERIC, ids=str)
def test_non_numeric_weights_are_type_errors(name, dtype):
    x, t = args_for(BCE)
    with pytest.raises(TypeError, match=name):
        BCE(x, t, **{name: np.zeros(x.shape[-1:], dtype)})
    if name == "weight":
        with pytest.raises(TypeError, match="weight"):
            CE(*args_for(CE), weight=np.zeros(5, dtype))


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("bad", [[[1.0, 2.0], [3.0]], [2**70, 1], "abc", {1: 2}, None])
def test_unconvertible_inputs(fn, bad):
    with pytest.raises((TypeError, ValueError)):
        fn(bad, bad)


def test_nan_weight_propagates():
    x, t = args_for(CE)
    w = np.ones(5)
    w[t[0]] = np.nan
    assert np.isnan(CE(x, t, weight=w))
    loss, g = BCE(*args_for(BCE), pos_weight=np.full(5, np.nan), return_grad=True)
    assert np.isnan(loss) and np.isnan(g).all()


def test_shape_messages_show_both_shapes():
    x, t = args_for(CE)
    with pytest.raises(ValueError, match=r"\(3,\).*\(4,\)"):
        CE(x, t[:3])
    with pytest.raises(ValueError, match=r"\(4, 6\).*\(4, 5\)"):
        CE(x, np.full((4, 6), 0.2))
    with pytest.raises(ValueError, match=r"\(5,\).*\(4,\)"):
        CE(x, t, weight=np.ones(4))
    with pytest.raises(ValueError, match=r"\(3,\).*\(4, 5\)"):
        BCE(*args_for(BCE), pos_weight=np.ones(3))
    for fn in ELEMENTWISE:
        x, t = args_for(fn)
        with pytest.raises(ValueError, match=r"\(4, 1\).*\(4, 5\)"):
            fn(x, t[:, :1])


def test_index_error_names_value_and_position():
    x = np.zeros((2, 3, 4))
    t = np.zeros((2, 3), np.int16)
    t[1, 2] = -5
    with pytest.raises(IndexError, match=r"target\[1, 2\] = -5 is out of range for 4 classes"):
        CE(x, t)
    t[1, 2] = -100  # the ignore_index: fine
    CE(x, t)
    with pytest.raises(IndexError, match=r"target\[1, 2\] = -100"):
        CE(x, t, ignore_index=-1)


# ---------------------------------------------------------------- nothing written on error


def _bad_calls(fn):
    """(description, kwargs-updater) pairs that each make a call with valid out and
    grad_out buffers fail, with the exception type."""
    x, t = args_for(fn)
    calls = [
        ("reduction", dict(reduction="avg"), ValueError),
        ("n_threads", dict(n_threads=0), ValueError),
        ("n_threads type", dict(n_threads="2"), TypeError),
        ("target dtype", dict(target=np.zeros(np.shape(t), complex)), TypeError),
        ("target shape", dict(target=t[:-1]), ValueError),
        ("logits dtype", dict(x=x.astype(object)), TypeError),
    ]
    if fn is CE:
        bad_t = t.copy()
        bad_t[-1] = 5
        calls += [
            ("index range", dict(target=bad_t), IndexError),
            ("weight length", dict(weight=np.ones(4)), ValueError),
            ("weight dtype", dict(weight=np.ones(5, complex)), TypeError),
            ("label_smoothing", dict(label_smoothing=1.5), ValueError),
            ("label_smoothing type", dict(label_smoothing="x"), TypeError),
            (
                "ignore_index with probs",
                dict(target=np.full(x.shape, 0.2), ignore_index=1),
                ValueError,
            ),
            ("float indices", dict(target=t.astype(float)), ValueError),
            ("bool indices", dict(target=t > 1), TypeError),
        ]
    if fn is BCE:
        calls += [
            ("weight shape", dict(weight=np.ones(3)), ValueError),
            ("pos_weight shape", dict(pos_weight=np.ones((2, 5))), ValueError),
            ("pos_weight dtype", dict(pos_weight=np.ones(5, object)), TypeError),
        ]
    if fn is FOCAL:
        calls += [
            ("gamma", dict(gamma=-1.0), ValueError),
            ("alpha", dict(alpha=np.nan), ValueError),
            ("gamma type", dict(gamma=[2.0]), TypeError),
        ]
    if fn is HUBER:
        calls += [
            ("delta", dict(delta=0.0), ValueError),
            ("delta type", dict(delta=None), TypeError),
        ]
    if fn is SL1:
        calls += [("beta", dict(beta=-1.0), ValueError), ("beta type", dict(beta="1"), TypeError)]
    return calls


def _bad_call_ids():
    return [(fn, d, kw, e) for fn in ALL for d, kw, e in _bad_calls(fn)]


@pytest.mark.parametrize(
    "fn,desc,upd,exc",
    _bad_call_ids(),
    ids=[f"{fn.__name__}-{d}" for fn, d, _, _ in _bad_call_ids()],
)
@pytest.mark.parametrize("in_place", [False, True])
def test_failed_call_writes_nothing(fn, desc, upd, exc, in_place):
    x, t = args_for(fn)
    upd = dict(upd)
    x = upd.pop("x", x)
    t = upd.pop("target", t)
    loss_shape = np.shape(x)[:-1] if fn is CE else np.shape(x)
    out = np.full(loss_shape, 7.0)
    grad_out = x if (in_place and x.dtype == np.float64) else np.full(np.shape(x), 7.0)
    snaps = [
        (a, a.tobytes())
        for a in (x, t, out, grad_out)
        + tuple(v for v in upd.values() if isinstance(v, np.ndarray) and v.dtype.kind != "O")
        if isinstance(a, np.ndarray) and a.dtype.kind != "O"
    ]
    with pytest.raises(exc):
        fn(
            x,
            t,
            reduction=upd.pop("reduction", "none"),
            return_grad=True,
            out=out,
            grad_out=grad_out,
            **upd,
        )
    for a, b in snaps:
        assert a.tobytes() == b, f"{desc}: an array was written"


BUFFER_FAULTS = [
    "shape",
    "dtype",
    "byteswapped",
    "noncontig",
    "readonly",
    "unaligned",
    "list",
    "reduction",
    "no_grad",
]


def _faulty(kind, shape, dtype):
    b = np.full(shape, 7.0, dtype)
    if kind == "shape":
        return np.full(shape + (1,), 7.0, dtype)
    if kind == "dtype":
        return b.astype(np.float32 if dtype == np.float64 else np.float64)
    if kind == "byteswapped":
        return b.astype(b.dtype.newbyteorder())
    if kind == "noncontig":
        return np.full(shape[:-1] + (2 * shape[-1],), 7.0, dtype)[..., ::2]
    if kind == "readonly":
        b.flags.writeable = False
        return b
    if kind == "unaligned":
        return unaligned(b)
    if kind == "list":
        return b.tolist()
    return b


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("which", ["out", "grad_out"])
@pytest.mark.parametrize("kind", BUFFER_FAULTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bad_buffer_rejected_untouched(fn, which, kind, dtype):
    x, t = args_for(fn, dtype, shape=(3, 6))
    x0, t0 = x.copy(), t.copy()
    shape = x.shape if which == "grad_out" or fn is not CE else x.shape[:-1]
    buf = _faulty(kind, shape, dtype)
    before = np.array(buf, copy=True)
    kw = dict(reduction="none", return_grad=True)
    if kind == "reduction":
        kw["reduction"] = "sum"
        if which == "grad_out":
            pytest.skip("grad_out is used with every reduction")
    if kind == "no_grad":
        kw["return_grad"] = False
        if which == "out":
            pytest.skip("out is used without a gradient")
    with pytest.raises(ValueError, match="out|return_grad"):
        fn(x, t, **kw, **{which: buf})
    np.testing.assert_array_equal(np.asarray(buf), before)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)


# ---------------------------------------------------------------- aliasing


def _aliasing_cases():
    cases = []
    for fn in ALL:
        x, t = args_for(fn)
        cases.append((fn, "out is grad_out", x, t, {}, "same"))
        if fn is not CE:
            cases += [
                (fn, "out=target", x, t, {}, "out:t"),
                (fn, "grad_out=target", x, t, {}, "grad:t"),
                (fn, "out=logits", x, t, {}, "out:x"),
                (fn, "grad_out=logits, target is logits", x, x, {}, "grad:x"),
            ]
    for name in ("weight", "pos_weight"):
        cases += [
            (BCE, f"grad_out={name}", None, None, {name: "full"}, "grad:" + name),
            (BCE, f"out={name}", None, None, {name: "full"}, "out:" + name),
            (BCE, f"{name} is the in-place logits", None, None, {name: "x"}, "grad:x"),
        ]
    cases += [
        (CE, "out over weight", None, None, {"weight": "big"}, "out:weight"),
        (CE, "grad_out over weight", None, None, {"weight": "big"}, "grad:weight"),
        (CE, "out over index target", None, None, {}, "out:t"),
        (CE, "grad_out over index target", None, None, {}, "grad:t"),
        (CE, "grad_out over prob target", None, None, {"prob": True}, "grad:t"),
        (CE, "grad_out=logits, target is logits", None, None, {"prob": True}, "grad:x=t"),
        (CE, "out over logits", None, None, {}, "out:x"),
    ]
    return cases


@pytest.mark.parametrize("case", _aliasing_cases(), ids=lambda c: f"{c[0].__name__}-{c[1]}")
def test_aliasing_rejected(case):
    fn, desc, x, t, extra, how = case
    store = np.zeros(200)  # every array below lives in here
    x = store[:20].reshape(4, 5)
    x[...] = rng.normal(size=(4, 5))
    kw = dict(reduction="none", return_grad=True)
    if fn is CE:
        if extra.get("prob"):
            t = store[40:60].reshape(4, 5)
            t[...] = 0.2
        else:
            t = store[40:44].view(np.int64)
            t[...] = [0, 1, 2, 3]
    else:
        t = store[40:60].reshape(4, 5)
        t[...] = 0.5
    if how == "grad:x=t" or (fn is not CE and desc.endswith("target is logits")):
        t = x
    for name in ("weight", "pos_weight"):
        if extra.get(name) == "full":
            w = store[80:100].reshape(4, 5)
            w[...] = 1.0
            kw[name] = w
        elif extra.get(name) == "x":
            kw[name] = x
        elif extra.get(name) == "big":
            w = store[100:105]
            w[...] = 1.0
            kw[name] = w
    loss_shape = (4,) if fn is CE else (4, 5)
    out = store[120 : 120 + int(np.prod(loss_shape))].reshape(loss_shape)
    grad = store[140:160].reshape(4, 5)
    target_key, _, src = how.partition(":")
    src_arr = {
        "t": t,
        "x": x,
        "x=t": x,
        "weight": kw.get("weight"),
        "pos_weight": kw.get("pos_weight"),
    }.get(src)
    if how == "same":
        kw["out"] = kw["grad_out"] = grad if fn is not CE else out
        if fn is CE:
            kw["grad_out"] = out
    else:
        # a buffer of the right shape and dtype starting where the aliased array starts
        start = (src_arr.__array_interface__["data"][0] - store.ctypes.data) // 8
        buf = store[start : start + (out.size if target_key == "out" else 20)]
        if target_key == "out":
            kw["out"] = buf.reshape(loss_shape)
        else:
            kw["grad_out"] = (
                src_arr
                if src_arr.shape == (4, 5) and src_arr.dtype == np.float64
                else buf.reshape(4, 5)
            )
    before = store.copy()
    with pytest.raises(ValueError, match="overlap|shape"):
        fn(x, t, **kw)
    np.testing.assert_array_equal(store, before)


def test_grad_out_in_place_readonly_logits():
    x, t = args_for(CE)
    x.flags.writeable = False
    with pytest.raises(ValueError, match="writable"):
        CE(x, t, return_grad=True, grad_out=x)


FAST_PATH_HOLE = textwrap.dedent("""
    import numpy as np, fusedloss as fl
    x = np.zeros((64, 1000))
    t = x.view(np.int64).reshape(-1)[:64]   # int64 targets living inside logits row 0
    t[:] = 1
    try:
        fl.softmax_cross_entropy(x, t, return_grad=True, grad_out=x, n_threads=1)
    except ValueError as e:
        print("ValueError", e)
""")


def test_fast_path_grad_in_place_over_targets_rejected():
    """grad_out=logits with targets that live inside the logits must be a ValueError
    (the validating path says so); run in a subprocess, since it may crash."""
    r = subprocess.run(
        [sys.executable, "-c", FAST_PATH_HOLE], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0 and "ValueError" in r.stdout, (r.returncode, r.stderr[-500:])


@pytest.mark.parametrize("fn", ELEMENTWISE, ids=lambda f: f.__name__)
def test_elementwise_fast_path_grad_in_place_over_target_rejected(fn):
    store = rng.normal(size=4097) * 10
    x, t = store[1:].reshape(64, 64), store[:-1].reshape(64, 64)  # t = x shifted by one
    before = store.copy()
    with pytest.raises(ValueError, match="overlap"):
        fn(x, t, reduction="none", return_grad=True, grad_out=x, n_threads=1)
    np.testing.assert_array_equal(store, before)


def test_the_one_path_handles_what_is_not_canonical():
    """Arguments that are not canonical (subclasses, read-only in-place logits,
    misaligned or byte-swapped arrays, buffers that overlap the targets) are each
    converted or refused with a ValueError by the one call path, never used as they
    are.  (Until the registry issue, a separate compiled fast path had to return
    NotImplemented for these.)"""
    x, t = args_for(CE)

    class Sub(np.ndarray):
        pass

    ro = x.copy()
    ro.flags.writeable = False
    g_over_t = np.zeros(20, np.int64)
    tt = g_over_t[:4]
    tt[...] = t
    want_l, want_g = ref.softmax_cross_entropy(x, t, return_grad=True)
    inputs = [
        (x.view(Sub), t),
        (x, t.view(Sub)),
        (unaligned(x), t),
        (x, unaligned(t)),
        (x.astype(">f8"), t),
        (x, t.astype(">i8")),
    ]
    for xx, tt_ in inputs:
        assert CE(xx, tt_) == pytest.approx(want_l, rel=1e-12)
        loss, g = CE(xx, tt_, return_grad=True)
        np.testing.assert_allclose(g, want_g, rtol=1e-12, atol=1e-15)
    # buffers that cannot be written as they are: refused, nothing written
    bad = [
        (ro, t, ro, "writable"),
        (x, tt, g_over_t.view(np.float64).reshape(4, 5), "overlap"),
        (x, t, unaligned(x), "aligned"),
        (x, t, x[:, ::-1], "C-contiguous"),
    ]
    for xx, tt_, g, msg in bad:
        before = np.array(g, copy=True)
        with pytest.raises(ValueError, match=msg):
            CE(xx, tt_, return_grad=True, grad_out=g)
        np.testing.assert_array_equal(g, before)
    # a subclass grad_out is written through its real buffer and returned as given
    gs = np.zeros_like(x).view(Sub)
    loss, g = CE(x, t, return_grad=True, grad_out=gs)
    assert g is gs
    np.testing.assert_allclose(np.asarray(gs), want_g, rtol=1e-12, atol=1e-15)


def test_subclass_inputs_and_buffers():
    class Sub(np.ndarray):
        pass

    x, t = args_for(CE)
    want_l, want_g = ref.softmax_cross_entropy(x, t, return_grad=True)
    xs = x.copy().view(Sub)
    loss, g = CE(xs, t.view(Sub), return_grad=True, grad_out=xs)
    assert g is xs
    np.testing.assert_allclose(np.asarray(g), want_g, rtol=1e-12, atol=1e-15)
    assert loss == pytest.approx(want_l, rel=1e-12)
    m = np.ma.masked_array(x, mask=np.zeros_like(x, bool))
    with pytest.raises(TypeError, match="MaskedArray"):  # its mask would be lost
        CE(m, t)
    assert CE(np.ma.getdata(m), t) == pytest.approx(want_l, rel=1e-12)


# ---------------------------------------------------------------- odd layouts


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_misaligned_inputs_are_copied(fn, dtype):
    x, t = args_for(fn, dtype)
    kw = {}
    if fn is BCE:
        kw = dict(
            weight=unaligned(rng.uniform(size=5).astype(dtype)),
            pos_weight=unaligned(rng.uniform(size=(4, 1)).astype(dtype)),
        )
    if fn is CE:
        kw = dict(weight=unaligned(rng.uniform(size=5).astype(dtype)))
    want = getattr(ref, fn.__name__)(x, t, reduction="none", return_grad=True, **kw)
    got = fn(unaligned(x), unaligned(t), reduction="none", return_grad=True, **kw)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=2e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("fn", ALL, ids=ids)
def test_no_warnings_when_values_overflow_the_compute_dtype(fn):
    """float64 targets / weights beyond float32's range become inf silently."""
    x, t = args_for(fn, np.float32)
    if fn is CE:
        t = np.full(x.shape, 1e300)
    else:
        t = t.astype(np.float64)
        t[0, 0] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn(x, t, reduction="none", return_grad=True)
        if fn is BCE:
            fn(x, t, weight=np.full(5, 1e300), pos_weight=np.full(5, -1e300))


# ---------------------------------------------------------------- empty and 0-d


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("shape", [(0, 5), (0, 0, 3), (3, 0, 4)] + [(0,), (2, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty(fn, shape, dtype):
    if fn is CE and shape[-1] == 0:
        pytest.skip("cross-entropy needs a class axis")
    x = np.zeros(shape, dtype)
    t = np.zeros(shape[:-1], np.int64) if fn is CE else np.zeros(shape, dtype)
    loss, g = fn(x, t, return_grad=True)
    assert np.isnan(loss) and loss.dtype == dtype and g.shape == shape and g.dtype == dtype
    loss, g = fn(x, t, reduction="sum", return_grad=True)
    assert loss == 0 and loss.dtype == dtype
    lshape = shape[:-1] if fn is CE else shape
    out, gbuf = np.empty(lshape, dtype), np.empty(shape, dtype)
    loss, g = fn(x, t, reduction="none", return_grad=True, out=out, grad_out=gbuf)
    assert loss is out and g is gbuf and loss.shape == lshape


@pytest.mark.parametrize("fn", ELEMENTWISE, ids=lambda f: f.__name__)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_zero_dimensional(fn, reduction):
    x, t = np.float64(0.7), 0.2
    got_l, got_g = fn(x, t, reduction=reduction, return_grad=True)
    want_l, want_g = getattr(ref, fn.__name__)(x, t, reduction=reduction, return_grad=True)
    assert np.shape(got_l) == () and got_g.shape == ()
    assert float(got_l) == pytest.approx(float(want_l), rel=1e-13)
    assert float(got_g) == pytest.approx(float(want_g), rel=1e-13)
    out, g = np.empty(()), np.empty(())
    xs = np.array(0.7)
    r = fn(xs, np.array(0.2), reduction="none", return_grad=True, out=out, grad_out=g)
    assert r[0] is out and r[1] is g


# ---------------------------------------------------------------- known kernel defects


def test_focal_tiny_gamma_float32():
    x = np.array([1e4, 100.0], np.float32)
    t = np.ones(2, np.float32)
    loss, g = FOCAL(x, t, gamma=1e-50, reduction="none", return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(g).all()


@pytest.mark.parametrize(
    "dtype,w",
    [
        pytest.param(
            np.float64,
            1e-310,
            marks=pytest.mark.xfail(
                strict=True,
                reason="known limit: 1/denominator overflows double when the counted "
                "class weights sum to a subnormal number (< 2.2e-308): inf/NaN gradients",
            ),
        ),
        (np.float32, 1e-40),
    ],
)
def test_ce_mean_tiny_weights(dtype, w):
    x = np.zeros((2, 2), dtype)
    t = np.array([0, 0])
    loss, g = CE(x, t, weight=np.array([w, 0.0], dtype), return_grad=True)
    _, want = ref.softmax_cross_entropy(x, t, weight=np.array([w, 0.0], dtype), return_grad=True)
    np.testing.assert_allclose(g, want, rtol=1e-5)
