"""Loss-specific contract tests of the wider family (API.md, "The wider family").

tests/test_registry.py checks what every loss shares (parity with fusedloss.reference,
gradients, buffers, threads, PyTorch, mpmath); this file checks what only a named loss
promises: PyTorch's clamps of binary_cross_entropy, the label rules of the margin losses,
kl_div's "batchmean", the CenterNet mean, the focal limits, the per-class Dice view, the
ties of the ranking losses, the several-gradient API.  Expected values are written from
the definitions (or PyTorch), never read off the implementation.  Every test runs on the
public function and, where it says so, on the NumPy reference as well.
"""

import math

import numpy as np
import pytest

import fusedloss as fl
from fusedloss import reference as ref

BOTH = pytest.mark.parametrize("impl", ["public", "reference"])
DT = pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])


def _f(impl, name):
    return getattr(fl if impl == "public" else ref, name)


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _sentinel_buffers(lshape, gshapes, dtype, fill=-7.25):
    out = np.full(lshape, fill, dtype)
    grads = tuple(np.full(s, fill, dtype) for s in gshapes)
    return out, grads


# ============================================================================ binary_cross_entropy


@BOTH
def test_bce_log_clamp_at_zero_and_one_like_torch(impl, torch):
    """log(0) is clamped to -100 in each term: loss 100 per wrong certain prediction, 0
    for a right one; gradient (x - t) / max(x (1 - x), eps) with PyTorch's eps."""
    f = _f(impl, "binary_cross_entropy")
    x = np.array([0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.5])
    t = np.array([0.0, 1.0, 0.0, 1.0, 0.25, 0.75, 0.5])
    loss, grad = f(x, t, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss[:4], [0.0, 100.0, 100.0, 0.0])
    np.testing.assert_allclose(loss[4:6], [25.0, 25.0], rtol=1e-15)
    xt = torch.tensor(x, requires_grad=True)
    tl = torch.nn.functional.binary_cross_entropy(xt, torch.tensor(t), reduction="none")
    tl.sum().backward()
    np.testing.assert_allclose(loss, tl.detach().numpy(), rtol=1e-15, atol=0)
    # at x = 0 / 1 the denominator is the clamp: |grad| = |x - t| / ~1e-12
    np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-14)
    assert abs(grad[1]) == pytest.approx(1e12, rel=1e-6) and grad[1] < 0
    assert grad[0] == 0 and grad[3] == 0
    assert grad[6] == 0


@BOTH
def test_bce_gradient_clamp_is_1e_minus_12(impl):
    """Where x (1 - x) < 1e-12 (x = 1e-14) the denominator is the clamp, not x (1 - x)."""
    f = _f(impl, "binary_cross_entropy")
    x = np.array([1e-14, 1e-6])
    t = np.array([1.0, 1.0])
    _, g = f(x, t, reduction="none", return_grad=True)
    assert g[0] == pytest.approx(-(1 - 1e-14) / 1e-12, rel=1e-6)
    assert g[1] == pytest.approx((1e-6 - 1) / (1e-6 * (1 - 1e-6)), rel=1e-12)


@BOTH
@DT
@pytest.mark.parametrize("bad", [1.5, -0.1, np.inf, -np.inf])
def test_bce_input_outside_unit_interval_is_refused(impl, dtype, bad):
    f = _f(impl, "binary_cross_entropy")
    x = np.full((3, 4), 0.5, dtype)
    x[2, 1] = bad
    t = np.full((3, 4), 0.5, dtype)
    out = np.full((3, 4), -7.25, dtype)
    g = np.full((3, 4), -7.25, dtype)
    with pytest.raises(ValueError, match=r"outside \[0, 1\]"):
        f(x, t, reduction="none", return_grad=True, out=out, grad_out=g)
    assert (out == -7.25).all() and (g == -7.25).all()
    with pytest.raises(ValueError, match=r"\[2, 1\]"):
        f(x, t)


@BOTH
def test_bce_nan_input_propagates(impl):
    f = _f(impl, "binary_cross_entropy")
    x = np.array([0.5, np.nan])
    loss, g = f(x, np.array([1.0, 1.0]), reduction="none", return_grad=True)
    assert np.isfinite(loss[0]) and np.isnan(loss[1]) and np.isnan(g[1])


