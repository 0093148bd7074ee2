"""The loss table of the generic tests (tests/test_registry.py).

One table, made from :data:`fusedloss._registry.LOSSES` (in the spirit of bottleneck's
``func_dict()`` and scikit-learn's ``_LOSSES``): for every spec it gives

* :func:`make_args` -- the positional arguments, by the spec's ``kind`` and
  ``target_domain``;
* :func:`param_grid` / :func:`make_params` -- valid keyword values, derived from each
  :class:`~fusedloss._registry.Param`'s kind and range;
* :func:`invalid_params` -- invalid keyword values and the exception each must raise,
  derived the same way;
* :func:`torch_call` -- the spec's PyTorch twin (``spec.torch``) called with our keywords;
* :func:`fuzz_calls` -- a hypothesis strategy of random calls (valid, or invalid in known
  ways, with the exceptions they must raise), derived from the same spec attributes;
* :data:`ORACLES` -- the loss and its derivative per element / row in mpmath, written from
  the mathematical definitions, and :func:`accuracy_inputs` / :func:`oracle_values`, the
  fixed (partly extreme) inputs they are evaluated at.

Everything loss-specific the generic tests need lives here and is keyed by spec
attributes (kind, target_domain, the params' kinds and ranges), not by loss name: a new
element-wise spec needs no edit here but one, its mpmath oracle (an entry of
:data:`ORACLES`; tests/test_registry.py fails with a message until it has one).  The
other names are PyTorch's: the twin that has no importable function
(``torchvision.ops.sigmoid_focal_loss``; torchvision is not a test dependency) is written
out in torch operations below.

Shapes.  A test shape is the shape of the ``reduction="none"`` loss: element-wise losses
take it as the input's shape, class-axis losses as the batch shape and get
:data:`N_CLASSES` classes last (:func:`input_shape`).  :func:`make_args` itself takes the
first input's shape.
"""

import importlib
import inspect
import math
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

from fusedloss._registry import LOSSES

try:
    import mpmath
except ImportError:  # the accuracy tests skip (pytest.importorskip)
    mpmath = None

__all__ = [
    "LOSSES",
    "N_CLASSES",
    "input_shape",
    "loss_shape",
    "target_variants",
    "make_args",
    "float_values",
    "param_grid",
    "make_params",
    "invalid_params",
    "kinks",
    "torch_call",
    "FUZZ_ERRORS",
    "FuzzCall",
    "fuzz_calls",
    "Oracle",
    "ORACLES",
    "ORACLE_DPS",
    "accuracy_inputs",
    "oracle_arguments",
    "oracle_values",
]

N_CLASSES = 5
_F32 = np.dtype(np.float32)


# ----------------------------------------------------------------------------- shapes


def input_shape(spec, shape):
    """The first input's shape for the test shape ``shape`` (the "none" loss's shape)."""
    shape = tuple(shape)
    return shape + (N_CLASSES,) if spec.kind == "class_axis" else shape


def loss_shape(spec, xshape):
    """The shape of the ``reduction="none"`` loss for a first input of shape ``xshape``."""
    return tuple(xshape[:-1]) if spec.kind == "class_axis" else tuple(xshape)


# ----------------------------------------------------------------------------- arguments


def target_variants(spec):
    """The kinds of target a spec takes: "index" domains take class indices or class
    probabilities of the logits' shape; the others one kind, named by their domain."""
    return ("index", "probs") if spec.target_domain == "index" else (spec.target_domain,)


def _sentinels(spec, params):
    """Int parameters of an index-target loss are sentinel class indices (ignore_index):
    their values in the call (the defaults unless given) are planted in the targets."""
    return [params.get(p.name, p.default) for p in spec.params if p.kind == "int"]


def make_args(spec, shape, dtype, rng, variant=None, scale=3.0, params=None):
    """(input, target) for a first input of shape ``shape`` and dtype ``dtype``.

    input ~ N(0, scale^2).  target by ``spec.target_domain``:

    * "real":  ~ N(0, scale^2), of ``dtype``;
    * "unit":  uniform in [0, 1], of ``dtype``, with exact 0s and 1s (every 5th element
      each);
    * "index": int64 class indices of shape ``shape[:-1]`` (variant "index", the default),
      every 4th row from the second on set to each int parameter's value in ``params``
      (the keywords of the call; the default where absent), a sentinel such as
      ignore_index; or, variant "probs", rows of class probabilities of ``shape`` and
      ``dtype``.
    """
    params = params or {}
    shape = tuple(shape)
    variant = variant or target_variants(spec)[0]
    if variant not in target_variants(spec):
        raise ValueError(f"{spec.name} takes no {variant!r} targets")
    if spec.kind == "class_axis" and len(shape) == 0:
        raise ValueError("class-axis inputs need a class axis")
    x = (rng.normal(size=shape) * scale).astype(dtype)
    if spec.target_domain == "real":
        t = (rng.normal(size=shape) * scale).astype(dtype)
    elif spec.target_domain == "unit":
        t = rng.uniform(size=shape)
        flat = t.reshape(-1)
        flat[0::5] = 0.0
        flat[1::5] = 1.0
        t = t.astype(dtype)
    elif variant == "index":
        t = rng.integers(0, shape[-1], size=shape[:-1], dtype=np.int64)
        for k, sentinel in enumerate(_sentinels(spec, params)):
            t.reshape(-1)[1 + k :: 4] = sentinel
    else:  # class probabilities
        t = (
            rng.dirichlet(np.ones(shape[-1]), size=shape[:-1]).astype(dtype)
            if shape[-1]
            else np.zeros(shape, dtype)
        )
    args = (x, t)
    assert len(args) == len(spec.inputs), spec.inputs
    return args


# ----------------------------------------------------------------------------- parameters


def _dedup(values):
    out = []
    for v in values:
        if not any(v == u for u in out):
            out.append(v)
    return out


def float_values(p):
    """Valid values of a float parameter: its default, the ends of its range that are
    allowed, values close to an open end, and a few interior values."""
    lo, hi = p.lo, p.hi
    vals = [p.default]
    if math.isfinite(lo):
        vals.append(lo + 1e-3 if p.lo_open else lo)
    if math.isfinite(hi):
        vals.append(hi - 1e-3 if p.hi_open else hi)
    if math.isfinite(lo) and math.isfinite(hi):
        vals += [lo + (hi - lo) * f for f in (0.1, 0.5)]
    elif math.isfinite(lo):
        vals += [lo + d for d in (0.1, 0.5, 1.0, 2.5)]
    elif math.isfinite(hi):
        vals += [hi - d for d in (0.1, 0.5, 1.0, 2.5)]
    else:
        vals += [-1.0, 0.0, 0.9]
    vals = [float(v) for v in _dedup(vals) if p.in_range(v)]
    assert vals and vals[0] == p.default, (p.name, vals)
    return vals


