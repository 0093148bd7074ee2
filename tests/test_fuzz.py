"""Property-based fuzzing of every public loss (hypothesis).

Each example throws a random call at one loss: shapes (0-d, empty, size-1 axes),
dtypes (float16/32/64, integers, bool, byte-swapped, and non-numeric ones), layouts
(non-contiguous, negative strides, Fortran order, misaligned, nested lists), values
(NaN, +-inf, huge, subnormal, -0.0), parameters, reductions, thread counts, out /
grad_out buffers (valid ones, grad_out=logits, and broken or aliasing ones), with a
random SIMD target.  The call must either

* succeed, with results of the compute dtype and shape that match
  ``fusedloss.reference`` (tolerances scaled to the largest finite magnitude, NaN and
  infinities where the reference has them), bitwise equal to a single-threaded call;
  or, when the example contains an invalid argument,
* raise one of the documented exceptions (ValueError / TypeError / IndexError), and
  leave every buffer it was given untouched.

Inputs are never modified (except logits passed as grad_out after a success), and no
call warns (warnings are errors here).

Where the kernels and the reference legitimately differ:

* float32 kernels evaluate element-wise formulas in float32, the reference in float64
  and rounds at the end.  Where the float32 formula overflows before the float64 one
  (a huge element-wise error e with e**2 > FLT_MAX inside the quadratic zone of
  Huber / smooth-L1 cannot happen, since |e| <= delta there; but the linear zone
  ``|e| - beta/2`` or ``delta * (|e| - delta/2)`` with |e| near FLT_MAX can round
  to FLT_MAX in one and overflow to inf in the other) the results differ by one
  rounding at the overflow threshold.  The value pools keep float32 magnitudes at
  most 1e30 for that reason, so both stay finite; float64 gets the full range.
* Batch sums and means accumulate in float64 in both, but in different orders: the
  tolerance is relative to the largest magnitude, as in ``_util.assert_close``.
  Sums of terms of opposite sign and huge magnitude can cancel to different
  residues; the pools avoid mixing finite huge values of both signs in sums of
  float64 losses by using magnitudes that keep sums exact enough (<= 1e200) -- a
  sum of +1e300 and -1e300 rounding differently is not a bug.

Runs in ~30 s; FUSEDLOSS_FUZZ_EXAMPLES scales the number of examples per loss.
"""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fusedloss as fl
from fusedloss import _kernels
from fusedloss import reference as ref

EXAMPLES = int(os.environ.get("FUSEDLOSS_FUZZ_EXAMPLES", "1200"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
DOCUMENTED = (ValueError, TypeError, IndexError)
SIMD = _kernels.simd_targets()[1]

GOOD_DTYPES = [
    "float16",
    "float32",
    "float64",
    "float32",
    "float64",
    ">f4",
    ">f8",
    "int8",
    "int32",
    "int64",
    "uint8",
    "bool",
    "longdouble",
]
BAD_DTYPES = ["complex64", "complex128", "object", "U3", "datetime64[s]", "timedelta64[s]", "V8"]
LAYOUTS = ["c", "c", "c", "strided", "reversed", "fortran", "unaligned", "list"]

# Special values; float32 pools stay below ~1e30 in magnitude (see the module doc).
SPECIAL = [
    0.0,
    -0.0,
    1.0,
    -1.0,
    0.5,
    np.nan,
    np.inf,
    -np.inf,
    5e-324,
    1e-310,
    1e-40,
    -1e-40,
    1e-30,
    30.0,
    -30.0,
    100.0,
    -100.0,
    1e4,
    -1e4,
    1e30,
    -1e30,
]
SPECIAL64 = SPECIAL + [1e200, -1e200, 1e300, -1e300, 1.7e308]

INVALID_FLOATS = [  # (value, exception)
    (np.nan, ValueError),
    (np.inf, ValueError),
    (-np.inf, ValueError),
    (10**400, ValueError),
    ("a", TypeError),
    ("0.5", TypeError),
    (None, TypeError),
    ([1.0], TypeError),
    (np.array([0.5]), TypeError),
    (1 + 2j, TypeError),
    (np.complex128(1), TypeError),
    (b"1", TypeError),
    (object(), TypeError),
]
INVALID_THREADS = [
    (0, ValueError),
    (-1, ValueError),
    (1.5, TypeError),
    ("2", TypeError),
    (np.float64(2), TypeError),
]
INVALID_REDUCTIONS = ["avg", "MEAN", None, 1, b"mean", "none "]


# ---------------------------------------------------------------------------- drawing


def _values(draw, n, dtype, lo=None, hi=None):
    """n values suited to dtype (a float pool with specials, or integers)."""
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)), dtype=bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        a = max(info.min, -5 if lo is None else lo)
        b = min(info.max, 5 if hi is None else hi)
        return np.array(draw(st.lists(st.integers(a, b), min_size=n, max_size=n)), dtype=dt)
    big = dt.itemsize >= 8
    pool = SPECIAL64 if big else SPECIAL
    if lo is not None:
        pool = [v for v in pool if np.isnan(v) or lo <= v <= hi] + [lo, hi]
        ordinary = st.floats(lo, hi)
    else:
        ordinary = st.floats(-8.0, 8.0)
    elems = st.one_of(ordinary, ordinary, st.sampled_from(pool))
    return np.array(draw(st.lists(elems, min_size=n, max_size=n)), dtype=np.float64)