def test_bce_targets_are_not_checked():
    x = np.array([0.25, 0.75])
    t = np.array([2.0, -1.0])
    want = -(t * np.log(x) + (1 - t) * np.log1p(-x))
    np.testing.assert_allclose(fl.binary_cross_entropy(x, t, reduction="none"), want, rtol=1e-14)


# ============================================================================ hinge / exponential


@BOTH
@pytest.mark.parametrize("name", ["hinge_loss", "exponential_loss"])
@pytest.mark.parametrize("label", [0.0, 2.0, 0.5, -2.0, np.inf])
def test_margin_losses_refuse_labels_outside_plus_minus_one(impl, name, label):
    f = _f(impl, name)
    x = np.zeros((2, 3))
    t = np.ones((2, 3))
    t[1, 2] = label
    out = np.full((2, 3), -7.25)
    g = np.full((2, 3), -7.25)
    with pytest.raises(ValueError, match=r"-1, \+1"):
        f(x, t, reduction="none", return_grad=True, out=out, grad_out=g)
    assert (out == -7.25).all() and (g == -7.25).all()


@BOTH
@pytest.mark.parametrize("name", ["hinge_loss", "exponential_loss"])
def test_margin_losses_integer_and_bool_labels(impl, name):
    f = _f(impl, name)
    x = np.array([0.5, -0.5])
    want = f(x, np.array([1.0, -1.0]), reduction="none")
    np.testing.assert_array_equal(f(x, np.array([1, -1], np.int8), reduction="none"), want)
    with pytest.raises(ValueError, match=r"-1, \+1"):
        f(x, np.array([True, False]))  # False is 0


@BOTH
@pytest.mark.parametrize("name", ["hinge_loss", "exponential_loss"])
def test_margin_losses_nan_label_propagates(impl, name):
    f = _f(impl, name)
    loss = f(np.array([0.5, 0.5]), np.array([1.0, np.nan]), reduction="none")
    assert np.isfinite(loss[0]) and np.isnan(loss[1])
    assert np.isnan(f(np.array([0.5, 0.5]), np.array([1.0, np.nan])))


@BOTH
def test_hinge_values_and_kink(impl):
    f = _f(impl, "hinge_loss")
    x = np.array([2.0, 0.5, 1.0, -1.0, -3.0, 0.25])
    y = np.array([1.0, 1.0, 1.0, 1.0, -1.0, -1.0])
    loss, g = f(x, y, margin=1.0, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, [0.0, 0.5, 0.0, 2.0, 0.0, 1.25])
    np.testing.assert_array_equal(g, [0.0, -1.0, 0.0, -1.0, 0.0, 1.0])  # 0 at the kink x = 1
    loss, g = f(x, y, margin=0.5, reduction="none", return_grad=True)
    assert loss[1] == 0 and g[1] == 0  # the kink at margin 0.5


@BOTH
def test_exponential_values(impl):
    f = _f(impl, "exponential_loss")
    x = np.array([0.0, 2.0, -3.0])
    y = np.array([1.0, -1.0, -1.0])
    loss, g = f(x, y, reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, [1.0, math.exp(2.0), math.exp(-3.0)], rtol=1e-15)
    np.testing.assert_allclose(g, [-1.0, math.exp(2.0), math.exp(-3.0)], rtol=1e-15)


# ============================================================================ kl_div


@BOTH
def test_kl_div_zero_target_gives_zero(impl):
    f = _f(impl, "kl_div")
    x = np.array([-1.0, -50.0, 0.0])
    loss, g = f(x, np.zeros(3), reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g, [0.0, 0.0, 0.0])


