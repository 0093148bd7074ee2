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
examples per spec (default 100; set it higher for a deeper run).
"""

import functools
import inspect
import math
import os
import threading
import warnings

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
_rng, _cdt, _case = cases.seeded_rng, cases.compute_dtype, cases.make_case
SHAPES = [(), (0,), (7,), (3, 5), (2, 3, 17)]  # shapes of the "none" loss
LARGE = (256, 1024)  # a first input of 2**18 elements (>= 2**18: helper threads start)
SIM = pytest.mark.usefixtures("each_simd_target")


def _public(spec):
    return getattr(fl, spec.name)


def _reference(spec):
    twin = spec.reference
    assert twin is getattr(ref, spec.name)
    return twin


def _variants():
    """(name, variant) pairs; ids show the variant only where a spec has several."""
    out = []
    for name, spec in LOSSES.items():
        vs = cases.target_variants(spec)
        for v in vs:
            out.append(pytest.param(name, v, id=name if len(vs) == 1 else f"{name}-{v}"))
    return out


VARIANTS = _variants()
GRID = cases.grid_params(LOSSES)
GRID_LARGE = cases.grid_params(LOSSES, ends=True)
GRID_TORCH = [
    pytest.param(*p.values, shape, id=f"{p.id}-{shape}")
    for p in GRID
    for shape in ([(7,), (2, 3, 17)] if p.values[2] == "default" else [(2, 3, 17)])
]
GRID_LAST = list({p.values[:2]: p for p in GRID_LARGE}.values())  # each grid's last entry


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


def _flat(r):
    """The arrays of a result, nested tuples (several gradients) flattened."""
    if isinstance(r, (tuple, list)):
        return [a for part in r for a in _flat(part)]
    return [r]


def _bits(r):
    return tuple(
        (np.asarray(p).dtype.str, np.asarray(p).shape, np.asarray(p).tobytes()) for p in _flat(r)
    )


def _grads(spec, r):
    return cases.grads_of(spec, r)


def _compare(spec, fast_fn, ref_fn, args, kwargs, dtype, reductions=REDUCTIONS):
    """_util.compare, for one gradient or several."""

    def grads(result):
        g = _grads(spec, result)
        assert len(g) == cases.n_grads(spec)
        return g

    compare(fast_fn, ref_fn, args, kwargs, dtype, reductions, grads)


def _reductions(spec):
    return REDUCTIONS + list(spec.reductions)


# ============================================================================ registry


def _expected_signature(spec):
    P = inspect.Parameter
    params = [P(n, P.POSITIONAL_OR_KEYWORD) for n in spec.inputs]
    params += [P(p.name, P.KEYWORD_ONLY, default=p.default) for p in spec.params]
    if spec.kind == "class_axis":
        params += [P("axis", P.KEYWORD_ONLY, default=-1)]
    params += [
        P("reduction", P.KEYWORD_ONLY, default="mean"),
        P("return_grad", P.KEYWORD_ONLY, default=False),
        P("out", P.KEYWORD_ONLY, default=None),
        P("grad_out", P.KEYWORD_ONLY, default=None),
    ]
    if spec.hess:  # the losses with a second derivative (tests/test_hess.py)
        params += [
            P("return_hess", P.KEYWORD_ONLY, default=False),
            P("hess_out", P.KEYWORD_ONLY, default=None),
        ]
    params += [P("n_threads", P.KEYWORD_ONLY, default=None)]
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
    assert spec.kind in ("elementwise", "class_axis", "sample", "multi")
    assert spec.target_domain in ("real", "unit", "index", "sign", "class")
    assert spec.input_domain in ("real", "prob", "logprob")
    assert (spec.target_domain in ("index", "class")) == (spec.kind == "class_axis")
    assert cases.has_torch_twin(spec), "a PyTorch twin (spec.torch or cases._TORCH_INLINE)"
    assert set(spec.reductions) <= {"batchmean"}
    if spec.kind == "multi":
        assert 2 <= spec.n_grads <= len(spec.inputs) <= spec.n_grads + 1
        assert spec.target_domain == "real" and spec.input_domain == "real"
        assert not spec.weights  # no weight= for several inputs
    else:
        assert len(spec.inputs) == 2 and spec.n_grads == 1 and not spec.rows
    names = [p.name for p in spec.params]
    assert len(set(names)) == len(names)
    reserved = {"reduction", "return_grad", "out", "grad_out", "n_threads"}
    assert not set(names) & (reserved | {"return_hess", "hess_out"})
    assert isinstance(spec.hess, str)
    if spec.hess:  # a hessian only where the kernel has one: element-wise, CE
        assert spec.kind == "elementwise" or spec.name in (
            "softmax_cross_entropy",
            "softmax_focal_loss",
        )
    for p in spec.params:
        assert p.kind in ("float", "int", "weight", "bool")
        if p.kind == "float":
            assert p.in_range(p.default), (p.name, p.default, p.range_text())
            assert p.lo <= p.hi
            assert all(p.in_range(c) for c in p.choices)
        if p.kind == "bool":
            assert isinstance(p.default, bool)
        if p.kind == "int":
            assert spec.target_domain in ("index", "class")
        if p.kind == "weight":
            assert p.default is None
    scalars = [p.name for p in spec.params if p.kind in ("float", "bool")]
    assert [p.name for p in spec.floats] == scalars


# ============================================================================ (a) parity


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_parity_with_reference(name, variant, gid, sym, dtype):
    """Every shape of SHAPES (0-d, empty, 1-3 dims) in one test (one test per shape cost
    more in pytest's overhead than in the comparisons)."""
    for shape in SHAPES:
        spec, args, kw, _ = _case(name, variant, sym, shape, dtype)
        try:
            _compare(spec, _public(spec), _reference(spec), args, kw, dtype, _reductions(spec))
        except AssertionError as e:
            raise AssertionError(f"shape {shape}: {e}") from None


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_parity_with_reference_large(name, variant, gid, sym, dtype):
    """The large input (helper threads start) on every SIMD target this CPU supports,
    against one reference result (the reference is the slow part; tests/conftest.py's
    skips show the targets this CPU lacks)."""
    spec = LOSSES[name]
    args, kw = _large(name, variant, gid, dtype)
    fn = _public(spec)
    before = _kernels.build_info()[2]
    for reduction in _reductions(spec):
        want = _reference(spec)(*args, reduction=reduction, return_grad=True, **kw)
        for simd in SUPPORTED_SIMD:
            _kernels.set_simd(simd)
            try:
                got = fn(*args, reduction=reduction, return_grad=True, **kw)
                only = fn(*args, reduction=reduction, **kw)
            finally:
                _kernels.set_simd(before)
            what = f"{simd} {reduction}"
            assert_close(got[0], want[0], dtype, f"loss {what}")
            for k, (g, w) in enumerate(zip(_grads(spec, got), _grads(spec, want))):
                assert_close(g, w, dtype, f"grad {k} {what}")
            assert_close(only, want[0], dtype, f"loss only {what}")


# ============================================================================ (b) gradients


def _away_from_kinks(spec, args, kw, *tags):
    """The arguments moved away from the loss's kinks (cases.smooth_point)."""
    return cases.smooth_point(spec, args, kw, _rng(spec.name, "kinks", *tags))


@SIM
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_gradient_finite_differences(name, variant, gid, sym):
    spec, args, kw, _ = _case(name, variant, sym, (3, 4), np.float64, "fd", scale=2.0)
    args = _away_from_kinks(spec, args, kw, gid)
    fn = _public(spec)
    loss, *_ = res = fn(*args, reduction="sum", return_grad=True, **kw)
    grads = _grads(spec, res)
    # rounding of the summed loss, amplified by 1 / (2h), bounds the difference's error
    s = float(np.abs(fn(*args, reduction="none", **kw)).sum())
    nonzero = False
    for k, g in enumerate(grads):
        assert g.shape == args[k].shape and g.dtype == np.float64

        def total(z, k=k):
            a = list(args)
            a[k] = z
            return float(fn(*a, reduction="sum", **kw))

        assert total(args[k]) == loss
        num = central_differences(total, args[k])
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8 + 1e-9 * s, err_msg=f"grad {k}")
        nonzero |= bool(np.abs(g).max() > 0)
    assert nonzero  # a non-trivial case


