"""Bad input raises a clear exception before anything is written; inputs are never modified."""

import numpy as np
import pytest

import fusedloss as fl

ELEMENTWISE = [
    fl.binary_cross_entropy_with_logits,
    fl.sigmoid_focal_loss,
    fl.huber_loss,
    fl.smooth_l1_loss,
]
rng = np.random.default_rng(1234)


def ce_args(dtype=np.float32):
    return rng.normal(size=(4, 5)).astype(dtype), np.array([0, 1, 4, 2])


def ew_args(dtype=np.float32):
    return rng.normal(size=(4, 5)).astype(dtype), rng.uniform(size=(4, 5)).astype(dtype)


ALL = [(fl.softmax_cross_entropy, ce_args)] + [(f, ew_args) for f in ELEMENTWISE]
ALL_IDS = ["ce"] + [f.__name__ for f in ELEMENTWISE]


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("reduction", ["avg", "MEAN", None, 1])
def test_unknown_reduction(fn, args, reduction):
    with pytest.raises(ValueError, match="reduction"):
        fn(*args(), reduction=reduction)


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("n", [0, -1])
def test_bad_thread_count(fn, args, n):
    with pytest.raises(ValueError, match="n_threads"):
        fn(*args(), n_threads=n)


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
@pytest.mark.parametrize(
    "bad",
    [
        np.array([1 + 2j, 3j]),
        np.array(["a", "b"]),
        np.array([None, 1.0], dtype=object),
        np.array(["2020-01-01"], dtype="datetime64[D]"),
    ],
)
def test_non_numeric_input_is_type_error(fn, args, bad):
    x, t = args()
    with pytest.raises(TypeError, match="logits|input"):
        fn(bad, t)


@pytest.mark.parametrize("fn", ELEMENTWISE)
def test_non_numeric_target_is_type_error(fn):
    x, _ = ew_args()
    with pytest.raises(TypeError, match="target"):
        fn(x, np.zeros(x.shape, dtype=complex))


@pytest.mark.parametrize("fn", ELEMENTWISE)
@pytest.mark.parametrize("tshape", [(4,), (5,), (4, 1), (1, 5), (4, 5, 1), ()])
def test_elementwise_shape_mismatch_shows_both_shapes(fn, tshape):
    x, _ = ew_args()
    with pytest.raises(ValueError, match=r"\(4, 5\)"):
        fn(x, np.zeros(tshape, dtype=np.float32))


def test_ce_index_shape_mismatch():
    x, _ = ce_args()
    with pytest.raises(ValueError, match=r"logits.shape\[:-1\]"):
        fl.softmax_cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="shape"):
        fl.softmax_cross_entropy(x, np.zeros((4, 5), dtype=np.int64))


def test_ce_float_targets_of_index_shape_say_integers():
    x, _ = ce_args()
    with pytest.raises(ValueError, match="class indices must be integers"):
        fl.softmax_cross_entropy(x, np.array([0.0, 1.0, 4.0, 2.0]))


def test_ce_bool_targets_are_type_error():
    x, _ = ce_args()
    with pytest.raises(TypeError, match="bool"):
        fl.softmax_cross_entropy(x, np.array([True, False, True, False]))


def test_ce_ignore_index_with_probabilities():
    x, _ = ce_args()
    with pytest.raises(ValueError, match="ignore_index"):
        fl.softmax_cross_entropy(x, np.full(x.shape, 0.2), ignore_index=0)


def test_ce_out_of_range_index_message():
    x = np.zeros((4, 2, 5))
    t = np.zeros((4, 2), dtype=np.int32)
    t[3, 1] = 7
    with pytest.raises(IndexError, match=r"target\[3, 1\] = 7 is out of range for 5 classes"):
        fl.softmax_cross_entropy(x, t)
    t[3, 1] = -1
    with pytest.raises(IndexError, match=r"target\[3, 1\] = -1"):
        fl.softmax_cross_entropy(x, t)
    with pytest.raises(IndexError, match=r"target = 5 is out of range"):
        fl.softmax_cross_entropy(np.zeros(5), np.array(5))


def test_ce_uint64_index_beyond_int64():
    t = np.array([0, 2**64 - 1], dtype=np.uint64)
    with pytest.raises(IndexError, match=r"target\[1\] = 18446744073709551615"):
        fl.softmax_cross_entropy(np.zeros((2, 3)), t)


def test_ce_weight_shape():
    x, t = ce_args()
    for w in [np.ones(4), np.ones((1, 5)), np.ones(6), 1.0]:
        with pytest.raises(ValueError, match="weight"):
            fl.softmax_cross_entropy(x, t, weight=w)


@pytest.mark.parametrize("eps", [-0.1, 1.5, np.nan, np.inf])
def test_ce_label_smoothing_range(eps):
    with pytest.raises(ValueError, match="label_smoothing"):
        fl.softmax_cross_entropy(*ce_args(), label_smoothing=eps)


def test_ce_degenerate_logits():
    with pytest.raises(ValueError, match="at least one dimension"):
        fl.softmax_cross_entropy(np.float32(1.0), np.array(0))
    with pytest.raises(ValueError, match="no classes"):
        fl.softmax_cross_entropy(np.zeros((3, 0)), np.zeros(3, dtype=int))


