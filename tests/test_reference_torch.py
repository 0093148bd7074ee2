"""Check ``fusedloss.reference`` (the NumPy oracle) against PyTorch.

PyTorch is only a test-time cross-check, never a dependency: the whole module is skipped
when it is not installed. torchvision is not needed: its ``sigmoid_focal_loss`` formula is
written out below in torch.

Where the reference deliberately differs from PyTorch (ignored rows with non-finite logits,
a mean over nothing, the focal gradient at a saturated prediction with ``gamma < 1``) the
tests check the reference's own documented behaviour instead.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from fusedloss import reference as ref  # noqa: E402

DTYPES = [np.float32, np.float64]
RTOL = {np.float32: 1e-5, np.float64: 1e-10}
REDUCTIONS = ["mean", "sum", "none"]


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def assert_close(actual, expected, dtype, rtol=None):
    """Relative comparison, with an absolute floor scaled by the largest expected value.

    The floor absorbs rounding of values that are tiny next to the others (e.g. a
    gradient entry p_t - 1 that PyTorch computes with cancellation). NaN must match NaN,
    inf must match inf.
    """
    rtol = RTOL[dtype] if rtol is None else rtol
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64)
    assert actual.shape == expected.shape
    finite = np.isfinite(expected)
    scale = np.abs(expected[finite]).max() if finite.any() else 0.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=rtol * scale, equal_nan=True)


def check_result(result, loss_t, grad_t, dtype, reduction, loss_shape, rtol=None):
    """Compare ``(loss, grad)`` from the reference with PyTorch's, and check their types."""
    loss, grad = result
    if reduction == "none":
        assert isinstance(loss, np.ndarray)
        assert loss.dtype == dtype and loss.shape == tuple(loss_shape)
    else:
        assert isinstance(loss, np.generic) and loss.dtype == dtype
    assert grad.dtype == dtype
    assert_close(loss, loss_t, dtype, rtol)
    assert_close(grad, grad_t, dtype, rtol)


def backward(loss, reduction):
    """Gradient of the loss; for 'none' of its sum (the reference's convention)."""
    (loss.sum() if reduction == "none" else loss).backward()


def class_axis_second(a):
    """PyTorch keeps classes on axis 1; the reference on the last axis."""
    return a if a.ndim <= 2 else torch.movedim(a, -1, 1)


def torch_ce(z, target, reduction, soft=False, weight=None, compute_dtype=None, **kw):
    """F.cross_entropy, in the logits' dtype or (``compute_dtype``) on upcast copies."""
    zt = torch.tensor(z, requires_grad=True)
    zc = zt if compute_dtype is None else zt.to(compute_dtype)
    tt = torch.tensor(target) if soft else torch.tensor(np.asarray(target, dtype=np.int64))
    if soft:
        tt = class_axis_second(tt).to(zc.dtype)
    wt = None if weight is None else torch.tensor(np.asarray(weight, dtype=z.dtype)).to(zc.dtype)
    loss = F.cross_entropy(class_axis_second(zc), tt, weight=wt, reduction=reduction, **kw)
    backward(loss, reduction)
    return loss.detach().numpy(), zt.grad.numpy()


def torch_bce(x, t, reduction, weight=None, pos_weight=None):
    xt = torch.tensor(x, requires_grad=True)
    wt = None if weight is None else torch.tensor(np.asarray(weight, dtype=x.dtype))
    pwt = None if pos_weight is None else torch.tensor(np.asarray(pos_weight, dtype=x.dtype))
    loss = F.binary_cross_entropy_with_logits(
        xt, torch.tensor(t), weight=wt, pos_weight=pwt, reduction=reduction
    )
    backward(loss, reduction)
    return loss.detach().numpy(), xt.grad.numpy()


def torch_focal(x, t, alpha, gamma, reduction, compute_dtype=torch.float64):
    """torchvision.ops.sigmoid_focal_loss, written out (default reduction here: argument)."""
    xt = torch.tensor(x, requires_grad=True)
    xc = xt.to(compute_dtype)
    tc = torch.tensor(t).to(compute_dtype)
    p = torch.sigmoid(xc)
    ce = F.binary_cross_entropy_with_logits(xc, tc, reduction="none")
    p_t = p * tc + (1 - p) * (1 - tc)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        alpha_t = alpha * tc + (1 - alpha) * (1 - tc)
        loss = alpha_t * loss
    if reduction == "mean":
        loss = loss.mean()
    elif reduction == "sum":
        loss = loss.sum()
    backward(loss, reduction)
    return loss.detach().numpy(), xt.grad.numpy()


