"""Fast kernels vs the NumPy reference over shapes, dtypes, options and reductions."""

import numpy as np
import pytest
from _util import DTYPES, compare

import fusedloss as fl
from fusedloss import reference as ref

# Every test here runs once per SIMD target this CPU supports.
pytestmark = pytest.mark.usefixtures("each_simd_target")

rng = np.random.default_rng(2024)

CE_SHAPES = [(8, 1), (8, 2), (16, 10), (2, 3, 10), (3, 1000), (2, 32000), (0, 10), (10,), (2, 0, 4)]
CE_OPTIONS = {
    "plain": {},
    "weight": {"weight": "w"},
    "ignore": {"ignore": True},
    "ignore-custom": {"ignore_index": 1, "ignore": True},
    "smooth": {"label_smoothing": 0.1},
    "weight-ignore-smooth": {"weight": "w", "ignore": True, "label_smoothing": 0.25},
    "smooth-one": {"label_smoothing": 1.0},
}


def _ce_inputs(shape, dtype, opts, probs):
    C = shape[-1]
    x = (rng.normal(size=shape) * 3).astype(dtype)
    kw = {}
    if "weight" in opts:
        kw["weight"] = rng.uniform(0.2, 3.0, C).astype(dtype)
    if "label_smoothing" in opts:
        kw["label_smoothing"] = opts["label_smoothing"]
    if probs:
        t = (
            rng.dirichlet(np.ones(C), size=shape[:-1]).astype(dtype)
            if C
            else np.zeros(shape, dtype)
        )
        return x, t, kw
    t = rng.integers(0, C, size=shape[:-1])
    if opts.get("ignore"):
        ign = opts.get("ignore_index", -100)
        if ign != -100:
            kw["ignore_index"] = ign
        t.reshape(-1)[::3] = ign
    return x, t, kw


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("opt", list(CE_OPTIONS))
def test_ce_index(dtype, shape, opt):
    x, t, kw = _ce_inputs(shape, dtype, CE_OPTIONS[opt], probs=False)
    compare(fl.softmax_cross_entropy, ref.softmax_cross_entropy, (x, t), kw, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", CE_SHAPES, ids=str)
@pytest.mark.parametrize("opt", ["plain", "weight", "smooth", "weight-ignore-smooth"])
def test_ce_probabilities(dtype, shape, opt):
    opts = {k: v for k, v in CE_OPTIONS[opt].items() if k != "ignore"}
    x, t, kw = _ce_inputs(shape, dtype, opts, probs=True)
    compare(fl.softmax_cross_entropy, ref.softmax_cross_entropy, (x, t), kw, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_ce_index_dtypes_of_targets(dtype):
    x = rng.normal(size=(20, 7)).astype(dtype)
    for tdt in [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]:
        t = rng.integers(0, 7, 20).astype(tdt)
        compare(
            fl.softmax_cross_entropy, ref.softmax_cross_entropy, (x, t), {"ignore_index": 3}, dtype
        )


EW_SHAPES = [(), (7,), (4, 5), (2, 3, 4), (0, 3), (64, 1000)]


def _ew_inputs(shape, dtype, hard):
    x = (rng.normal(size=shape) * 4).astype(dtype)
    if hard:
        t = (rng.uniform(size=shape) > 0.6).astype(dtype)
    else:
        t = rng.uniform(size=shape).astype(dtype)
    return x, t


BCE_OPTIONS = {
    "plain": lambda s: {},
    "weight-full": lambda s: {"weight": rng.uniform(0.1, 2, s)},
    "weight-last": lambda s: {"weight": rng.uniform(0.1, 2, s[-1:])},
    "pos_weight-last": lambda s: {"pos_weight": rng.uniform(0.5, 4, s[-1:])},
    "both-scalar": lambda s: {"weight": 0.7, "pos_weight": 2.5},
    "both-rows": lambda s: {
        "weight": rng.uniform(0.1, 2, s[:1] + (1,) * (len(s) - 1)),
        "pos_weight": rng.uniform(0.5, 4, s[-1:]),
    },
}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", EW_SHAPES, ids=str)
@pytest.mark.parametrize("opt", list(BCE_OPTIONS))
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_bce(dtype, shape, opt, hard):
    x, t = _ew_inputs(shape, dtype, hard)
    kw = BCE_OPTIONS[opt](shape)
    compare(
        fl.binary_cross_entropy_with_logits, ref.binary_cross_entropy_with_logits, (x, t), kw, dtype
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", EW_SHAPES, ids=str)
@pytest.mark.parametrize("alpha", [0.25, -1.0, 0.9])
@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 2.5])
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_focal(dtype, shape, alpha, gamma, hard):
    x, t = _ew_inputs(shape, dtype, hard)
    compare(
        fl.sigmoid_focal_loss,
        ref.sigmoid_focal_loss,
        (x, t),
        {"alpha": alpha, "gamma": gamma},
        dtype,
    )


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", EW_SHAPES, ids=str)
@pytest.mark.parametrize("delta", [0.1, 1.0, 3.0])
def test_huber(dtype, shape, delta):
    x, t = _ew_inputs(shape, dtype, False)
    compare(fl.huber_loss, ref.huber_loss, (x, t), {"delta": delta}, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", EW_SHAPES, ids=str)
@pytest.mark.parametrize("beta", [0.0, 0.1, 1.0, 3.0])
def test_smooth_l1(dtype, shape, beta):
    x, t = _ew_inputs(shape, dtype, False)
    compare(fl.smooth_l1_loss, ref.smooth_l1_loss, (x, t), {"beta": beta}, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_extreme_and_non_finite_values(dtype):
    vals = np.array(
        [0.0, -0.0, 1e-30, -1e-30, 30, -30, 80, -80, 1e4, -1e4, np.inf, -np.inf, np.nan],
        dtype=dtype,
    )
    x = np.stack(np.meshgrid(vals, vals)).reshape(2, -1).T.copy()  # every pair
    t_hard = (rng.uniform(size=x.shape) > 0.5).astype(dtype)
    for fn in [
        "binary_cross_entropy_with_logits",
        "sigmoid_focal_loss",
        "huber_loss",
        "smooth_l1_loss",
    ]:
        compare(getattr(fl, fn), getattr(ref, fn), (x, t_hard), {}, dtype)
    xr = np.tile(vals, (4, 1)).astype(dtype)
    compare(fl.huber_loss, ref.huber_loss, (xr, xr[::-1].copy()), {}, dtype)
    # cross-entropy rows made of extreme values
    t = np.arange(x.shape[0]) % 2
    compare(
        fl.softmax_cross_entropy, ref.softmax_cross_entropy, (x, t), {"label_smoothing": 0.1}, dtype
    )