def _bad_array(draw, shape, dtype):
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    if dt.kind == "c":
        return (np.arange(n) + 1j).astype(dt).reshape(shape)
    if dt.kind == "O":
        return np.array([1.0] * n + [None], dtype=object)[:n].reshape(shape)
    if dt.kind == "U":
        return np.full(shape, "1", dtype=dt)
    if dt.kind in "mM":
        return np.zeros(shape, dtype=dt)
    return np.zeros(shape, dtype=[("a", "f4"), ("b", "f4")])


def _layout(a, layout):
    """The same values as `a` in another memory layout (or as nested lists)."""
    if layout == "list" and a.size == 0:
        return a  # empty lists lose the shape and the dtype (float64)
    if layout == "c" or a.ndim == 0:
        return a if layout != "list" else a.tolist()
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        v = big[..., ::2]
        v[...] = a
        return v
    if layout == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "unaligned":
        if a.dtype.itemsize == 1 or a.dtype.kind not in "biuf":
            return a
        raw = np.zeros(a.nbytes + 1, np.uint8)[1:]
        v = raw.view(a.dtype).reshape(a.shape)
        v[...] = a
        return v
    if layout == "list":
        if a.dtype.kind == "f" and a.dtype.itemsize != 8:
            return a  # a list would change the dtype to float64
        return a.tolist()
    raise AssertionError(layout)


def _array(draw, shape, dtype, lo=None, hi=None, layout=None):
    n = int(np.prod(shape))
    dt = np.dtype(dtype)
    with np.errstate(all="ignore"):
        a = _values(draw, n, dt, lo, hi).astype(dt).reshape(shape)
    lay = layout if layout is not None else draw(st.sampled_from(LAYOUTS))
    if dt.byteorder not in "=|" or dt.itemsize > 8:
        lay = "c" if lay == "list" else lay
    return _layout(a, lay)


def _compute(dtype):
    dt = np.dtype(dtype)
    return np.dtype(np.float32) if dt.kind == "f" and dt.itemsize <= 4 else np.dtype(np.float64)


def _shape(draw, min_dims, max_dims, min_side=0, max_side=4):
    return tuple(
        draw(st.lists(st.integers(min_side, max_side), min_size=min_dims, max_size=max_dims))
    )


class Call:
    """One randomised call: args, kwargs, and the exception types it may raise."""

    def __init__(self, fn, reffn):
        self.fn, self.reffn = fn, reffn
        self.args, self.kwargs = [], {}
        self.expect = set()  # non-empty: the call must raise one of these
        self.chaos = False  # whether invalid arguments may be injected

    def bad(self, exc):
        self.expect.add(exc)

    def __repr__(self):
        def show(v):
            if isinstance(v, np.ndarray):
                return (
                    f"array({v.tolist() if v.dtype.kind != 'V' else '...'}, dtype={v.dtype}"
                    f", strides={v.strides}, aligned={v.flags.aligned}, "
                    f"writeable={v.flags.writeable})"
                )
            return repr(v)

        args = ", ".join(show(a) for a in self.args)
        kws = ", ".join(
            f"{k}={'<logits>' if v is self.args[0] and k == 'grad_out' else show(v)}"
            for k, v in self.kwargs.items()
        )
        return f"{self.fn.__name__}({args}, {kws})  expect={self.expect or 'success'}"


def _inject(draw, call, n):
    """In a "chaos" example, True with probability 1/n (inject an invalid argument)."""
    return call.chaos and draw(st.integers(1, n)) == 1