def torch_elementwise(fn, x, t, reduction, **kw):
    xt = torch.tensor(x, requires_grad=True)
    loss = fn(xt, torch.tensor(t), reduction=reduction, **kw)
    backward(loss, reduction)
    return loss.detach().numpy(), xt.grad.numpy()


# ----------------------------------------------------------------------------------------
# softmax cross-entropy, class-index targets
# ----------------------------------------------------------------------------------------

CE_SHAPES = [(8, 5), (3, 4, 7), (2, 3, 2, 6), (7,), (1, 1), (16, 1000)]

CE_INDEX_OPTIONS = {
    "plain": dict(),
    "weight": dict(weight=True),
    "ignore_default": dict(ignore=-100),
    "ignore_valid_class": dict(ignore=1, ignore_index=1),
    "ignore_unusual": dict(ignore=-7, ignore_index=-7),
    "smoothing": dict(label_smoothing=0.1),
    "smoothing_one": dict(label_smoothing=1.0),
    "smoothing_weight_ignore": dict(label_smoothing=0.25, weight=True, ignore=-100),
    "weight_ignore_valid_class": dict(weight=True, ignore=0, ignore_index=0),
}


def make_ce_index_case(shape, dtype, option, scale, seed=0):
    rng = np.random.default_rng(seed)
    n_classes = shape[-1]
    z = (rng.standard_normal(shape) * scale).astype(dtype)
    target = rng.integers(0, n_classes, size=shape[:-1])
    kw = {}
    opts = dict(CE_INDEX_OPTIONS[option])
    if opts.pop("weight", False):
        kw["weight"] = rng.uniform(0.2, 3.0, n_classes).astype(dtype)
    ignore = opts.pop("ignore", None)
    if ignore is not None and target.ndim > 0:
        mask = rng.random(target.shape) < 0.3
        mask.flat[0] = False  # keep at least one row counted
        target = np.where(mask, ignore, target)
    kw.update(opts)
    return z, target, kw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("option", list(CE_INDEX_OPTIONS))