# ============================================================================ (c) validation


def _buffers(spec, xshape, dtype, fill=-7.25):
    """(out, grad_out): grad_out a tuple of buffers for a spec with several gradients."""
    cdt = _cdt(dtype)
    out = np.full(cases.loss_shape(spec, xshape), fill, cdt)
    if spec.kind == "multi":
        return out, tuple(np.full(xshape, fill, cdt) for _ in range(spec.n_grads))
    return out, np.full(xshape, fill, cdt)


def _fails_and_writes_nothing(spec, args, kw, exc, match, reduction="none"):
    """The public spec(*args, **kw), with out / grad_out buffers, raises exc; buffers and
    inputs keep their contents."""
    fn = _public(spec)
    x = args[0]
    out, grad_out = _buffers(spec, np.shape(x), np.asarray(x).dtype)
    before = [np.array(a, copy=True) for a in args]
    with pytest.raises(exc, match=match):
        fn(*args, reduction=reduction, return_grad=True, out=out, grad_out=grad_out, **kw)
    assert (out == -7.25).all()
    assert all((g == -7.25).all() for g in _flat(grad_out))
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
    """Every input after the first (the target; a second or third differentiable input)
    of a wrong shape."""
    spec, args, kw, _ = _case(name, variant, {}, (4, 6), np.float64)
    for i in range(1, len(args)):
        t = args[i]
        for bad in (t[:-1], np.expand_dims(t, -1), np.ascontiguousarray(np.swapaxes(t, 0, 1))):
            if bad.shape == t.shape:
                continue
            a = list(args)
            a[i] = bad
            _fails_and_writes_nothing(spec, tuple(a), kw, ValueError, None)


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
    assert loss is out
    assert all(g is b for g, b in zip(_flat(grad), _flat(grad_out))) and type(grad) is type(
        grad_out
    )
    assert _bits((out, grad_out)) == _bits((want_loss, want_grad))
    out2, grad2 = _buffers(spec, xshape, dtype)
    assert fn(*args, reduction="none", out=out2, **kw) is out2
    assert _bits(out2) == _bits(want_loss)
    for reduction in ("mean", "sum") + tuple(spec.reductions):
        want = fn(*args, reduction=reduction, return_grad=True, **kw)
        for g in _flat(grad2):
            g.fill(-7.25)
        got = fn(*args, reduction=reduction, return_grad=True, grad_out=grad2, **kw)
        assert all(g is b for g, b in zip(_flat(got[1]), _flat(grad2)))
        assert _bits(got) == _bits(want)
    if spec.kind == "multi":  # None entries are allocated; a list is taken as a tuple
        for k in range(spec.n_grads):
            buf = np.full(xshape, -7.25, _cdt(dtype))
            partial = [None] * spec.n_grads
            partial[k] = buf
            got = fn(*args, reduction="sum", return_grad=True, grad_out=partial, **kw)
            assert got[1][k] is buf and isinstance(got[1], tuple)
            assert _bits(got) == _bits(fn(*args, reduction="sum", return_grad=True, **kw))


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID)
def test_grad_out_in_place(name, variant, gid, sym, dtype):
    """grad_out is the first input (several gradients: each differentiable input its own
    gradient's buffer, all at once)."""
    spec, args, kw, _ = _case(name, variant, sym, (4, 6), dtype)
    fn = _public(spec)
    k = cases.n_grads(spec)
    for reduction in _reductions(spec):
        want = fn(*args, reduction=reduction, return_grad=True, **kw)
        ins = [a.copy() for a in args[:k]]
        bufs = tuple(ins) if spec.kind == "multi" else ins[0]
        got = fn(*ins, *args[k:], reduction=reduction, return_grad=True, grad_out=bufs, **kw)
        assert all(g is b for g, b in zip(_flat(got[1]), ins))
        assert _bits(got) == _bits(want), reduction
        # the inputs really were overwritten
        assert any(not np.array_equal(i, a) for i, a in zip(ins, args))


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
    """A mean over no losses is NaN with a zero (empty) gradient (heatmap_focal_loss: 0,
    its mean divides by max(1, positives)); a "sample" input of empty samples is a mean over
    samples (as the reference)."""
    spec, args, kw, xshape = _case(name, variant, sym, shape, dtype)
    fn = _public(spec)
    lshape = cases.loss_shape(spec, xshape)
    res = fn(*args, return_grad=True, **kw)
    loss = res[0]
    assert isinstance(loss, np.generic) and loss.dtype == dtype
    if math.prod(lshape) == 0:
        if name in cases.MEAN_OF_NOTHING:
            assert loss == cases.MEAN_OF_NOTHING[name]
        else:
            assert np.isnan(loss)
    else:
        want = _reference(spec)(*args, return_grad=True, **kw)
        assert_close(loss, want[0], dtype, "mean of empty samples")
    for k, g in enumerate(_grads(spec, res)):
        assert g.shape == args[k].shape and g.size == 0 and g.dtype == dtype
    res = fn(*args, reduction="sum", return_grad=True, **kw)
    assert res[0] == 0 and res[0].dtype == dtype
    assert all(g.shape == xshape for g in _grads(spec, res))
    none = fn(*args, reduction="none", **kw)
    assert none.shape == lshape and none.dtype == dtype