def _common(draw, call, x, cdt, loss_shape, is_ce):
    """reduction, return_grad, n_threads, out, grad_out (valid or broken)."""
    kw = call.kwargs
    if _inject(draw, call, 12):
        kw["reduction"] = draw(st.sampled_from(INVALID_REDUCTIONS))
        call.bad(ValueError)
    else:
        kw["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
    kw["return_grad"] = draw(st.booleans())
    if _inject(draw, call, 12):
        v, e = draw(st.sampled_from(INVALID_THREADS))
        kw["n_threads"] = v
        call.bad(e)
    else:
        kw["n_threads"] = draw(st.sampled_from([None, 1, 2, 3, 7]))
    xarr = x if isinstance(x, np.ndarray) else None
    shape = np.shape(x)
    # out
    if call.chaos:
        kind = draw(
            st.sampled_from(
                ["none"] * 6
                + ["good", "shape", "dtype", "noncontig", "readonly", "list", "unaligned", "alias"]
            )
        )
    else:
        kind = draw(st.sampled_from(["none", "good"])) if kw["reduction"] == "none" else "none"
    if kind != "none":
        kw["out"], ok = _buffer(kind, loss_shape, cdt, call)
        if not ok or kw["reduction"] != "none":
            call.bad(ValueError)
    # grad_out
    canonical = (
        xarr is not None
        and xarr.dtype == cdt
        and xarr.dtype.isnative
        and xarr.flags.c_contiguous
        and xarr.flags.aligned
        and xarr.flags.writeable
    )
    if call.chaos:
        kind = draw(
            st.sampled_from(
                ["none"] * 5
                + [
                    "good",
                    "good",
                    "logits",
                    "shape",
                    "dtype",
                    "noncontig",
                    "readonly",
                    "unaligned",
                    "alias",
                    "same_as_out",
                ]
            )
        )
    elif kw["return_grad"]:
        kind = draw(st.sampled_from(["none", "good", "logits" if canonical else "good"]))
    else:
        kind = "none"
    if kind == "logits":
        kw["grad_out"] = x
        if not canonical or not kw["return_grad"]:
            call.bad(ValueError)
    elif kind == "same_as_out":
        if "out" in kw:
            # out is grad_out: a shape mismatch (cross-entropy) or an overlap, except
            # for empty element-wise arrays (nothing to overlap)
            kw["grad_out"] = kw["out"]
            if is_ce or int(np.prod(shape)) > 0 or not kw["return_grad"]:
                call.bad(ValueError)
    elif kind != "none":
        kw["grad_out"], ok = _buffer(kind, shape, cdt, call)
        if not ok or not kw["return_grad"]:
            call.bad(ValueError)


def _buffer(kind, shape, cdt, call):
    """A buffer for out/grad_out: (array, valid?).  Validity is decided from the array
    itself (a size-1 or empty axis makes a strided array C-contiguous, and an empty
    array is aligned), except for "alias", which is invalid for overlapping."""
    b, ok = _buffer_kind(kind, shape, cdt, call)
    if kind != "alias":
        ok = (
            isinstance(b, np.ndarray)
            and b.shape == shape
            and b.dtype == cdt
            and b.flags.c_contiguous
            and b.flags.writeable
            and b.flags.aligned
        )
    return b, ok


def _buffer_kind(kind, shape, cdt, call):
    if kind == "good":
        return np.full(shape, 7.0, cdt), True
    if kind == "shape":
        return np.full(shape + (1,), 7.0, cdt), False
    if kind == "dtype":
        other = np.float32 if cdt == np.float64 else np.float64
        return np.full(shape, 7.0, other), False
    if kind == "noncontig":
        if len(shape) == 0 or int(np.prod(shape)) == 0:
            return np.full(shape, 7.0, cdt.newbyteorder()), False
        return np.full(shape[:-1] + (2 * shape[-1],), 7.0, cdt)[..., ::2], False
    if kind == "readonly":
        b = np.full(shape, 7.0, cdt)
        b.flags.writeable = False
        return b, False
    if kind == "list":
        return np.full(shape, 7.0, cdt).tolist(), False
    if kind == "unaligned":
        n = int(np.prod(shape))
        b = np.zeros(n * cdt.itemsize + 1, np.uint8)[1:].view(cdt).reshape(shape)
        b[...] = 7.0
        return b, n == 0  # a zero-size array is aligned
    if kind == "alias":
        # a buffer over the target's memory: invalid whenever it is not empty
        src = call.args[1]
        n = int(np.prod(shape))
        if (
            isinstance(src, np.ndarray)
            and src.dtype.kind in "biuf"
            and n > 0
            and src.flags.c_contiguous
            and src.nbytes >= n * cdt.itemsize
        ):
            return src.reshape(-1).view(np.uint8)[: n * cdt.itemsize].view(cdt).reshape(
                shape
            ), False
        return np.full(shape, 7.0, cdt), True
    raise AssertionError(kind)


def _float_param(draw, call, name, lo, hi, lo_open=False, top=50.0):
    """A valid parameter in [lo, hi] (or (lo, hi]; hi None: unbounded, drawn up to
    `top`) or an invalid one (non-numeric, non-finite, out of range)."""
    r = draw(st.integers(0, 1)) if _inject(draw, call, 4) else 2
    if r == 0:
        v, e = draw(st.sampled_from(INVALID_FLOATS))
        call.kwargs[name] = v
        call.bad(e)
    elif r == 1:
        # out of range
        call.kwargs[name] = draw(
            st.sampled_from(
                [lo - 1.0, lo - 1e-9]
                + ([lo] if lo_open else [])
                + ([hi + 0.5] if hi is not None else [])
            )
        )
        call.bad(ValueError)
    else:
        top = hi if hi is not None else top
        v = draw(st.one_of(st.floats(lo, top), st.sampled_from([lo, top, 1.0])))
        v = draw(st.sampled_from([v, np.float64(v), np.float32(v)])) if draw(st.booleans()) else v
        if lo_open and float(v) <= lo:  # (a tiny value can round to lo in float32)
            v = 0.25
        call.kwargs[name] = v


def _input(draw, call, shape, allow_bad=True):
    if allow_bad and _inject(draw, call, 10):
        dt = draw(st.sampled_from(BAD_DTYPES))
        call.bad(TypeError)
        return _bad_array(draw, shape, dt), np.dtype(np.float64)
    dt = np.dtype(draw(st.sampled_from(GOOD_DTYPES)))
    x = _array(draw, shape, dt)
    return x, _compute(np.asarray(x).dtype)  # a list / Python scalar computes in float64


@st.composite
def ce_calls(draw):
    call = Call(fl.softmax_cross_entropy, ref.softmax_cross_entropy)
    call.chaos = draw(st.booleans())
    r = draw(st.integers(0, 1)) if _inject(draw, call, 12) else 2
    if r == 0:
        shape = ()
        call.bad(ValueError)
    else:
        shape = _shape(draw, 1, 3, 0, 4) + (draw(st.integers(1, 6)),)
        if r == 1:
            shape = shape[:-1] + (0,)
            if int(np.prod(shape[:-1])) != 0:  # an empty batch without classes is NaN
                call.bad(ValueError)
    x, cdt = _input(draw, call, shape)
    batch = shape[:-1]
    C = shape[-1] if shape else 0
    kind = draw(st.sampled_from(["index"] * 3 + ["prob"] * 2 + (["bad"] if call.chaos else [])))
    ign = -100
    if draw(st.integers(0, 4)) == 0 and (kind == "index" or call.chaos):
        ign = draw(st.sampled_from([0, 1, -1, 2**62, np.int64(3), True]))
    if kind == "index":
        tdt = draw(
            st.sampled_from(["int64", "int64", "int32", "int8", "uint8", ">i8", "uint64", "int16"])
        )
        oob = _inject(draw, call, 4)
        info = np.iinfo(tdt)
        lo, hi = (max(info.min, -3), min(info.max, C + 2)) if oob else (0, max(C - 1, 0))
        t = _array(draw, batch, tdt, lo, hi)
        vals = [int(v) for v in np.asarray(t, dtype=tdt).reshape(-1)]
        if draw(st.booleans()) and vals and info.min <= int(ign) <= info.max:
            # put ignore_index first, where the dtype can hold it
            vals[0] = int(ign)
            t = np.array(vals, dtype=tdt).reshape(batch)
        if shape != () and C > 0 and any(v != int(ign) and not 0 <= v < C for v in vals):
            call.bad(IndexError)
        if _inject(draw, call, 8):
            t = np.zeros(batch + (1,), tdt)
            call.bad(ValueError)
    elif kind == "prob":
        tdt = draw(st.sampled_from(["float32", "float64", "float16", ">f8"]))
        t = _array(draw, shape, tdt, 0.0, 1.0)
        if int(ign) != -100:
            call.bad(ValueError)
        r = draw(st.integers(0, 1)) if _inject(draw, call, 5) else 2
        if r == 0 and len(shape) >= 1:
            t = _array(draw, batch, tdt, 0.0, 1.0)  # float of the index shape
            call.bad(ValueError)
        elif r == 1:
            t = _array(draw, shape + (1,), tdt, 0.0, 1.0)
            call.bad(ValueError)
    else:
        t = draw(
            st.sampled_from(
                [
                    np.zeros(batch, bool),
                    np.zeros(batch, complex),
                    np.zeros(batch, "U2"),
                    np.zeros(batch, object),
                    np.zeros(batch, "M8[s]"),
                ]
            )
        )
        call.bad(TypeError)
    call.args = [x, t]
    call.kwargs["ignore_index"] = ign
    _float_param(draw, call, "label_smoothing", 0.0, 1.0)
    r = draw(st.sampled_from([0, 1, 2, 3] if call.chaos else [0, 0, 1]))
    if r == 1:
        wdt = draw(st.sampled_from(["float32", "float64", "int32", "bool", "float16", ">f8"]))
        # non-negative: the mean divides by the summed weights, which must not cancel
        call.kwargs["weight"] = _array(draw, (C,), wdt, 0.0, 4.0)
    elif r == 2:
        call.kwargs["weight"] = _array(draw, (C + 1,), "float64", 0.0, 2.0)
        call.bad(ValueError)
    elif r == 3:
        call.kwargs["weight"] = np.ones((C,), draw(st.sampled_from(["complex128", "object"])))
        call.bad(TypeError)
    _common(draw, call, x, cdt, batch, True)
    return call


@st.composite
def elementwise_calls(draw, fn, reffn, param):
    call = Call(fn, reffn)
    call.chaos = draw(st.booleans())
    shape = _shape(draw, 0, 3, 0, 4)
    x, cdt = _input(draw, call, shape)
    if _inject(draw, call, 10):
        t = _bad_array(draw, shape, draw(st.sampled_from(BAD_DTYPES)))
        call.bad(TypeError)
    else:
        tdt = draw(
            st.sampled_from(["float32", "float64", "float16", ">f8", "int32", "bool", "uint8"])
        )
        if fn is fl.huber_loss or fn is fl.smooth_l1_loss:
            t = _array(draw, shape, tdt)
        else:
            t = _array(draw, shape, tdt, 0.0, 1.0)
    if _inject(draw, call, 8):
        bad = draw(st.sampled_from([shape + (1,), shape[:-1], (2,) + shape]))
        if bad != shape:
            t = np.zeros(bad, np.float32)
            call.bad(ValueError)
    call.args = [x, t]
    if param == "bce":
        for name in ("weight", "pos_weight"):
            r = draw(st.sampled_from([0, 1, 2, 3, 4] if call.chaos else [0, 0, 1, 2]))
            if r in (1, 2):
                # a broadcastable shape: a suffix of the shape with some axes set to 1
                k = draw(st.integers(0, len(shape)))
                ws = tuple(s if draw(st.booleans()) else 1 for s in shape[len(shape) - k :])
                wdt = draw(st.sampled_from(["float32", "float64", "int32", "bool", ">f4"]))
                call.kwargs[name] = _array(draw, ws, wdt, -2.0, 4.0)
            elif r == 3:
                ws = shape[:-1] + (shape[-1] + 2,) if shape else (2,)  # never broadcasts
                call.kwargs[name] = np.ones(ws)
                call.bad(ValueError)
            elif r == 4:
                call.kwargs[name] = np.ones(
                    shape[-1:], draw(st.sampled_from(["complex64", "object", "U1", "M8[D]"]))
                )
                call.bad(TypeError)
    elif param == "focal":
        _float_param(draw, call, "gamma", 0.0, None, top=6.0)
        if _inject(draw, call, 8):
            v, e = draw(st.sampled_from(INVALID_FLOATS))
            call.kwargs["alpha"] = v
            call.bad(e)
        else:
            call.kwargs["alpha"] = draw(st.one_of(st.floats(-1.0, 2.0), st.just(0.25)))
    elif param == "delta":
        _float_param(draw, call, "delta", 0.0, None, lo_open=True)
    elif param == "beta":
        _float_param(draw, call, "beta", 0.0, None)
    _common(draw, call, x, cdt, shape, False)
    return call


# ---------------------------------------------------------------------------- checking


def _snapshot(objs):
    return [
        (o, o.tobytes() if isinstance(o, np.ndarray) and o.dtype.kind != "O" else None)
        for o in objs
    ]


def _unchanged(snap, skip=()):
    for o, b in snap:
        if b is not None and not any(o is s for s in skip):
            assert o.tobytes() == b, "an argument was modified"


def _close(got, want, cdt, what, scale=None, allow_nan=None):
    got = np.asarray(got)
    want = np.asarray(want)
    if allow_nan is not None:
        # documented divergences (see _divergences): NaN on either side accepted
        extra = np.broadcast_to(allow_nan, got.shape) & (np.isnan(got) | np.isnan(want))
        want = np.where(extra, np.nan, want).astype(want.dtype)
        got = np.where(extra, np.nan, got).astype(got.dtype)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    assert got.dtype == cdt, (what, got.dtype, cdt)
    assert np.array_equal(np.isnan(got), np.isnan(want)), (what, got, want)
    fin = np.isfinite(want)
    # infinities exactly where the reference has them (with the same sign)
    assert np.array_equal(got[~fin & ~np.isnan(want)], want[~fin & ~np.isnan(want)]), (
        what,
        got,
        want,
    )
    if not fin.any():
        return
    g = got[fin].astype(np.float64)
    w = want[fin].astype(np.float64)
    assert np.isfinite(g).all(), (what, got, want)
    scale = max(float(np.max(np.abs(w))), 1.0, scale or 0.0)
    if cdt == np.float64:
        rtol, atol = 1e-10, 1e-12 * scale
    else:
        rtol, atol = 2e-5, 4e-6 * scale
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=what)