def test_ce_index_targets(dtype, reduction, shape, option):
    z, target, kw = make_ce_index_case(shape, dtype, option, scale=3.0)
    expected = torch_ce(z, target, reduction, **kw)
    got = ref.softmax_cross_entropy(z, target, reduction=reduction, return_grad=True, **kw)
    check_result(got, *expected, dtype, reduction, shape[:-1])
    # the loss-only call gives the same loss
    assert_close(ref.softmax_cross_entropy(z, target, reduction=reduction, **kw), got[0], dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale", [80.0, 1e4])
@pytest.mark.parametrize("option", ["plain", "weight", "smoothing_weight_ignore"])
def test_ce_index_extreme_logits(dtype, reduction, scale, option):
    z, target, kw = make_ce_index_case((12, 6), dtype, option, scale=scale, seed=1)
    expected = torch_ce(z, target, reduction, **kw)
    got = ref.softmax_cross_entropy(z, target, reduction=reduction, return_grad=True, **kw)
    assert np.all(np.isfinite(got[1]))
    check_result(got, *expected, dtype, reduction, (12,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ce_large_rows(dtype, reduction):
    """32000 classes. PyTorch's own float32 result is off by ~1e-4 relative in gradient
    entries near p_t - 1, so float32 is checked tightly against PyTorch in float64 and
    loosely against PyTorch in float32."""
    rng = np.random.default_rng(5)
    z = (rng.standard_normal((64, 32000)) * 4).astype(dtype)
    target = rng.integers(0, 32000, size=64).astype(np.int32)
    target[::7] = -100
    kw = dict(label_smoothing=0.05)
    got = ref.softmax_cross_entropy(z, target, reduction=reduction, return_grad=True, **kw)
    expected = torch_ce(z, target, reduction, compute_dtype=torch.float64, **kw)
    check_result(got, *expected, dtype, reduction, (64,))
    expected = torch_ce(z, target, reduction, **kw)
    loose = 1e-3 if dtype == np.float32 else None
    check_result(got, *expected, dtype, reduction, (64,), rtol=loose)


@pytest.mark.parametrize(
    "tdtype", [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
)
def test_ce_any_integer_target_dtype(tdtype):
    rng = np.random.default_rng(2)
    z = rng.standard_normal((10, 4))
    target = rng.integers(0, 4, size=10)
    expected = torch_ce(z, target, "none")
    got = ref.softmax_cross_entropy(z, target.astype(tdtype), reduction="none", return_grad=True)
    check_result(got, *expected, np.float64, "none", (10,))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ce_nonfinite_logits_propagate(dtype, reduction):
    z = np.array(
        [
            [0.0, 1.0, 2.0],
            [np.nan, 0.0, 1.0],
            [np.inf, 0.0, 1.0],
            [-np.inf, 0.0, 1.0],
            [-np.inf, -np.inf, -np.inf],
            [1.0, 2.0, 3.0],
        ],
        dtype=dtype,
    )
    target = np.array([0, 1, 2, 1, 0, 2])
    expected = torch_ce(z, target, reduction)
    got = ref.softmax_cross_entropy(z, target, reduction=reduction, return_grad=True)
    check_result(got, *expected, dtype, reduction, (6,))


# ----------------------------------------------------------------------------------------
# softmax cross-entropy, class-probability targets
# ----------------------------------------------------------------------------------------

CE_SOFT_OPTIONS = {
    "plain": dict(),
    "weight": dict(weight=True),
    "smoothing": dict(label_smoothing=0.1),
    "smoothing_weight": dict(label_smoothing=0.3, weight=True),
    "smoothing_one": dict(label_smoothing=1.0),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(8, 5), (3, 4, 7), (2, 3, 2, 6), (7,)], ids=str)
@pytest.mark.parametrize("option", list(CE_SOFT_OPTIONS))
@pytest.mark.parametrize("scale", [3.0, 80.0])
def test_ce_probability_targets(dtype, reduction, shape, option, scale):
    rng = np.random.default_rng(3)
    z = (rng.standard_normal(shape) * scale).astype(dtype)
    y = rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype(dtype)
    kw = dict(CE_SOFT_OPTIONS[option])
    if kw.pop("weight", False):
        kw["weight"] = rng.uniform(0.2, 3.0, shape[-1]).astype(dtype)
    expected = torch_ce(z, y, reduction, soft=True, **kw)
    got = ref.softmax_cross_entropy(z, y, reduction=reduction, return_grad=True, **kw)
    check_result(got, *expected, dtype, reduction, shape[:-1])


# ----------------------------------------------------------------------------------------
# softmax cross-entropy: where the reference deliberately differs from PyTorch
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.2])
def test_ce_ignored_rows_with_nonfinite_logits(dtype, reduction, label_smoothing):
    """Ignored rows give exactly 0 loss and 0 gradient whatever their logits.

    (PyTorch gives NaN gradient there.) The other rows must equal PyTorch computed with the
    bad rows replaced by finite logits.
    """
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 4)).astype(dtype)
    target = np.array([0, -100, 3, -100, 2, -100])
    z[1, 2] = np.nan
    z[3, :] = np.inf
    z[5, 0] = -np.inf
    clean = z.copy()
    clean[target == -100] = 0.0
    kw = dict(label_smoothing=label_smoothing, weight=np.array([1.0, 2.0, 0.5, 1.5], dtype=dtype))
    expected = torch_ce(clean, target, reduction, **kw)
    got = ref.softmax_cross_entropy(z, target, reduction=reduction, return_grad=True, **kw)
    check_result(got, *expected, dtype, reduction, (6,))
    assert np.all(got[1][target == -100] == 0)
    if reduction == "none":
        assert np.all(got[0][target == -100] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("label_smoothing", [0.0, 0.3])
@pytest.mark.parametrize("case", ["all_ignored", "zero_weights", "empty"])
def test_ce_mean_over_nothing(dtype, label_smoothing, case):
    """A mean over nothing is NaN with a zero gradient; its sum is 0 (+ smoothing terms)."""
    z = np.arange(12, dtype=dtype).reshape(3, 4) / 7
    kw = dict(label_smoothing=label_smoothing)
    target = np.array([1, 2, 1])
    if case == "all_ignored":
        target = np.full(3, -100)
    elif case == "zero_weights":
        kw["weight"] = np.array([1.0, 0.0, 0.0, 1.0], dtype=dtype)
    else:
        z, target = z[:0], target[:0]
    loss, grad = ref.softmax_cross_entropy(z, target, return_grad=True, **kw)
    assert loss.dtype == dtype and np.isnan(loss)
    assert grad.shape == z.shape and np.all(grad == 0)
    # PyTorch agrees on the loss; its gradient is 0 or NaN here (see the report)
    assert np.isnan(torch_ce(z, target, "mean", **kw)[0])
    if case != "zero_weights":
        total, grad = ref.softmax_cross_entropy(z, target, reduction="sum", return_grad=True, **kw)
        assert total == 0 and np.all(grad == 0)
        assert torch_ce(z, target, "sum", **kw)[0] == 0
    else:
        expected = torch_ce(z, target, "sum", **kw)
        got = ref.softmax_cross_entropy(z, target, reduction="sum", return_grad=True, **kw)
        check_result(got, *expected, dtype, "sum", ())


def test_ce_probability_targets_empty():
    z = np.zeros((0, 3))
    loss, grad = ref.softmax_cross_entropy(z, np.zeros((0, 3)), return_grad=True)
    assert np.isnan(loss) and grad.shape == (0, 3)
    assert np.isnan(torch_ce(z, np.zeros((0, 3)), "mean", soft=True)[0])


# ----------------------------------------------------------------------------------------
# binary cross-entropy with logits
# ----------------------------------------------------------------------------------------

BCE_OPTIONS = {
    "plain": lambda rng, shape: {},
    "weight_last_axis": lambda rng, shape: dict(weight=rng.uniform(0, 2, shape[-1:])),
    "weight_first_axis": lambda rng, shape: dict(
        weight=rng.uniform(0, 2, shape[:1] + (1,) * (len(shape) - 1))
    ),
    "weight_full": lambda rng, shape: dict(weight=rng.uniform(0, 2, shape)),
    "weight_scalar": lambda rng, shape: dict(weight=np.array(0.7)),
    "weight_one_elem": lambda rng, shape: dict(weight=np.array([1.3])),
    "pos_weight": lambda rng, shape: dict(pos_weight=rng.uniform(0.1, 5, shape[-1:])),
    "pos_weight_scalar": lambda rng, shape: dict(pos_weight=np.array(3.0)),
    "both": lambda rng, shape: dict(
        weight=rng.uniform(0, 2, shape[-1:]), pos_weight=rng.uniform(0.1, 5, shape[-1:])
    ),
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(6, 5), (2, 3, 4), (5,), (1,)], ids=str)
@pytest.mark.parametrize("option", list(BCE_OPTIONS))
@pytest.mark.parametrize("soft", [False, True])
def test_bce(dtype, reduction, shape, option, soft):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    t = (rng.random(shape) if soft else rng.integers(0, 2, shape)).astype(dtype)
    kw = {k: v.astype(dtype) for k, v in BCE_OPTIONS[option](rng, shape).items()}
    expected = torch_bce(x, t, reduction, **kw)
    got = ref.binary_cross_entropy_with_logits(x, t, reduction=reduction, return_grad=True, **kw)
    check_result(got, *expected, dtype, reduction, shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale", [80.0, 1e4])
@pytest.mark.parametrize("option", ["plain", "both"])
def test_bce_extreme_logits(dtype, reduction, scale, option):
    rng = np.random.default_rng(7)
    x = (np.sign(rng.standard_normal((8, 6))) * scale).astype(dtype)
    x[0, :3] = 0.0
    t = rng.integers(0, 2, (8, 6)).astype(dtype)
    t[1] = 0.5
    kw = {k: v.astype(dtype) for k, v in BCE_OPTIONS[option](rng, (8, 6)).items()}
    expected = torch_bce(x, t, reduction, **kw)
    got = ref.binary_cross_entropy_with_logits(x, t, reduction=reduction, return_grad=True, **kw)
    check_result(got, *expected, dtype, reduction, (8, 6))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("pos_weight", [None, 2.0])
def test_bce_nonfinite(dtype, pos_weight):
    x = np.array([np.nan, np.inf, -np.inf, np.inf, -np.inf, 1.0, -np.inf, np.inf], dtype=dtype)
    t = np.array([1.0, 0.5, 0.5, 0.0, 1.0, np.nan, 0.0, 1.0], dtype=dtype)
    kw = {} if pos_weight is None else dict(pos_weight=np.array(pos_weight, dtype=dtype))
    loss_t, grad_t = torch_bce(x, t, "none", **kw)
    loss, grad = ref.binary_cross_entropy_with_logits(
        x, t, reduction="none", return_grad=True, **kw
    )
    assert_close(grad, grad_t, dtype)
    # At x = -inf with t > 0 PyTorch's (1 - t) * x + ... gives -inf + inf = NaN; the
    # reference's pw * t * softplus(-x) + (1 - t) * softplus(x) gives the limit +inf.
    differs = (x == -np.inf) & (t > 0)
    assert np.all(np.isnan(loss_t[differs])) and np.all(loss[differs] == np.inf)
    assert_close(loss[~differs], loss_t[~differs], dtype)


def test_bce_empty_mean_is_nan():
    loss, grad = ref.binary_cross_entropy_with_logits(
        np.zeros((0, 3)), np.zeros((0, 3)), return_grad=True
    )
    assert np.isnan(loss) and grad.shape == (0, 3)
    assert np.isnan(torch_bce(np.zeros((0, 3)), np.zeros((0, 3)), "mean")[0])


# ----------------------------------------------------------------------------------------
# sigmoid focal loss
# ----------------------------------------------------------------------------------------


def focal_compare(x, t, dtype, alpha, gamma, reduction, rtol=None, torch_dtype=torch.float64):
    expected_loss, expected_grad = torch_focal(x, t, alpha, gamma, reduction, torch_dtype)
    loss, grad = ref.sigmoid_focal_loss(
        x, t, alpha=alpha, gamma=gamma, reduction=reduction, return_grad=True
    )
    # PyTorch's autograd gives NaN at a saturated, correct prediction (q == 0) when
    # gamma < 1; the reference gives the analytic limit there. Compare elsewhere.
    skip = np.isnan(expected_grad) & np.isfinite(x) & np.isfinite(t)
    if skip.any():
        assert gamma < 1
        assert np.all(np.isfinite(grad[skip]))
    check_result(
        (loss, np.where(skip, 0, grad).astype(dtype)),
        expected_loss,
        np.where(skip, 0, expected_grad),
        dtype,
        reduction,
        x.shape,
        rtol,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("alpha", [0.25, -1.0, 0.0, 0.5, 1.0, 2.0])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 0.5, 1.5])
