"""Generic tests of every loss in the registry (fusedloss._registry.LOSSES).

Each test is parametrised over the registry and the table in tests/cases.py (argument
makers, parameter grids, invalid values, PyTorch twins); nothing here names a loss.  A new
spec in the registry is picked up by every test below with no edit.

(a) parity with the NumPy twin in fusedloss.reference: shapes, dtypes, every reduction,
    return_grad, the parameter grid, and one input large enough for the kernels to start
    helper threads (tolerances of _util.assert_close);
(b) gradients against central finite differences of the public function itself;
(c) validation: bad reduction, every invalid parameter value, mismatched target shapes --
    the right exception, and nothing written to out / grad_out or to the inputs;
(d) semantics: out / grad_out are returned and filled, grad_out=input in place, bitwise
    identical results for any n_threads, the mean over an empty input;
(e) robustness: NaN / inf propagate without raising or warning; float16 and integer
    inputs are computed as float32 / float64;
(f) concurrency: Python threads sharing inputs get the serial results bitwise;
(h) parity with the PyTorch twin (those tests skip when torch is not installed);
(i) fuzzing (hypothesis): random calls from cases.fuzz_calls -- shapes (0-d, empty), dtypes,
    layouts, parameter values, weights, reductions, buffers, valid or invalid -- either
    raise a documented exception and write nothing, or match the reference, silently;
(j) accuracy against mpmath: the float64 and float32 losses and gradients at fixed inputs,
    extreme ones included, against cases.ORACLES (a spec without an oracle fails).

Tests that run compiled kernels use the `each_simd_target` fixture (conftest.py): once per
compiled SIMD target, a visible skip for targets this CPU lacks; the fuzz tests draw a
supported target per example instead.  FUSEDLOSS_FUZZ_EXAMPLES sets the number of
examples per spec (default 200).
"""

import functools
import inspect
import math
import os
import threading
import warnings
import zlib

import cases
import numpy as np
import pytest
from _util import DTYPES, REDUCTIONS, assert_close, central_differences, compare, run_workers
from cases import LOSSES
from hypothesis import event, given, settings
from hypothesis import strategies as st

import fusedloss as fl
from fusedloss import _kernels
from fusedloss import reference as ref

NAMES = list(LOSSES)
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 17)]  # shapes of the "none" loss
LARGE = (300, 1024)  # a first input of 307,200 elements (>= 2**18: helper threads start)
SIM = pytest.mark.usefixtures("each_simd_target")


def _rng(*tags):
    """A Generator seeded by the test's own tags (stable across processes)."""
    return np.random.default_rng(zlib.crc32(repr(tags).encode()))


def _public(spec):
    return getattr(fl, spec.name)


def _reference(spec):
    twin = spec.reference
    assert twin is getattr(ref, spec.name)
    return twin


def _cdt(dtype):
    """The compute dtype of an input of `dtype`."""
    dt = np.dtype(dtype)
    return np.dtype(np.float32) if dt.kind == "f" and dt.itemsize <= 4 else np.dtype(np.float64)


def _variants():
    """(name, variant) pairs; ids show the variant only where a spec has several."""
    out = []
    for name, spec in LOSSES.items():
        vs = cases.target_variants(spec)
        for v in vs:
            out.append(pytest.param(name, v, id=name if len(vs) == 1 else f"{name}-{v}"))
    return out


def _grid(ends=False):
    """(name, variant, grid id, symbolic params) over the whole table; with ends=True only
    each grid's first and last entries (the defaults, and "all" where a spec has several
    parameters)."""
    out = []
    for name, spec in LOSSES.items():
        vs = cases.target_variants(spec)
        for v in vs:
            grid = cases.param_grid(spec, v)
            for gid, sym in grid[:1] + grid[1:][-1:] if ends else grid:
                pid = "-".join([name] + ([v] if len(vs) > 1 else []) + [gid])
                out.append(pytest.param(name, v, gid, sym, id=pid))
    return out


VARIANTS = _variants()
GRID = _grid()
GRID_LARGE = _grid(ends=True)


def _case(name, variant, sym, shape, dtype, *tags, scale=3.0, as_input_shape=False):
    """(spec, args, kwargs, first input shape) for a test shape (or, as_input_shape, for
    that first input shape), seeded by everything that identifies the case."""
    spec = LOSSES[name]
    xshape = tuple(shape) if as_input_shape else cases.input_shape(spec, shape)
    rng = _rng(name, variant, repr(sym), xshape, np.dtype(dtype).str, *tags)
    args = cases.make_args(spec, xshape, dtype, rng, variant=variant, scale=scale, params=sym)
    kw = cases.make_params(spec, sym, xshape, _cdt(dtype), rng)
    return spec, args, kw, xshape