@pytest.mark.parametrize(
    "kw", [dict(delta=0.0), dict(delta=-1.0), dict(delta=np.nan), dict(delta=np.inf)]
)
def test_huber_delta(kw):
    with pytest.raises(ValueError, match="delta"):
        fl.huber_loss(*ew_args(), **kw)


@pytest.mark.parametrize("beta", [-1e-9, np.nan, -np.inf])
def test_smooth_l1_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        fl.smooth_l1_loss(*ew_args(), beta=beta)


@pytest.mark.parametrize(
    "kw,name",
    [
        (dict(gamma=-0.5), "gamma"),
        (dict(gamma=np.nan), "gamma"),
        (dict(alpha=np.inf), "alpha"),
        (dict(alpha=np.nan), "alpha"),
    ],
)
def test_focal_params(kw, name):
    with pytest.raises(ValueError, match=name):
        fl.sigmoid_focal_loss(*ew_args(), **kw)


@pytest.mark.parametrize("name", ["weight", "pos_weight"])
@pytest.mark.parametrize("wshape", [(4,), (3, 5), (2, 4, 5), (5, 1)])
def test_bce_weight_not_broadcastable(name, wshape):
    x, t = ew_args()
    with pytest.raises(ValueError, match=name):
        fl.binary_cross_entropy_with_logits(x, t, **{name: np.ones(wshape)})


# ---- out / grad_out ---------------------------------------------------------


def _bad_buffers(shape, dtype):
    good = np.empty(shape, dtype)
    ro = np.empty(shape, dtype)
    ro.flags.writeable = False
    other = np.float64 if dtype == np.float32 else np.float32
    return {
        "shape": np.empty(shape + (1,), dtype),
        "dtype": np.empty(shape, other),
        "byteorder": np.empty(shape, np.dtype(dtype).newbyteorder()),
        "noncontig": np.empty(shape[:-1] + (2 * shape[-1],), dtype)[..., ::2],
        "readonly": ro,
        "list": good.tolist(),
    }


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("kind", ["shape", "dtype", "byteorder", "noncontig", "readonly", "list"])
def test_bad_grad_out_untouched(fn, args, kind):
    x, t = args()
    x0, t0 = x.copy(), t.copy()
    buf = _bad_buffers(x.shape, x.dtype)[kind]
    before = np.array(buf, copy=True)
    with pytest.raises(ValueError, match="grad_out"):
        fn(x, t, return_grad=True, grad_out=buf)
    np.testing.assert_array_equal(np.asarray(buf), before)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
@pytest.mark.parametrize("kind", ["shape", "dtype", "noncontig", "readonly"])
def test_bad_out_untouched(fn, args, kind):
    x, t = args()
    shape = x.shape[:-1] if fn is fl.softmax_cross_entropy else x.shape
    buf = (
        _bad_buffers(shape + (3,), x.dtype)[kind]
        if kind == "noncontig"
        else _bad_buffers(shape, x.dtype)[kind]
    )
    before = buf.copy()
    with pytest.raises(ValueError, match="out"):
        fn(x, t, reduction="none", out=buf)
    np.testing.assert_array_equal(buf, before)


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
def test_stray_buffers(fn, args):
    x, t = args()
    shape = x.shape[:-1] if fn is fl.softmax_cross_entropy else x.shape
    with pytest.raises(ValueError, match="out"):
        fn(x, t, reduction="mean", out=np.empty(shape, x.dtype))
    with pytest.raises(ValueError, match="return_grad"):
        fn(x, t, grad_out=np.empty(x.shape, x.dtype))


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
def test_grad_out_aliasing_target_or_partial_logits(fn, args):
    x, t = args(np.float64)
    if fn is not fl.softmax_cross_entropy:
        with pytest.raises(ValueError, match="overlap"):
            fn(x, t, return_grad=True, grad_out=t)
    big = np.zeros((x.shape[0] + 1,) + x.shape[1:], x.dtype)
    big[1:] = x
    shifted_logits = big[1:]
    with pytest.raises(ValueError, match="overlap"):
        fn(shifted_logits, t, return_grad=True, grad_out=big[:-1])


def test_grad_out_in_place_needs_compute_dtype_logits():
    x = np.zeros((3, 4), np.float16)
    with pytest.raises(ValueError, match="grad_out"):
        fl.softmax_cross_entropy(x, np.zeros(3, int), return_grad=True, grad_out=x)


@pytest.mark.parametrize("fn,args", ALL, ids=ALL_IDS)
def test_inputs_never_modified(fn, args):
    x, t = args(np.float32)
    x0, t0 = x.copy(), t.copy()
    fn(x, t, return_grad=True, reduction="none")
    fn(x, t, return_grad=True)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(t, t0)


def test_ce_bad_index_writes_nothing():
    x, t = ce_args(np.float64)
    t[2] = 9
    g = np.full(x.shape, 7.0)
    out = np.full(4, 7.0)
    with pytest.raises(IndexError):
        fl.softmax_cross_entropy(x, t, reduction="none", return_grad=True, out=out, grad_out=g)
    assert (g == 7.0).all() and (out == 7.0).all()
    # In place: the logits must survive the failed call too.
    x0 = x.copy()
    with pytest.raises(IndexError):
        fl.softmax_cross_entropy(x, t, return_grad=True, grad_out=x)
    np.testing.assert_array_equal(x, x0)


def test_set_num_threads_validation():
    with pytest.raises(ValueError):
        fl.set_num_threads(0)
    with pytest.raises(TypeError):
        fl.set_num_threads(1.5)