@pytest.mark.parametrize("soft", [False, True])
def test_focal(dtype, reduction, alpha, gamma, soft):
    """PyTorch is run in float64 on the same inputs: torchvision's 1 - p_t cancels badly
    in float32, so PyTorch's float32 result is itself off by more than 1e-5."""
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((7, 5)) * 4).astype(dtype)
    t = (rng.random((7, 5)) if soft else rng.integers(0, 2, (7, 5))).astype(dtype)
    focal_compare(x, t, dtype, alpha, gamma, reduction)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 0.5, 1.5])
def test_focal_native_precision(dtype, reduction, gamma):
    """PyTorch in the input's own dtype, moderate logits (where 1 - p_t is not tiny)."""
    rng = np.random.default_rng(9)
    x = rng.uniform(-4, 4, (6, 6)).astype(dtype)
    t = rng.integers(0, 2, (6, 6)).astype(dtype)
    torch_dtype = torch.float32 if dtype == np.float32 else torch.float64
    rtol = 1e-4 if dtype == np.float32 else None
    focal_compare(x, t, dtype, 0.25, gamma, reduction, rtol, torch_dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("scale", [20.0, 80.0, 1e4])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 0.5, 1.5])
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_focal_extreme_logits(dtype, reduction, scale, gamma, alpha):
    rng = np.random.default_rng(10)
    x = (np.sign(rng.standard_normal((6, 8))) * scale).astype(dtype)
    x[0, :4] = 0.0
    t = rng.integers(0, 2, (6, 8)).astype(dtype)
    t[1, :4] = 0.5
    focal_compare(x, t, dtype, alpha, gamma, reduction)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("gamma", [0.25, 0.5, 0.9])