@functools.lru_cache(maxsize=8)
def _large(name, variant, gid, dtype):
    """The large inputs, made once and shared (read-only)."""
    spec = LOSSES[name]
    sym = dict(cases.param_grid(spec, variant))[gid]
    _, args, kw, _ = _case(name, variant, sym, LARGE, dtype, "large", as_input_shape=True)
    for a in list(args) + list(kw.values()):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return args, kw


def _bits(r):
    parts = r if isinstance(r, tuple) else (r,)
    return tuple(
        (np.asarray(p).dtype.str, np.asarray(p).shape, np.asarray(p).tobytes()) for p in parts
    )


# ============================================================================ registry


def _expected_signature(spec):
    P = inspect.Parameter
    params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in spec.inputs]
    params += [P(p.name, P.KEYWORD_ONLY, default=p.default) for p in spec.params]
    params += [
        P("reduction", P.KEYWORD_ONLY, default="mean"),
        P("return_grad", P.KEYWORD_ONLY, default=False),
        P("out", P.KEYWORD_ONLY, default=None),
        P("grad_out", P.KEYWORD_ONLY, default=None),
        P("n_threads", P.KEYWORD_ONLY, default=None),
    ]
    return inspect.Signature(params)


@pytest.mark.parametrize("name", NAMES)
def test_public_signature_matches_registry(name):
    spec = LOSSES[name]
    assert name in fl.__all__
    assert inspect.signature(_public(spec)) == _expected_signature(spec)


@pytest.mark.parametrize("name", NAMES)
def test_reference_signature_matches_registry(name):
    spec = LOSSES[name]
    assert name in ref.__all__
    assert inspect.signature(_reference(spec)) == _expected_signature(spec)


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry_is_consistent(name):
    spec = LOSSES[name]
    assert spec.kind in ("elementwise", "class_axis")
    assert spec.target_domain in ("real", "unit", "index")
    assert (spec.target_domain == "index") == (spec.kind == "class_axis")
    assert len(spec.inputs) == 2 and spec.torch
    for p in spec.params:
        assert p.kind in ("float", "int", "weight")
        if p.kind == "float":
            assert p.in_range(p.default), (p.name, p.default, p.range_text())
            assert p.lo <= p.hi
        if p.kind == "weight":
            assert p.default is None


# ============================================================================ (a) parity


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_parity_with_reference(name, variant, gid, sym, shape, dtype):
    spec, args, kw, _ = _case(name, variant, sym, shape, dtype)
    compare(_public(spec), _reference(spec), args, kw, dtype)


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_parity_with_reference_large(name, variant, gid, sym, dtype):
    spec = LOSSES[name]
    args, kw = _large(name, variant, gid, dtype)
    fn = _public(spec)
    for reduction in REDUCTIONS:
        want_loss, want_grad = _reference(spec)(*args, reduction=reduction, return_grad=True, **kw)
        loss, grad = fn(*args, reduction=reduction, return_grad=True, **kw)
        assert_close(loss, want_loss, dtype, f"loss {reduction}")
        assert_close(grad, want_grad, dtype, f"grad {reduction}")
        assert_close(
            fn(*args, reduction=reduction, **kw), want_loss, dtype, f"loss only {reduction}"
        )


# ============================================================================ (b) gradients


def _away_from_kinks(spec, x, t, kw):
    """Moves input elements whose error lies within 1e-3 of a kink of the loss."""
    k = np.array(cases.kinks(spec, kw))
    if k.size == 0:
        return x
    x = x.copy()
    for _ in range(20):
        close = (np.abs((x - t)[..., None] - k) < 1e-3).any(axis=-1)
        if not close.any():
            return x
        x[close] += 0.01
    raise AssertionError("could not move the inputs away from the kinks")


@SIM
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_gradient_finite_differences(name, variant, gid, sym):
    spec, (x, t), kw, _ = _case(name, variant, sym, (3, 4), np.float64, "fd", scale=2.0)
    x = _away_from_kinks(spec, x, t, kw)
    fn = _public(spec)
    loss, g = fn(x, t, reduction="sum", return_grad=True, **kw)
    assert g.shape == x.shape and g.dtype == np.float64

    def total(z):
        return float(fn(z, t, reduction="sum", **kw))

    assert total(x) == loss
    num = central_differences(total, x)
    # rounding of the summed loss, amplified by 1 / (2h), bounds the difference's error
    s = float(np.abs(fn(x, t, reduction="none", **kw)).sum())
    np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8 + 1e-9 * s)
    assert np.abs(g).max() > 0  # a non-trivial case


# ============================================================================ (c) validation


