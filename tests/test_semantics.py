"""Documented semantics: reductions over nothing, ignored rows, dtypes, extremes, kinks."""

import numpy as np
import pytest

import fusedloss as fl

# Every test here runs once per SIMD target this CPU supports.
pytestmark = pytest.mark.usefixtures("each_simd_target")

rng = np.random.default_rng(7)
ELEMENTWISE = [
    fl.binary_cross_entropy_with_logits,
    fl.sigmoid_focal_loss,
    fl.huber_loss,
    fl.smooth_l1_loss,
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("weight", [None, np.array([1.0, 2.0, 3.0])])
def test_ce_all_ignored(dtype, weight):
    x = rng.normal(size=(4, 3)).astype(dtype)
    t = np.full(4, -100)
    loss, g = fl.softmax_cross_entropy(x, t, weight=weight, return_grad=True)
    assert np.isnan(loss) and loss.dtype == dtype
    assert (g == 0).all() and g.dtype == dtype
    loss, g = fl.softmax_cross_entropy(x, t, weight=weight, reduction="sum", return_grad=True)
    assert loss == 0 and (g == 0).all()
    loss = fl.softmax_cross_entropy(x, t, weight=weight, reduction="none")
    assert loss.shape == (4,) and (loss == 0).all()


def test_ce_counted_weights_all_zero_is_mean_over_nothing():
    x = rng.normal(size=(3, 3))
    loss, g = fl.softmax_cross_entropy(
        x, np.array([0, 0, 2]), weight=np.array([0, 1.0, 0]), return_grad=True
    )
    assert np.isnan(loss) and (g == 0).all()


def test_ce_ignored_rows_contribute_nothing_even_if_nan():
    x = rng.normal(size=(3, 4))
    x[1] = np.nan
    t = np.array([1, 7, 2])
    loss, g = fl.softmax_cross_entropy(x, t, ignore_index=7, reduction="none", return_grad=True)
    assert loss[1] == 0 and (g[1] == 0).all()
    assert np.isfinite(loss).all() and np.isfinite(g).all()
    keep = fl.softmax_cross_entropy(x[[0, 2]], t[[0, 2]], reduction="none")
    np.testing.assert_array_equal(loss[[0, 2]], keep)


@pytest.mark.parametrize("fn", [fl.softmax_cross_entropy] + ELEMENTWISE)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_batch(fn, dtype):
    if fn is fl.softmax_cross_entropy:
        x, t, lshape = np.zeros((0, 5), dtype), np.zeros(0, dtype=np.int64), (0,)
    else:
        x, t, lshape = np.zeros((0, 5), dtype), np.zeros((0, 5), dtype), (0, 5)
    loss, g = fn(x, t, return_grad=True)
    assert np.isnan(loss) and loss.dtype == dtype and g.shape == x.shape
    assert fn(x, t, reduction="sum") == 0
    none = fn(x, t, reduction="none")
    assert none.shape == lshape and none.dtype == dtype


def test_ce_probability_mean_divides_by_rows():
    x = rng.normal(size=(2, 3, 4))
    y = rng.dirichlet(np.ones(4), size=(2, 3))
    w = np.array([0.5, 1.0, 2.0, 1.5])
    rows = fl.softmax_cross_entropy(x, y, weight=w, reduction="none")
    assert rows.shape == (2, 3)
    mean = fl.softmax_cross_entropy(x, y, weight=w)
    np.testing.assert_allclose(mean, rows.sum() / 6, rtol=1e-14)


def test_ce_one_hot_probabilities_equal_indices():
    x = rng.normal(size=(5, 6))
    t = rng.integers(0, 6, 5)
    y = np.eye(6)[t]
    w = rng.uniform(0.5, 2, 6)
    a = fl.softmax_cross_entropy(
        x, t, weight=w, label_smoothing=0.2, reduction="sum", return_grad=True
    )
    b = fl.softmax_cross_entropy(
        x, y, weight=w, label_smoothing=0.2, reduction="sum", return_grad=True
    )
    np.testing.assert_allclose(a[0], b[0], rtol=1e-13)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-12, atol=1e-15)


def test_ce_weighted_mean_denominator():
    x = rng.normal(size=(4, 3))
    t = np.array([0, 2, 2, -100])
    w = np.array([1.0, 5.0, 0.25])
    rows = fl.softmax_cross_entropy(x, t, weight=w, reduction="none", label_smoothing=0.3)
    mean = fl.softmax_cross_entropy(x, t, weight=w, label_smoothing=0.3)
    np.testing.assert_allclose(mean, rows.sum() / (1.0 + 0.25 + 0.25), rtol=1e-14)