@BOTH
def test_kl_div_log_target_very_negative_is_finite(impl):
    f = _f(impl, "kl_div")
    x = np.array([-0.5, -2.0])
    t = np.array([-1000.0, np.log(0.3)])
    loss, g = f(x, t, log_target=True, reduction="none", return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(g).all()
    assert loss[0] == 0 and g[0] == 0  # exp(-1000) underflows to 0
    assert loss[1] == pytest.approx(0.3 * (np.log(0.3) + 2.0), rel=1e-14)
    assert g[1] == pytest.approx(-0.3, rel=1e-14)


@BOTH
@DT
def test_kl_div_batchmean(impl, dtype, torch):
    f = _f(impl, "kl_div")
    rng = np.random.default_rng(3)
    p = rng.dirichlet(np.ones(5), size=(4, 3))
    x = np.log(rng.dirichlet(np.ones(5), size=(4, 3))).astype(dtype)
    t = p.astype(dtype)
    total = f(x, t, reduction="sum")
    bm, g = f(x, t, reduction="batchmean", return_grad=True)
    _, gs = f(x, t, reduction="sum", return_grad=True)
    assert bm.dtype == dtype
    np.testing.assert_allclose(bm, total / 4, rtol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_allclose(g, gs / 4, rtol=1e-6 if dtype == np.float32 else 1e-14)
    want = torch.nn.functional.kl_div(
        torch.tensor(x.astype(np.float64)),
        torch.tensor(t.astype(np.float64)),
        reduction="batchmean",
    )
    np.testing.assert_allclose(bm, float(want), rtol=2e-5 if dtype == np.float32 else 1e-12)
    # 0-d: the sum; an empty first axis: NaN with a zero gradient
    x0, t0 = np.array(-0.5), np.array(0.25)
    assert f(x0, t0, reduction="batchmean") == f(x0, t0, reduction="sum")
    e, ge = f(np.zeros((0, 3)), np.zeros((0, 3)), reduction="batchmean", return_grad=True)
    assert np.isnan(e) and ge.shape == (0, 3)
    # (3, 0): three rows, no elements: 0 / 3
    assert f(np.zeros((3, 0)), np.zeros((3, 0)), reduction="batchmean") == 0


@BOTH
@pytest.mark.parametrize(
    "name",
    [
        "mse_loss",
        "binary_cross_entropy",
        "hinge_loss",
        "nll_loss",
        "dice_loss",
        "margin_ranking_loss",
    ],
)
def test_batchmean_is_refused_by_other_losses(impl, name):
    f = _f(impl, name)
    if name == "nll_loss":
        args = (np.zeros((2, 3)), np.zeros(2, np.int64))
    elif name == "margin_ranking_loss":
        args = (np.zeros(2), np.zeros(2), np.ones(2))
    elif name in ("binary_cross_entropy",):
        args = (np.full(2, 0.5), np.full(2, 0.5))
    else:
        args = (np.zeros((2, 2)), np.ones((2, 2)))
    with pytest.raises(ValueError, match="reduction"):
        f(*args, reduction="batchmean")


@BOTH
def test_kl_div_log_target_must_be_bool(impl):
    f = _f(impl, "kl_div")
    for bad in (1, 0, "yes", None):
        with pytest.raises(TypeError, match="log_target"):
            f(np.zeros(2), np.zeros(2), log_target=bad)
    f(np.zeros(2), np.zeros(2), log_target=np.bool_(True))


# ============================================================================ heatmap_focal_loss


def _heatmap_by_hand(x, t, alpha, beta):
    """CenterNet's loss written with sigmoid / log directly (moderate logits only)."""
    p = 1 / (1 + np.exp(-x))
    pos = t == 1
    return np.where(
        pos, -((1 - p) ** alpha) * np.log(p), -((1 - t) ** beta) * p**alpha * np.log(1 - p)
    )


@BOTH
def test_heatmap_mean_divides_by_positives(impl):
    f = _f(impl, "heatmap_focal_loss")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 8, 8)) * 2
    t = rng.uniform(size=(2, 8, 8)) * 0.9
    t[0, 3, 4] = t[1, 2, 2] = t[1, 7, 0] = 1.0
    none = f(x, t, reduction="none")
    np.testing.assert_allclose(none, _heatmap_by_hand(x, t, 2.0, 4.0), rtol=1e-12)
    total = f(x, t, reduction="sum")
    np.testing.assert_allclose(total, none.sum(), rtol=1e-13)
    mean, g = f(x, t, return_grad=True)
    _, gs = f(x, t, reduction="sum", return_grad=True)
    np.testing.assert_allclose(mean, total / 3, rtol=1e-13)
    np.testing.assert_allclose(g, gs / 3, rtol=1e-13)
    # the weight does not change the count
    w = np.full((8,), 0.5)
    np.testing.assert_allclose(f(x, t, weight=w), total * 0.5 / 3, rtol=1e-13)


