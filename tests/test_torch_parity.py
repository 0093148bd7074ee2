"""The fast kernels against PyTorch directly (skipped when torch is not installed).

PyTorch is run in float64 as the oracle (its float32 cross-entropy is itself
only ~1e-5 accurate at many classes); the class axis moves from last to 1.
"""

import numpy as np
import pytest

import fusedloss as fl

torch = pytest.importorskip("torch")
F = torch.nn.functional
rng = np.random.default_rng(5)


def _torch_loss_grad(fn, x, *args, reduction, **kw):
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    loss = fn(xt, *args, reduction=reduction, **kw)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), xt.grad.numpy()


def _check(got, want, dtype):
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    for g, w in zip(got, want):
        scale = max(1.0, float(np.abs(w).max(initial=0)))
        np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * 0.1 * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("shape", [(16, 10), (2, 3, 7), (4, 1000)])
@pytest.mark.parametrize("probs", [False, True])
def test_cross_entropy(dtype, reduction, shape, probs):
    C = shape[-1]
    x = (rng.normal(size=shape) * 3).astype(dtype)
    w = rng.uniform(0.5, 2.0, C)
    if probs:
        t = rng.dirichlet(np.ones(C), size=shape[:-1]).astype(dtype)
        tt = torch.tensor(np.moveaxis(t, -1, 1) if t.ndim > 2 else t, dtype=torch.float64)
        kw = {}
    else:
        t = rng.integers(0, C, size=shape[:-1])
        t.reshape(-1)[::4] = -100
        tt = torch.tensor(t)
        kw = {"ignore_index": -100}
    got = fl.softmax_cross_entropy(
        x,
        t,
        weight=w.astype(dtype),
        label_smoothing=0.1,
        reduction=reduction,
        return_grad=True,
        **kw,
    )

    def ce(xt, tt, **k):
        return F.cross_entropy(xt.movedim(-1, 1) if xt.ndim > 2 else xt, tt, **k)

    loss, g = _torch_loss_grad(
        ce,
        x,
        tt,
        reduction=reduction,
        weight=torch.tensor(w.astype(dtype), dtype=torch.float64),
        label_smoothing=0.1,
        **kw,
    )
    if reduction == "none" and x.ndim > 2:
        loss = np.asarray(loss)
    _check(got, (loss, g), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce(dtype, reduction):
    x = (rng.normal(size=(6, 5)) * 5).astype(dtype)
    t = rng.uniform(size=(6, 5)).astype(dtype)
    w = rng.uniform(0.5, 2, (6, 1)).astype(dtype)
    pw = rng.uniform(0.5, 3, 5).astype(dtype)
    got = fl.binary_cross_entropy_with_logits(
        x, t, weight=w, pos_weight=pw, reduction=reduction, return_grad=True
    )
    want = _torch_loss_grad(
        F.binary_cross_entropy_with_logits,
        x,
        torch.tensor(t, dtype=torch.float64),
        reduction=reduction,
        weight=torch.tensor(w, dtype=torch.float64),
        pos_weight=torch.tensor(pw, dtype=torch.float64),
    )
    _check(got, want, dtype)


def _focal(x, t, alpha, gamma, reduction):
    p = torch.sigmoid(x)
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return {"mean": loss.mean, "sum": loss.sum}.get(reduction, lambda: loss)()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("gamma", [0.0, 1.0, 2.0, 1.5])
@pytest.mark.parametrize("alpha", [0.25, -1.0])
def test_focal(dtype, reduction, gamma, alpha):
    x = (rng.normal(size=(5, 8)) * 3).astype(dtype)  # |x| small: torch's 1 - p_t is exact
    t = (rng.uniform(size=(5, 8)) > 0.5).astype(dtype)
    got = fl.sigmoid_focal_loss(
        x, t, alpha=alpha, gamma=gamma, reduction=reduction, return_grad=True
    )
    want = _torch_loss_grad(
        lambda xt, tt, reduction: _focal(xt, tt, alpha, gamma, reduction),
        x,
        torch.tensor(t, dtype=torch.float64),
        reduction=reduction,
    )
    _check(got, want, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("k", [0.0, 0.5, 1.0, 2.0])
def test_huber_smooth_l1(dtype, reduction, k):
    x = (rng.normal(size=(7, 9)) * 3).astype(dtype)
    t = (rng.normal(size=(7, 9)) * 3).astype(dtype)
    tt = torch.tensor(t, dtype=torch.float64)
    got = fl.smooth_l1_loss(x, t, beta=k, reduction=reduction, return_grad=True)
    _check(got, _torch_loss_grad(F.smooth_l1_loss, x, tt, reduction=reduction, beta=k), dtype)
    if k > 0:
        got = fl.huber_loss(x, t, delta=k, reduction=reduction, return_grad=True)
        _check(got, _torch_loss_grad(F.huber_loss, x, tt, reduction=reduction, delta=k), dtype)
