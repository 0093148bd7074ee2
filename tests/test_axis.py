"""``axis=`` of the class-axis losses: any class axis, computed in place of the layout.

Every class-axis loss (softmax_cross_entropy with index and probability targets,
nll_loss, softmax_focal_loss, multi_margin_loss) with the class axis in the middle is
compared with the same call on the class-last transpose (``np.moveaxis(x, axis, -1)``),
whose path the rest of the suite checks against the references, finite differences and
mpmath: bitwise (both layouts take the same kernel path: the few-class tile up to 32
classes, the row path beyond).  Also against the NumPy twins
(``fusedloss.reference``, same ``axis``), every SIMD target, thread counts, in place,
inputs unmodified, errors before anything is written.
"""

import tracemalloc
import zlib

import numpy as np
import pytest

import fusedloss as fl
import fusedloss.reference as ref
from fusedloss._registry import LOSSES

AxisError = np.exceptions.AxisError

CLASS_LOSSES = [n for n, s in LOSSES.items() if s.kind == "class_axis"]
HESS = {n for n in CLASS_LOSSES if LOSSES[n].hess}
IGNORE = {n for n in CLASS_LOSSES if any(p.name == "ignore_index" for p in LOSSES[n].params)}
WEIGHT = {n: LOSSES[n].weights[0].name for n in CLASS_LOSSES if LOSSES[n].weights}

# (shape, axis): few-class tiles within one outer index and across outer indices, fewer
# positions than a tile, the strided tile's 17..32 classes, the row path (on the stack
# and, with 3000 classes, from the heap), a size with several segments, axis 0, a
# negative axis, trailing axes of length 1
LAYOUTS = [
    ((2, 5, 40), 1),
    ((3, 21, 6, 11), 1),
    ((1, 9, 3), 1),
    ((4, 2, 16), -2),
    ((2, 40, 17), 1),
    ((7, 6), 0),
    ((2, 3, 50, 4), 2),
    ((2, 3000, 2), 1),
    ((4, 10, 3000), 1),
    ((3, 4, 1, 1), 1),
]


def _rng(*key):
    return np.random.default_rng([zlib.crc32(str(k).encode()) for k in key])


def _data(name, shape, axis, dtype, probs=False, key=()):
    rng = _rng(name, shape, axis, dtype.__name__, probs, *key)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    ax = axis % len(shape)
    C = shape[ax]
    if probs:
        t = rng.random(shape).astype(dtype)
        t /= t.sum(axis=ax, keepdims=True)
    else:
        t = rng.integers(0, C, shape[:ax] + shape[ax + 1 :])
        if name in IGNORE and t.size > 3:
            t.flat[::5] = -100
    return x, t


def _options(name, C, dtype, rng):
    kw = {}
    if name in WEIGHT:
        kw[WEIGHT[name]] = rng.uniform(0.2, 2.0, C).astype(dtype)
    if name == "softmax_cross_entropy":
        kw["label_smoothing"] = 0.1
    if name == "multi_margin_loss":
        kw["p"] = 2
    return kw


def _moved(x, axis):
    return np.ascontiguousarray(np.moveaxis(x, axis, -1))


def _cases():
    for name in CLASS_LOSSES:
        for shape, axis in LAYOUTS:
            yield name, shape, axis, False
            if name == "softmax_cross_entropy":
                yield name, shape, axis, True


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name,shape,axis,probs", list(_cases()))
def test_axis_equals_class_last(each_simd_target, name, shape, axis, probs, dtype):
    x, t = _data(name, shape, axis, dtype, probs)
    ax = axis % len(shape)
    C = shape[ax]
    kw = _options(name, C, dtype, _rng(name, "w"))
    fn = getattr(fl, name)
    hess = {"return_hess": True} if name in HESS else {}
    x0 = x.copy()
    for reduction in ("none", "sum", "mean"):
        got = fn(x, t, axis=axis, reduction=reduction, return_grad=True, **hess, **kw)
        want = fn(
            _moved(x, ax),
            _moved(t, ax) if probs else t,
            reduction=reduction,
            return_grad=True,
            **hess,
            **kw,
        )
        assert np.shape(got[0]) == np.shape(want[0])
        if reduction == "none":
            assert got[0].shape == shape[:ax] + shape[ax + 1 :]
        for g, w in zip(got[1:], want[1:]):
            w = np.moveaxis(w, -1, ax)
            assert g.shape == x.shape and g.dtype == x.dtype and g.flags.c_contiguous
            np.testing.assert_array_equal(g, w)
        np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(x, x0)