@BOTH
def test_heatmap_without_positives_mean_is_sum_and_empty_is_zero(impl):
    f = _f(impl, "heatmap_focal_loss")
    x = np.array([[0.5, -1.0], [2.0, -3.0]])
    t = np.array([[0.0, 0.5], [0.9, 0.99]])
    assert f(x, t) == f(x, t, reduction="sum")
    e, g = f(np.zeros((0, 4)), np.zeros((0, 4)), return_grad=True)
    assert e == 0 and not np.isnan(e) and g.shape == (0, 4)


@BOTH
def test_heatmap_gradient_formula(impl):
    f = _f(impl, "heatmap_focal_loss")
    x = np.array([0.3, -1.2, 2.0, 0.7])
    t = np.array([1.0, 1.0, 0.25, 0.0])
    a, b = 1.5, 3.0
    _, g = f(x, t, alpha=a, beta=b, reduction="none", return_grad=True)
    p = 1 / (1 + np.exp(-x))
    want = np.where(
        t == 1,
        (1 - p) ** a * (a * p * np.log(p) - (1 - p)),
        (1 - t) ** b * p**a * (p - a * (1 - p) * np.log(1 - p)),
    )
    np.testing.assert_allclose(g, want, rtol=1e-12)


@BOTH
def test_heatmap_extreme_logits_are_finite(impl):
    """Log space: no clamping, no NaN at saturated logits (finite ones)."""
    f = _f(impl, "heatmap_focal_loss")
    x = np.array([800.0, -800.0, 800.0, -800.0, 40.0])
    t = np.array([1.0, 1.0, 0.5, 0.5, 0.0])
    loss, g = f(x, t, reduction="none", return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(g).all()
    assert loss[0] == 0 and loss[1] == pytest.approx(800.0)
    assert loss[2] == pytest.approx(0.5**4 * 800.0) and loss[3] == 0


# ============================================================================ softmax_focal_loss


@BOTH
@DT
def test_softmax_focal_gamma_zero_is_cross_entropy(impl, dtype):
    f = _f(impl, "softmax_focal_loss")
    ce = _f(impl, "softmax_cross_entropy")
    rng = np.random.default_rng(5)
    x = (rng.normal(size=(3, 4, 7)) * 3).astype(dtype)
    t = rng.integers(0, 7, size=(3, 4))
    t[0, 1] = -100
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == np.float32 else dict(rtol=1e-14, atol=1e-16)
    for reduction in ("none", "sum", "mean"):
        lf, gf = f(x, t, gamma=0.0, reduction=reduction, return_grad=True)
        lc, gc = ce(x, t, reduction=reduction, return_grad=True)
        assert np.asarray(lf).dtype == dtype and gf.dtype == dtype
        np.testing.assert_allclose(lf, lc, **tol)
        np.testing.assert_allclose(gf, gc, **tol)


@BOTH
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.7])
@pytest.mark.parametrize("target", [0, 1])
def test_softmax_focal_finite_at_saturated_logits(impl, gamma, target):
    f = _f(impl, "softmax_focal_loss")
    x = np.array([[1000.0, 0.0, 0.0], [-1000.0, 1000.0, 0.0]])
    t = np.array([target, 1 - target])
    loss, g = f(x, t, gamma=gamma, reduction="none", return_grad=True)
    assert np.isfinite(loss).all() and np.isfinite(g).all(), (loss, g)
    if target == 0:  # right and certain: loss 0, gradient 0
        np.testing.assert_array_equal(loss, [0.0, 0.0])
        np.testing.assert_array_equal(g, np.zeros((2, 3)))
    else:  # certain and wrong: q = 1, loss = -log p_y = 1000 (row 0) and 2000 (row 1)
        np.testing.assert_allclose(loss, [1000.0, 2000.0], rtol=1e-15)
        # c = alpha q^gamma (1 - gamma p_y lp / q) = 1 (p_y = 0): grad = p - onehot
        np.testing.assert_allclose(g, [[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0]], atol=1e-12)