def _values(spec, p):
    """Every value a parameter takes in the grid, default first.  Weights are symbolic
    ("full": the input's shape; "row": the input's last axis, broadcast; "class": one per
    class), made concrete by make_params."""
    if p.kind == "float":
        return float_values(p)
    if p.kind == "int":
        return [p.default, 1]  # 1: a class index that occurs in the targets
    if p.kind == "weight":
        return [None, "class"] if spec.kind == "class_axis" else [None, "full", "row"]
    raise AssertionError(f"unknown parameter kind {p.kind!r} of {spec.name}.{p.name}")


def param_grid(spec, variant=None):
    """[(id, {name: symbolic value})]: no keywords (the defaults); each parameter through
    its other valid values with the others left out; every parameter at once at its last
    grid value ("all").  Int parameters (target sentinels) stay at their defaults with
    probability targets, which do not take them."""
    fixed = {p.name for p in spec.params if p.kind == "int"} if variant == "probs" else set()
    grid = [("default", {})]
    for p in spec.params:
        if p.name in fixed:
            continue
        for v in _values(spec, p)[1:]:
            grid.append((f"{p.name}={v}", {p.name: v}))
    both = {p.name: _values(spec, p)[-1] for p in spec.params if p.name not in fixed}
    if len(both) > 1:
        grid.append(("all", both))
    return grid


def _weight_array(spec, value, xshape, dtype, rng, p):
    """A symbolic weight made concrete, of the compute dtype ``dtype``."""
    xshape = tuple(xshape)
    if value == "full":
        shape = xshape
    elif value == "row":
        shape = xshape[-1:]
    elif value == "class":
        shape = xshape[-1:]
    elif value == "bad-shape":  # broadcasts to nothing (one too many along the last axis)
        return np.ones((xshape[-1] + 1 if xshape else 2,), dtype)
    elif value == "non-numeric":
        return np.full(xshape[-1:], "1", dtype="U1")
    else:
        raise AssertionError(value)
    return rng.uniform(0.25, 2.0, size=shape).astype(dtype)


def make_params(spec, sym, xshape, dtype, rng):
    """The keyword arguments for a grid entry (or an invalid_params entry): symbolic
    weights become arrays for a first input of shape ``xshape`` (weights of the compute
    dtype ``dtype``); other values pass as they are.  Keywords absent from ``sym`` are
    left out, so the public defaults are exercised as defaults."""
    by_name = {p.name: p for p in spec.params}
    kw = {}
    for name, value in sym.items():
        p = by_name[name]
        if p.kind == "weight" and isinstance(value, str):
            value = _weight_array(spec, value, xshape, dtype, rng, p)
        kw[name] = value
    return kw


def invalid_params(spec):
    """[(id, name, value, exception, dtypes)]: invalid values derived from each parameter's
    kind and range, the exception the public function must raise, and the compute dtypes
    for which the value is invalid (None: all).

    float: NaN, +-inf, a value beyond float64 (ValueError), a string (TypeError), the
    closest values outside [lo, hi] (ValueError); for float32 inputs also a value beyond
    float32's range and, for scale-like parameters, a non-zero value below float32's
    normal range (ValueError).  int: a string and a float (TypeError), 2**63 (ValueError).
    weight: a shape that does not broadcast (ValueError), a string array (TypeError)."""
    cases = []
    for p in spec.params:
        n = p.name
        if p.kind == "float":
            cases += [
                (f"{n}=nan", n, math.nan, ValueError, None),
                (f"{n}=inf", n, math.inf, ValueError, None),
                (f"{n}=-inf", n, -math.inf, ValueError, None),
                (f"{n}=10**400", n, 10**400, ValueError, None),
                (f"{n}='a'", n, "a", TypeError, None),
            ]
            if math.isfinite(p.lo):
                below = p.lo if p.lo_open else float(np.nextafter(p.lo, -np.inf))
                cases.append((f"{n}={below!r}", n, below, ValueError, None))
                if p.lo_open and p.lo == 0:
                    cases.append((f"{n}=-0.0", n, -0.0, ValueError, None))
            if math.isfinite(p.hi):
                above = p.hi if p.hi_open else float(np.nextafter(p.hi, np.inf))
                cases.append((f"{n}={above!r}", n, above, ValueError, None))
            if p.in_range(1e39):
                cases.append((f"{n}=1e39-f32", n, 1e39, ValueError, (_F32,)))
            if p.scale_like and p.in_range(1e-40):
                cases.append((f"{n}=1e-40-f32", n, 1e-40, ValueError, (_F32,)))
        elif p.kind == "int":
            cases += [
                (f"{n}='a'", n, "a", TypeError, None),
                (f"{n}=1.5", n, 1.5, TypeError, None),
                (f"{n}=2**63", n, 2**63, ValueError, None),
            ]
        elif p.kind == "weight":
            cases += [
                (f"{n}=bad-shape", n, "bad-shape", ValueError, None),
                (f"{n}=non-numeric", n, "non-numeric", TypeError, None),
            ]
    return cases


def kinks(spec, kw):
    """Where the loss of a real-target spec is not smooth, as values of input - target:
    0 and +-each float parameter (Huber's delta, smooth-L1's beta, L1 at 0).  Other
    domains are smooth in the input for finite values: ()."""
    if spec.target_domain != "real":
        return ()
    vals = {0.0}
    for p in spec.floats:
        v = float(kw.get(p.name, p.default))
        vals |= {v, -v}
    return tuple(sorted(vals))


# ----------------------------------------------------------------------------- PyTorch


def _sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2.0, reduction="none"):
    """torchvision.ops.sigmoid_focal_loss, in torch operations (torchvision 0.2x)."""
    import torch.nn.functional as F

    p = inputs.sigmoid()
    ce_loss = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce_loss * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return {"none": lambda: loss, "mean": loss.mean, "sum": loss.sum}[reduction]()


# Twins that are not importable functions of torch itself.
_TORCH_INLINE = {"torchvision.ops.sigmoid_focal_loss": _sigmoid_focal_loss}