def test_focal_saturated_gradient_is_the_limit(dtype, gamma):
    """Where q = 1 - p_t underflows to 0 the gradient is finite: the analytic limit."""
    x = np.array([1e4, -1e4, 800.0, -800.0], dtype=dtype)
    t = np.array([1.0, 0.0, 1.0, 0.0], dtype=dtype)
    loss, grad = ref.sigmoid_focal_loss(x, t, gamma=gamma, reduction="none", return_grad=True)
    assert np.all(loss == 0) and np.all(grad == 0)
    _, torch_grad = torch_focal(x, t, 0.25, gamma, "none")
    assert np.all(np.isnan(torch_grad))  # the deliberate difference


@pytest.mark.parametrize("dtype", DTYPES)
def test_focal_nonfinite(dtype):
    x = np.array([np.nan, 1.0, 2.0], dtype=dtype)
    t = np.array([1.0, np.nan, 0.0], dtype=dtype)
    focal_compare(x, t, dtype, 0.25, 2.0, "none")


# ----------------------------------------------------------------------------------------
# Huber and smooth L1
# ----------------------------------------------------------------------------------------


def regression_case(dtype, param, shape, seed=11):
    """Random inputs whose first elements sit on the kinks (e = +-param), at e = 0 and far out."""
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(63) * 2).astype(dtype)
    t = (rng.standard_normal(63) * 2).astype(dtype)
    t[:6] = 0
    x[:6] = np.array([param, -param, 0.0, 1e4, -1e4, 80.0], dtype=dtype)
    size = int(np.prod(shape))
    return x[:size].reshape(shape), t[:size].reshape(shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("delta", [1.0, 0.5, 2.5, 1e-3])
@pytest.mark.parametrize("shape", [(9, 7), (2, 3, 4), (5,), ()], ids=str)
def test_huber(dtype, reduction, delta, shape):
    x, t = regression_case(dtype, delta, shape)
    expected = torch_elementwise(F.huber_loss, x, t, reduction, delta=delta)
    got = ref.huber_loss(x, t, delta=delta, reduction=reduction, return_grad=True)
    check_result(got, *expected, dtype, reduction, shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("beta", [1.0, 0.5, 0.0, 2.0, 1e-3])
@pytest.mark.parametrize("shape", [(9, 7), (2, 3, 4), (5,), ()], ids=str)
def test_smooth_l1(dtype, reduction, beta, shape):
    x, t = regression_case(dtype, beta, shape)
    expected = torch_elementwise(F.smooth_l1_loss, x, t, reduction, beta=beta)
    got = ref.smooth_l1_loss(x, t, beta=beta, reduction=reduction, return_grad=True)
    check_result(got, *expected, dtype, reduction, shape)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("beta", [1.0, 0.0])
def test_regression_nonfinite(dtype, beta):
    x = np.array([np.nan, np.inf, -np.inf, 1.0, np.inf], dtype=dtype)
    t = np.array([0.0, 0.0, 0.0, np.nan, np.inf], dtype=dtype)
    expected = torch_elementwise(F.huber_loss, x, t, "none", delta=max(beta, 1.0))
    got = ref.huber_loss(x, t, delta=max(beta, 1.0), reduction="none", return_grad=True)
    check_result(got, *expected, dtype, "none", (5,))
    loss_t, grad_t = torch_elementwise(F.smooth_l1_loss, x, t, "none", beta=beta)
    loss, grad = ref.smooth_l1_loss(x, t, beta=beta, reduction="none", return_grad=True)
    assert_close(loss, loss_t, dtype)
    if beta == 0:
        # PyTorch's L1 gradient is sign(e) with sign(NaN) == 0; the reference keeps NaN.
        assert np.all(np.isnan(grad[[0, 3, 4]])) and np.all(grad_t[[0, 3, 4]] == 0)
        assert_close(grad[1:3], grad_t[1:3], dtype)
    else:
        assert_close(grad, grad_t, dtype)


# ----------------------------------------------------------------------------------------
# conventions: dtypes, return types, buffers, validation
# ----------------------------------------------------------------------------------------


def test_compute_dtypes():
    z16 = np.zeros((2, 3), np.float16)
    assert ref.softmax_cross_entropy(z16, np.array([0, 1])).dtype == np.float32
    assert ref.huber_loss(np.arange(4), np.zeros(4)).dtype == np.float64
    loss, grad = ref.binary_cross_entropy_with_logits(
        np.array([True, False]), np.array([1, 0]), return_grad=True
    )
    assert loss.dtype == np.float64 and grad.dtype == np.float64
    # a float64 target is rounded to float32 for float32 logits
    x = np.array([0.3], np.float32)
    t = np.array([0.1], np.float64)
    expected = ref.huber_loss(x, t.astype(np.float32), reduction="none")
    assert ref.huber_loss(x, t, reduction="none")[0] == expected[0]


def test_single_sample_cross_entropy():
    z = np.array([1.0, 2.0, 0.5])
    loss = ref.softmax_cross_entropy(z, np.array(1), reduction="none")
    assert isinstance(loss, np.ndarray) and loss.shape == ()
    expected = F.cross_entropy(torch.tensor(z), torch.tensor(1)).item()
    assert loss == pytest.approx(expected, rel=1e-12)


def test_out_and_grad_out_buffers():
    rng = np.random.default_rng(12)
    z = rng.standard_normal((4, 5))
    target = np.array([0, 4, 2, 1])
    out = np.empty(4)
    loss, grad = ref.softmax_cross_entropy(z, target, reduction="none", return_grad=True)
    got = ref.softmax_cross_entropy(z, target, reduction="none", out=out)
    assert got is out and np.array_equal(out, loss)
    # the gradient may overwrite the logits in place
    logits = z.copy()
    _, g = ref.softmax_cross_entropy(
        logits, target, reduction="none", return_grad=True, grad_out=logits
    )
    assert g is logits and np.array_equal(logits, grad)
    with pytest.raises(ValueError):
        ref.softmax_cross_entropy(z, target, out=np.empty(4))  # out with mean
    with pytest.raises(ValueError):
        ref.huber_loss(z, z, grad_out=np.empty_like(z))  # no return_grad
    with pytest.raises(ValueError):
        ref.huber_loss(z, z, return_grad=True, grad_out=np.empty((4, 5), np.float32))


def test_validation():
    z = np.zeros((3, 4))
    t = np.array([0, 1, 2])
    with pytest.raises(ValueError):
        ref.softmax_cross_entropy(z, t, reduction="avg")
    for bad in (-0.1, 1.5, np.nan, np.inf):
        with pytest.raises(ValueError):
            ref.softmax_cross_entropy(z, t, label_smoothing=bad)
    with pytest.raises(ValueError, match="class indices must be integers"):
        ref.softmax_cross_entropy(z, t.astype(float))
    with pytest.raises(IndexError, match=r"target\[1\] = 4 is out of range for 4 classes"):
        ref.softmax_cross_entropy(z, np.array([0, 4, 1]))
    with pytest.raises(IndexError, match=r"target\[1, 0\] = -1"):
        ref.softmax_cross_entropy(np.zeros((2, 2, 4)), np.array([[0, 1], [-1, 0]]))
    with pytest.raises(TypeError):
        ref.softmax_cross_entropy(z, np.array([True, False, True]))
    with pytest.raises(ValueError):
        ref.softmax_cross_entropy(z, np.full((3, 4), 0.25), ignore_index=3)
    with pytest.raises(ValueError):
        ref.softmax_cross_entropy(z, t, weight=np.ones(3))
    with pytest.raises(ValueError):
        ref.binary_cross_entropy_with_logits(z, np.zeros((1, 4)))  # no target broadcast
    with pytest.raises(ValueError):
        ref.binary_cross_entropy_with_logits(z, z, pos_weight=np.ones(3))
    for kw in (dict(delta=0.0), dict(delta=-1.0), dict(delta=np.nan)):
        with pytest.raises(ValueError):
            ref.huber_loss(z, z, **kw)
    for kw in (dict(beta=-1.0), dict(beta=np.inf)):
        with pytest.raises(ValueError):
            ref.smooth_l1_loss(z, z, **kw)
    for kw in (dict(gamma=-0.5), dict(gamma=np.nan), dict(alpha=np.inf)):
        with pytest.raises(ValueError):
            ref.sigmoid_focal_loss(z, z, **kw)
    with pytest.raises(TypeError):
        ref.huber_loss(z.astype(complex), z)