@BOTH
def test_softmax_focal_against_torch_and_alpha_mean(impl, torch):
    f = _f(impl, "softmax_focal_loss")
    rng = np.random.default_rng(8)
    x = rng.normal(size=(6, 4)) * 2
    t = np.array([0, 3, -100, 2, 1, 3])
    alpha = np.array([0.25, 1.0, 2.0, 0.5])
    gamma = 1.5
    xt = torch.tensor(x, requires_grad=True)
    keep = torch.tensor(t != -100)
    safe = torch.tensor(np.where(t == -100, 0, t))
    lp = torch.log_softmax(xt, -1).gather(-1, safe[:, None])[:, 0]
    per = -torch.tensor(alpha)[safe] * (1 - lp.exp()) ** gamma * lp
    per = torch.where(keep, per, torch.zeros_like(per))
    mean = per.sum() / 5  # 5 rows not ignored: not the summed alpha
    mean.backward()
    got, g = f(x, t, alpha=alpha, gamma=gamma, return_grad=True)
    np.testing.assert_allclose(got, float(mean), rtol=1e-13)
    np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-12, atol=1e-15)


# ============================================================================ multi_margin_loss


@BOTH
@pytest.mark.parametrize("p", [3, 0, 1.5, -1])
def test_multi_margin_p_must_be_1_or_2(impl, p):
    f = _f(impl, "multi_margin_loss")
    with pytest.raises(ValueError, match="p"):
        f(np.zeros((2, 3)), np.zeros(2, np.int64), p=p)


@BOTH
@pytest.mark.parametrize("p", [1, 2])
def test_multi_margin_matches_torch_with_weights(impl, p, torch):
    f = _f(impl, "multi_margin_loss")
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 4, 5))
    t = rng.integers(0, 5, size=(3, 4))
    w = rng.uniform(0.2, 2.0, size=5)
    for reduction in ("none", "sum", "mean"):
        xt = torch.tensor(x.reshape(-1, 5), requires_grad=True)
        want = torch.nn.functional.multi_margin_loss(
            xt,
            torch.tensor(t.reshape(-1)),
            p=p,
            margin=0.7,
            weight=torch.tensor(w),
            reduction=reduction,
        )
        (want.sum() if reduction == "none" else want).backward()
        got, g = f(x, t, p=p, margin=0.7, weight=w, reduction=reduction, return_grad=True)
        np.testing.assert_allclose(
            got, want.detach().numpy().reshape(np.shape(got)), rtol=1e-13, atol=1e-15
        )
        np.testing.assert_allclose(g.reshape(-1, 5), xt.grad.numpy(), rtol=1e-12, atol=1e-15)


@BOTH
def test_multi_margin_checks_every_target(impl):
    f = _f(impl, "multi_margin_loss")
    x = np.zeros((3, 4))
    with pytest.raises(IndexError):
        f(x, np.array([0, -100, 1]))
    with pytest.raises(IndexError):
        f(x, np.array([0, 4, 1]))


# ============================================================================ class-index rules


@BOTH
@pytest.mark.parametrize("name", ["nll_loss", "softmax_focal_loss", "multi_margin_loss"])
def test_class_index_targets_only(impl, name):
    f = _f(impl, name)
    x = np.zeros((3, 4))
    with pytest.raises(IndexError):
        f(x, np.array([0, 4, 1]))
    with pytest.raises(IndexError):
        f(x, np.array([0, -3, 1]))
    with pytest.raises(ValueError):
        f(x, np.array([0.0, 1.0, 2.0]))  # floating class indices
    with pytest.raises(ValueError):
        f(x, np.full((3, 4), 0.25))  # no probability targets
    with pytest.raises(TypeError):
        f(x, np.array([True, False, True]))
    with pytest.raises(ValueError):
        f(x, np.zeros((3, 1), np.int64))  # wrong shape


@BOTH
def test_nll_matches_torch_with_weights_and_ignore(impl, torch):
    f = _f(impl, "nll_loss")
    rng = np.random.default_rng(4)
    x = np.log(rng.dirichlet(np.ones(5), size=(2, 3)))
    t = rng.integers(0, 5, size=(2, 3))
    t[1, 1] = 2
    t[0, 2] = 2
    w = rng.uniform(0.5, 2.0, size=5)
    for reduction in ("none", "sum", "mean"):
        xt = torch.tensor(x, requires_grad=True)
        want = torch.nn.functional.nll_loss(
            xt.movedim(-1, 1),
            torch.tensor(t),
            weight=torch.tensor(w),
            ignore_index=2,
            reduction=reduction,
        )
        (want.sum() if reduction == "none" else want).backward()
        got, g = f(x, t, weight=w, ignore_index=2, reduction=reduction, return_grad=True)
        np.testing.assert_allclose(got, want.detach().numpy(), rtol=1e-14)
        np.testing.assert_allclose(g, xt.grad.numpy(), rtol=1e-14)
    # every row ignored: NaN mean, zero gradient; ignored rows with NaN inputs add nothing
    x[0, 0] = np.nan
    m, g = f(x, np.full((2, 3), 2), ignore_index=2, return_grad=True)
    assert np.isnan(m) and not g.any()