def torch_function(spec):
    """The PyTorch function ``spec.torch`` names (imported lazily)."""
    if spec.torch in _TORCH_INLINE:
        return _TORCH_INLINE[spec.torch]
    module, _, attr = spec.torch.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def _class_axis_to_1(a):
    """Our class axis is last; torch's is 1 (for inputs with a batch of 2+ dims)."""
    return a.movedim(-1, 1) if a.ndim > 2 else a


def torch_call(spec, x, t, params, reduction):
    """Calls ``spec``'s PyTorch twin as the library would compute ``spec.name(x, t,
    **params, reduction=reduction)`` and returns the loss tensor.

    ``x``: a float64 tensor (require grad on it to get the gradient), or an array;
    ``t``, ``params``: as the public function takes them (arrays, floats).  Every one of
    our keywords is passed by its own name with the registry's defaults filled in; a
    class-axis spec's class axis moves from last to 1.  An
    element-wise spec's per-element ``weight`` is applied here to the unreduced loss and
    the mean divides by the number of elements, as documented for fusedloss (torch's
    ``mse_loss(weight=)`` / ``l1_loss(weight=)`` divide a weighted mean by ``sum(weight)``
    instead, and want weights of the input's exact shape).
    """
    import torch

    f64 = torch.float64
    if not isinstance(x, torch.Tensor):
        x = torch.tensor(np.asarray(x, dtype=np.float64))
    t = np.asarray(t)
    tt = torch.tensor(t) if t.dtype.kind in "iu" else torch.tensor(t.astype(np.float64))
    kw = {}
    outside = None
    for p in spec.params:
        v = params.get(p.name, p.default)
        if p.kind == "weight":
            if v is None:
                continue
            v = torch.tensor(np.asarray(v, dtype=np.float64), dtype=f64)
            if spec.kind == "elementwise" and p.name == "weight":
                outside = v
                continue
        elif p.kind == "float":
            v = float(v)
        kw[p.name] = v
    fn = torch_function(spec)
    accepted = inspect.signature(fn).parameters
    missing = [k for k in kw if k not in accepted]
    assert not missing, f"{spec.torch} takes no {missing}"

    if spec.kind == "class_axis":
        xin = _class_axis_to_1(x)
        tin = _class_axis_to_1(tt) if tt.is_floating_point() else tt
        return fn(xin, tin, reduction=reduction, **kw)
    if outside is None:
        return fn(x, tt, reduction=reduction, **kw)
    loss = fn(x, tt, reduction="none", **kw) * outside
    return {"none": lambda: loss, "mean": loss.mean, "sum": loss.sum}[reduction]()


# ----------------------------------------------------------------------------- fuzzing

FUZZ_ERRORS = (ValueError, TypeError, IndexError)  # the documented exceptions
_F32_MAX = float(np.finfo(np.float32).max)
_F32_TINY = float(np.finfo(np.float32).tiny)

_X_DTYPES = (
    "float16",
    "float32",
    "float64",
    "float32",
    "float64",
    ">f8",
    ">f4",
    "int8",
    "int32",
    "int64",
    "uint8",
    "bool",
)
_TARGET_DTYPES = ("float32", "float64", "float16", ">f8", "int32", "uint8", "bool")
_INDEX_DTYPES = ("int64", "int64", "int32", "int16", "uint8", ">i8")
_PROB_DTYPES = ("float32", "float64", "float16", ">f8")
_WEIGHT_DTYPES = ("float32", "float64", "float16", ">f8", "int32")
_NON_NUMERIC = ("complex128", "U1")
_LAYOUTS = ("contiguous",) * 3 + ("strided", "transposed", "reversed")
# Values planted in drawn arrays (at most three per array; float16 holds 1e4 and rounds
# 1e-30 to 0).  No infinities: at infinite inputs some losses differ from the reference in
# documented, loss-specific ways (see tests/test_fuzz.py); NaN propagates alike in both.
_SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, 30.0, -30.0, 80.0, -80.0, 1e4, -1e4, 1e-30, math.nan)
_UNIT_SPECIAL = (0.0, 1.0, 0.5, 0.375)
_BAD_REDUCTIONS = ("avg", "MEAN", None, 1, "none ")
_BAD_BUFFERS = ("shape", "dtype", "byteswapped", "noncontig", "readonly")
_BUFFERS_CHAOS = ("none",) * 4 + ("good",) + _BAD_BUFFERS


class FuzzCall:
    """One random call of a spec's public function: positional ``args``, keyword
    ``kwargs``, and ``expect``, the exception types it must raise (empty: it must
    succeed), with ``why`` saying which argument was made invalid.

    ``mode``: "valid" (every argument valid, though a few rules can still make one
    invalid, e.g. a parameter that np.float32 rounds onto an open end of its range), "one"
    (exactly the argument named by ``fault`` is made invalid) or "many" (each argument is
    made invalid with some probability)."""

    def __init__(self, spec, variant, mode="valid", fault=None):
        self.spec, self.variant, self.mode, self.fault = spec, variant, mode, fault
        self.args, self.kwargs = [], {}
        self.expect, self.why = set(), []
        self.cdt = np.dtype(np.float64)  # the compute dtype of the first input

    def bad(self, exc, why):
        self.expect.add(exc)
        self.why.append(why)

    def __repr__(self):
        def show(v):
            if isinstance(v, np.ndarray):
                return (
                    f"array({v.tolist()!r}, dtype={v.dtype.str}, shape={v.shape}, "
                    f"strides={v.strides}, writeable={v.flags.writeable})"
                )
            return repr(v)

        args = ", ".join(show(a) for a in self.args)
        kws = ", ".join(
            f"{k}={'<the first input>' if self.args and v is self.args[0] else show(v)}"
            for k, v in self.kwargs.items()
        )
        expect = sorted(e.__name__ for e in self.expect) or "success"
        return f"{self.spec.name}({args}, {kws})  expect={expect} why={self.why}"

    @property
    def chaos(self):
        return self.mode != "valid"


def _fault_points(spec, variant):
    """The arguments a "one" example may make invalid."""
    points = ["input", "target", "reduction", "out", "grad_out"] + [p.name for p in spec.params]
    if spec.kind == "class_axis":
        points.append("class axis")
    if spec.target_domain == "index" and variant == "index":
        points += ["class index"] * 2
    return points


def _chance(draw, call, n, point):
    """Whether to make the argument ``point`` invalid: in a "one" example when it is the
    fault, in a "many" example with probability 1/n, never in a "valid" one."""
    if call.mode == "one":
        return call.fault == point
    return call.mode == "many" and draw(st.integers(1, n)) == 1