# ============================================================================ (e) robustness


@SIM
@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_non_finite_values_propagate_silently(name, variant, gid, sym, dtype):
    """NaN, inf and -inf in the first input (probabilities: NaN only, +-inf are outside
    [0, 1]), a NaN in the second differentiable input of a several-input loss, and a NaN
    target: the reference's results, no warning; at the defaults each NaN reaches the loss
    and every gradient of its row / element (the piecewise losses too: hinge, margins,
    distances; class indices without a softmax: the NaN sits at the target's entry; a
    gradient independent of the input stays finite)."""
    spec, args, kw, xshape = _case(name, variant, sym, (4, 6), dtype)
    x, t = args[0].copy(), None
    lsize = math.prod(cases.loss_shape(spec, xshape))
    n_per_row = x.size // lsize
    first = 0
    if spec.target_domain == "class":
        first = int(args[1].reshape(-1)[0])  # row 0 is never ignored
    where = [first, (7 * n_per_row + 1) % x.size, (13 * n_per_row + 2) % x.size]
    bad = [np.nan] * 3 if spec.input_domain == "prob" else [np.nan, np.inf, -np.inf]
    x.reshape(-1)[where] = bad
    args = [x] + list(args[1:])
    nan_rows = [0]  # the losses (rows, elements, samples) that a NaN reaches
    if spec.kind == "multi":  # a NaN in the second differentiable input, row 9
        args[1] = args[1].copy()
        args[1].reshape(-1)[9 * n_per_row + min(1, n_per_row - 1)] = np.nan
        nan_rows.append(9)
    ti = cases.target_index(spec)
    nan_t = ti is not None and args[ti].dtype.kind == "f"
    if nan_t:
        t = args[ti] = args[ti].copy()
        per = t.size // lsize  # target elements per loss
        t.reshape(-1)[3 * per] = np.nan
        nan_rows.append(3)
    fn = _public(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="warn"):
            _compare(spec, fn, _reference(spec), args, kw, dtype, _reductions(spec))
            res = fn(*args, reduction="none", return_grad=True, **kw)
            mean = fn(*args, **kw)
    loss, grads = res[0].reshape(-1), _grads(spec, res)
    if gid != "default":  # rows may be ignored where the NaNs are
        return
    assert np.isnan(mean)
    for r in nan_rows:
        assert np.isnan(loss[r]), f"loss {r}"
        if r == 0 and name in cases.GRAD_INDEPENDENT_OF_INPUT:
            continue  # a NaN input; a NaN target reaches the gradient (-w t)
        for k, g in enumerate(grads):
            g = g.reshape(lsize, -1)[r]
            if spec.kind == "multi":  # every entry of the row: its distance is NaN
                assert np.isnan(g).all(), f"grad {k}, loss {r}: {g}"
            else:  # the NaN entry itself; a NaN target: the row's first entry
                assert np.isnan(g[first if r == 0 else 0]), f"grad {k}, loss {r}: {g}"