def test_ce_one_sample():
    x = np.array([1.0, 2.0, 0.5])
    loss = fl.softmax_cross_entropy(x, np.array(1), reduction="none")
    assert loss.shape == ()
    np.testing.assert_allclose(loss, np.log(np.exp(x).sum()) - 2.0, rtol=1e-15)
    loss, g = fl.softmax_cross_entropy(x, 1, return_grad=True)
    assert g.shape == (3,)


def test_ce_single_class():
    loss, g = fl.softmax_cross_entropy(
        np.array([[3.0], [-2.0]]), np.array([0, 0]), return_grad=True
    )
    assert loss == 0 and (g == 0).all()


@pytest.mark.parametrize(
    "in_dtype,out_dtype",
    [
        (np.float16, np.float32),
        (np.float32, np.float32),
        (np.float64, np.float64),
        (np.int32, np.float64),
        (np.int8, np.float64),
        (np.uint16, np.float64),
        (bool, np.float64),
    ],
)
@pytest.mark.parametrize("fn", [fl.softmax_cross_entropy] + ELEMENTWISE)
def test_compute_dtype(in_dtype, out_dtype, fn):
    x = (rng.normal(size=(3, 4)) * 3).astype(in_dtype)
    t = (
        np.array([0, 3, 1])
        if fn is fl.softmax_cross_entropy
        else rng.uniform(size=(3, 4)).astype(np.float64)
    )
    loss, g = fn(x, t, return_grad=True)
    assert isinstance(loss, np.generic) and loss.dtype == out_dtype
    assert g.dtype == out_dtype and g.shape == x.shape
    assert fn(x, t, reduction="none").dtype == out_dtype


@pytest.mark.parametrize("fn", [fl.softmax_cross_entropy] + ELEMENTWISE)
def test_layouts_give_identical_results(fn):
    base = rng.normal(size=(6, 10))
    t = rng.integers(0, 5, 6) if fn is fl.softmax_cross_entropy else rng.uniform(size=(6, 5))
    x = np.ascontiguousarray(base[:, ::2])
    want = fn(x, t, reduction="none", return_grad=True)
    for variant in [base[:, ::2], np.asfortranarray(x), x.astype(">f8")]:
        got = fn(variant, t, reduction="none", return_grad=True)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])


@pytest.mark.parametrize("fn", [fl.softmax_cross_entropy] + ELEMENTWISE)
def test_grad_out_in_place(fn):
    x = rng.normal(size=(5, 7))
    t = rng.integers(0, 7, 5) if fn is fl.softmax_cross_entropy else rng.uniform(size=(5, 7))
    want_loss, want_g = fn(x, t, return_grad=True)
    xi = x.copy()
    loss, g = fn(xi, t, return_grad=True, grad_out=xi)
    assert g is xi
    assert loss == want_loss
    np.testing.assert_array_equal(g, want_g)


@pytest.mark.parametrize("fn", [fl.softmax_cross_entropy] + ELEMENTWISE)
def test_nan_propagates(fn):
    x = rng.normal(size=(3, 4))
    x[1, 2] = np.nan
    t = np.array([0, 1, 2]) if fn is fl.softmax_cross_entropy else rng.uniform(size=(3, 4))
    loss, g = fn(x, t, reduction="none", return_grad=True)
    if fn is fl.softmax_cross_entropy:
        assert np.isnan(loss[1]) and np.isnan(g[1]).all()
        assert np.isfinite(loss[[0, 2]]).all() and np.isfinite(g[[0, 2]]).all()
    else:
        assert np.isnan(loss[1, 2]) and np.isnan(g[1, 2])
        assert np.isfinite(np.delete(loss.ravel(), 6)).all()
    assert np.isnan(fn(x, t))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [80.0, 1e4])
def test_extreme_logits_finite(dtype, scale):
    x = (np.array([[1, -1, 0, 1], [-1, -1, 1, 0], [0, 0, 0, 0]]) * scale).astype(dtype)
    t = np.array([0, 1, 3])
    for ls in [0.0, 0.1]:
        loss, g = fl.softmax_cross_entropy(
            x, t, label_smoothing=ls, reduction="none", return_grad=True
        )
        assert np.isfinite(loss).all() and np.isfinite(g).all()
    y = (np.abs(x) > 0).astype(dtype)
    for fn in ELEMENTWISE:
        loss, g = fn(x, y, reduction="none", return_grad=True)
        assert np.isfinite(loss).all() and np.isfinite(g).all(), fn.__name__
    loss, g = fl.binary_cross_entropy_with_logits(
        x, y, pos_weight=np.full(4, 3.0), return_grad=True
    )
    assert np.isfinite(loss) and np.isfinite(g).all()


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 0.99])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_focal_saturated_correct_prediction_gradient_is_the_limit(gamma, dtype):
    # x -> +inf with t = 1 (and x -> -inf with t = 0): loss -> 0, gradient -> 0.
    x = np.array([1e4, 200.0, -1e4, -200.0], dtype)
    t = np.array([1.0, 1.0, 0.0, 0.0], dtype)
    loss, g = fl.sigmoid_focal_loss(x, t, gamma=gamma, reduction="none", return_grad=True)
    assert np.isfinite(g).all() and np.isfinite(loss).all()
    assert g[0] == 0 and g[2] == 0  # exp(-1e4) underflows: the limit itself
    assert np.abs(g[[1, 3]]).max() <= 1e-80
    # and it is continuous with a moderately saturated point
    _, g30 = fl.sigmoid_focal_loss(np.array([30.0]), np.array([1.0]), gamma=gamma, return_grad=True)
    assert abs(g30[0]) < 1e-12