# ============================================================================ dice_loss


@BOTH
@DT
def test_dice_per_class_view_equals_a_loop(impl, dtype):
    f = _f(impl, "dice_loss")
    rng = np.random.default_rng(6)
    N, C, H, W = 2, 3, 4, 5
    x = (rng.normal(size=(N, C, H, W)) * 2).astype(dtype)
    t = (rng.uniform(size=(N, C, H, W)) > 0.6).astype(dtype)
    view_x, view_t = x.reshape(N * C, H * W), t.reshape(N * C, H * W)
    loss, g = f(view_x, view_t, smooth=0.5, reduction="none", return_grad=True)
    assert loss.shape == (N * C,) and loss.dtype == dtype and g.shape == (N * C, H * W)
    tol = 2e-6 if dtype == np.float32 else 1e-14
    for n in range(N):
        for c in range(C):
            xs = x[n, c].astype(np.float64)
            ts = t[n, c].astype(np.float64)
            p = 1 / (1 + np.exp(-xs))
            num = 2 * (p * ts).sum() + 0.5
            den = p.sum() + ts.sum() + 0.5
            assert loss[n * C + c] == pytest.approx(1 - num / den, rel=tol, abs=tol)
            want_g = p * (1 - p) * (num - 2 * ts * den) / den**2
            np.testing.assert_allclose(
                g[n * C + c].reshape(H, W), want_g, rtol=tol * 10, atol=tol * 1e-1
            )
    m = f(view_x, view_t, smooth=0.5)
    assert m == pytest.approx(loss.astype(np.float64).mean(), rel=tol)


@BOTH
def test_dice_shapes(impl):
    f = _f(impl, "dice_loss")
    with pytest.raises(ValueError):
        f(np.array(0.5), np.array(1.0))  # 0-d: no sample axis
    x = np.array([0.0, 2.0, -1.0])  # 1-D: three samples of one element
    t = np.array([1.0, 0.0, 1.0])
    loss = f(x, t, smooth=1.0, reduction="none")
    p = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(loss, 1 - (2 * p * t + 1) / (p + t + 1), rtol=1e-14)
    with pytest.raises(ValueError):
        f(np.zeros((2, 3)), np.zeros((2, 4)))


# ============================================================================ several inputs


@BOTH
def test_margin_ranking_tie_passes_the_gradient(impl, torch):
    f = _f(impl, "margin_ranking_loss")
    x1 = np.array([1.0, 2.0, 0.5, 3.0])
    x2 = np.array([1.0, 1.0, 1.0, 1.0])
    y = np.array([1.0, -1.0, 1.0, 1.0])
    loss, (g1, g2) = f(x1, x2, y, margin=0.0, reduction="none", return_grad=True)
    np.testing.assert_array_equal(loss, [0.0, 1.0, 0.5, 0.0])
    # element 0: -y (x1 - x2) + margin == 0, a tie: the gradient passes (clamp_min)
    np.testing.assert_array_equal(g1, [-1.0, 1.0, -1.0, 0.0])
    np.testing.assert_array_equal(g2, [1.0, -1.0, 1.0, 0.0])
    a, b = torch.tensor(x1, requires_grad=True), torch.tensor(x2, requires_grad=True)
    torch.nn.functional.margin_ranking_loss(a, b, torch.tensor(y), reduction="sum").backward()
    np.testing.assert_array_equal(g1, a.grad.numpy())
    np.testing.assert_array_equal(g2, b.grad.numpy())