def _ce_denominator(rargs, kw, cdt):
    """The "mean" denominator of index-target cross-entropy: summed weights of the
    counted targets (None for probability targets)."""
    t = np.asarray(rargs[1])
    if t.dtype.kind not in "iu":
        return None
    C = np.shape(rargs[0])[-1]
    w = kw.get("weight")
    w = np.ones(C) if w is None else np.asarray(w).astype(cdt).astype(np.float64)
    vals = [int(v) for v in t.reshape(-1)]
    picked = [w[v] for v in vals if v != int(kw["ignore_index"])]
    with np.errstate(all="ignore"):
        return float(np.sum(picked)) if picked else 0.0


def _divergences(call, rargs, kw, cdt):
    """(loss mask, grad mask): entries where the kernels and the reference may differ
    in being NaN (one side NaN, the other a number), by design or by a known,
    reported defect.  None: no allowance.  Each case, and why:

    Non-finite inputs (the contract only promises that non-finite values propagate):

    * sigmoid_focal_loss at an infinite logit (the loss is inf or NaN there):
      gradient -- a limit of the form gamma * ce * q**gamma * p(1-p)/q with ce = inf,
      p(1-p) = 0; the reference drops the term for gamma == 0 and is NaN otherwise,
      the float64 kernel is NaN for every gamma (0 * inf), the float32 kernel returns
      the analytic limit alpha_t * (p - t) in some cases (gamma 1, logit +inf,
      target 0).  Loss -- ce * q**gamma with q ~ the target: a subnormal target
      raised to gamma underflows to 0 in float32 (kernel: inf * 0 = NaN) but not in
      float64 (reference: inf).
    * binary_cross_entropy_with_logits in float32 at an infinite logit: the loss is
      (pos_weight * t) * softplus(-x) + ...; a product pos_weight * t that is
      nonzero in float64 can underflow to 0 in float32 (kernel: 0 * inf = NaN,
      reference: inf).
    * huber_loss in float32 with a delta that rounds to 0 in float32 (< ~7e-46): the
      kernels use the rounded delta, so the linear branch delta * (|e| - delta/2) is
      0 * inf = NaN at an infinite error; the reference (float64 delta) gives inf.
    * softmax_cross_entropy in float32 with 0 < label_smoothing / C that rounds to 0
      in float32: rows with a non-finite logit get 0 * inf = NaN in the kernel (the
      smoothing branch is chosen from the float64 value), inf in the reference.
    * softmax_cross_entropy "mean" over nothing (every counted target has weight 0):
      the contract says the gradient is zero and the reference returns zeros; the
      kernels multiply by the scale 0, so rows with a non-finite logit (every row,
      with a non-finite class weight) give 0 * NaN = NaN.
    * softmax_cross_entropy "mean" with a non-finite denominator (a NaN or infinite
      class weight on a counted target): the reference divides every gradient row by
      it, ignored rows included (0 / NaN = NaN); the kernels keep ignored rows 0.

    A known limit with finite inputs (test_robustness.py::test_ce_mean_tiny_weights):

    * softmax_cross_entropy "mean" whose denominator (summed class weights of the
      counted targets) is so small that 1/denominator overflows double (a subnormal
      sum, < ~5.6e-309): the gradient scale is inf, giving inf / NaN.  (In float32
      a scale beyond float's range is applied in double, and is fine.)
    """
    fn, red = call.fn, kw["reduction"]
    with np.errstate(all="ignore"):
        x = np.asarray(np.asarray(rargs[0]), dtype=cdt)
    everything = (np.True_, np.True_)

    def per_element(mask):
        return mask if red == "none" else np.bool_(mask.any())

    if fn is fl.sigmoid_focal_loss:
        return per_element(np.isinf(x)), np.isinf(x)
    if fn is fl.binary_cross_entropy_with_logits and cdt == np.float32:
        return per_element(np.isinf(x)), None
    if fn is fl.huber_loss and cdt == np.float32 and np.float32(kw["delta"]) == 0:
        with np.errstate(all="ignore"):
            e = x - np.asarray(np.asarray(rargs[1]), dtype=cdt)
        return per_element(np.isinf(e)), None
    if fn is not fl.softmax_cross_entropy or x.size == 0:
        return None, None
    loss_mask = grad_mask = None
    bad_rows = ~np.isfinite(x).all(axis=-1)
    eps, C = float(kw["label_smoothing"]), x.shape[-1]
    if cdt == np.float32 and eps > 0 and np.float32(eps / C) == 0:
        loss_mask, grad_mask = per_element(bad_rows), bad_rows[..., None]
    denom = _ce_denominator(rargs, kw, cdt)
    if red == "mean" and denom is not None:
        w = kw.get("weight")
        if denom == 0:
            finite_w = w is None or np.isfinite(np.asarray(w).astype(cdt)).all()
            grad_mask = bad_rows[..., None] if finite_w else np.True_
        elif not np.isfinite(denom):
            grad_mask = np.True_
        elif not np.isfinite(1.0 / denom):
            return everything
    return loss_mask, grad_mask