@SIM
@pytest.mark.parametrize(
    "in_dtype", [np.float16, np.int32, np.int8, np.uint8], ids=lambda d: np.dtype(d).name
)
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_float16_and_integer_inputs(name, variant, gid, sym, in_dtype):
    """The differentiable inputs (all of them, for several) in float16 or an integer
    dtype: computed as float32 / float64, as the same values in that dtype would be."""
    cdt = _cdt(in_dtype)
    spec, args, _, xshape = _case(name, variant, sym, (4, 6), np.float64, "dtypes")
    kw = cases.make_params(spec, sym, xshape, cdt, _rng(name, "dtypes"))
    kind = np.dtype(in_dtype).kind
    k = cases.n_grads(spec)
    ins = []
    for a in args[:k]:
        if kind in "iu":
            lo, hi = (0, 1) if spec.input_domain == "prob" else (0 if kind == "u" else -8, 8)
            a = np.clip(np.round(a), lo, hi)
        ins.append(a.astype(in_dtype))
    rest = list(args[k:])
    if spec.kind == "multi" and kind in "iu":
        # integers make exact ties (swap's two distances, a clamp's argument at 0) where the
        # gradient depends on the rounding of the distances: the other inputs' rows there
        # are redrawn
        rng = _rng(name, gid, "ties")
        for _ in range(200):
            near = cases._near_kink(spec, ins + rest, kw, 1e-9)
            if not near.any():
                break
            for j in range(1, k):
                v = ins[j].astype(np.int64).reshape(near.shape + (-1,))
                v[near] = np.clip(v[near] + rng.integers(-2, 3, size=v[near].shape), lo, hi)
                ins[j] = v.reshape(xshape).astype(in_dtype)
        else:
            raise AssertionError("could not move the integer rows off the ties")
    fn = _public(spec)
    for reduction in _reductions(spec):
        got = fn(*ins, *rest, reduction=reduction, return_grad=True, **kw)
        assert got[0].dtype == cdt
        assert all(g.dtype == cdt and g.shape == xshape for g in _grads(spec, got))
        want = fn(*[a.astype(cdt) for a in ins], *rest, reduction=reduction, return_grad=True, **kw)
        assert _bits(got) == _bits(want)
        r = _reference(spec)(*ins, *rest, reduction=reduction, return_grad=True, **kw)
        assert_close(got[0], r[0], cdt, f"loss {reduction}")
        for j, (g, w) in enumerate(zip(_grads(spec, got), _grads(spec, r))):
            assert_close(g, w, cdt, f"grad {j} {reduction}")


