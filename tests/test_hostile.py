"""Hostile and surprising callers (issue 8): ndarray subclasses that lie about their
attributes, masked arrays, tensors that require grad, pickled arrays, str subclasses
for `reduction`, parameters the compute dtype cannot hold, weights broadcast over any
axes without a copy, arrays of more than 32 dimensions, empty batches without classes.

Every lie must end either in the right answer (the real buffer is what counts) or in a
clear exception before anything is written; never in memory corruption.  The racing
writers and Ctrl-C are in test_racing.py."""

import pickle
import sys
import tracemalloc

import numpy as np
import pytest
from _util import assert_close

import fusedloss as fl
from fusedloss import reference as ref

CE = fl.softmax_cross_entropy
BCE = fl.binary_cross_entropy_with_logits
FOCAL = fl.sigmoid_focal_loss
HUBER = fl.huber_loss
SL1 = fl.smooth_l1_loss
ALL = [CE, BCE, FOCAL, HUBER, SL1]
REF = {
    CE: ref.softmax_cross_entropy,
    BCE: ref.binary_cross_entropy_with_logits,
    FOCAL: ref.sigmoid_focal_loss,
    HUBER: ref.huber_loss,
    SL1: ref.smooth_l1_loss,
}
ids = [f.__name__ for f in ALL]
rng = np.random.default_rng(8)


def inputs(fn, dtype=np.float64, shape=(6, 5), probs=False):
    x = rng.normal(size=shape).astype(dtype)
    if fn is CE and not probs:
        return x, rng.integers(0, shape[-1], size=shape[:-1])
    if fn is CE:
        p = rng.uniform(size=shape)
        return x, (p / p.sum(-1, keepdims=True)).astype(dtype)
    return x, rng.uniform(size=shape).astype(dtype)


# ------------------------------------------------------------------ lying subclasses


def liar(attr, value):
    """An ndarray subclass whose `attr` property returns `value`."""
    return type(f"Liar_{attr}", (np.ndarray,), {attr: property(lambda self: value)})


class _Flags:
    """A flags object that claims everything."""

    c_contiguous = f_contiguous = writeable = aligned = owndata = True
    writebackifcopy = False

    def __getitem__(self, k):
        return True


LIES = {
    "shape_big": ("shape", (2000, 1000)),
    "shape_match": None,  # filled per call: the shape the buffer should have
    "dtype_f32": ("dtype", np.dtype(np.float32)),
    "dtype_f64": ("dtype", np.dtype(np.float64)),
    "flags_all": ("flags", _Flags()),
    "size_big": ("size", 10**9),
    "ndim_lie": ("ndim", 7),
    "strides_lie": ("strides", (8, 8)),
    "nbytes_lie": ("nbytes", 10**9),
}


def make_liar(base, lie, claimed_shape):
    if lie == "shape_match":
        cls = liar("shape", tuple(claimed_shape))
    else:
        cls = liar(*LIES[lie])
    return base.view(cls)


def small_buffers(dtype):
    """Real buffers that are wrong in size, dtype, layout or writability."""
    bufs = {
        "one_element": np.zeros(1, dtype),
        "empty": np.zeros(0, dtype),
        "other_dtype": np.zeros(30, np.float32 if dtype == np.float64 else np.float64),
        "int8": np.zeros(30, np.int8),
        "readonly_bytes": np.frombuffer(b"\0" * 240, dtype),
        "strided": np.zeros(60, dtype)[::2],
        "byteswapped": np.zeros(30, np.dtype(dtype).newbyteorder()),
    }
    return bufs


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("which", ["out", "grad_out"])
@pytest.mark.parametrize("lie", sorted(LIES))
def test_lying_subclass_buffers_never_corrupt_memory(fn, dtype, which, lie):
    x, t = inputs(fn, dtype)
    loss_shape = x.shape[:-1] if fn is CE else x.shape
    claimed = loss_shape if which == "out" else x.shape
    for bname, base in small_buffers(dtype).items():
        before = base.tobytes()
        buf = make_liar(base, lie, claimed)
        kw = {which: buf, "return_grad": which == "grad_out"}
        if which == "out":
            kw["reduction"] = "none"
        with pytest.raises((ValueError, TypeError)):
            fn(x, t, **kw)
        assert base.tobytes() == before, (bname, "buffer written although refused")
    # a correct real buffer behind a lying subclass works, and is returned as given
    good = np.zeros(claimed, dtype)
    buf = make_liar(good, lie, claimed)
    kw = {which: buf, "return_grad": which == "grad_out"}
    if which == "out":
        kw["reduction"] = "none"
    got = fn(x, t, **kw)
    want = REF[fn](x, t, **{k: v for k, v in kw.items() if k not in ("out", "grad_out")})
    if which == "grad_out":
        assert got[1] is buf
        assert_close(good, want[1], dtype, "grad through the real buffer")
    else:
        assert got is buf
        assert_close(good, want, dtype, "loss through the real buffer")


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("arg", [0, 1])
@pytest.mark.parametrize("lie", sorted(set(LIES) - {"shape_match"}))
def test_lying_subclass_inputs_use_the_real_buffer(fn, arg, lie):
    x, t = inputs(fn)
    args = [x, t]
    args[arg] = make_liar(args[arg], lie, args[arg].shape)
    try:
        got = fn(*args, return_grad=True, reduction="none")
    except (ValueError, TypeError):
        return  # refusing is fine; corrupting memory is not
    want = REF[fn](x, t, return_grad=True, reduction="none")
    assert_close(got[0], want[0], np.float64, "loss")
    assert_close(got[1], want[1], np.float64, "grad")