def _layout(a, layout):
    """The values of ``a`` in another memory layout (a view of a larger array, Fortran
    order, negative strides)."""
    if layout == "contiguous" or a.ndim == 0:
        return a
    if layout == "strided":
        big = np.zeros(a.shape[:-1] + (2 * a.shape[-1],), a.dtype)
        v = big[..., ::2]
        v[...] = a
        return v
    if layout == "transposed":
        return np.ascontiguousarray(a.T).T
    if layout == "reversed":
        return np.ascontiguousarray(a[::-1])[::-1]
    raise AssertionError(layout)


def _draw_array(draw, rng, shape, dtype, domain="real", specials=_SPECIAL):
    """An array of ``shape`` and ``dtype`` in a drawn layout.  Bulk values come from
    ``rng`` (seeded by the example); up to three are drawn from ``specials``.
    domain "real": ~N(0, 3^2) (integers in [-5, 5]); "unit": in [0, 1], drawn hard (0/1)
    or soft; "positive": in [0.25, 2] (integers in [1, 3])."""
    dt = np.dtype(dtype)
    n = math.prod(shape)
    if dt.kind == "b":
        a = rng.integers(0, 2, n).astype(bool)
    elif dt.kind in "iu":
        info = np.iinfo(dt)
        lo, hi = {"unit": (0, 1), "positive": (1, 3)}.get(domain, (-5, 5))
        a = rng.integers(max(lo, info.min), min(hi, info.max) + 1, n)
    elif dt.kind == "f":
        if domain == "unit":
            a = rng.uniform(size=n)
            if draw(st.booleans()):
                a = np.round(a)
            specials = _UNIT_SPECIAL
        elif domain == "positive":
            a = rng.uniform(0.25, 2.0, n)
            specials = ()
        else:
            a = rng.normal(size=n) * 3.0
        for _ in range(draw(st.integers(0, min(n, 3))) if specials else 0):
            a[draw(st.integers(0, n - 1))] = draw(st.sampled_from(specials))
    else:  # non-numeric
        a = np.ones(n)
    with np.errstate(all="ignore"):
        a = a.astype(dt).reshape(shape)
    return _layout(a, draw(st.sampled_from(_LAYOUTS)))


def _draw_float_param(draw, call, p):
    """A float parameter: left out, a valid value (a grid value or any value of its range
    within [-10, 10], as a float, np.float64 or np.float32), or, in a chaos example, an
    invalid one of invalid_params.  float32 inputs refuse values beyond float32's range
    and, for scale-like parameters, non-zero values below its normal range."""
    if _chance(draw, call, 5, p.name):
        bad = [(v, e, d) for _, n, v, e, d in invalid_params(call.spec) if n == p.name]
        v, exc, dts = draw(st.sampled_from(bad + [(None, TypeError, None)]))
        call.kwargs[p.name] = v
        if dts is None or call.cdt in dts:
            call.bad(exc, f"{p.name}={v!r}")
        return
    if draw(st.integers(0, 2)) == 0:
        return  # the default
    lo, hi = max(p.lo, -10.0), min(p.hi, 10.0)
    ranged = st.floats(
        lo, hi, exclude_min=p.lo_open and lo == p.lo, exclude_max=p.hi_open and hi == p.hi
    )
    v = draw(st.one_of(st.sampled_from(float_values(p)), ranged))
    v = draw(st.sampled_from([float, np.float64, np.float32]))(v)
    call.kwargs[p.name] = v
    if not p.in_range(float(v)):  # a value that float32 rounds onto an open end
        call.bad(ValueError, f"{p.name}={v!r} out of range")
    elif call.cdt == _F32 and (
        abs(float(v)) > _F32_MAX or p.scale_like and 0 < abs(float(v)) < _F32_TINY
    ):
        call.bad(ValueError, f"{p.name}={v!r} not representable in float32")


def _draw_int_param(draw, call, p):
    """An int parameter (a sentinel class index such as ignore_index): left out, a valid
    value, or (chaos) an invalid one of invalid_params.  Probability targets take it only
    at its default."""
    if _chance(draw, call, 5, p.name):
        bad = [(v, e) for _, n, v, e, _ in invalid_params(call.spec) if n == p.name]
        v, exc = draw(st.sampled_from(bad))
        call.kwargs[p.name] = v
        call.bad(exc, f"{p.name}={v!r}")
        if call.variant == "probs":  # which check comes first is not specified
            call.bad(ValueError, f"{p.name}={v!r} with probability targets")
        return
    if call.variant == "probs" and not call.chaos or draw(st.booleans()):
        return  # the default
    v = draw(st.sampled_from([p.default, 0, 1, -1, 2**40]))
    call.kwargs[p.name] = v
    if call.variant == "probs" and v != p.default:
        call.bad(ValueError, f"{p.name}={v!r} with probability targets")


def _weight_ok(spec, wshape, xshape):
    """Whether a weight of ``wshape`` is accepted: class-axis specs take one value per class,
    element-wise specs any shape that broadcasts to the input's (NumPy's rules)."""
    if spec.kind == "class_axis":
        return tuple(wshape) == tuple(xshape[-1:]) and len(xshape) > 0
    if len(wshape) > len(xshape):
        return False
    return all(a in (1, b) for a, b in zip(reversed(wshape), reversed(xshape)))


def _draw_weight(draw, call, rng, p, xshape):
    """A weight: left out, None, a valid array (class-axis: one per class; element-wise:
    the input's shape or a broadcast suffix of it with some axes 1, down to 0-d), or
    (chaos) one of a shape that does not broadcast, or a non-numeric one."""
    if call.mode == "one":
        r = draw(st.integers(4, 5)) if call.fault == p.name else draw(st.integers(0, 3))
    else:
        r = draw(st.integers(0, 5 if call.chaos else 3))
    if r == 0:
        return
    if r == 1:
        call.kwargs[p.name] = None
        return
    nd = len(xshape)
    if r in (2, 3):
        if call.spec.kind == "class_axis":
            ws = tuple(xshape[-1:])
        else:
            k = draw(st.integers(0, nd))
            ws = tuple(s if draw(st.booleans()) else 1 for s in xshape[nd - k :])
    elif r == 4:
        ws = draw(
            st.sampled_from(
                [
                    xshape[:-1] + (xshape[-1] + 2,) if nd else (2,),
                    (2,) + tuple(xshape),
                ]
            )
        )
    if r == 5:
        w = np.full(xshape[-1:], "1", "U1")
    else:
        w = _draw_array(draw, rng, ws, draw(st.sampled_from(_WEIGHT_DTYPES)), "positive")
    call.kwargs[p.name] = w
    if r == 5:
        call.bad(TypeError, f"{p.name} non-numeric")
    elif not _weight_ok(call.spec, w.shape, xshape):
        call.bad(ValueError, f"{p.name} of shape {w.shape} for an input of shape {xshape}")