# ============================================================================ (f) concurrency


@SIM
@pytest.mark.parametrize("name,variant,gid,sym", GRID_LAST)
def test_python_threads_share_inputs(name, variant, gid, sym):
    """The target is selected before the threads start (set_simd is not concurrent).  One
    grid entry per spec and variant (its last: every parameter at once where it has
    several); the options' results are checked by the parity tests."""
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


def _torch_loss_grad(torch, spec, args, kw, reduction):
    """(loss, (grad, ...)) of the PyTorch twin in float64."""
    k = cases.n_grads(spec)
    ts = [torch.tensor(a.astype(np.float64), requires_grad=True) for a in args[:k]]
    loss = cases.torch_call(spec, ts + list(args[k:]), kw, reduction)
    (loss.sum() if reduction == "none" else loss).backward()
    return loss.detach().numpy(), tuple(t.grad.numpy() for t in ts)


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("name,variant,gid,sym,shape", GRID_TORCH)
def test_parity_with_torch(torch, name, variant, gid, sym, shape, dtype):
    """PyTorch in float64, on the same (rounded) inputs, is the oracle (tolerances of
    test_torch_parity.py).  Every grid entry on a batch of 2-D (torch's class axis 1),
    the defaults on a 1-D one as well."""
    spec, args, kw, _ = _case(name, variant, sym, shape, dtype, "torch", scale=2.0)
    rtol = 1e-10 if dtype == np.float64 else 2e-5
    for reduction in _reductions(spec):
        got = _public(spec)(*args, reduction=reduction, return_grad=True, **kw)
        want = _torch_loss_grad(torch, spec, args, kw, reduction)
        names = ["loss"] + [f"grad {k}" for k in range(cases.n_grads(spec))]
        for what, g, w in zip(names, _flat(got), _flat(want)):
            what = f"{what} {reduction}"
            assert np.shape(g) == np.shape(w), what
            scale = max(1.0, float(np.abs(w).max(initial=0)))
            np.testing.assert_allclose(g, w, rtol=rtol, atol=rtol * 0.1 * scale, err_msg=what)


