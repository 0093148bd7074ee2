"""Gradients: finite differences in float64, mean vs sum scaling, fused vs loss-only."""

import numpy as np
import pytest
from _util import central_differences

import fusedloss as fl

# Every test here runs once per SIMD target this CPU supports.
pytestmark = pytest.mark.usefixtures("each_simd_target")

rng = np.random.default_rng(99)


def _cases():
    """(name, loss(x, **kw) -> fused call, x) triples covering every option."""
    C = 6
    t_idx = np.array([0, 5, 2, -100, 3])
    t_prob = rng.dirichlet(np.ones(C), size=5)
    w = rng.uniform(0.3, 2.0, C)
    x_ce = rng.normal(size=(5, C)) * 2
    x_ew = rng.normal(size=(4, 6)) * 2
    t_soft = rng.uniform(size=(4, 6))
    t_hard = (rng.uniform(size=(4, 6)) > 0.5).astype(float)
    w_rows = rng.uniform(0.5, 2, (4, 1))
    e_far = x_ew + np.where(rng.uniform(size=(4, 6)) > 0.5, 3.0, 0.0)
    ce = fl.softmax_cross_entropy
    bce = fl.binary_cross_entropy_with_logits
    return [
        ("ce", lambda x, **k: ce(x, t_idx, **k), x_ce),
        (
            "ce-weight-smooth",
            lambda x, **k: ce(x, t_idx, weight=w, label_smoothing=0.15, **k),
            x_ce,
        ),
        ("ce-prob", lambda x, **k: ce(x, t_prob, **k), x_ce),
        (
            "ce-prob-weight-smooth",
            lambda x, **k: ce(x, t_prob, weight=w, label_smoothing=0.3, **k),
            x_ce,
        ),
        (
            "ce-3d",
            lambda x, **k: ce(x, np.array([[1, 2], [0, 3]]), **k),
            rng.normal(size=(2, 2, 4)),
        ),
        ("bce", lambda x, **k: bce(x, t_soft, **k), x_ew),
        (
            "bce-weights",
            lambda x, **k: bce(x, t_soft, weight=w_rows, pos_weight=np.linspace(0.5, 3, 6), **k),
            x_ew,
        ),
        ("focal", lambda x, **k: fl.sigmoid_focal_loss(x, t_hard, **k), x_ew),
        (
            "focal-soft-g1.5",
            lambda x, **k: fl.sigmoid_focal_loss(x, t_soft, gamma=1.5, alpha=0.6, **k),
            x_ew,
        ),
        (
            "focal-g0.5-noalpha",
            lambda x, **k: fl.sigmoid_focal_loss(x, t_hard, gamma=0.5, alpha=-1, **k),
            x_ew,
        ),
        ("huber", lambda x, **k: fl.huber_loss(x, t_soft, delta=0.8, **k), e_far),
        ("smooth_l1", lambda x, **k: fl.smooth_l1_loss(x, t_soft, beta=0.6, **k), e_far),
        ("l1", lambda x, **k: fl.smooth_l1_loss(x, t_soft, beta=0.0, **k), e_far),
    ]


CASES = _cases()
IDS = [c[0] for c in CASES]


@pytest.mark.parametrize("name,f,x", CASES, ids=IDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_finite_differences(name, f, x, reduction):
    _, g = f(x, reduction=reduction, return_grad=True)

    def total(z):
        return float(np.sum(f(z, reduction=reduction)))

    num = central_differences(total, x)
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("name,f,x", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_grad_is_sum_grad_over_denominator(name, f, x, dtype):
    x = x.astype(dtype)
    lm, gm = f(x, return_grad=True)
    ls, gs = f(x, reduction="sum", return_grad=True)
    denom = ls / lm  # the library's own denominator, checked against the sum's loss
    if name.startswith("ce") and "prob" not in name:
        rows = f(x, reduction="none")
        assert np.isclose(denom, ls / lm)
        assert rows.sum() == pytest.approx(float(ls), rel=1e-6)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(gm * denom, gs, rtol=tol * 10, atol=tol * np.abs(gs).max())


@pytest.mark.parametrize("name,f,x", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_loss_only_and_in_place_agree_with_fused(name, f, x, dtype, reduction):
    x = x.astype(dtype)
    loss_fused, g = f(x, reduction=reduction, return_grad=True)
    loss_only = f(x, reduction=reduction)
    np.testing.assert_array_equal(loss_only, loss_fused)
    xi = x.copy()
    loss_in, gi = f(xi, reduction=reduction, return_grad=True, grad_out=xi)
    np.testing.assert_array_equal(loss_in, loss_fused)
    np.testing.assert_array_equal(gi, g)
    out = np.empty_like(np.asarray(loss_fused)) if reduction == "none" else None
    if out is not None:
        r = f(x, reduction="none", out=out)
        assert r is out
        np.testing.assert_array_equal(out, loss_fused)


def test_none_grad_is_grad_of_sum():
    x = rng.normal(size=(8, 5))
    t = rng.integers(0, 5, 8)
    _, g_none = fl.softmax_cross_entropy(x, t, reduction="none", return_grad=True)
    _, g_sum = fl.softmax_cross_entropy(x, t, reduction="sum", return_grad=True)
    np.testing.assert_array_equal(g_none, g_sum)