@pytest.mark.parametrize("lie", sorted(set(LIES) - {"shape_match"}))
@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_lying_subclass_weights(lie, name):
    x, t = inputs(BCE)
    w = rng.uniform(size=x.shape[-1])
    kw = {name: make_liar(w.copy(), lie, w.shape)}
    try:
        got = BCE(x, t, return_grad=True, **kw)
    except (ValueError, TypeError):
        return
    want = ref.binary_cross_entropy_with_logits(x, t, return_grad=True, **{name: w})
    assert_close(got[0], want[0], np.float64, "loss")
    assert_close(got[1], want[1], np.float64, "grad")


def test_issue_reproducer_grad_out_shape_liar():
    class Liar(np.ndarray):
        @property
        def shape(self):
            return (2000, 1000)

    with pytest.raises(ValueError, match="grad_out"):
        CE(
            np.zeros((2000, 1000)),
            np.zeros(2000, np.int64),
            return_grad=True,
            grad_out=np.zeros(1).view(Liar),
        )


def test_grad_into_immutable_bytes_is_refused():
    raw = b"\x00" * 8 * 30
    buf = np.frombuffer(raw, np.float64).reshape(6, 5).view(liar("flags", _Flags()))
    for fn in ALL:
        x, t = inputs(fn)
        with pytest.raises(ValueError, match="writable"):
            fn(x, t, return_grad=True, grad_out=buf)
    assert raw == b"\x00" * 240


def test_ce_class_index_subclass_lying_about_shape():
    x, t = inputs(CE)
    t_liar = t.view(liar("shape", (100000,)))
    got = CE(x, t_liar, reduction="none")  # the real (6,) buffer is what counts
    assert_close(got, ref.softmax_cross_entropy(x, t, reduction="none"), np.float64)


# ------------------------------------------------------------------ masked arrays


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("arg", ["input", "target", "out", "grad_out", "weight"])
def test_masked_arrays_are_refused(fn, arg):
    x, t = inputs(fn)
    kw = {}
    if arg == "input":
        x = np.ma.masked_array(x, mask=np.zeros(x.shape, bool))
    elif arg == "target":
        t = np.ma.masked_array(t, mask=np.ones(t.shape, bool))
    elif arg == "out":
        kw = dict(
            reduction="none",
            out=np.ma.masked_array(np.zeros(x.shape[:-1] if fn is CE else x.shape)),
        )
    elif arg == "grad_out":
        kw = dict(return_grad=True, grad_out=np.ma.masked_array(np.zeros(x.shape)))
    else:
        if fn not in (CE, BCE):
            pytest.skip(f"{fn.__name__} takes no weight")
        kw = dict(weight=np.ma.masked_array(np.ones(x.shape[-1])))
    with pytest.raises(TypeError, match="MaskedArray") as e:
        fn(x, t, **kw)
    msg = str(e.value)
    assert "weight" in msg and "ignore_index" in msg


# ------------------------------------------------------------------ torch tensors