def _draw_target(draw, call, rng, xshape):
    """The second input by the spec's target_domain and the call's variant, with (chaos) a
    wrong shape, a wrong kind or out-of-range class indices."""
    spec, variant = call.spec, call.variant
    if spec.target_domain == "index" and variant == "index":
        batch = tuple(xshape[:-1])
        C = xshape[-1] if xshape else 0
        tdt = np.dtype(draw(st.sampled_from(_INDEX_DTYPES)))
        info = np.iinfo(tdt)
        t = rng.integers(0, max(C, 1), size=batch).astype(tdt)
        flat = t.reshape(-1)
        sentinels = [call.kwargs.get(p.name, p.default) for p in spec.params if p.kind == "int"]
        sentinels = [s for s in sentinels if isinstance(s, int) and info.min <= s <= info.max]
        for k, s in enumerate(sentinels):
            if draw(st.booleans()):
                flat[1 + k :: 3] = s
        if flat.size and _chance(draw, call, 4, "class index"):
            oob = [v for v in (C, C + 3, -1, -7) if info.min <= v <= info.max]
            oob = [v for v in oob if v not in sentinels]
            flat[draw(st.integers(0, flat.size - 1))] = draw(st.sampled_from(oob))
            call.bad(IndexError, "a class index out of range")
        t = _layout(t, draw(st.sampled_from(_LAYOUTS)))
        r = draw(st.integers(0, 2)) if _chance(draw, call, 6, "target") else None
        if r == 0:
            t = np.zeros(batch + (1,), tdt)
            call.bad(ValueError, "class indices of the wrong shape")
        elif r == 1:
            t = np.zeros(batch, draw(st.sampled_from(["float64", "float32"])))
            call.bad(ValueError, "floating class indices")
        elif r == 2:
            t = np.zeros(batch, draw(st.sampled_from(["bool"] + list(_NON_NUMERIC))))
            call.bad(TypeError, f"class indices of dtype {t.dtype}")
        return t
    if variant == "probs":
        tdt = draw(st.sampled_from(_PROB_DTYPES))
        domain = "unit"
    else:
        tdt = draw(st.sampled_from(_TARGET_DTYPES))
        domain = "unit" if spec.target_domain == "unit" else "real"
    shape = tuple(xshape)
    r = draw(st.integers(0, 2)) if _chance(draw, call, 6, "target") else None
    if r == 0:
        shape = draw(st.sampled_from([shape + (1,), (2,) + shape]))
        call.bad(ValueError, "a target of the wrong shape")
    elif r == 1 and shape:
        shape = shape[:-1] + (shape[-1] + 1,)
        call.bad(ValueError, "a target of the wrong shape")
    elif r == 2:
        tdt = draw(st.sampled_from(_NON_NUMERIC))
        call.bad(TypeError, f"a target of dtype {tdt}")
    return _draw_array(draw, rng, shape, tdt, domain)


def _draw_buffer(draw, kind, shape, cdt):
    """An out / grad_out buffer of a kind; returns (buffer, valid?).  Validity is read off
    the array itself (a strided view of an empty array is C-contiguous, for one)."""
    other = np.dtype(np.float32 if cdt == np.float64 else np.float64)
    if kind == "good":
        b = np.full(shape, 7.0, cdt)
    elif kind == "shape":
        b = np.full(tuple(shape) + (1,), 7.0, cdt)
    elif kind == "dtype":
        b = np.full(shape, 7.0, other)
    elif kind == "byteswapped" or kind == "noncontig" and not (shape and math.prod(shape)):
        b = np.full(shape, 7.0, cdt.newbyteorder())
    elif kind == "noncontig":
        b = np.full(tuple(shape[:-1]) + (2 * shape[-1],), 7.0, cdt)[..., ::2]
    elif kind == "readonly":
        b = np.full(shape, 7.0, cdt)
        b.flags.writeable = False
    else:
        raise AssertionError(kind)
    ok = (
        b.shape == tuple(shape)
        and b.dtype == cdt
        and b.flags.c_contiguous
        and b.flags.writeable
        and b.flags.aligned
    )
    return b, ok


def _draw_common(draw, call, x, lshape):
    """reduction, return_grad, n_threads, out and grad_out (valid, invalid, in place)."""
    kw, cdt = call.kwargs, call.cdt
    if _chance(draw, call, 8, "reduction"):
        kw["reduction"] = draw(st.sampled_from(_BAD_REDUCTIONS))
        call.bad(ValueError, f"reduction={kw['reduction']!r}")
    elif draw(st.integers(0, 3)):
        kw["reduction"] = draw(st.sampled_from(["mean", "sum", "none"]))
    reduction = kw.get("reduction", "mean")
    if draw(st.integers(0, 3)):
        kw["return_grad"] = draw(st.booleans())
    return_grad = kw.get("return_grad", False)
    if draw(st.booleans()):
        kw["n_threads"] = draw(st.sampled_from([None, 1, 2, 3]))
    # out
    if call.mode == "many":
        kind = draw(st.sampled_from(_BUFFERS_CHAOS))
    elif call.fault == "out":
        kind = draw(st.sampled_from(_BAD_BUFFERS + (("good",) if reduction != "none" else ())))
    else:
        kind = draw(st.sampled_from(["none", "good"])) if reduction == "none" else "none"
    if kind != "none":
        kw["out"], ok = _draw_buffer(draw, kind, lshape, cdt)
        if not ok:
            call.bad(ValueError, f"out ({kind})")
        elif reduction != "none":
            call.bad(ValueError, "out without reduction='none'")
    # grad_out: a buffer, or the first input itself (in place)
    in_place = (
        isinstance(x, np.ndarray)
        and x.dtype == cdt
        and x.flags.c_contiguous
        and x.flags.aligned
        and x.flags.writeable
    )
    if call.mode == "many":
        kind = draw(st.sampled_from(_BUFFERS_CHAOS + ("input", "input")))
    elif call.fault == "grad_out":
        kind = draw(st.sampled_from(_BAD_BUFFERS + ("input",) + (() if return_grad else ("good",))))
    elif return_grad:
        kind = draw(st.sampled_from(["none", "good", "input" if in_place else "good"]))
    else:
        kind = "none"
    if kind == "input":
        kw["grad_out"] = x
        if not in_place:
            call.bad(ValueError, "grad_out=the first input, not of the compute dtype, C-contiguous")
    elif kind != "none":
        kw["grad_out"], ok = _draw_buffer(draw, kind, np.shape(x), cdt)
        if not ok:
            call.bad(ValueError, f"grad_out ({kind})")
    if "grad_out" in kw and not return_grad:
        call.bad(ValueError, "grad_out without return_grad")