def test_focal_alpha_negative_disables_weighting():
    x = rng.normal(size=20)
    t = (rng.uniform(size=20) > 0.5).astype(float)
    a = fl.sigmoid_focal_loss(x, t, alpha=-1.0, gamma=0.0, reduction="none")
    b = fl.binary_cross_entropy_with_logits(x, t, reduction="none")
    np.testing.assert_allclose(a, b, rtol=1e-15)


def test_huber_and_smooth_l1_kinks():
    x = np.array([-2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0])
    t = np.zeros_like(x)
    _, g = fl.huber_loss(x, t, delta=1.0, reduction="sum", return_grad=True)
    np.testing.assert_array_equal(g, np.clip(x, -1, 1))
    _, g = fl.smooth_l1_loss(x, t, beta=0.0, reduction="sum", return_grad=True)
    np.testing.assert_array_equal(g, np.sign(x))
    assert g[3] == 0
    loss = fl.smooth_l1_loss(x, t, beta=0.0, reduction="none")
    np.testing.assert_array_equal(loss, np.abs(x))
    # Huber(delta) == delta * smooth_l1(beta=delta)
    d = 0.7
    np.testing.assert_allclose(
        fl.huber_loss(x, t, delta=d, reduction="none"),
        d * fl.smooth_l1_loss(x, t, beta=d, reduction="none"),
        rtol=1e-15,
    )


def test_huber_infinite_error():
    loss, g = fl.huber_loss(
        np.array([np.inf, -np.inf]), np.zeros(2), delta=2.0, reduction="none", return_grad=True
    )
    np.testing.assert_array_equal(loss, [np.inf, np.inf])
    np.testing.assert_array_equal(g, [2.0, -2.0])


def test_bce_weight_broadcast_patterns_match_materialised():
    x = rng.normal(size=(3, 4, 5))
    t = rng.uniform(size=(3, 4, 5))
    for wshape in [
        (),
        (1,),
        (5,),
        (4, 5),
        (1, 4, 5),
        (3, 4, 5),
        (3, 1, 1),
        (3, 4, 1),
        (4, 1),
        (3, 1, 5),
        (1, 4, 1),
    ]:
        w = rng.uniform(0.5, 2, size=wshape)
        pw = rng.uniform(0.5, 3, size=wshape)
        got = fl.binary_cross_entropy_with_logits(
            x, t, weight=w, pos_weight=pw, reduction="none", return_grad=True
        )
        wf = np.ascontiguousarray(np.broadcast_to(w, x.shape))
        pwf = np.ascontiguousarray(np.broadcast_to(pw, x.shape))
        want = fl.binary_cross_entropy_with_logits(
            x, t, weight=wf, pos_weight=pwf, reduction="none", return_grad=True
        )
        np.testing.assert_array_equal(got[0], want[0], err_msg=str(wshape))
        np.testing.assert_array_equal(got[1], want[1], err_msg=str(wshape))


THREAD_CASES = {
    "ce-index": lambda x, t, y, **k: fl.softmax_cross_entropy(x, t, label_smoothing=0.1, **k),
    "ce-prob": lambda x, t, y, **k: fl.softmax_cross_entropy(x, y, **k),
    "ce-few": lambda x, t, y, **k: fl.softmax_cross_entropy(
        x.reshape(-1, 8), t.repeat(125) % 8, **k
    ),
    "bce": lambda x, t, y, **k: fl.binary_cross_entropy_with_logits(
        x, y, pos_weight=np.linspace(0.5, 2, x.shape[-1], dtype=x.dtype), **k
    ),
    "focal": lambda x, t, y, **k: fl.sigmoid_focal_loss(x, y, gamma=1.5, **k),
    "huber": lambda x, t, y, **k: fl.huber_loss(x, y, **k),
    "smooth_l1": lambda x, t, y, **k: fl.smooth_l1_loss(x, y, beta=0.5, **k),
}