def _buffers(spec, xshape, dtype, fill=-7.25):
    cdt = _cdt(dtype)
    return (np.full(cases.loss_shape(spec, xshape), fill, cdt), np.full(xshape, fill, cdt))


def _fails_and_writes_nothing(spec, args, kw, exc, match, reduction="none"):
    """The public spec(*args, **kw), with out / grad_out buffers, raises exc; buffers and
    inputs keep their contents."""
    fn = _public(spec)
    x = args[0]
    out, grad_out = _buffers(spec, np.shape(x), np.asarray(x).dtype)
    before = [np.array(a, copy=True) for a in args]
    with pytest.raises(exc, match=match):
        fn(*args, reduction=reduction, return_grad=True, out=out, grad_out=grad_out, **kw)
    assert (out == -7.25).all() and (grad_out == -7.25).all()
    for a, b in zip(args, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("reduction", ["avg", "MEAN", None])
@pytest.mark.parametrize("name,variant", VARIANTS)
def test_bad_reduction(name, variant, reduction):
    spec, args, _, _ = _case(name, variant, {}, (4, 6), np.float64)
    _fails_and_writes_nothing(spec, args, {}, ValueError, "reduction", reduction=reduction)


def _invalid():
    out = []
    for name, spec in LOSSES.items():
        for iid, pname, value, exc, dts in cases.invalid_params(spec):
            for dtype in DTYPES:
                if dts is None or np.dtype(dtype) in dts:
                    dt = np.dtype(dtype).name
                    out.append(
                        pytest.param(name, pname, value, exc, dtype, id=f"{name}-{iid}-{dt}")
                    )
    return out


@pytest.mark.parametrize("name,pname,value,exc,dtype", _invalid())
def test_invalid_parameter(name, pname, value, exc, dtype):
    spec, args, _, xshape = _case(name, None, {}, (4, 6), dtype, "invalid")
    fn = _public(spec)
    assert pname in inspect.signature(fn).parameters
    kw = cases.make_params(spec, {pname: value}, xshape, _cdt(dtype), _rng(name))
    _fails_and_writes_nothing(spec, args, kw, exc, pname)
    # while the grid's valid values of that parameter are accepted
    for v in [v for gid, sym in cases.param_grid(spec) for k, v in sym.items() if k == pname]:
        _, args, ok, _ = _case(name, None, {pname: v}, (4, 6), dtype, "invalid")
        fn(*args, **ok)


@pytest.mark.parametrize("name,variant", VARIANTS)
def test_target_shape_mismatch(name, variant):
    spec, (x, t), kw, _ = _case(name, variant, {}, (4, 6), np.float64)
    for bad in (t[:-1], np.expand_dims(t, -1), np.ascontiguousarray(np.swapaxes(t, 0, 1))):
        if bad.shape == t.shape:
            continue
        _fails_and_writes_nothing(spec, (x, bad), kw, ValueError, None)


# ============================================================================ (d) semantics


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_out_and_grad_out_are_returned_and_filled(name, variant, gid, sym, dtype):
    spec, args, kw, xshape = _case(name, variant, sym, (4, 6), dtype)
    fn = _public(spec)
    want_loss, want_grad = fn(*args, reduction="none", return_grad=True, **kw)
    out, grad_out = _buffers(spec, xshape, dtype)
    loss, grad = fn(*args, reduction="none", return_grad=True, out=out, grad_out=grad_out, **kw)
    assert loss is out and grad is grad_out
    assert _bits((out, grad_out)) == _bits((want_loss, want_grad))
    out2, grad2 = _buffers(spec, xshape, dtype)
    assert fn(*args, reduction="none", out=out2, **kw) is out2
    assert _bits(out2) == _bits(want_loss)
    for reduction in ("mean", "sum"):
        want = fn(*args, reduction=reduction, return_grad=True, **kw)
        grad2.fill(-7.25)
        got = fn(*args, reduction=reduction, return_grad=True, grad_out=grad2, **kw)
        assert got[1] is grad2
        assert _bits(got) == _bits(want)


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_grad_out_in_place(name, variant, gid, sym, dtype):
    spec, (x, t), kw, _ = _case(name, variant, sym, (4, 6), dtype)
    fn = _public(spec)
    for reduction in REDUCTIONS:
        want = fn(x, t, reduction=reduction, return_grad=True, **kw)
        xi = x.copy()
        loss, g = fn(xi, t, reduction=reduction, return_grad=True, grad_out=xi, **kw)
        assert g is xi
        assert _bits((loss, g)) == _bits(want), reduction
        assert not np.array_equal(xi, x)  # the input really was overwritten


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_thread_count_does_not_change_bits(name, variant, gid, sym, dtype):
    spec = LOSSES[name]
    args, kw = _large(name, variant, gid, dtype)
    fn = _public(spec)
    for reduction in REDUCTIONS:
        want = _bits(fn(*args, reduction=reduction, return_grad=True, n_threads=1, **kw))
        for n in (2, 3, 8):
            got = _bits(fn(*args, reduction=reduction, return_grad=True, n_threads=n, **kw))
            assert got == want, (reduction, n)
        assert _bits(fn(*args, reduction=reduction, n_threads=3, **kw)) == want[:1]


@SIM
@pytest.mark.parametrize("shape", [(0,), (3, 0)], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_mean_over_empty_input(name, variant, gid, sym, dtype, shape):
    spec, args, kw, xshape = _case(name, variant, sym, shape, dtype)
    fn = _public(spec)
    loss, g = fn(*args, return_grad=True, **kw)
    assert isinstance(loss, np.generic) and loss.dtype == dtype and np.isnan(loss)
    assert g.shape == xshape and g.size == 0 and g.dtype == dtype
    total, g = fn(*args, reduction="sum", return_grad=True, **kw)
    assert total == 0 and total.dtype == dtype and g.shape == xshape
    none = fn(*args, reduction="none", **kw)
    assert none.shape == cases.loss_shape(spec, xshape) and none.dtype == dtype


# ============================================================================ (e) robustness


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_non_finite_values_propagate_silently(name, variant, gid, sym, dtype):
    spec, (x, t), kw, xshape = _case(name, variant, sym, (4, 6), dtype)
    n_per_row = xshape[-1] if spec.kind == "class_axis" else 1
    x = x.copy()
    x.reshape(-1)[[0, 7 * n_per_row + 1, 13 * n_per_row + 2]] = [np.nan, np.inf, -np.inf]
    nan_t = t.dtype.kind == "f"
    if nan_t:
        t = t.copy()
        t.reshape(-1)[3 * n_per_row] = np.nan
    fn = _public(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="warn"):
            compare(fn, _reference(spec), (x, t), kw, dtype)
            loss, g = fn(x, t, reduction="none", return_grad=True, **kw)
            mean = fn(x, t, **kw)
    if gid == "default":  # no row is ignored where the NaNs are
        assert np.isnan(loss.reshape(-1)[0]) and np.isnan(g.reshape(-1)[0])
        assert np.isnan(mean)
        if nan_t:
            assert np.isnan(loss.reshape(-1)[3]) and np.isnan(g.reshape(-1)[3 * n_per_row])


@SIM
@pytest.mark.parametrize(
    "in_dtype", [np.float16, np.int32, np.int8, np.uint8], ids=lambda d: np.dtype(d).name
)
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_float16_and_integer_inputs(name, variant, gid, sym, in_dtype):
    cdt = _cdt(in_dtype)
    spec, (x, t), _, xshape = _case(name, variant, sym, (4, 6), np.float64, "dtypes")
    kw = cases.make_params(spec, sym, xshape, cdt, _rng(name, "dtypes"))
    kind = np.dtype(in_dtype).kind
    if kind in "iu":
        x = np.clip(np.round(x), 0 if kind == "u" else -8, 8)
    x = x.astype(in_dtype)
    fn = _public(spec)
    for reduction in REDUCTIONS:
        got = fn(x, t, reduction=reduction, return_grad=True, **kw)
        assert got[0].dtype == cdt and got[1].dtype == cdt and got[1].shape == xshape
        want = fn(x.astype(cdt), t, reduction=reduction, return_grad=True, **kw)
        assert _bits(got) == _bits(want)
        r = _reference(spec)(x, t, reduction=reduction, return_grad=True, **kw)
        assert_close(got[0], r[0], cdt, f"loss {reduction}")
        assert_close(got[1], r[1], cdt, f"grad {reduction}")


# ============================================================================ (f) concurrency


@SIM
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_python_threads_share_inputs(name, variant, gid, sym):
    """The target is selected before the threads start (set_simd is not concurrent)."""
    spec = LOSSES[name]
    fn = _public(spec)
    args, kw = _large(name, variant, gid, np.float64)
    calls = [dict(reduction=r, n_threads=n) for r, n in (("mean", 1), ("none", 2), ("sum", None))]
    serial = [_bits(fn(*args, return_grad=True, **kw, **c)) for c in calls]
    barrier = threading.Barrier(4)
    errors, mismatches = [], []

    def worker(k):
        try:
            barrier.wait()
            for rep in range(2):
                for i in range(len(calls)):
                    j = (i + k + rep) % len(calls)
                    if _bits(fn(*args, return_grad=True, **kw, **calls[j])) != serial[j]:
                        mismatches.append((k, rep, j))
        except Exception as e:  # noqa: BLE001 -- reported below
            errors.append((k, repr(e)))

    run_workers(worker, 4)
    assert not errors, errors
    assert not mismatches, mismatches


# ============================================================================ (h) PyTorch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _torch_loss_grad(torch, spec, x, t, kw, reduction):
    xt = torch.tensor(x.astype(np.float64), requires_grad=True)
    loss = cases.torch_call(spec, xt, t, kw, reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("shape", [(7,), (2, 3, 17)], ids=str)
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_parity_with_torch(torch, name, variant, gid, sym, shape, dtype):
    """PyTorch in float64, on the same (rounded) inputs, is the oracle (tolerances of
    test_torch_parity.py)."""
    spec, (x, t), kw, _ = _case(name, variant, sym, shape, dtype, "torch", scale=2.0)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    for reduction in REDUCTIONS:
        got = _public(spec)(x, t, reduction=reduction, return_grad=True, **kw)
        want = _torch_loss_grad(torch, spec, x, t, kw, reduction)
        for what, g, w in zip(("loss", "grad"), got, want):
            what = f"{what} {reduction}"
            assert np.shape(g) == np.shape(w), what
            scale = max(1.0, float(np.abs(w).max(initial=0)))
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * 0.1 * scale, err_msg=what)


# ============================================================================ (i) fuzzing

FUZZ = settings(
    max_examples=int(os.environ.get("FUSEDLOSS_FUZZ_EXAMPLES", "200")),
    deadline=None,
    database=None,
)
SUPPORTED_SIMD = _kernels.simd_targets()[1]


def _tolerances(cdt):
    """(rtol, atol factor) of _util.assert_close for the compute dtype."""
    return (1e-11, 1e-13) if cdt == np.float64 else (2e-5, 2e-6)


def _reduced_scale(spec, rargs, rkw):
    """The error scale of a reduced loss: the sum of the magnitudes of the reference's
    "none" losses (divided by the mean's denominator for "mean"), not the possibly
    cancelled result (sigmoid_focal_loss with alpha > 1 has losses of both signs)."""
    f = _reference(spec)
    base = dict(rkw, return_grad=False)
    with np.errstate(all="ignore"):
        terms = np.asarray(f(*rargs, **dict(base, reduction="none")), np.float64)
        scale = float(np.sum(np.abs(terms[np.isfinite(terms)])))
        if rkw.get("reduction", "mean") == "mean":
            s = float(f(*rargs, **dict(base, reduction="sum")))
            m = float(f(*rargs, **base))
            ratio = m / s if s != 0 and math.isfinite(s) and math.isfinite(m) else 0.0
            scale *= abs(ratio)
    return scale if math.isfinite(scale) else 0.0


def _check_fuzz_call(call):
    """Runs ``call`` (a cases.FuzzCall) with warnings as errors and checks the outcome: a
    documented exception that the call expects (and every array it was given unchanged),
    or, for a valid call, results of the compute dtype equal to the reference's within
    _util.assert_close's tolerances (inputs unchanged, out / grad_out returned).  Returns
    the outcome ("returned", "raised ValueError", ...)."""
    spec, kw = call.spec, call.kwargs
    arrays = {id(a): a for a in list(call.args) + list(kw.values()) if isinstance(a, np.ndarray)}
    before = {k: a.tobytes() for k, a in arrays.items()}
    copies = {k: a.copy() for k, a in arrays.items()}  # the values, for the reference
    raised = None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="warn"):
            try:
                got = _public(spec)(*call.args, **kw)
            except cases.FUZZ_ERRORS as e:
                raised = e
    if raised is not None:
        assert call.expect, f"a valid call raised {type(raised).__name__}: {raised}"
        assert isinstance(raised, tuple(call.expect)), (
            f"raised {type(raised).__name__} ({raised}); expected one of "
            f"{sorted(e.__name__ for e in call.expect)} for {call.why}"
        )
        for k, a in arrays.items():
            assert a.tobytes() == before[k], "a call that raised wrote into an array it was given"
        return f"raised {type(raised).__name__}"
    assert not call.expect, (
        f"an invalid call returned; expected {sorted(e.__name__ for e in call.expect)} "
        f"for {call.why}"
    )
    out, grad_out = kw.get("out"), kw.get("grad_out")
    for k, a in arrays.items():
        if a is not out and a is not grad_out:
            assert a.tobytes() == before[k], "an input was modified"
    rargs = [copies.get(id(a), a) for a in call.args]
    rkw = {k: copies.get(id(v), v) for k, v in kw.items() if k not in ("out", "grad_out")}
    with np.errstate(all="ignore"):
        want = _reference(spec)(*rargs, **rkw)
    cdt, reduction = call.cdt, kw.get("reduction", "mean")
    if kw.get("return_grad", False):
        (loss, grad), (want_loss, want_grad) = got, want
        assert grad_out is None or grad is grad_out, "grad_out was not returned"
        assert grad.shape == np.shape(call.args[0])
        assert_close(grad, want_grad, cdt, "grad")
    else:
        loss, want_loss = got, want
    if reduction == "none":
        assert isinstance(loss, np.ndarray)
        assert out is None or loss is out, "out was not returned"
        assert_close(loss, want_loss, cdt, "loss")
    else:
        assert isinstance(loss, np.generic) and loss.dtype == cdt, (type(loss), loss.dtype)
        rtol, atol = _tolerances(cdt)
        w = abs(float(want_loss))
        scale = max(1.0, w if math.isfinite(w) else 0.0, _reduced_scale(spec, rargs, rkw))
        np.testing.assert_allclose(
            loss, want_loss, rtol=rtol, atol=atol * scale, equal_nan=True, err_msg="loss"
        )
    return "returned"


@pytest.mark.parametrize("name", NAMES)
@FUZZ
@given(data=st.data())
def test_fuzz_against_reference(name, data):
    call = data.draw(cases.fuzz_calls(LOSSES[name]), label="call")
    simd = data.draw(st.sampled_from(SUPPORTED_SIMD), label="simd")
    before = _kernels.build_info()[2]
    _kernels.set_simd(simd)
    try:
        outcome = _check_fuzz_call(call)
    finally:
        _kernels.set_simd(before)
    event(f"{outcome} ({call.mode} example)")


def _hand_made_call(spec, variant=None, **kw):
    """A valid FuzzCall of the (4, 6) case with the given keywords."""
    variant = variant or cases.target_variants(spec)[0]
    spec, args, params, _ = _case(spec.name, variant, {}, (4, 6), np.float64, "fuzz-smoke")
    call = cases.FuzzCall(spec, variant)
    call.args, call.kwargs = list(args), dict(params, **kw)
    return call


@pytest.mark.parametrize("name", NAMES)
def test_fuzz_checker_is_not_vacuous(name, monkeypatch):
    """The checker passes a valid call and a documented failure, and fails a valid call
    whose result differs from the reference's, an invalid call that returns, and a call
    that raises after writing into its buffers."""
    spec = LOSSES[name]
    xshape = cases.input_shape(spec, (4, 6))
    _check_fuzz_call(_hand_made_call(spec, reduction="none", return_grad=True))
    bad = _hand_made_call(spec, reduction="avg", out=np.zeros(cases.loss_shape(spec, xshape)))
    bad.bad(ValueError, "reduction='avg'")
    _check_fuzz_call(bad)
    with pytest.raises(AssertionError, match="invalid call returned"):
        wrong = _hand_made_call(spec)
        wrong.bad(ValueError, "pretend")
        _check_fuzz_call(wrong)
    with pytest.raises(AssertionError, match="valid call raised"):
        _check_fuzz_call(_hand_made_call(spec, reduction="avg"))
    real = _reference(spec)

    def off(*a, **k):
        r = real(*a, **k)
        return tuple(v * 1.001 + 1e-3 for v in r) if isinstance(r, tuple) else r * 1.001 + 1e-3

    monkeypatch.setattr(ref, spec.name, off)
    for reduction in REDUCTIONS:
        with pytest.raises(AssertionError):
            _check_fuzz_call(_hand_made_call(spec, reduction=reduction, return_grad=True))
    monkeypatch.setattr(ref, spec.name, real)

    def writes_then_raises(*a, out=None, **k):
        out[...] = 1.0
        raise ValueError("after writing")

    monkeypatch.setattr(fl, spec.name, writes_then_raises)
    call = _hand_made_call(spec, reduction="none", out=np.zeros(cases.loss_shape(spec, xshape)))
    call.bad(ValueError, "pretend")
    with pytest.raises(AssertionError, match="wrote into"):
        _check_fuzz_call(call)


# ============================================================================ (j) mpmath


@pytest.fixture(scope="module")
def mpmath():
    return pytest.importorskip("mpmath")


def _oracle(name):
    if name not in cases.ORACLES:
        pytest.fail(
            f"{name} is registered but has no mpmath oracle: add its loss and derivative per "
            f"{'row' if LOSSES[name].kind == 'class_axis' else 'element'}, from the "
            f"mathematical definition, to ORACLES in tests/cases.py",
            pytrace=False,
        )
    return cases.ORACLES[name]


@pytest.mark.parametrize("name", NAMES)
def test_every_spec_has_an_mpmath_oracle(name):
    oracle = _oracle(name)
    assert callable(oracle.fn) and 0 < oracle.rtol64 <= 1e-13 and 0 < oracle.rtol32 <= 1e-6


def test_every_oracle_is_a_registered_spec():
    assert set(cases.ORACLES) <= set(LOSSES), set(cases.ORACLES) - set(LOSSES)


def _terms_sum(v, mp):
    return mp.fsum(v) if isinstance(v, tuple) else v


@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_oracle_derivative_is_the_derivative_of_its_loss(mpmath, name, variant, gid, sym):
    """Each oracle's derivative against mpmath.diff of its own loss (numerical
    differentiation at 50 digits), at ordinary inputs away from the kinks."""
    oracle = _oracle(name)
    spec, (x, t), kw, _ = _case(name, variant, sym, (2, 3), np.float64, "oracle", scale=2.0)
    x = _away_from_kinks(spec, x, t, kw)
    with mpmath.workdps(cases.ORACLE_DPS):
        for i, u, target, p in cases.oracle_arguments(spec, x, t, kw):
            if spec.kind == "class_axis":
                _, g, _ = oracle.fn(u, target, p)
                for j in range(len(u)):
                    d = mpmath.diff(
                        lambda *z: _terms_sum(oracle.fn(list(z), target, p)[0], mpmath),
                        u,
                        tuple(int(k == j) for k in range(len(u))),
                    )
                    want = _terms_sum(g[j], mpmath)
                    assert abs(d - want) <= 1e-25 * max(1, abs(want)), (i, j, d, want)
            else:
                _, g = oracle.fn(u, target, p)
                d = mpmath.diff(lambda v: _terms_sum(oracle.fn(v, target, p)[0], mpmath), u)
                want = _terms_sum(g, mpmath)
                assert abs(d - want) <= 1e-25 * max(1, abs(want)), (i, d, want)


@functools.lru_cache(maxsize=None)
def _accuracy_case(name, variant, gid, dtype):
    """(x, t, keywords, oracle values) of the accuracy inputs of a grid entry, made once
    (read-only) and shared by the SIMD targets."""
    spec = LOSSES[name]
    sym = dict(cases.param_grid(spec, variant))[gid]
    rng = _rng(name, variant, gid, dtype, "mpmath")
    x, t = cases.accuracy_inputs(spec, variant, sym, dtype, rng)
    kw = cases.make_params(spec, sym, x.shape, np.dtype(dtype), rng)
    for a in [x, t] + list(kw.values()):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return x, t, kw, cases.oracle_values(spec, x, t, kw)


def _assert_accurate(got, true, scale, dtype, rtol, what, show=None):
    """|got - true| <= rtol * scale per element (scale: the magnitudes of the closed form's
    terms); where the true value is beyond ``dtype``'s range, got is the infinity of its
    sign; where the scale is below its smallest normal (the value underflows), got is
    finite and below twice that."""
    got = np.asarray(got, np.float64)
    true = np.broadcast_to(np.asarray(true, np.float64), got.shape)
    scale = np.broadcast_to(np.asarray(scale, np.float64), got.shape)
    info = np.finfo(dtype)
    over = np.abs(true) > float(info.max)
    under = ~over & (scale < float(info.tiny))
    rest = ~over & ~under

    def where(mask):
        i = np.unravel_index(int(np.flatnonzero(mask)[0]), got.shape) if got.ndim else ()
        i = tuple(int(v) for v in i)
        extra = f", at {show(i)}" if show else ""
        return (
            f"index {i}: got {float(got[i])!r}, true {float(true[i])!r} "
            f"(scale {float(scale[i]):.3g}){extra}"
        )

    wrong = over & (got != np.copysign(np.inf, true))
    assert not wrong.any(), f"{what}: should overflow to inf: {where(wrong)}"
    wrong = under & ~(np.abs(got) < 2 * float(info.tiny))
    assert not wrong.any(), f"{what}: should underflow: {where(wrong)}"
    wrong = rest & ~np.isfinite(got)
    assert not wrong.any(), f"{what}: not finite: {where(wrong)}"
    with np.errstate(all="ignore"):
        err = np.where(rest, np.abs(got - true) / np.where(rest, scale, 1.0), 0.0)
    worst = float(err.max(initial=0.0))
    key = what.split(":")[0]
    _WORST[key] = max(_WORST.get(key, 0.0), worst)
    assert worst <= rtol, (
        f"{what}: error {worst:.3g} > {rtol:g} (of the scale) at {where(err == worst)}"
    )


_WORST = {}


@pytest.fixture(scope="module", autouse=True)
def _report_worst_errors():
    """With -s, prints the largest error seen per loss, dtype and check."""
    yield
    if _WORST:
        print("\nlargest errors against mpmath (relative to the terms' magnitudes):")
        for key in sorted(_WORST):
            print(f"  {key:<70} {_WORST[key]:.3g}")


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_accuracy_against_mpmath(mpmath, name, variant, gid, sym, dtype):
    """float64 (and float32, on inputs rounded to float32) losses and gradients, for every
    reduction, over the whole batch and over each leading-axis slice, against the oracle at
    cases.accuracy_inputs: |x| up to 80 and 1e-300 logits, targets 0 and 1, errors from
    1e-300 to 1e300 and around each kink, dominant classes and ties.  float64: every value
    within oracle.rtol64 (1e-13, test_accuracy.py's bound) of the magnitude of its closed
    form's terms; float32: within rtol32 (1e-6) by test_accuracy.py's float32 rules."""
    oracle = _oracle(name)
    spec = LOSSES[name]
    dt = np.dtype(dtype)
    rtol = oracle.rtol64 if dt == np.float64 else oracle.rtol32
    x, t, kw, o = _accuracy_case(name, variant, gid, dt.name)
    fn = _public(spec)
    key = f"{name}-{variant} {dt.name}"
    l_true, l_scale = o["loss"]
    g_true, g_scale = o["grad"]
    if dt == np.float32:
        # test_accuracy.py's float32 rules: float32 rounds intermediate exponents (a logit
        # gap z_j - max z, gamma log q), which costs ~1e-6 of the typical loss on near-zero
        # ones: losses get an absolute floor of the typical |loss| (test_accuracy.py takes
        # the mean; the median here, as these inputs span 1e-300 to 1e300); gradients are
        # compared normwise per loss (per row of a class-axis loss, per element otherwise).
        l_scale = np.maximum(l_scale, np.median(np.abs(l_true[np.isfinite(l_true)])))
        if spec.kind == "class_axis":
            g_scale = np.broadcast_to(g_scale.max(axis=-1, keepdims=True), g_scale.shape)

    def shower(prefix):
        """Describes the inputs at an index of the gradient (or of the "none" losses) of
        the part x[prefix]."""

        def show(i):
            i = (prefix + tuple(i))[: x.ndim]
            return f"x[{i}] = {x[i].tolist()!r}, t = {t[i[: t.ndim]].tolist()!r}"

        return show

    loss, grad = fn(x, t, reduction="none", return_grad=True, **kw)
    assert loss.dtype == dt and grad.dtype == dt
    if dt == np.float32:  # the plain relative errors, for the record (-s)
        _assert_accurate(loss, *o["loss"], dt, np.inf, f"{key} loss (plain, info): none")
        _assert_accurate(grad, *o["grad"], dt, np.inf, f"{key} grad (plain, info): none")
    _assert_accurate(loss, l_true, l_scale, dt, rtol, f"{key} loss: none", shower(()))
    _assert_accurate(grad, g_true, g_scale, dt, rtol, f"{key} grad: none", shower(()))
    only = fn(x, t, reduction="none", **kw)
    _assert_accurate(only, l_true, l_scale, dt, rtol, f"{key} loss: none, loss only", shower(()))

    # the reductions, over the whole batch and over each slice x[r]
    parts = [((), x, t, kw, o["sum"], o["denom"])]
    for r, (total, total_scale, denom) in enumerate(o["slices"]):
        kr = {
            k: np.broadcast_to(v, x.shape)[r]
            if isinstance(v, np.ndarray) and spec.kind == "elementwise"
            else v
            for k, v in kw.items()
        }
        parts.append(((r,), x[r], t[r], kr, (total, total_scale), denom))
    for prefix, xs, ts, ks, (total, total_scale), d in parts:
        what = f"{key} {{}}: x[{prefix}]"
        g, gs = g_true[prefix], g_scale[prefix]
        s, sg = fn(xs, ts, reduction="sum", return_grad=True, **ks)
        assert isinstance(s, np.generic) and s.dtype == dt
        _assert_accurate(s, total, total_scale, dt, rtol, what.format("loss sum"))
        s = fn(xs, ts, reduction="sum", **ks)
        _assert_accurate(s, total, total_scale, dt, rtol, what.format("loss sum, loss only"))
        _assert_accurate(sg, g, gs, dt, rtol, what.format("grad sum"), shower(prefix))
        m, mg = fn(xs, ts, reduction="mean", return_grad=True, **ks)
        if d == 0:  # every row ignored: NaN, with a zero gradient
            assert np.isnan(m) and not mg.any(), what.format("mean over nothing")
            continue
        _assert_accurate(m, total / d, total_scale / d, dt, rtol, what.format("loss mean"))
        m = fn(xs, ts, **ks)
        _assert_accurate(
            m, total / d, total_scale / d, dt, rtol, what.format("loss mean, loss only")
        )
        _assert_accurate(mg, g / d, gs / d, dt, rtol, what.format("grad mean"), shower(prefix))