def _sum_scale(call, rargs, kw):
    """For "sum" / "mean": the error bound of a sum scales with the sum of the absolute
    terms (not with the possibly cancelled result): returns that (divided by the mean's
    denominator)."""
    if kw["reduction"] == "none":
        return None
    terms = np.asarray(
        call.reffn(
            *rargs, **dict(kw, reduction="none", return_grad=False, out=None, grad_out=None)
        ),
        np.float64,
    )
    a = np.abs(terms[np.isfinite(terms)])
    with np.errstate(all="ignore"):
        total = float(np.sum(a))
    total = total if np.isfinite(total) else 0.0
    if kw["reduction"] == "sum":
        return total
    s = float(
        np.asarray(
            call.reffn(
                *rargs, **dict(kw, reduction="sum", return_grad=False, out=None, grad_out=None)
            )
        )
    )
    m = float(
        np.asarray(call.reffn(*rargs, **dict(kw, return_grad=False, out=None, grad_out=None)))
    )
    if s != 0 and m != 0 and np.isfinite(s) and np.isfinite(m):
        return total * abs(m / s)
    return None


def _run(call, simd):
    before = _kernels.build_info()[2]
    _kernels.set_simd(simd)
    try:
        _check(call)
    finally:
        _kernels.set_simd(before)


