"""The loss table of the generic tests (tests/test_registry.py).

One table, made from :data:`fusedloss._registry.LOSSES` (in the spirit of bottleneck's
``func_dict()`` and scikit-learn's ``_LOSSES``): for every spec it gives

* :func:`make_args` -- the positional arguments, by the spec's ``kind`` and
  ``target_domain``;
* :func:`param_grid` / :func:`make_params` -- valid keyword values, derived from each
  :class:`~fusedloss._registry.Param`'s kind and range;
* :func:`invalid_params` -- invalid keyword values and the exception each must raise,
  derived the same way;
* :func:`torch_call` -- the spec's PyTorch twin (``spec.torch``) called with our keywords.

Everything loss-specific the generic tests need lives here and is keyed by spec
attributes (kind, target_domain, the params' kinds and ranges), not by loss name: a new
element-wise spec needs no edit here.  The only names are PyTorch's: the twin that has no
importable function (``torchvision.ops.sigmoid_focal_loss``; torchvision is not a test
dependency) is written out in torch operations below.

Shapes.  A test shape is the shape of the ``reduction="none"`` loss: element-wise losses
take it as the input's shape, class-axis losses as the batch shape and get
:data:`N_CLASSES` classes last (:func:`input_shape`).  :func:`make_args` itself takes the
first input's shape.
"""

import importlib
import inspect
import math

import numpy as np

from fusedloss._registry import LOSSES

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