@BOTH
@pytest.mark.parametrize("p", [2.0, 1.0, 3.0])
def test_triplet_swap_matches_torch(impl, p, torch):
    f = _f(impl, "triplet_margin_loss")
    rng = np.random.default_rng(9)
    a = rng.normal(size=(8, 5))
    pos = a + rng.normal(size=(8, 5)) * 0.8
    neg = pos + rng.normal(size=(8, 5)) * 0.3  # close to the positive: the swap matters
    ts = [torch.tensor(v, requires_grad=True) for v in (a, pos, neg)]
    want = torch.nn.functional.triplet_margin_loss(*ts, margin=1.0, p=p, swap=True, reduction="sum")
    want.backward()
    loss, grads = f(a, pos, neg, p=p, swap=True, reduction="sum", return_grad=True)
    assert isinstance(grads, tuple) and len(grads) == 3
    np.testing.assert_allclose(loss, float(want), rtol=1e-13)
    for g, t in zip(grads, ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-12, atol=1e-14)
    no_swap = f(a, pos, neg, p=p, reduction="sum")
    assert loss >= no_swap  # min(d(a, n), d(p, n)) <= d(a, n)
    assert loss > no_swap  # and this data makes the swap matter


@BOTH
def test_triplet_swap_tie_splits_the_gradient(impl, torch):
    """a == p: d(a, n) == d(p, n) exactly; torch.min gives each half the gradient."""
    f = _f(impl, "triplet_margin_loss")
    a = np.array([[0.5, -1.0, 2.0]])
    neg = np.array([[0.25, 0.0, 1.0]])
    _, (ga, gp, gn) = f(a, a.copy(), neg, swap=True, margin=5.0, reduction="sum", return_grad=True)
    ts = [torch.tensor(v, requires_grad=True) for v in (a, a.copy(), neg)]
    torch.nn.functional.triplet_margin_loss(*ts, margin=5.0, swap=True, reduction="sum").backward()
    for g, t in zip((ga, gp, gn), ts):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-13, atol=1e-15)


@BOTH
def test_triplet_one_row_is_a_scalar(impl):
    f = _f(impl, "triplet_margin_loss")
    a, p, n = np.array([0.0, 1.0]), np.array([0.0, 2.0]), np.array([3.0, 1.0])
    loss = f(a, p, n, eps=0.0, reduction="none")
    assert loss.shape == () and loss == pytest.approx(max(0.0, 1.0 - 3.0 + 1.0) + 0.0)
    with pytest.raises(ValueError):
        f(np.array(1.0), np.array(1.0), np.array(1.0))


@BOTH
def test_contrastive_finite_at_zero_distance(impl):
    f = _f(impl, "contrastive_loss")
    x = np.array([[1.0, 2.0], [0.5, 0.5]])
    loss, (g1, g2) = f(
        x, x.copy(), np.array([0.0, 1.0]), eps=0.0, reduction="none", return_grad=True
    )
    np.testing.assert_array_equal(loss, [1.0, 0.0])  # (1 - y) margin^2, y d^2
    assert np.isfinite(g1).all() and np.isfinite(g2).all()
    np.testing.assert_array_equal(g1, np.zeros((2, 2)))
    np.testing.assert_array_equal(g2, np.zeros((2, 2)))


@BOTH
def test_contrastive_values(impl):
    f = _f(impl, "contrastive_loss")
    x1 = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    x2 = np.array([[0.3, 0.4], [3.0, 4.0], [0.3, 0.4]])  # d = 0.5, 5, 0.5
    y = np.array([0.0, 0.0, 1.0])
    loss, (g1, g2) = f(x1, x2, y, margin=1.0, eps=0.0, reduction="none", return_grad=True)
    np.testing.assert_allclose(loss, [0.25, 0.0, 0.25], rtol=1e-15)
    u = x1 - x2
    np.testing.assert_allclose(g1[0], -2 * 0.5 / 0.5 * u[0], rtol=1e-15)
    np.testing.assert_array_equal(g1[1], [0.0, 0.0])
    np.testing.assert_allclose(g1[2], 2 * u[2], rtol=1e-15)
    np.testing.assert_array_equal(g2, -g1)
    with pytest.raises(ValueError):
        f(x1, x2, np.zeros((3, 2)))  # the target has the loss's shape


_MULTI = {
    "margin_ranking_loss": lambda rng: (
        rng.normal(size=(3, 4)),
        rng.normal(size=(3, 4)),
        np.sign(rng.normal(size=(3, 4))),
    ),
    "triplet_margin_loss": lambda rng: tuple(rng.normal(size=(3, 4)) for _ in range(3)),
    "contrastive_loss": lambda rng: (
        rng.normal(size=(3, 4)),
        rng.normal(size=(3, 4)) * 0.2,
        np.array([0.0, 1.0, 0.5]),
    ),
}