def _expect_param_limits(call, kw):
    """float32 kernels compute with their parameters in float32: a non-zero delta or
    beta below float32's normal range (which would lose its value there) is a
    ValueError, as API.md's parameter rules and issue 8 ask."""
    if call.expect or not call.args or not isinstance(call.args[0], np.ndarray):
        return
    if call.args[0].dtype.kind not in "biuf" or _compute(call.args[0].dtype) != np.float32:
        return
    tiny = float(np.finfo(np.float32).tiny)
    for name in ("delta", "beta"):
        v = kw.get(name)
        if v is not None and 0 < abs(float(v)) < tiny:
            call.bad(ValueError)


def _check(call):
    kw = dict(call.kwargs)
    _expect_param_limits(call, kw)
    objs = list(call.args) + [v for v in kw.values() if isinstance(v, np.ndarray)]
    snap = _snapshot(objs)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            got = call.fn(*call.args, **kw)
        except DOCUMENTED as e:
            assert call.expect, f"valid call raised {type(e).__name__}: {e}"
            assert type(e) in call.expect or isinstance(e, tuple(call.expect)), (
                f"raised {type(e).__name__} ({e}), expected one of {call.expect}"
            )
            _unchanged(snap)  # buffers and inputs untouched
            return
    assert not call.expect, f"invalid call did not raise {call.expect}"
    grad_out = kw.get("grad_out")
    _unchanged(snap, skip=[grad_out, kw.get("out")])
    # the reference, on the original values
    rkw = dict(kw, out=None, grad_out=None)
    rargs = list(call.args)
    if grad_out is not None and grad_out is call.args[0]:
        rargs[0] = np.frombuffer(
            dict((id(o), b) for o, b in snap)[id(grad_out)], dtype=grad_out.dtype
        ).reshape(grad_out.shape)
    want = call.reffn(*rargs, **rkw)
    x0 = np.asarray(rargs[0])
    cdt = _compute(x0.dtype)
    with np.errstate(all="ignore"):
        allow = _divergences(call, rargs, kw, cdt)
    if kw["return_grad"]:
        (lg, gg), (lw, gw) = got, want
        assert gg.shape == x0.shape
        if grad_out is not None:
            assert gg is grad_out
        _close(gg, gw, cdt, "grad", allow_nan=allow[1])
    else:
        lg, lw = got, want
    if kw["reduction"] == "none":
        assert isinstance(lg, np.ndarray)
        if kw.get("out") is not None:
            assert lg is kw["out"]
    else:
        assert isinstance(lg, np.generic) and lg.dtype == cdt, type(lg)
    _close(lg, lw, cdt, "loss", _sum_scale(call, rargs, kw), allow_nan=allow[0])
    # bitwise identical single-threaded (for a call without buffers)
    if kw.get("n_threads") not in (None, 1) and grad_out is None:
        again = call.fn(*rargs, **dict(kw, out=None, n_threads=1))
        a = again if kw["return_grad"] else (again,)
        g = got if kw["return_grad"] else (got,)
        for u, v in zip(g, a):
            assert np.asarray(u).tobytes() == np.asarray(v).tobytes(), "n_threads changed bits"