@st.composite
def fuzz_calls(draw, spec):
    """A random call of ``spec``'s public function (a :class:`FuzzCall`).

    Half the examples are valid; a quarter make one argument invalid, a quarter any number
    of them, in ways whose exception the API documents (ValueError, TypeError,
    IndexError).  Everything is derived from the spec: its kind and target_domain (shapes,
    targets), its params (kinds and ranges, through float_values / invalid_params)."""
    variant = draw(st.sampled_from(target_variants(spec)))
    mode = draw(st.sampled_from(["valid", "valid", "one", "many"]))
    fault = draw(st.sampled_from(_fault_points(spec, variant))) if mode == "one" else None
    call = FuzzCall(spec, variant, mode, fault)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))  # the "none" loss's shape
    xshape = shape
    if spec.kind == "class_axis":
        xshape = shape + (draw(st.integers(1, 5)),)
        if _chance(draw, call, 12, "class axis"):
            xshape = shape = ()
            call.bad(ValueError, "no class axis")
    if _chance(draw, call, 12, "input"):
        xdt = draw(st.sampled_from(_NON_NUMERIC))
        call.bad(TypeError, f"a first input of dtype {xdt}")
    else:
        xdt = draw(st.sampled_from(_X_DTYPES))
        dt = np.dtype(xdt)
        call.cdt = _F32 if dt.kind == "f" and dt.itemsize <= 4 else np.dtype(np.float64)
    x = _draw_array(draw, rng, xshape, xdt)
    for p in spec.params:
        if p.kind == "float":
            _draw_float_param(draw, call, p)
        elif p.kind == "int":
            _draw_int_param(draw, call, p)
        elif p.kind == "weight":
            _draw_weight(draw, call, rng, p, xshape)
        else:
            raise AssertionError(f"unknown parameter kind {p.kind!r} of {spec.name}.{p.name}")
    t = _draw_target(draw, call, rng, xshape)
    call.args = [x, t]
    _draw_common(draw, call, x, loss_shape(spec, xshape) if xshape else ())
    return call


# ----------------------------------------------------------------------------- mpmath oracles

ORACLE_DPS = 50


@dataclass(frozen=True)
class Oracle:
    """A spec's loss in mpmath, written from its mathematical definition (not from the
    kernels or fusedloss.reference).

    ``fn(x, t, p)`` for element-wise specs: one element's ``(loss, d loss / d x)``;
    ``fn(z, target, p)`` for class-axis specs: one row's ``(loss, [d loss / d z_j],
    count)``, ``target`` a class index (int) or a list of class probabilities, ``count``
    the row's share of the ``"mean"`` denominator.  ``x``, ``t``, ``z``: mpf; ``p``: the
    keywords (float params as mpf, int params as int, a weight as the element's mpf or, for
    class-axis specs, the row's list of per-class mpf: 1 where the weight is not given).

    Each value is an mpf or a tuple of mpf *terms* that it is the sum of.  Errors are
    measured relative to the sum of the terms' magnitudes: a closed form that is one term
    (or terms of one sign) demands full relative accuracy, down to 1e-35 gradients of
    saturated predictions; a difference of terms demands accuracy relative to the terms,
    which is all rounding allows where they cancel.  rtol64 / rtol32: the bounds for
    float64 inputs, and for float32 inputs (the same values rounded to float32)."""

    fn: object
    rtol64: float = 1e-13
    rtol32: float = 1e-6


def _sigmoid(x):
    return 1 / (1 + mpmath.exp(-x))


def _log1pexp(x):
    """log(1 + e^x) = -log sigmoid(-x) (mpmath's exponent range has no overflow)."""
    return mpmath.log1p(mpmath.exp(x))


def _bce_oracle(x, t, p):
    """-w [pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], where -log sigmoid(x) =
    log(1 + e^-x) and -log(1 - sigmoid(x)) = log(1 + e^x); its derivative
    w [(1 - t) sigmoid(x) - pw t (1 - sigmoid(x))], with 1 - sigmoid(x) = sigmoid(-x)."""
    w, pw = p["weight"], p["pos_weight"]
    loss = (w * pw * t * _log1pexp(-x), w * (1 - t) * _log1pexp(x))
    grad = (w * (1 - t) * _sigmoid(x), -w * pw * t * _sigmoid(-x))
    return loss, grad


def _focal_oracle(x, t, p):
    """torchvision's focal loss times the weight: s = sigmoid(x), ce the BCE of (x, t),
    p_t = s t + (1 - s)(1 - t), loss = w a_t ce (1 - p_t)^gamma, a_t = alpha t +
    (1 - alpha)(1 - t) (1 if alpha < 0).  With q = 1 - p_t = s (1 - t) + (1 - s) t:
    d ce / dx = s - t = s (1 - t) - (1 - s) t and dq/dx = s (1 - s)(1 - 2t), so
    d loss / dx = w a_t [(s - t) q^gamma + gamma ce q^(gamma - 1) s (1 - s)(1 - 2t)]."""
    alpha, gamma, w = p["alpha"], p["gamma"], p["weight"]
    s, s_neg = _sigmoid(x), _sigmoid(-x)  # s and 1 - s
    ce = t * _log1pexp(-x) + (1 - t) * _log1pexp(x)
    q = s * (1 - t) + s_neg * t
    c = w * (alpha * t + (1 - alpha) * (1 - t) if alpha >= 0 else 1)
    grad = (c * s * (1 - t) * q**gamma, -c * s_neg * t * q**gamma)
    if gamma != 0:
        grad += (c * gamma * ce * q ** (gamma - 1) * s * s_neg * (1 - 2 * t),)
    return c * ce * q**gamma, grad


def _huber_oracle(x, t, p):
    """e = x - t: w e^2 / 2 for |e| <= delta, else w delta (|e| - delta / 2);
    derivative w e, or w delta sign(e)."""
    e, d, w = x - t, p["delta"], p["weight"]
    if abs(e) <= d:
        return w * e * e / 2, w * e
    return w * d * (abs(e) - d / 2), w * d * mpmath.sign(e)