@pytest.mark.parametrize("name", CLASS_LOSSES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_axis_matches_reference(name, dtype):
    for shape, axis in [((3, 21, 6, 11), 1), ((2, 5, 40), 1), ((2, 40, 17), -2), ((7, 6), 0)]:
        x, t = _data(name, shape, axis, dtype, key=("ref",))
        kw = _options(name, shape[axis], dtype, _rng(name, "w", "ref"))
        hess = {"return_hess": True} if name in HESS else {}
        for reduction in ("none", "mean"):
            got = getattr(fl, name)(
                x, t, axis=axis, reduction=reduction, return_grad=True, **hess, **kw
            )
            want = getattr(ref, name)(
                x, t, axis=axis, reduction=reduction, return_grad=True, **hess, **kw
            )
            assert len(got) == len(want)
            for g, w in zip(got, want):
                assert np.shape(g) == np.shape(w)
                tol = 2e-5 if dtype == np.float32 else 1e-11
                scale = float(np.max(np.abs(w), initial=0.0))
                np.testing.assert_allclose(g, w, rtol=tol, atol=tol * scale)


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_axis_threads_and_in_place(name):
    # (6, 10, 40000): several segments, helper threads; and a row-path layout
    for shape in [(6, 10, 40000), (3, 100, 700)]:
        x, t = _data(name, shape, 1, np.float32, key=("threads",))
        fn = getattr(fl, name)
        one = fn(x, t, axis=1, reduction="sum", return_grad=True, n_threads=1)
        two = fn(x, t, axis=1, reduction="sum", return_grad=True, n_threads=2)
        np.testing.assert_array_equal(one[0], two[0])
        np.testing.assert_array_equal(one[1], two[1])
        g = x.copy()
        inplace = fn(g, t, axis=1, reduction="sum", return_grad=True, grad_out=g)
        assert inplace[1] is g
        np.testing.assert_array_equal(g, one[1])
        np.testing.assert_array_equal(inplace[0], one[0])


def test_axis_accepts_negative_and_numpy_integers():
    x, t = _data("softmax_cross_entropy", (2, 5, 3, 4), 1, np.float64)
    want = fl.softmax_cross_entropy(x, t, axis=1, reduction="none")
    for axis in (-3, np.int64(1), np.int8(-3)):
        np.testing.assert_array_equal(
            fl.softmax_cross_entropy(x, t, axis=axis, reduction="none"), want
        )


def test_square_channel_first_input_uses_the_axis_given():
    # C equal to the last dimension: the default (last) axis and axis=1 are different
    # losses, and axis=1 is PyTorch's
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 4, 4))
    t = rng.integers(0, 4, (2, 4))
    last = fl.softmax_cross_entropy(x, t, reduction="none")
    first = fl.softmax_cross_entropy(x, t, axis=1, reduction="none")
    lse = np.log(np.exp(x).sum(axis=1))
    want = lse - np.take_along_axis(x, t[:, None, :], axis=1)[:, 0, :]
    np.testing.assert_allclose(first, want, rtol=1e-13)
    assert not np.allclose(last, first)


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_axis_errors(name):
    fn = getattr(fl, name)
    x, t = _data(name, (2, 5, 3), 1, np.float64, key=("errors",))
    g = np.full_like(x, 7.0)
    for axis in (3, -4, 100, 2**70):
        with pytest.raises(AxisError):
            fn(x, t, axis=axis, return_grad=True, grad_out=g)
    for axis in (True, 1.0, "1", None, [1]):
        with pytest.raises(TypeError, match="axis"):
            fn(x, t, axis=axis, return_grad=True, grad_out=g)
    # index targets have the shape without the class axis; the message says which
    with pytest.raises(ValueError, match="without axis 1"):
        fn(x, np.zeros((2, 5), np.int64), axis=1, return_grad=True, grad_out=g)
    # an index out of range: IndexError at the target's own position
    bad = t.copy()
    bad[1, 2] = 5
    with pytest.raises(IndexError, match=r"\[1, 2\]|\(1, 2\)"):
        fn(x, bad, axis=1, return_grad=True, grad_out=g)
    # "none" losses into out of the wrong shape
    with pytest.raises(ValueError, match="out"):
        fn(x, t, axis=1, reduction="none", out=np.empty((2, 5)))
    np.testing.assert_array_equal(g, 7.0)
    with pytest.raises(ValueError, match="no classes"):
        fn(np.zeros((2, 0, 3)), np.zeros((2, 3), np.int64), axis=1)
    if name in HESS:
        loss, grad, hess = fn(x, t, axis=1, return_grad=True, return_hess=True)
        assert hess.shape == x.shape


def test_empty_and_scalar_layouts():
    # no rows: a mean over nothing (NaN, zero gradient); one class; 1-D input with axis 0
    x = np.zeros((0, 4, 3))
    loss, g = fl.softmax_cross_entropy(x, np.zeros((0, 3), np.int64), axis=1, return_grad=True)
    assert np.isnan(loss) and g.shape == x.shape
    x = np.random.default_rng(1).standard_normal((2, 1, 5))
    loss, g = fl.softmax_cross_entropy(x, np.zeros((2, 5), np.int64), axis=1, return_grad=True)
    assert loss == 0 and np.all(g == 0)
    v = np.array([1.0, 2.0, 3.0])
    np.testing.assert_array_equal(
        fl.softmax_cross_entropy(v, np.int64(2), axis=0), fl.softmax_cross_entropy(v, np.int64(2))
    )


def test_non_contiguous_input_with_axis():
    # a strided view is copied once to C order, then computed with the class stride
    rng = np.random.default_rng(5)
    big = rng.standard_normal((4, 6, 10, 8))
    x = big[::2, :, ::3, :]
    t = rng.integers(0, 6, (2, 4, 8))
    got = fl.softmax_cross_entropy(x, t, axis=1, reduction="none", return_grad=True)
    want = ref.softmax_cross_entropy(x, t, axis=1, reduction="none", return_grad=True)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("name", CLASS_LOSSES)
def test_axis_makes_no_copy(name):
    # the layout is computed in place: what the call allocates (NumPy reports to
    # tracemalloc) is far below one copy of the input
    x, t = _data(name, (4, 12, 64, 64), 1, np.float32, key=("copy",))
    g = np.empty_like(x)
    fn = getattr(fl, name)
    fn(x, t, axis=1, return_grad=True, grad_out=g)  # warm-up
    tracemalloc.start()
    try:
        fn(x, t, axis=1, return_grad=True, grad_out=g)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < x.nbytes // 8, (peak, x.nbytes)