@BOTH
@pytest.mark.parametrize("name", list(_MULTI))
def test_multi_grad_out_tuple_in_place_and_length(impl, name):
    f = _f(impl, name)
    args = _MULTI[name](np.random.default_rng(1))
    k = 3 if name == "triplet_margin_loss" else 2
    want_loss, want = f(*args, reduction="sum", return_grad=True)
    assert isinstance(want, tuple) and len(want) == k
    bufs = tuple(np.full(args[0].shape, -7.25) for _ in range(k))
    loss, got = f(*args, reduction="sum", return_grad=True, grad_out=bufs)
    assert all(g is b for g, b in zip(got, bufs)) and loss == want_loss
    for g, w in zip(got, want):
        np.testing.assert_array_equal(g, w)
    # in place: each differentiable input receives its own gradient
    ins = [a.copy() for a in args[:k]]
    _, got = f(*ins, *args[k:], reduction="sum", return_grad=True, grad_out=tuple(ins))
    for g, i, w in zip(got, ins, want):
        assert g is i
        np.testing.assert_array_equal(i, w)
    # wrong lengths, and a single array, are refused without writing
    for bad in (bufs[:1], bufs + (np.zeros(args[0].shape),), bufs[0]):
        fresh = [np.full(args[0].shape, -7.25) for _ in range(4)]
        bad = fresh[0] if isinstance(bad, np.ndarray) else tuple(fresh[: len(bad)])
        out = np.full(np.shape(want_loss) or (), -7.25)
        with pytest.raises(ValueError):
            f(*args, reduction="sum", return_grad=True, grad_out=bad)
        assert all((b == -7.25).all() for b in fresh) and (out == -7.25).all()
    with pytest.raises(ValueError):  # grad_out without return_grad
        f(*args, grad_out=bufs)


@BOTH
@pytest.mark.parametrize("name", list(_MULTI))
def test_multi_shape_mismatch(impl, name):
    f = _f(impl, name)
    args = list(_MULTI[name](np.random.default_rng(1)))
    for i in range(1, len(args)):
        bad = list(args)
        bad[i] = args[i][:-1]
        with pytest.raises(ValueError):
            f(*bad)


# ============================================================================ target shapes


@BOTH
@pytest.mark.parametrize(
    "name",
    [
        "binary_cross_entropy",
        "hinge_loss",
        "exponential_loss",
        "kl_div",
        "heatmap_focal_loss",
        "dice_loss",
    ],
)
def test_elementwise_target_shape_mismatch(impl, name):
    f = _f(impl, name)
    x = np.full((3, 4), 0.5)
    t = np.ones((3, 4))
    for bad in (np.ones((3, 1)), np.ones((4,)), np.ones((3, 4, 1))):
        out = np.full((3, 4), -7.25)
        with pytest.raises(ValueError):
            f(x, bad, reduction="none", out=out if name != "dice_loss" else None)
        assert (out == -7.25).all()
    f(x, t)


@BOTH
@pytest.mark.parametrize(
    "name,kw",
    [
        ("hinge_loss", {"margin": math.nan}),
        ("heatmap_focal_loss", {"alpha": math.inf}),
        ("heatmap_focal_loss", {"beta": -1.0}),
        ("softmax_focal_loss", {"gamma": -0.5}),
        ("dice_loss", {"smooth": -1.0}),
        ("triplet_margin_loss", {"p": 0.0}),
        ("triplet_margin_loss", {"eps": math.nan}),
        ("contrastive_loss", {"margin": math.inf}),
        ("margin_ranking_loss", {"margin": -math.inf}),
    ],
)
def test_scalar_parameters_must_be_finite_and_in_range(impl, name, kw):
    f = _f(impl, name)
    if name in ("softmax_focal_loss",):
        args = (np.zeros((2, 3)), np.zeros(2, np.int64))
    elif name in _MULTI:
        args = _MULTI[name](np.random.default_rng(0))
    else:
        args = (np.zeros((2, 3)), np.ones((2, 3)))
    with pytest.raises(ValueError):
        f(*args, **kw)