def _smooth_l1_oracle(x, t, p):
    """e = x - t: w e^2 / (2 beta) for |e| < beta, else w (|e| - beta / 2) (beta = 0: the
    L1 loss); derivative w e / beta, or w sign(e) (sign(0) = 0)."""
    e, b, w = x - t, p["beta"], p["weight"]
    if abs(e) < b:
        return w * e * e / (2 * b), w * e / b
    return w * (abs(e) - b / 2), w * mpmath.sign(e)


def _mse_oracle(x, t, p):
    """w (x - t)^2; derivative 2 w (x - t)."""
    e, w = x - t, p["weight"]
    return w * e * e, 2 * w * e


def _l1_oracle(x, t, p):
    """w |x - t|; derivative w sign(x - t) (0 at x == t)."""
    e, w = x - t, p["weight"]
    return w * abs(e), w * mpmath.sign(e)


def _softmax_ce_oracle(z, target, p):
    """torch.nn.functional.cross_entropy of one row, class axis last.  With the smoothed
    target y'_c = (1 - eps) y_c + eps / C (y one-hot for a class index) and a_c = w_c y'_c:
    loss = sum_c a_c (-log p_c), p = softmax(z), where -log p_c = log sum_j e^(z_j - z_c)
    = log1p(sum_{j != c} e^(z_j - z_c)) and p_c = 1 / sum_j e^(z_j - z_c);
    d loss / d z_j = sum_c a_c (p_j - [j == c]) = p_j sum_{c != j} a_c - a_j sum_{k != j} p_k
    (one term for a class index without smoothing).  A class index equal to ignore_index:
    loss 0, gradient 0, not counted.  The mean divides by the summed w_t of the counted
    rows (class indices) or by the number of rows (probabilities)."""
    C = len(z)
    w, eps = p["weight"], p["label_smoothing"]
    zero = mpmath.mpf(0)
    if isinstance(target, int):
        if target == p["ignore_index"]:
            return zero, [zero] * C, zero
        y = [mpmath.mpf(c == target) for c in range(C)]
        count = w[target]
    else:
        y, count = target, mpmath.mpf(1)
    a = [w[c] * ((1 - eps) * y[c] + eps / C) for c in range(C)]
    ez = [[mpmath.exp(z[j] - z[c]) for j in range(C)] for c in range(C)]  # e^(z_j - z_c)
    nlogp = [mpmath.log1p(mpmath.fsum(ez[c][j] for j in range(C) if j != c)) for c in range(C)]
    prob = [1 / mpmath.fsum(ez[c]) for c in range(C)]
    loss = tuple(a[c] * nlogp[c] for c in range(C))
    grad = [
        (
            prob[j] * mpmath.fsum(a[c] for c in range(C) if c != j),
            -a[j] * mpmath.fsum(prob[k] for k in range(C) if k != j),
        )
        for j in range(C)
    ]
    return loss, grad, count


ORACLES = {
    "softmax_cross_entropy": Oracle(_softmax_ce_oracle),
    "binary_cross_entropy_with_logits": Oracle(_bce_oracle),
    "sigmoid_focal_loss": Oracle(_focal_oracle),
    "huber_loss": Oracle(_huber_oracle),
    "smooth_l1_loss": Oracle(_smooth_l1_oracle),
    "mse_loss": Oracle(_mse_oracle, rtol64=1e-14),
    "l1_loss": Oracle(_l1_oracle, rtol64=1e-14),
}

ACCURACY_ROW = 4  # the last axis of the element-wise accuracy inputs
_ACC_LOGITS = (0.0, 1e-300, -1e-300, 0.5, -0.5, 2.5, -2.5, 10.0, -10.0, 30.0, -30.0)
_ACC_LOGITS += (36.75, -36.75, 80.0, -80.0)
_ACC_UNIT_TARGETS = (0.0, 1.0, 0.375, 0.5)
_ACC_ERRORS = (0.0, 1e-300, -1e-300, 1e-160, -3e-154, 1e-30, 1e-8, -1e-8, 0.3, -0.3)
_ACC_ERRORS += (1e3, -1e3, 1e20, -1e20, 1e150, -1e150, 1e300)
_ACC_REAL_TARGETS = (0.0, -0.7, 1e4)
_ACC_ROWS = (
    (80.0, 0.0, -80.0, 1.0, 2.0),
    (0.0, 0.0, 80.0, 0.0, 0.0),  # a dominant class: loss ~1e-35 on it
    (-80.0, -80.0, -80.0, -80.0, -80.0),
    (80.0, 80.0, 0.0, 0.0, -80.0),
    (80.5, 0.25, -3.0, 7.0, -80.0),
    (36.75, -36.75, 0.0, 0.5, -0.5),
    (1e-300, 0.0, -1e-300, 0.0, 0.0),
)