# ============================================================================ (i) fuzzing

FUZZ = settings(
    max_examples=int(os.environ.get("FUSEDLOSS_FUZZ_EXAMPLES", "100")),
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
    base = (
        dict(rkw, return_grad=False, return_hess=False)
        if spec.hess
        else dict(rkw, return_grad=False)
    )
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
    out, grad_out, hess_out = kw.get("out"), kw.get("grad_out"), kw.get("hess_out")
    written = [out, hess_out]
    written += _flat(grad_out) if isinstance(grad_out, (tuple, list)) else [grad_out]
    for k, a in arrays.items():
        if not any(a is b for b in written):
            assert a.tobytes() == before[k], "an input was modified"
    rargs = [copies.get(id(a), a) for a in call.args]
    rkw = {
        k: copies.get(id(v), v) for k, v in kw.items() if k not in ("out", "grad_out", "hess_out")
    }
    with np.errstate(all="ignore"):
        want = _reference(spec)(*rargs, **rkw)
    cdt, reduction = call.cdt, kw.get("reduction", "mean")
    if kw.get("return_grad", False):
        loss, want_loss = got[0], want[0]
        gs, ws = _grads(spec, got), _grads(spec, want)
        bufs = list(grad_out) if spec.kind == "multi" and grad_out is not None else [grad_out]
        bufs += [None] * (len(gs) - len(bufs))
        for k, (g, w, b) in enumerate(zip(gs, ws, bufs)):
            assert b is None or g is b, "grad_out was not returned"
            assert g.shape == np.shape(call.args[k])
            assert_close(g, w, cdt, f"grad {k}")
        if kw.get("return_hess", False):
            assert len(got) == len(want) == 3
            assert hess_out is None or got[2] is hess_out, "hess_out was not returned"
            assert got[2].shape == np.shape(call.args[0])
            assert_close(got[2], want[2], cdt, "hess")
        else:
            assert len(got) == 2
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

    def shifted(r):
        return tuple(shifted(v) for v in r) if isinstance(r, tuple) else r * 1.001 + 1e-3

    def off(*a, **k):
        return shifted(real(*a, **k))

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


def _oracle_point(spec, u):
    """The oracle's differentiable arguments ``u`` flattened to a list of mpf, and the
    function that rebuilds ``u`` from such a list."""
    parts = u if spec.kind == "multi" else (u,)
    sizes = [len(v) if isinstance(v, list) else None for v in parts]
    flat = [w for v in parts for w in (v if isinstance(v, list) else [v])]

    def rebuild(z):
        z, out = list(z), []
        for n in sizes:
            out.append(z[:n] if n is not None else z[0])
            z = z[n or 1 :]
        return tuple(out) if spec.kind == "multi" else out[0]

    return flat, rebuild


@pytest.mark.parametrize("name,variant,gid,sym", GRID_LARGE)
def test_oracle_derivative_is_the_derivative_of_its_loss(mpmath, name, variant, gid, sym):
    """Each oracle's derivatives (of every differentiable input) against mpmath.diff of its
    own loss (numerical differentiation at 50 digits), at ordinary inputs away from the
    kinks."""
    oracle = _oracle(name)
    spec, args, kw, _ = _case(name, variant, sym, (2, 3), np.float64, "oracle", scale=2.0)
    args = _away_from_kinks(spec, args, kw, "oracle")
    with mpmath.workdps(cases.ORACLE_DPS):
        for i, u, target, p in cases.oracle_arguments(spec, args, kw):
            flat, rebuild = _oracle_point(spec, u)
            g = oracle.fn(u, target, p)[1]
            want = [w for gk in cases.oracle_gradients(spec, g) for w in gk]
            assert len(want) == len(flat)

            def loss(*z):
                return _terms_sum(oracle.fn(rebuild(z), target, p)[0], mpmath)

            for j, w in enumerate(want):
                d = mpmath.diff(loss, flat, tuple(int(k == j) for k in range(len(flat))))
                w = _terms_sum(w, mpmath)
                assert abs(d - w) <= 1e-25 * max(1, abs(w)), (i, j, d, w)


@functools.lru_cache(maxsize=None)
def _accuracy_case(name, variant, gid, dtype):
    """(arguments, keywords, oracle values) of the accuracy inputs of a grid entry, made once
    (read-only) and shared by the SIMD targets."""
    spec = LOSSES[name]
    sym = dict(cases.param_grid(spec, variant))[gid]
    rng = _rng(name, variant, gid, dtype, "mpmath")
    args = cases.accuracy_inputs(spec, variant, sym, dtype, rng)
    kw = cases.make_params(spec, sym, args[0].shape, np.dtype(dtype), rng)
    for a in list(args) + list(kw.values()):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return args, kw, cases.oracle_values(spec, args, kw)


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
    """float64 (and float32, on inputs rounded to float32) losses and gradients (every
    differentiable input's), for every reduction, over the whole batch and over each
    leading-axis slice (each sample of a "sample" loss), against the oracle at
    cases.accuracy_inputs: |x| up to 80 and 1e-300 logits, targets 0 and 1, errors from
    1e-300 to 1e300 and around each kink, dominant classes and ties, rows of distances at
    scales 2^-100 to 2^100.  float64: every value within oracle.rtol64 (1e-13,
    test_accuracy.py's bound) of the magnitude of its closed form's terms; float32: within
    rtol32 (1e-6) by test_accuracy.py's float32 rules."""
    spec = LOSSES[name]
    oracle = _oracle(name)
    dt = np.dtype(dtype)
    rtol = oracle.rtol64 if dt == np.float64 else oracle.rtol32
    args, kw, o = _accuracy_case(name, variant, gid, dt.name)
    fn = _public(spec)
    key = f"{name}-{variant} {dt.name}"
    nl = len(cases.loss_shape(spec, args[0].shape))
    l_true, l_scale = o["loss"]
    g_trues = [g[0] for g in o["grads"]]
    g_scales = [g[1] for g in o["grads"]]
    if dt == np.float32:
        # test_accuracy.py's float32 rules: float32 rounds intermediate exponents (a logit
        # gap z_j - max z, gamma log q), which costs ~1e-6 of the typical loss on near-zero
        # ones: losses get an absolute floor of the typical |loss| (test_accuracy.py takes
        # the mean; the median here, as these inputs span 1e-300 to 1e300); gradients are
        # compared normwise per loss (per row of a class-axis loss, per element otherwise).
        l_scale = np.maximum(l_scale, np.median(np.abs(l_true[np.isfinite(l_true)])))
        if spec.kind == "class_axis":
            g_scales = [np.broadcast_to(g.max(axis=-1, keepdims=True), g.shape) for g in g_scales]

    def shower(first, sample=False):
        """Describes the inputs of the loss at an index of the gradient (or of the "none"
        losses) of the part whose leading index is ``first`` (None: the whole batch)."""

        def show(i):
            i = tuple(i)
            if first is not None:
                i = (first,) + (i[1:] if sample else i)
            i = i[:nl]
            return ", ".join(
                f"{n}[{i}] = {a[i[: a.ndim]].tolist()!r}" for n, a in zip(spec.inputs, args)
            )

        return show

    def grads(res):
        gs = _grads(spec, res)
        assert len(gs) == cases.n_grads(spec)
        assert all(g.dtype == dt for g in gs)
        return gs

    res = fn(*args, reduction="none", return_grad=True, **kw)
    loss, gs = res[0], grads(res)
    assert loss.dtype == dt
    for k, g in enumerate(gs):
        if dt == np.float32:  # the plain relative errors, for the record (-s)
            _assert_accurate(loss, *o["loss"], dt, np.inf, f"{key} loss (plain, info): none")
            _assert_accurate(g, *o["grads"][k], dt, np.inf, f"{key} grad (plain, info): none")
        _assert_accurate(
            g, g_trues[k], g_scales[k], dt, rtol, f"{key} grad {k}: none", shower(None)
        )
    _assert_accurate(loss, l_true, l_scale, dt, rtol, f"{key} loss: none", shower(None))
    only = fn(*args, reduction="none", **kw)
    _assert_accurate(only, l_true, l_scale, dt, rtol, f"{key} loss: none, loss only", shower(None))

    # the reductions, over the whole batch and over each slice (a sample: args[r:r+1])
    sample = spec.kind == "sample"
    parts = [(None, (), args, kw, o["sum"], o["denom"])]
    for r, (total, total_scale, denom) in enumerate(o["slices"]):
        index = (slice(r, r + 1),) if sample else (r,)
        kr = {
            k: np.broadcast_to(v, args[0].shape)[r]
            if isinstance(v, np.ndarray) and spec.kind == "elementwise"
            else v
            for k, v in kw.items()
        }
        ar = tuple(a[index] for a in args)
        parts.append((r, index, ar, kr, (total, total_scale), denom))
    for first, index, ar, ks, (total, total_scale), d in parts:
        what = f"{key} {{}}: [{first}]"
        show = shower(first, sample)
        s, *sg = fn(*ar, reduction="sum", return_grad=True, **ks)
        assert isinstance(s, np.generic) and s.dtype == dt
        _assert_accurate(s, total, total_scale, dt, rtol, what.format("loss sum"))
        s = fn(*ar, reduction="sum", **ks)
        _assert_accurate(s, total, total_scale, dt, rtol, what.format("loss sum, loss only"))
        for k, g in enumerate(grads((s,) + tuple(sg))):
            gt, gsc = g_trues[k][index], g_scales[k][index]
            _assert_accurate(g, gt, gsc, dt, rtol, what.format(f"grad {k} sum"), show)
        m, *mg = fn(*ar, reduction="mean", return_grad=True, **ks)
        mg = grads((m,) + tuple(mg))
        if d == 0:  # every row ignored: NaN, with a zero gradient
            assert np.isnan(m) and not any(g.any() for g in mg), what.format("mean over nothing")
            continue
        _assert_accurate(m, total / d, total_scale / d, dt, rtol, what.format("loss mean"))
        m = fn(*ar, **ks)
        _assert_accurate(
            m, total / d, total_scale / d, dt, rtol, what.format("loss mean, loss only")
        )
        for k, g in enumerate(mg):
            gt, gsc = g_trues[k][index], g_scales[k][index]
            _assert_accurate(g, gt / d, gsc / d, dt, rtol, what.format(f"grad {k} mean"), show)