@pytest.mark.parametrize("name", list(THREAD_CASES))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_does_not_change_results(name, dtype):
    # 600 x 1000 elements: above the size where the kernels go parallel.
    x = (rng.normal(size=(600, 1000)) * 3).astype(dtype)
    t = rng.integers(0, 1000, 600)
    y = rng.uniform(size=(600, 1000)).astype(dtype)
    f = THREAD_CASES[name]
    for reduction in ["mean", "none"]:
        want = f(x, t, y, reduction=reduction, return_grad=True, n_threads=1)
        for n in [2, 3, 8, 64]:
            got = f(x, t, y, reduction=reduction, return_grad=True, n_threads=n)
            np.testing.assert_array_equal(got[0], want[0])
            np.testing.assert_array_equal(got[1], want[1])


def test_thread_settings(monkeypatch):
    old = fl.get_num_threads()
    try:
        fl.set_num_threads(3)
        assert fl.get_num_threads() == 3
    finally:
        fl._config._num_threads = None
    # The environment is read once (like OMP_NUM_THREADS); reset that cache to
    # simulate a fresh process.
    monkeypatch.setattr(fl._config, "_env_default", None)
    monkeypatch.setenv("FUSEDLOSS_NUM_THREADS", "5")
    assert fl.get_num_threads() == 5
    monkeypatch.setenv("FUSEDLOSS_NUM_THREADS", "9")
    assert fl.get_num_threads() == 5  # cached
    monkeypatch.setattr(fl._config, "_env_default", None)
    monkeypatch.delenv("FUSEDLOSS_NUM_THREADS")
    assert fl.get_num_threads() == fl._config._usable_cores()
    assert old >= 1


def test_show_config(capsys):
    fl.show_config()
    text = capsys.readouterr().out
    assert fl.__version__ in text and "SIMD" in text and "threads" in text


def test_ce_fast_path_and_validating_path_agree():
    # Canonical inputs are used as they are; a weight of ones, an int32 target or a
    # view go through conversions (fusedloss._validate); both must give the same bits.
    x = rng.normal(size=(40, 7)).astype(np.float32)
    t = rng.integers(0, 7, 40)
    t[::5] = -100
    for red in ["mean", "sum", "none"]:
        fast = fl.softmax_cross_entropy(x, t, reduction=red, return_grad=True, label_smoothing=0.1)
        for kw in [
            dict(target=t.astype(np.int32)),
            dict(weight=np.ones(7, np.float32)),
            dict(n_threads=np.int64(2)),
        ]:
            tt = kw.pop("target", t)
            slow = fl.softmax_cross_entropy(
                x, tt, reduction=red, return_grad=True, label_smoothing=0.1, **kw
            )
            np.testing.assert_array_equal(fast[0], slow[0])
            np.testing.assert_array_equal(fast[1], slow[1])
    # a bad index in canonical targets raises the same error as in converted ones
    t2 = t.copy()
    t2[3] = 7
    with pytest.raises(IndexError, match=r"target\[3\] = 7"):
        fl.softmax_cross_entropy(x, t2)


@pytest.mark.parametrize(
    "fn,kw",
    [
        (fl.binary_cross_entropy_with_logits, {}),
        (fl.sigmoid_focal_loss, {"gamma": 1.5, "alpha": 0.3}),
        (fl.huber_loss, {"delta": 0.7}),
        (fl.smooth_l1_loss, {"beta": 0.0}),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise_fast_path_and_validating_path_agree(fn, kw, dtype):
    # Same-dtype contiguous arrays are used as they are; a target of another dtype
    # (or a weight of ones) goes through conversions.
    x = (rng.normal(size=(33, 7)) * 4).astype(dtype)
    t = rng.uniform(size=(33, 7)).astype(dtype)
    other = np.float64 if dtype == np.float32 else np.float32
    for red in ["mean", "sum", "none"]:
        fast = fn(x, t, reduction=red, return_grad=True, **kw)
        slow = (
            fn(
                x,
                t.astype(other).astype(dtype).astype(other)
                if dtype == np.float64
                else t.astype(other),
                reduction=red,
                return_grad=True,
                **kw,
            )
            if dtype == np.float32
            else fn(x, list(t), reduction=red, return_grad=True, **kw)
        )
        np.testing.assert_array_equal(fast[0], slow[0])
        np.testing.assert_array_equal(fast[1], slow[1])


@pytest.mark.parametrize("weight_case", ["zero-weights", "all-ignored"])
def test_mean_over_nothing_gradient_is_zero_even_with_nan_logits(weight_case):
    x = np.array([[np.nan, 1.0, 2.0], [np.inf, 0.0, 1.0]])
    if weight_case == "zero-weights":
        kw = dict(target=np.array([0, 0]), weight=np.array([0.0, 1.0, 1.0]))
    else:
        kw = dict(target=np.array([-100, -100]))
    t = kw.pop("target")
    for xx in [x, x.astype(np.float32)]:
        loss, g = fl.softmax_cross_entropy(xx, t, return_grad=True, **kw)
        assert np.isnan(loss)
        assert (g == 0).all()