def test_tensor_requiring_grad_is_a_type_error_that_says_detach():
    torch = pytest.importorskip("torch")
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([0, 1, 2, 0])
    with pytest.raises(TypeError, match=r"detach\(\)"):
        CE(x, t)
    for fn in (BCE, FOCAL, HUBER, SL1):
        with pytest.raises(TypeError, match=r"detach\(\)"):
            fn(x, torch.rand(4, 3, dtype=torch.float64))
        with pytest.raises(TypeError, match=r"detach\(\)"):
            fn(torch.rand(4, 3, dtype=torch.float64), x)
    # detached tensors work
    got = CE(x.detach(), t)
    assert np.isfinite(got)


def test_foreign_array_conversion_errors_become_type_errors():
    class Bad:
        def __array__(self, dtype=None, copy=None):
            raise RuntimeError("cannot export")

    for fn in ALL:
        x, t = inputs(fn)
        with pytest.raises(TypeError, match="cannot export"):
            fn(Bad(), t)
        with pytest.raises(TypeError, match="cannot export"):
            fn(x, Bad())


# ------------------------------------------------------------------ pickled arrays


@pytest.mark.parametrize("fn", ALL, ids=ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_on_arrays_that_came_through_pickle(fn, dtype):
    x, t = inputs(fn, dtype)
    xp = pickle.loads(pickle.dumps(x))
    tp = pickle.loads(pickle.dumps(t))
    assert xp.dtype == x.dtype
    want = REF[fn](x, t, return_grad=True)
    kw = dict(weight=np.ones(x.shape[-1], dtype)) if fn in (CE, BCE) else {}
    for extra in ({}, kw):  # canonical arguments, and converted ones
        xi = pickle.loads(pickle.dumps(x))
        loss, g = fn(xi, tp, return_grad=True, grad_out=xi, **extra)
        assert g is xi
        assert_close(loss, want[0], dtype, "loss")
        assert_close(xi, want[1], dtype, "grad in place")
    del xp


def test_in_place_on_arrays_that_came_through_multiprocessing_pipe():
    import multiprocessing as mp

    x, t = inputs(CE, np.float32)
    a, b = mp.Pipe()
    a.send((x, t))
    xr, tr = b.recv()
    loss, g = CE(xr, tr, return_grad=True, grad_out=xr, weight=np.ones(5, np.float32))
    assert g is xr
    assert_close(xr, ref.softmax_cross_entropy(x, t, return_grad=True)[1], np.float32)


# ------------------------------------------------------------------ reduction as str subclass


@pytest.mark.parametrize("fn", ALL, ids=ids)
def test_reduction_accepts_str_subclasses(fn):
    x, t = inputs(fn)

    class MyStr(str):
        def __eq__(self, other):  # a subclass that lies about equality
            return True

        __hash__ = str.__hash__

    for red in ("mean", "sum", "none"):
        for r in (np.str_(red), MyStr(red)):
            got = fn(x, t, reduction=r)
            want = REF[fn](x, t, reduction=red)
            assert_close(got, want, np.float64, red)
    with pytest.raises(ValueError, match=r"'mean', 'sum' or 'none', got np.str_\('avg'\)"):
        fn(x, t, reduction=np.str_("avg"))
    with pytest.raises(ValueError, match="reduction"):
        fn(x, t, reduction=MyStr("avg"))


# ------------------------------------------------------------------ empty batches


@pytest.mark.parametrize("shape", [(0, 0), (0, 3, 0), (2, 0, 0)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch_without_classes(shape, dtype):
    x = np.zeros(shape, dtype)
    t = np.zeros(shape[:-1], np.int64)
    assert np.isnan(CE(x, t))
    loss, g = CE(x, t, return_grad=True)
    assert np.isnan(loss) and g.shape == shape and g.dtype == dtype
    assert CE(x, t, reduction="sum") == 0
    assert CE(x, t, reduction="none").shape == shape[:-1]
    assert np.isnan(CE(x, np.zeros(shape, dtype)))  # probability targets
    loss, g = CE(x, t, return_grad=True, grad_out=x)
    assert g is x
    if torch_available():
        import torch

        tl = torch.nn.functional.cross_entropy(
            torch.zeros(0, 0, dtype=torch.float64), torch.zeros(0, dtype=torch.long)
        )
        assert np.isnan(tl.item())  # the PyTorch behaviour we follow


def test_rows_without_classes_still_raise():
    with pytest.raises(ValueError, match="no classes"):
        CE(np.zeros((3, 0)), np.zeros(3, np.int64))


def torch_available():
    try:
        import torch  # noqa: F401

        return True
    except ImportError:
        return False


# ------------------------------------------------------------------ many dimensions


@pytest.mark.parametrize("ndim", [32, 33, 40, 64])
@pytest.mark.parametrize("name", ["weight", "pos_weight"])
def test_broadcast_weights_on_many_dimensions(ndim, name):
    if ndim > 32 and np.lib.NumpyVersion(np.__version__) < "2.0.0":
        pytest.skip("NumPy < 2 has at most 32 dimensions")
    shape = (2,) + (1,) * (ndim - 3) + (3, 2)
    x = rng.normal(size=shape)
    t = rng.uniform(size=shape)
    for wshape in [(2,), (3, 1), (2,) + (1,) * (ndim - 1), (1,) * ndim, shape, ()]:
        w = rng.uniform(0.5, 2, size=wshape)
        got = BCE(x, t, return_grad=True, **{name: w})
        want = ref.binary_cross_entropy_with_logits(x, t, return_grad=True, **{name: w})
        assert_close(got[0], want[0], np.float64, str(wshape))
        assert_close(got[1], want[1], np.float64, str(wshape))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        BCE(x, t, **{name: np.ones((4,))})
    if ndim < 64:
        with pytest.raises(ValueError, match="cannot be broadcast"):
            BCE(x, t, **{name: np.ones((1,) * (ndim + 1))})


# ------------------------------------------------------------------ broadcast without copies

BCAST_CASES = [  # input shape, weight shape
    ((1000, 1000, 100), (1000, 1, 100)),  # the issue's middle axis
    ((50, 40, 30), (50, 1, 30)),
    ((50, 40, 30), (1, 40, 1)),
    ((50, 40, 30), (40, 1)),
    ((8, 7, 6, 5), (8, 1, 6, 1)),
    ((8, 7, 6, 5), (1, 7, 1, 5)),
    ((8, 7, 6, 5), (7, 6, 1)),
    ((8, 7, 6, 5), (8, 1, 1, 5)),
    ((3, 1, 4, 1, 5), (3, 1, 1, 1, 5)),
    ((3, 1, 4, 1, 5), (1, 1, 4, 1, 1)),
    ((2, 3, 4, 5, 6, 7), (2, 1, 4, 1, 6, 1)),
    ((2, 3, 4, 5, 6, 7), (1, 3, 1, 5, 1, 7)),
]


@pytest.mark.parametrize("shape,wshape", BCAST_CASES[1:])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["weight", "pos_weight", "both"])
def test_any_broadcast_pattern_matches_the_reference(shape, wshape, dtype, name):
    x = rng.normal(size=shape).astype(dtype)
    t = rng.uniform(size=shape).astype(dtype)
    w = rng.uniform(0.5, 2, size=wshape).astype(dtype)
    kw = {"weight": w, "pos_weight": w[..., ::-1].copy()} if name == "both" else {name: w}
    want = ref.binary_cross_entropy_with_logits(x, t, return_grad=True, reduction="none", **kw)
    got = BCE(x, t, return_grad=True, reduction="none", **kw)
    assert_close(got[0], want[0], dtype, "loss")
    assert_close(got[1], want[1], dtype, "grad")
    for nt in (1, 2):  # above the parallel threshold too: same bits for every thread count
        xb = np.tile(x, (8,) + (1,) * (x.ndim - 1))
        tb = np.tile(t, (8,) + (1,) * (x.ndim - 1))
        kwb = {
            k: (
                np.tile(v, (8,) + (1,) * (v.ndim - 1))
                if v.ndim == x.ndim and v.shape[0] != 1
                else v
            )
            for k, v in kw.items()
        }
        r1 = BCE(xb, tb, return_grad=True, reduction="sum", n_threads=1, **kwb)
        r2 = BCE(xb, tb, return_grad=True, reduction="sum", n_threads=nt, **kwb)
        assert r1[0] == r2[0] and np.array_equal(r1[1], r2[1])


def test_middle_axis_weight_is_not_materialised():
    """The issue's case: a (1000, 1, 100) weight over (1000, 1000, 100) float32 logits,
    gradient in place, allocates no new memory of the input's size."""
    shape, wshape = BCAST_CASES[0]
    x = np.full(shape, 0.5, np.float32)
    t = np.zeros(shape, np.float32)
    w = np.ones(wshape, np.float32)
    tracemalloc.start()
    try:
        loss, g = BCE(x, t, weight=w, return_grad=True, grad_out=x)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert g is x
    assert peak < 1 << 20, f"peak traced allocation {peak} bytes"
    assert np.isclose(loss, np.log1p(np.exp(0.5)), rtol=1e-5)


# ------------------------------------------------------------------ parameters vs float32

F32_MAX = float(np.finfo(np.float32).max)
F32_TINY = float(np.finfo(np.float32).tiny)


@pytest.mark.parametrize(
    "fn,name,value",
    [
        (HUBER, "delta", 1e39),
        (HUBER, "delta", 1e-46),
        (HUBER, "delta", 1e-39),
        (HUBER, "delta", 3.5e38),
        (SL1, "beta", 1e39),
        (SL1, "beta", 1e-46),
        (SL1, "beta", 1e-40),
        (FOCAL, "gamma", 1e39),
        (FOCAL, "alpha", 1e39),
        (FOCAL, "alpha", -1e39),
    ],
)
def test_float32_refuses_parameters_it_cannot_hold(fn, name, value):
    x, t = inputs(fn, np.float32)
    for extra in ({}, {"reduction": "none", "out": np.zeros(x.shape, np.float32)}):
        with pytest.raises(ValueError, match=f"{name} = .*float32.*float64"):
            fn(x, t, **{name: value}, **extra)
    # float64 computes with the exact parameter
    got = fn(x.astype(np.float64), t.astype(np.float64), **{name: value}, reduction="none")
    want = REF[fn](x.astype(np.float64), t.astype(np.float64), **{name: value}, reduction="none")
    assert_close(got, want, np.float64)


def test_issue_parameter_examples_in_float64():
    e = np.array([1e30], np.float64)
    assert np.isclose(SL1(e, np.zeros(1), beta=1e39), 0.5 * 1e60 / 1e39)
    assert np.isclose(HUBER(e, np.zeros(1), delta=1e-46), 1e-46 * 1e30, rtol=1e-12)


@pytest.mark.parametrize("value", [F32_MAX, 1e38, 3e38, 1e30, 1e6, 65.0, 64.0, 63.5, 7.25])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_huge_gamma_is_finite_and_matches_the_reference(value, dtype):
    x = np.concatenate([np.linspace(-30, 30, 61), [-100, 100, -1e-3, 1e-3, 0]]).astype(dtype)
    t = np.tile([0.0, 1.0, 0.5], len(x))[: len(x)].astype(dtype)
    loss, g = FOCAL(x, t, gamma=value, reduction="none", return_grad=True)
    want = ref.sigmoid_focal_loss(
        x.astype(np.float64),
        t.astype(np.float64),
        gamma=float(np.asarray(value, dtype)),
        reduction="none",
        return_grad=True,
    )
    assert np.isfinite(loss).all() and np.isfinite(g).all()
    tol = dict(rtol=2e-4, atol=1e-30) if dtype == np.float32 else dict(rtol=1e-9, atol=1e-300)
    np.testing.assert_allclose(loss, want[0], **tol)
    np.testing.assert_allclose(g, want[1], **tol)


def test_parameter_limits_are_checked_on_the_fast_path_too():
    # canonical inputs are used as they are: the same values must be refused
    x = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match="delta"):
        HUBER(x, x, delta=1e-46)
    with pytest.raises(ValueError, match="beta"):
        SL1(x, x, beta=1e39)
    with pytest.raises(ValueError, match="gamma"):
        FOCAL(x, x, gamma=1e39)
    assert HUBER(x, x, delta=F32_TINY) == 0
    assert SL1(x, x, beta=F32_MAX) == 0


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


@pytest.mark.parametrize("fast", [True, False])
def test_float32_sum_beyond_range_is_inf_without_a_warning(fast):
    import warnings

    x = np.full((4, 4), 3e38, np.float32)
    t = np.zeros((4, 4), np.float32)
    kw = {} if fast else {"weight": np.ones(4, np.float32)}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert fl.binary_cross_entropy_with_logits(x, t, reduction="sum", **kw) == np.inf
        w = np.full(4, 3e38, np.float32)
        assert CE(np.zeros((4, 4), np.float32), np.arange(4), weight=w, reduction="sum") == np.inf