def _pairs(xs, ts, dtype):
    """Element-wise (x, t) arrays of shape (n, ACCURACY_ROW) in ``dtype``: the pairs whose
    values ``dtype`` holds (rounded to it), then ordinary ones up to a full last row."""
    with np.errstate(over="ignore"):
        x = np.asarray(xs, np.float64).astype(dtype)
        t = np.asarray(ts, np.float64).astype(dtype)
    keep = np.isfinite(x) & np.isfinite(t)
    x, t = x[keep], t[keep]
    n = -(-(x.size + 12) // ACCURACY_ROW) * ACCURACY_ROW - x.size
    return x, t, n


def accuracy_inputs(spec, variant, kw, dtype, rng):
    """Fixed inputs (x, t) of the oracle checks, by ``spec.target_domain``; values of
    ``dtype`` (rounded to it; pairs it cannot hold are left out):

    * "unit": every logit of _ACC_LOGITS (|x| up to 80 and +-1e-300) with every target of
      0, 1, 0.375 and 0.5, and ordinary pairs;
    * "real": errors e = x - t from +-1e-300 to 1e300 and, at every kink k of the loss
      (kinks(): 0 and +-its float parameters), e = k (1 -+ 2^-40), k, 5k; each with
      targets 0, -0.7 and 1e4 (the oracle uses the exact difference of the stored values),
      and ordinary pairs;
    * "index" (N_CLASSES classes): rows with +-80, ties, a dominant class, +-1e-300, and
      ordinary rows; class indices at each row's largest, next and smallest logit, every
      4th row from the second set to the int parameters' values (ignore_index) as
      make_args does, or (variant "probs") probabilities: one-hot, smoothed one-hot and
      random.

    Element-wise inputs have shape (n, ACCURACY_ROW), so "row" weights vary."""
    dtype = np.dtype(dtype)
    if spec.target_domain in ("unit", "real"):
        if spec.target_domain == "unit":
            pairs = [(x, t) for x in _ACC_LOGITS for t in _ACC_UNIT_TARGETS]
        else:
            errors = list(_ACC_ERRORS)
            for k in kinks(spec, kw):
                if k != 0:
                    errors += [k * (1 - 2.0**-40), k, k * (1 + 2.0**-40), 5 * k]
            pairs = [(t + e, t) for e in errors for t in _ACC_REAL_TARGETS]
        x, t, n = _pairs([a for a, _ in pairs], [b for _, b in pairs], dtype)
        xo = (rng.normal(size=n) * 3).astype(dtype)
        if spec.target_domain == "unit":
            to = rng.uniform(size=n)
            to[::3] = np.round(to[::3])
        else:
            to = rng.normal(size=n) * 3
        x = np.concatenate([x, xo]).reshape(-1, ACCURACY_ROW)
        t = np.concatenate([t, to.astype(dtype)]).reshape(-1, ACCURACY_ROW)
        return x, t
    if spec.target_domain != "index":
        raise AssertionError(f"no accuracy inputs for target_domain {spec.target_domain!r}")
    C = N_CLASSES
    base = [(list(r) + [0.0] * C)[:C] for r in _ACC_ROWS]
    base += list(rng.normal(size=(4, C)) * 3)
    rows, targets = [], []
    for r in base:
        hi, lo = int(np.argmax(r)), int(np.argmin(r))
        if variant == "index":
            for c in (hi, (hi + 1) % C, lo):
                rows.append(r)
                targets.append(c)
        else:
            one_hot = np.eye(C)[hi]
            smoothed = 0.25 / C + 0.75 * np.eye(C)[lo]
            for y in (one_hot, smoothed, rng.dirichlet(np.ones(C))):
                rows.append(r)
                targets.append(y)
    x = np.asarray(rows, np.float64).astype(dtype)
    if variant == "index":
        t = np.asarray(targets, np.int64)
        for k, sentinel in enumerate(_sentinels(spec, kw)):
            t[1 + k :: 4] = sentinel
    else:
        t = np.asarray(targets, np.float64).astype(dtype)
    return x, t


def _mp_sum(terms):
    """(the sum, the sum of magnitudes) of a value given as an mpf or a tuple of terms."""
    terms = terms if isinstance(terms, tuple) else (terms,)
    return mpmath.fsum(terms), mpmath.fsum(abs(v) for v in terms)


def oracle_arguments(spec, x, t, kw):
    """Yields ``(i, u, target, p)`` for every element (element-wise specs) or row
    (class-axis specs) ``i`` of the "none" loss: the oracle's arguments ``oracle.fn(u,
    target, p)`` at the exact values of ``x``, ``t`` and the public keywords ``kw``
    (weights of the compute dtype): mpf, a list of mpf (a row of logits or of class
    probabilities), or an int (a class index)."""
    floats = {p.name: mpmath.mpf(float(kw.get(p.name, p.default))) for p in spec.floats}
    ints = {p.name: int(kw.get(p.name, p.default)) for p in spec.params if p.kind == "int"}
    x, t = np.asarray(x), np.asarray(t)
    weights = {}
    for p in spec.weights:
        w = kw.get(p.name)
        w = np.asarray(1.0 if w is None else w, np.float64)
        if spec.kind == "class_axis":
            weights[p.name] = [mpmath.mpf(float(v)) for v in np.broadcast_to(w, x.shape[-1:])]
        else:
            weights[p.name] = np.broadcast_to(w, x.shape)
    for i in np.ndindex(loss_shape(spec, x.shape)):
        p = dict(floats, **ints)
        if spec.kind == "class_axis":
            p.update(weights)
            u = [mpmath.mpf(float(v)) for v in x[i]]
            if t.dtype.kind in "iu":
                target = int(t[i])
            else:
                target = [mpmath.mpf(float(v)) for v in t[i]]
        else:
            p.update({k: mpmath.mpf(float(v[i])) for k, v in weights.items()})
            u, target = mpmath.mpf(float(x[i])), mpmath.mpf(float(t[i]))
        yield i, u, target, p


def oracle_values(spec, x, t, kw):
    """The spec's oracle at the exact values of ``x``, ``t`` and the public keywords
    ``kw`` (weights of the compute dtype), at ORACLE_DPS digits.

    Returns float64 arrays and numbers (rounded from the mpmath values: beyond float64's
    range they are +-inf, below it 0 or subnormal): "loss" and "grad", each (true, scale),
    the scale the sum of the magnitudes of the closed form's terms; "sum" and "mean" of
    the losses (true, scale; "mean" None over nothing) and "denom", the mean's
    denominator; "slices": (sum, scale, denom) of each leading-axis slice x[r]."""
    oracle = ORACLES[spec.name]
    xshape = np.shape(x)
    lshape = loss_shape(spec, xshape)
    loss = np.zeros((2,) + lshape)
    grad = np.zeros((2,) + xshape)
    with mpmath.workdps(ORACLE_DPS):
        zero = mpmath.mpf(0)
        n_slices = lshape[0] if lshape else 1
        slices = [[zero, zero, zero] for _ in range(n_slices)]
        for i, u, target, p in oracle_arguments(spec, x, t, kw):
            if spec.kind == "class_axis":
                lo, g, count = oracle.fn(u, target, p)
                for j, gj in enumerate(g):
                    grad[(slice(None),) + i + (j,)] = [float(v) for v in _mp_sum(gj)]
            else:
                lo, g = oracle.fn(u, target, p)
                count = 1
                grad[(slice(None),) + i] = [float(v) for v in _mp_sum(g)]
            value, scale = _mp_sum(lo)
            loss[(slice(None),) + i] = [float(value), float(scale)]
            acc = slices[i[0] if i else 0]
            acc[0] += value
            acc[1] += scale
            acc[2] += count
        total, total_scale, denom = (mpmath.fsum(s[k] for s in slices) for k in range(3))
        return {
            "loss": (loss[0], loss[1]),
            "grad": (grad[0], grad[1]),
            "sum": (float(total), float(total_scale)),
            "mean": (float(total / denom), float(total_scale / denom)) if denom else None,
            "denom": float(denom),
            "slices": [tuple(float(v) for v in s) for s in slices],
        }