@FUZZ
@given(call=ce_calls(), simd=st.sampled_from(SIMD))
def test_fuzz_softmax_cross_entropy(call, simd):
    _run(call, simd)


@FUZZ
@given(
    call=elementwise_calls(
        fl.binary_cross_entropy_with_logits, ref.binary_cross_entropy_with_logits, "bce"
    ),
    simd=st.sampled_from(SIMD),
)
def test_fuzz_binary_cross_entropy_with_logits(call, simd):
    _run(call, simd)


@FUZZ
@given(
    call=elementwise_calls(fl.sigmoid_focal_loss, ref.sigmoid_focal_loss, "focal"),
    simd=st.sampled_from(SIMD),
)
def test_fuzz_sigmoid_focal_loss(call, simd):
    _run(call, simd)


@FUZZ
@given(call=elementwise_calls(fl.huber_loss, ref.huber_loss, "delta"), simd=st.sampled_from(SIMD))
def test_fuzz_huber_loss(call, simd):
    _run(call, simd)


@FUZZ
@given(
    call=elementwise_calls(fl.smooth_l1_loss, ref.smooth_l1_loss, "beta"),
    simd=st.sampled_from(SIMD),
)
def test_fuzz_smooth_l1_loss(call, simd):
    _run(call, simd)


@pytest.mark.parametrize(
    "fn",
    [
        fl.softmax_cross_entropy,
        fl.binary_cross_entropy_with_logits,
        fl.sigmoid_focal_loss,
        fl.huber_loss,
        fl.smooth_l1_loss,
    ],
)
def test_fuzz_smoke_valid_call(fn):
    """The checker itself accepts a plain valid call (guards against a vacuous fuzz)."""
    x = np.linspace(-2, 2, 12).reshape(3, 4)
    t = np.array([0, 3, 1]) if fn is fl.softmax_cross_entropy else np.full((3, 4), 0.5)
    call = Call(fn, getattr(ref, fn.__name__))
    call.args = [x, t]
    call.kwargs = dict(reduction="none", return_grad=True, n_threads=3)
    if fn is fl.sigmoid_focal_loss:
        call.kwargs.update(alpha=0.25, gamma=2.0)
    if fn is fl.softmax_cross_entropy:
        call.kwargs.update(ignore_index=-100, label_smoothing=0.1)
    _check(call)
