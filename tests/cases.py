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
import warnings
import zlib
from dataclasses import dataclass

import numpy as np
import pytest
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
    "oracle_gradients",
    "oracle_values",
]

N_CLASSES = 5
_F32 = np.dtype(np.float32)


# ----------------------------------------------------------------------------- shapes

ROW_LEN = 6  # the last axis of the inputs of "multi" specs with rows


def input_shape(spec, shape):
    """The first input's shape for the test shape ``shape`` (the "none" loss's shape;
    for "sample" specs the input's own shape, a 0- or 1-d one getting a trailing axis of
    3 elements per sample)."""
    shape = tuple(shape)
    if spec.kind == "class_axis":
        return shape + (N_CLASSES,)
    if spec.kind == "multi" and spec.rows:
        return shape + (ROW_LEN,)
    if spec.kind == "sample":
        return shape if len(shape) >= 2 else shape + (3,)
    return shape


def loss_shape(spec, xshape):
    """The shape of the ``reduction="none"`` loss for a first input of shape ``xshape``."""
    if spec.kind == "class_axis" or spec.kind == "multi" and spec.rows:
        return tuple(xshape[:-1])
    if spec.kind == "sample":
        return tuple(xshape[:1])
    return tuple(xshape)


def n_grads(spec):
    """The number of differentiable inputs (one gradient each)."""
    return spec.n_grads if spec.kind == "multi" else 1


def grads_of(spec, result):
    """The gradients of a ``return_grad=True`` result ``(loss, grad)``, as a tuple."""
    g = result[1]
    return tuple(g) if spec.kind == "multi" else (g,)


def target_index(spec):
    """The position of the (non-differentiable) target among the inputs, or None."""
    k = n_grads(spec)
    return k if len(spec.inputs) > k else None


# Loss-specific facts the generic tests need (by name; see test_registry.py):
# the "mean" of an empty input (heatmap_focal_loss divides by max(1, positives)), and the
# losses whose gradient does not depend on the input (a NaN input leaves it finite).
MEAN_OF_NOTHING = {"heatmap_focal_loss": 0.0}
GRAD_INDEPENDENT_OF_INPUT = {"nll_loss", "kl_div"}


# ----------------------------------------------------------------------------- arguments


def seeded_rng(*tags):
    """A Generator seeded by a test's own tags (stable across processes)."""
    return np.random.default_rng(zlib.crc32(repr(tags).encode()))


def compute_dtype(dtype):
    """The compute dtype of an input of `dtype`."""
    dt = np.dtype(dtype)
    return np.dtype(np.float32) if dt.kind == "f" and dt.itemsize <= 4 else np.dtype(np.float64)


def grid_params(names, ends=False):
    """pytest params (name, variant, grid id, symbolic params) of the specs `names`; with
    ends=True only each grid's first and last entries (the defaults, and "all" where a
    spec has several parameters)."""
    out = []
    for name in names:
        spec = LOSSES[name]
        vs = target_variants(spec)
        for v in vs:
            grid = param_grid(spec, v)
            for gid, sym in grid[:1] + grid[1:][-1:] if ends else grid:
                pid = "-".join([name] + ([v] if len(vs) > 1 else []) + [gid])
                out.append(pytest.param(name, v, gid, sym, id=pid))
    return out


def make_case(name, variant, sym, shape, dtype, *tags, scale=3.0, as_input_shape=False):
    """(spec, args, kwargs, first input shape) for a test shape (or, as_input_shape, for
    that first input shape), seeded by everything that identifies the case."""
    spec = LOSSES[name]
    xshape = tuple(shape) if as_input_shape else input_shape(spec, shape)
    rng = seeded_rng(name, variant, repr(sym), xshape, np.dtype(dtype).str, *tags)
    args = make_args(spec, xshape, dtype, rng, variant=variant, scale=scale, params=sym)
    kw = make_params(spec, sym, xshape, compute_dtype(dtype), rng)
    return spec, args, kw, xshape


def target_variants(spec):
    """The kinds of target a spec takes: "index" domains take class indices or class
    probabilities of the logits' shape; the others one kind, named by their domain."""
    return ("index", "probs") if spec.target_domain == "index" else (spec.target_domain,)


def _sentinels(spec, params):
    """Int parameters of an index-target loss are sentinel class indices (ignore_index):
    their values in the call (the defaults unless given) are planted in the targets."""
    return [params.get(p.name, p.default) for p in spec.params if p.kind == "int"]


def _unit(rng, shape, dtype):
    """Uniform in [0, 1] with exact 0s and 1s (every 5th element each)."""
    t = rng.uniform(size=shape)
    flat = t.reshape(-1)
    flat[0::5] = 0.0
    flat[1::5] = 1.0
    return t.astype(dtype)


def _signs(rng, shape, dtype):
    return rng.choice(np.array([-1.0, 1.0]), size=shape).astype(dtype)


def make_args(spec, shape, dtype, rng, variant=None, scale=3.0, params=None):
    """The positional arguments (a tuple) for a first input of shape ``shape`` and dtype
    ``dtype``.

    First input by ``spec.input_domain``: "real" ~ N(0, scale^2); "prob" uniform in [0, 1]
    with exact 0s and 1s (every 7th element each); "logprob" the log of a probability (every
    7th exactly 0).  "multi" specs: the other differentiable inputs are the first plus
    N(0, (s scale)^2) noise, s uniform in [0.05, 0.6] per row (distances on both sides of
    the margins), the target
    (if any) of the loss's shape: labels +-1 (element-wise) or in [0, 1] with exact 0s and
    1s (rows).  Otherwise the target by ``spec.target_domain``:

    * "real":  ~ N(0, scale^2), of ``dtype`` (a kl_div-like "logprob" input gets
      probabilities with exact 0s, or with ``log_target`` log-probabilities);
    * "unit":  uniform in [0, 1], of ``dtype``, with exact 0s and 1s (every 5th element
      each);
    * "sign":  labels -1 / +1 of ``dtype``;
    * "index" / "class": int64 class indices of shape ``shape[:-1]`` (variant "index", the
      default), every 4th row from the second on set to each int parameter's value in
      ``params`` (the keywords of the call; the default where absent), a sentinel such as
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
    if spec.input_domain == "prob":
        x = rng.uniform(size=shape)
        x.reshape(-1)[2::7] = 0.0
        x.reshape(-1)[3::7] = 1.0
        x = x.astype(dtype)
    elif spec.input_domain == "logprob":
        x = np.log(rng.uniform(size=shape))
        x.reshape(-1)[::7] = 0.0
        x = x.astype(dtype)
    else:
        x = (rng.normal(size=shape) * scale).astype(dtype)
    if spec.kind == "multi":
        args = [x]
        for k in range(1, spec.n_grads):
            # rows at distances from ~0.1 to ~4 scale: both sides of every grid margin
            sd = rng.uniform(0.05, 0.6, size=shape[:-1] + (1,)) * scale if shape else 0.3
            args.append((x + rng.normal(size=shape) * sd).astype(dtype))
        if not spec.rows:  # element-wise ranking: independent scores
            args[1:] = [(rng.normal(size=shape) * scale).astype(dtype) for _ in args[1:]]
        if len(spec.inputs) > spec.n_grads:
            lshape = loss_shape(spec, shape)
            args.append(_unit(rng, lshape, dtype) if spec.rows else _signs(rng, lshape, dtype))
        args = tuple(args)
        assert len(args) == len(spec.inputs), spec.inputs
        return args
    if spec.input_domain == "logprob":
        if params.get("log_target", False):
            t = np.log(rng.uniform(size=shape))
            t.reshape(-1)[1::9] = -1000.0  # exp(t) underflows to 0
        else:
            t = rng.uniform(size=shape)
            t.reshape(-1)[1::5] = 0.0
        t = t.astype(dtype)
    elif spec.target_domain == "real":
        t = (rng.normal(size=shape) * scale).astype(dtype)
    elif spec.target_domain == "unit":
        t = _unit(rng, shape, dtype)
    elif spec.target_domain == "sign":
        t = _signs(rng, shape, dtype)
    elif variant in ("index", "class"):
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


# Grid values that replace float_values() for a parameter whose generic values make the
# loss degenerate (a norm degree of 1e-3 raises row sums to the 1000th power: overflow).
_GRID_OVERRIDES = {("triplet_margin_loss", "p"): (2.0, 1.0, 0.5, 1.5, 3.0)}
# ...and the range the fuzz tests draw such a parameter from.
_FUZZ_RANGES = {("triplet_margin_loss", "p"): (0.25, 10.0)}


def _values(spec, p):
    """Every value a parameter takes in the grid, default first.  Weights are symbolic
    ("full": the input's shape; "row": the input's last axis, broadcast; "class": one per
    class), made concrete by make_params."""
    if (spec.name, p.name) in _GRID_OVERRIDES:
        return list(_GRID_OVERRIDES[spec.name, p.name])
    if p.kind == "float" and p.choices:
        return [p.default] + [c for c in p.choices if c != p.default]
    if p.kind == "float":
        return float_values(p)
    if p.kind == "bool":
        return [p.default, not p.default]
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
        if p.kind == "float" and p.choices:
            cases += [
                (f"{n}=nan", n, math.nan, ValueError, None),
                (f"{n}=inf", n, math.inf, ValueError, None),
                (f"{n}=10**400", n, 10**400, ValueError, None),
                (f"{n}='a'", n, "a", TypeError, None),
            ]
            for v in (0, 3, 1.5, -1):
                if v not in p.choices:
                    cases.append((f"{n}={v!r}", n, v, ValueError, None))
        elif p.kind == "bool":
            cases += [
                (f"{n}='a'", n, "a", TypeError, None),
                (f"{n}=None", n, None, TypeError, None),
                (f"{n}=1", n, 1, TypeError, None),
                (f"{n}=1.0", n, 1.0, TypeError, None),
            ]
        elif p.kind == "float":
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
    if spec.target_domain != "real" or spec.kind != "elementwise" or spec.input_domain != "real":
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


def _reduce(loss, reduction, denom=None):
    """A torch "none" loss reduced as fusedloss reduces it (``denom``: the mean's
    divisor, the number of losses by default)."""
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    return loss.sum() / denom if denom is not None else loss.mean()


def _hinge(input, target, margin=1.0, reduction="mean"):
    """max(0, margin - y x); relu: the gradient is 0 at the kink."""
    import torch

    return _reduce(torch.relu(margin - target * input), reduction)


def _exponential(input, target, reduction="mean"):
    import torch

    return _reduce(torch.exp(-target * input), reduction)


def _heatmap_focal(logits, heatmap, alpha=2.0, beta=4.0, reduction="mean"):
    """CenterNet's penalty-reduced focal loss from logits, in log space."""
    import torch
    import torch.nn.functional as F

    p, q = torch.sigmoid(logits), torch.sigmoid(-logits)
    pos = heatmap == 1
    loss = torch.where(
        pos,
        q**alpha * F.softplus(-logits),
        (1 - heatmap) ** beta * p**alpha * F.softplus(logits),
    )
    return _reduce(loss, reduction, max(1, int(pos.sum())))


def _softmax_focal(logits, target, alpha=None, gamma=2.0, ignore_index=-100, reduction="mean"):
    """-alpha[y] (1 - p_y)^gamma log p_y over the last axis (the class axis here)."""
    import torch

    keep = target != ignore_index
    safe = torch.where(keep, target, torch.zeros_like(target))
    lp = torch.log_softmax(logits, -1).gather(-1, safe.unsqueeze(-1)).squeeze(-1)
    q = 1 - lp.exp()
    loss = -(q**gamma) * lp
    if alpha is not None:
        loss = alpha[safe] * loss
    loss = torch.where(keep, loss, torch.zeros_like(loss))
    return _reduce(loss, reduction, int(keep.sum()))


def _multi_margin(input, target, p=1, margin=1.0, weight=None, reduction="mean"):
    """torch's multi_margin_loss takes 2-D input only: rows flattened, classes last."""
    import torch.nn.functional as F

    C = input.shape[-1]
    loss = F.multi_margin_loss(
        input.reshape(-1, C),
        target.reshape(-1),
        p=int(p),
        margin=margin,
        weight=weight,
        reduction="none",
    ).reshape(target.shape)
    return _reduce(loss, reduction)


def _nll(input, target, weight=None, ignore_index=-100, reduction="mean"):
    import torch.nn.functional as F

    return F.nll_loss(
        _class_axis_to_1(input).contiguous(),
        target,
        weight=weight,
        ignore_index=ignore_index,
        reduction=reduction,
    )


def _dice(logits, target, smooth=1.0, reduction="mean"):
    import torch

    n = logits.shape[0]
    p = torch.sigmoid(logits).reshape(n, -1)
    t = target.reshape(n, -1)
    num = 2 * (p * t).sum(1) + smooth
    den = p.sum(1) + t.sum(1) + smooth
    return _reduce(1 - num / den, reduction)


def _triplet(anchor, positive, negative, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean"):
    """torch's triplet_margin_loss on the rows flattened to 2-D (1-D: one row)."""
    import torch.nn.functional as F

    R = anchor.shape[-1]
    flat = [a.reshape(-1, R) for a in (anchor, positive, negative)]
    if margin > 0:
        loss = F.triplet_margin_loss(
            *flat, margin=margin, p=p, eps=eps, swap=swap, reduction="none"
        )
    else:  # F.triplet_margin_loss refuses margin <= 0: its own formula, in torch operations
        import torch

        a, pos, neg = flat
        d_neg = F.pairwise_distance(a, neg, p, eps)
        if swap:
            d_neg = torch.min(d_neg, F.pairwise_distance(pos, neg, p, eps))
        loss = torch.clamp_min(margin + F.pairwise_distance(a, pos, p, eps) - d_neg, 0)
    return _reduce(loss.reshape(anchor.shape[:-1]), reduction)


def _contrastive(x1, x2, target, margin=1.0, eps=1e-6, reduction="mean"):
    import torch

    u = x1 - x2 + eps
    d2 = (u * u).sum(-1)
    d = torch.linalg.vector_norm(u, dim=-1)
    return _reduce(target * d2 + (1 - target) * torch.relu(margin - d) ** 2, reduction)


# Twins that are not importable functions of torch itself, or that fusedloss's layout
# (classes last, rows of any rank) makes a wrapper of one.  Keyed by spec.torch, or by the
# spec's name where it names no torch function.
_TORCH_INLINE = {
    "torchvision.ops.sigmoid_focal_loss": _sigmoid_focal_loss,
    "hinge_loss": _hinge,
    "exponential_loss": _exponential,
    "heatmap_focal_loss": _heatmap_focal,
    "softmax_focal_loss": _softmax_focal,
    "dice_loss": _dice,
    "contrastive_loss": _contrastive,
    "torch.nn.functional.multi_margin_loss": _multi_margin,
    "torch.nn.functional.nll_loss": _nll,
    "torch.nn.functional.triplet_margin_loss": _triplet,
}


def torch_function(spec):
    """The PyTorch function ``spec.torch`` names (imported lazily), or the twin written
    out here for a spec without one."""
    for key in (spec.torch, spec.name):
        if key in _TORCH_INLINE:
            return _TORCH_INLINE[key]
    module, _, attr = spec.torch.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def has_torch_twin(spec):
    return bool(spec.torch) or spec.name in _TORCH_INLINE


def _class_axis_to_1(a):
    """Our class axis is last; torch's is 1 (for inputs with a batch of 2+ dims)."""
    return a.movedim(-1, 1) if a.ndim > 2 else a


def torch_call(spec, args, params, reduction):
    """Calls ``spec``'s PyTorch twin as the library would compute ``spec.name(*args,
    **params, reduction=reduction)`` and returns the loss tensor.

    ``args``: the positional arguments; the differentiable ones (the first
    ``n_grads(spec)``) float64 tensors (require grad on them to get the gradients) or
    arrays; the others as the public function takes them (arrays), as are ``params``.
    Every one of our keywords is passed by its own name with the registry's defaults
    filled in; a class-axis spec's class axis moves from last to 1 (for torch's own
    cross_entropy; the wrappers above do it themselves).  An element-wise spec's
    per-element ``weight`` is applied here to the unreduced loss and the mean divides by
    the number of elements, as documented for fusedloss (torch's ``mse_loss(weight=)`` /
    ``l1_loss(weight=)`` divide a weighted mean by ``sum(weight)`` instead, and want
    weights of the input's exact shape; kl_div's "batchmean" divides by the first axis).
    """
    import torch

    f64 = torch.float64
    k = n_grads(spec)
    targs = []
    for i, a in enumerate(args):
        if isinstance(a, torch.Tensor):
            targs.append(a)
            continue
        a = np.asarray(a)
        if i >= k and a.dtype.kind in "iu":
            targs.append(torch.tensor(a))
        else:
            targs.append(torch.tensor(a.astype(np.float64)))
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
        elif p.kind == "bool":
            v = bool(v)
        kw[p.name] = v
    fn = torch_function(spec)
    accepted = inspect.signature(fn).parameters
    missing = [k for k in kw if k not in accepted]
    assert not missing, f"{spec.torch or spec.name} takes no {missing}"

    if spec.kind == "class_axis" and fn is torch_function(LOSSES["softmax_cross_entropy"]):
        x, tt = targs
        xin = _class_axis_to_1(x)
        tin = _class_axis_to_1(tt) if tt.is_floating_point() else tt
        return fn(xin, tin, reduction=reduction, **kw)
    if outside is None:
        with warnings.catch_warnings():  # kl_div's "mean" warns that it is not "batchmean"
            warnings.simplefilter("ignore", UserWarning)
            return fn(*targs, reduction=reduction, **kw)
    loss = fn(*targs, reduction="none", **kw) * outside
    if reduction == "batchmean":
        return loss.sum() / (loss.shape[0] if loss.ndim else 1)
    denom = None
    if spec.name in MEAN_OF_NOTHING:  # a mean over max(1, positives), not the elements
        denom = max(1, int((targs[1] == 1).sum()))
    return _reduce(loss, reduction, denom)


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
_SIGN_DTYPES = ("float32", "float64", "float16", ">f8", "int8", "int32")
_WEIGHT_DTYPES = ("float32", "float64", "float16", ">f8", "int32")
_NON_NUMERIC = ("complex128", "U1")
_LAYOUTS = ("contiguous",) * 3 + ("strided", "transposed", "reversed")
# Values planted in drawn arrays (at most three per array; float16 holds 1e4 and rounds
# 1e-30 to 0).  No infinities: at infinite inputs some losses differ from the reference in
# documented, loss-specific ways (see tests/test_fuzz.py); NaN propagates alike in both.
_SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, 30.0, -30.0, 80.0, -80.0, 1e4, -1e4, 1e-30, math.nan)
_UNIT_SPECIAL = (0.0, 1.0, 0.5, 0.375)
# The differentiable inputs of several-input losses: values whose differences float16 and
# float32 hold exactly (multiples of 2^-6 up to 32 in magnitude), so that a float32 kernel
# and the float64 reference see the same distances; their losses are differences of
# distances (triplet) that cancel, and _util.assert_close scales by the result, not by
# the distances.
_MULTI_SPECIAL = (0.0, -0.0, 1.0, -1.0, 0.5, 30.0, -30.0, 2.0**-6, math.nan)
_BAD_REDUCTIONS = ("avg", "MEAN", None, 1, "none ")
REDUCTIONS = ("mean", "sum", "none")
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
    if spec.hess:
        points.append("hess_out")
    if spec.kind in ("class_axis", "sample"):
        points.append("class axis")
    if spec.kind == "multi":
        points += ["other input"] * (spec.n_grads - 1)
        points = [p for p in points if p != "target" or len(spec.inputs) > spec.n_grads]
        if spec.rows:
            points.append("row axis")
    if spec.input_domain == "prob":
        points.append("probability")
    if spec.target_domain == "sign":
        points.append("label")
    if spec.target_domain in ("index", "class") and variant in ("index", "class"):
        points += ["class index"] * 2
    return points


def _draw_target_fault(draw, call, shape, tdt):
    """(fault, shape, dtype) of a target of the right ``shape`` and dtype ``tdt``, made
    invalid when the call's target is to be (fault 0/1: a wrong shape, 2: a non-numeric
    dtype; None: valid)."""
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
    return r, shape, tdt


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


def _draw_array(draw, rng, shape, dtype, domain="real", specials=_SPECIAL, quantum=None):
    """An array of ``shape`` and ``dtype`` in a drawn layout.  Bulk values come from
    ``rng`` (seeded by the example); up to three are drawn from ``specials``.
    domain "real": ~N(0, 3^2) (integers in [-5, 5]); "unit": in [0, 1], drawn hard (0/1)
    or soft; "positive": in [0.25, 2] (integers in [1, 3]).  ``quantum``: "real" values
    rounded to multiples of it."""
    dt = np.dtype(dtype)
    n = math.prod(shape)
    if domain == "sign":
        a = rng.choice(np.array([-1, 1]), n)
        if dt.kind == "f" and n and draw(st.booleans()):
            a = a.astype(np.float64)
            a[draw(st.integers(0, n - 1))] = math.nan  # NaN labels propagate
    elif dt.kind == "b":
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
            if quantum:
                a = np.round(a / quantum) * quantum
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
        if call.spec.kind == "multi":
            # not 1e39 with float64 inputs: valid, but a margin or eps that swamps the
            # distances leaves their difference to rounding
            bad = [(v, e, d) for v, e, d in bad if d is None or call.cdt in d]
        if p.kind == "float":
            bad.append((None, TypeError, None))
        v, exc, dts = draw(st.sampled_from(bad))
        call.kwargs[p.name] = v
        if dts is None or call.cdt in dts:
            call.bad(exc, f"{p.name}={v!r}")
        return
    if draw(st.integers(0, 2)) == 0:
        return  # the default
    if p.kind == "bool":
        call.kwargs[p.name] = draw(st.sampled_from([True, False, np.bool_(True), np.bool_(False)]))
        return
    if p.choices:
        v = draw(st.sampled_from(p.choices))
        call.kwargs[p.name] = draw(st.sampled_from([int, float, np.float64]))(v)
        return
    if (call.spec.name, p.name) in _FUZZ_RANGES:
        lo, hi = _FUZZ_RANGES[call.spec.name, p.name]
        call.kwargs[p.name] = draw(st.floats(lo, hi))
        return
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
    if spec.target_domain in ("index", "class") and variant in ("index", "class"):
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
    elif spec.target_domain == "sign":
        tdt = draw(st.sampled_from(_SIGN_DTYPES))
        domain = "sign"
    elif spec.input_domain == "logprob":  # kl_div: probabilities, or log-probabilities
        tdt = draw(st.sampled_from(_PROB_DTYPES))
        domain = "real" if call.kwargs.get("log_target", False) else "unit"
    else:
        tdt = draw(st.sampled_from(_TARGET_DTYPES))
        domain = "unit" if spec.target_domain == "unit" else "real"
    r, shape, tdt = _draw_target_fault(draw, call, tuple(xshape), tdt)
    t = _draw_array(draw, rng, shape, tdt, domain)
    if domain == "sign" and r is None and t.size and _chance(draw, call, 4, "label"):
        t = np.array(t, copy=True)
        # .flat writes through any layout (reshape(-1) of a Fortran-ordered copy is a copy)
        t.flat[draw(st.integers(0, t.size - 1))] = draw(st.sampled_from([0, 2]))
        call.bad(ValueError, "a label outside {-1, +1}")
    return t


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
        kw["reduction"] = draw(st.sampled_from(["mean", "sum", "none", "batchmean"]))
        if kw["reduction"] not in REDUCTIONS + tuple(call.spec.reductions):
            call.bad(ValueError, "reduction='batchmean' for a loss without it")
    reduction = kw.get("reduction", "mean")
    if reduction == "batchmean" and "batchmean" in call.spec.reductions:
        reduction = "mean"  # for the buffers below: a reduced loss
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
    if call.spec.kind == "multi":
        return  # a tuple of buffers: _draw_multi_grad_out
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
    if call.spec.hess:
        _draw_hess(draw, call, x, in_place)


def _draw_hess(draw, call, x, in_place):
    """return_hess and hess_out (valid, invalid, aliasing the input or grad_out)."""
    kw, cdt = call.kwargs, call.cdt
    if draw(st.integers(0, 2)):
        kw["return_hess"] = draw(st.booleans())
    return_hess = kw.get("return_hess", False)
    if return_hess and not kw.get("return_grad", False):
        call.bad(ValueError, "return_hess without return_grad")
    aliases = ("input",) + (("grad_out",) if isinstance(kw.get("grad_out"), np.ndarray) else ())
    if call.mode == "many":
        kind = draw(st.sampled_from(_BUFFERS_CHAOS + aliases))
    elif call.fault == "hess_out":
        kind = draw(st.sampled_from(_BAD_BUFFERS + aliases + (() if return_hess else ("good",))))
    elif return_hess:
        kind = draw(st.sampled_from(["none", "good"]))
    else:
        kind = "none"
    if kind in ("input", "grad_out"):
        b = x if kind == "input" else kw["grad_out"]
        kw["hess_out"] = b
        # an empty buffer overlaps nothing; otherwise it must be a valid buffer that
        # aliases nothing
        if np.size(b) or not (in_place or kind == "grad_out"):
            call.bad(ValueError, f"hess_out = {kind}")
    elif kind != "none":
        kw["hess_out"], ok = _draw_buffer(draw, kind, np.shape(x), cdt)
        if not ok:
            call.bad(ValueError, f"hess_out ({kind})")
    if "hess_out" in kw and not return_hess:
        call.bad(ValueError, "hess_out without return_hess")


def _draw_multi_grad_out(draw, call, ins):
    """grad_out of a several-input spec: None, or a tuple (or list) with one entry per
    differentiable input, each None, a buffer or its own input (in place); invalid: a
    single array, a wrong length, a bad buffer, another input's array, one buffer twice."""
    spec, kw, cdt = call.spec, call.kwargs, call.cdt
    k = spec.n_grads
    return_grad = kw.get("return_grad", False)
    shape = np.shape(ins[0])

    def in_place(a):
        return (
            isinstance(a, np.ndarray)
            and a.dtype == cdt
            and a.flags.c_contiguous
            and a.flags.aligned
            and a.flags.writeable
        )

    if call.mode == "one" and call.fault == "grad_out":
        faults = ["single", "length", "buffer", "other input", "twice"]
        fault = draw(st.sampled_from(faults + ([] if return_grad else ["good"])))
    elif call.mode == "many" and draw(st.integers(0, 3)) == 0:
        fault = draw(st.sampled_from(["single", "length", "buffer", "other input", "twice"]))
    elif return_grad and draw(st.booleans()):
        fault = "good"
    else:
        return
    entries = []
    for i in range(k):
        kind = draw(st.sampled_from(["none", "good", "input" if in_place(ins[i]) else "good"]))
        entries.append(
            None
            if kind == "none"
            else ins[i]
            if kind == "input"
            else _draw_buffer(draw, "good", shape, cdt)[0]
        )
    i = draw(st.integers(0, k - 1))
    if fault in ("other input", "twice") and not math.prod(shape):
        fault = "good"  # empty arrays overlap nothing
    if fault == "single":
        value = _draw_buffer(draw, "good", shape, cdt)[0]
        call.bad(ValueError, "grad_out a single array for several gradients")
    elif fault == "length":
        n = draw(st.sampled_from([0, 1, k - 1, k + 1]))
        value = tuple(entries[:n]) + (None,) * max(0, n - k)
        if n != k:
            call.bad(ValueError, f"grad_out of {n} entries for {k} gradients")
    else:
        if fault == "buffer":
            entries[i], ok = _draw_buffer(draw, draw(st.sampled_from(_BAD_BUFFERS)), shape, cdt)
            if not ok:
                call.bad(ValueError, f"grad_out[{i}] invalid")
        elif fault == "other input":
            j = draw(st.integers(0, k - 1).filter(lambda j: j != i))
            entries[i] = ins[j]
            if entries[j] is not ins[j]:
                entries[j] = None
            call.bad(ValueError, f"grad_out[{i}] is input {j}")
        elif fault == "twice":
            j = draw(st.integers(0, k - 1).filter(lambda j: j != i))
            entries[i] = entries[j] = _draw_buffer(draw, "good", shape, cdt)[0]
            call.bad(ValueError, f"grad_out[{i}] and grad_out[{j}] are one buffer")
        value = draw(st.sampled_from([tuple, list]))(entries)
    for a, e in zip(ins, entries):  # an input given as its own buffer must be in place
        if e is a and not in_place(a):
            call.bad(ValueError, "grad_out[i] = input i, not of the compute dtype")
    kw["grad_out"] = value
    if not return_grad:
        call.bad(ValueError, "grad_out without return_grad")


def _fuzz_multi(draw, call, rng):
    """The arguments of a several-input spec (see fuzz_calls)."""
    spec = call.spec
    k = spec.n_grads
    lshape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))  # the "none" loss's shape
    xshape = lshape + (draw(st.integers(0, 5)),) if spec.rows else lshape
    if spec.rows and _chance(draw, call, 12, "row axis"):
        xshape = lshape = ()
        call.bad(ValueError, "no row axis")
    ins = []
    for i in range(k):
        point = "input" if i == 0 else "other input"
        shape = xshape
        if _chance(draw, call, 12 if i == 0 else 8, point):
            r = draw(st.integers(0, 1)) if i else 0
            if r == 0:
                xdt = draw(st.sampled_from(_NON_NUMERIC))
                call.bad(TypeError, f"input {i} of dtype {xdt}")
            else:
                xdt = draw(st.sampled_from(_X_DTYPES))
                shape = draw(
                    st.sampled_from(
                        [xshape + (1,), (2,) + xshape]
                        + ([xshape[:-1] + (xshape[-1] + 1,)] if xshape else [])
                    )
                )
                call.bad(ValueError, f"input {i} of shape {shape} for {xshape}")
        else:
            xdt = draw(st.sampled_from(_X_DTYPES))
        if i == 0 and np.dtype(xdt).kind in "biuf":
            dt = np.dtype(xdt)
            call.cdt = _F32 if dt.kind == "f" and dt.itemsize <= 4 else np.dtype(np.float64)
        ins.append(_draw_array(draw, rng, shape, xdt, specials=_MULTI_SPECIAL, quantum=2.0**-6))
    for p in spec.params:
        if p.kind in ("float", "bool"):
            _draw_float_param(draw, call, p)
        else:
            raise AssertionError(f"unexpected parameter kind {p.kind!r} of {spec.name}.{p.name}")
    if len(spec.inputs) > k:  # the target, of the loss's shape
        if spec.rows:
            tdt, domain = draw(st.sampled_from(_TARGET_DTYPES)), "unit"
        else:
            tdt, domain = draw(st.sampled_from(_SIGN_DTYPES)), "sign"
        _, shape, tdt = _draw_target_fault(draw, call, lshape, tdt)
        ins.append(_draw_array(draw, rng, shape, tdt, domain))
    call.args = ins
    _draw_common(draw, call, None, lshape)
    _draw_multi_grad_out(draw, call, ins[:k])
    return call


@st.composite
def fuzz_calls(draw, spec):
    """A random call of ``spec``'s public function (a :class:`FuzzCall`).

    Half the examples are valid; a quarter make one argument invalid, a quarter any number
    of them, in ways whose exception the API documents (ValueError, TypeError,
    IndexError).  Everything is derived from the spec: its kind and target_domain (shapes,
    targets), its params (kinds and ranges, through float_values / invalid_params).
    Several-input ("multi") specs: every differentiable input drawn in its own dtype and
    layout (values whose differences float32 holds exactly), invalid as a wrong shape or
    dtype; the target of the loss's shape; grad_out a tuple (entries None, buffers, or the
    input itself, in place), invalid as a single array, a wrong length, a bad buffer,
    another input's array, or one buffer twice."""
    variant = draw(st.sampled_from(target_variants(spec)))
    mode = draw(st.sampled_from(["valid", "valid", "one", "many"]))
    fault = draw(st.sampled_from(_fault_points(spec, variant))) if mode == "one" else None
    call = FuzzCall(spec, variant, mode, fault)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if spec.kind == "multi":
        return _fuzz_multi(draw, call, rng)
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))  # the "none" loss's shape
    xshape = shape
    if spec.kind == "class_axis":
        xshape = shape + (draw(st.integers(1, 5)),)
        if _chance(draw, call, 12, "class axis"):
            xshape = shape = ()
            call.bad(ValueError, "no class axis")
    if spec.kind == "sample":  # the sample axis: 0-d inputs are refused
        xshape = shape if shape else (draw(st.integers(0, 4)),)
        if _chance(draw, call, 12, "class axis"):
            xshape = ()
            call.bad(ValueError, "no sample axis")
    if _chance(draw, call, 12, "input"):
        xdt = draw(st.sampled_from(_NON_NUMERIC))
        call.bad(TypeError, f"a first input of dtype {xdt}")
    else:
        xdt = draw(st.sampled_from(_X_DTYPES))
        dt = np.dtype(xdt)
        call.cdt = _F32 if dt.kind == "f" and dt.itemsize <= 4 else np.dtype(np.float64)
    x = _draw_array(draw, rng, xshape, xdt, "unit" if spec.input_domain == "prob" else "real")
    if spec.input_domain == "prob" and x.size and _chance(draw, call, 4, "probability"):
        x = np.array(x, copy=True)
        bad = [v for v in (1.5, -0.1, 2, -1) if np.asarray(v).astype(x.dtype) not in (0, 1)]
        if bad:
            v = np.asarray(draw(st.sampled_from(bad))).astype(x.dtype)
            x.flat[draw(st.integers(0, x.size - 1))] = v  # through any layout (see labels)
            call.bad(ValueError, "an input outside [0, 1]")
    for p in spec.params:
        if p.kind in ("float", "bool"):
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
    the row's share of the ``"mean"`` denominator; ``fn(z, t, p)`` for "sample" specs: one
    sample's ``(loss, [d loss / d z_j], count)``, ``z`` and ``t`` the sample's values
    flattened; ``fn(u, target, p)`` for "multi" specs: ``(loss, (grad_1, ..., grad_k))``,
    ``u`` a tuple of the k differentiable inputs' values (mpf, or a row's list of mpf) and
    ``target`` the target's mpf (None without one), each ``grad_i`` the derivatives with
    respect to input i (an mpf, or one per element of its row).  ``x``, ``t``, ``z``: mpf;
    ``p``: the keywords (float params as mpf, int params as int, bool params as bool, a
    weight as the element's mpf or, for class-axis specs, the row's list of per-class mpf: 1
    where the weight is not given).

    Each value is an mpf or a tuple of mpf *terms* that it is the sum of.  Errors are
    measured relative to the sum of the terms' magnitudes: a closed form that is one term
    (or terms of one sign) demands full relative accuracy, down to 1e-35 gradients of
    saturated predictions; a difference of terms demands accuracy relative to the terms,
    which is all rounding allows where they cancel.  rtol64 / rtol32: the bounds for
    float64 inputs, and for float32 inputs (the same values rounded to float32)."""

    fn: object
    rtol64: float = 1e-13
    rtol32: float = 1e-6
    min_denom: float = 0  # the mean's denominator is at least this (heatmap_focal_loss: 1)


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


_BCE_EPS = float(np.float32(1e-12))  # PyTorch's clamp of x (1 - x), a C float


def _bce_prob_oracle(x, t, p):
    """torch's binary_cross_entropy: -w [t max(log x, -100) + (1 - t) max(log(1 - x), -100)];
    its gradient as PyTorch defines it, w (x - t) / max(x (1 - x), eps)."""
    w = p["weight"]
    lx = max(mpmath.log(x), -100) if x > 0 else mpmath.mpf(-100)
    l1x = max(mpmath.log1p(-x), -100) if x < 1 else mpmath.mpf(-100)
    d = max(x * (1 - x), mpmath.mpf(_BCE_EPS))
    return (-w * t * lx, -w * (1 - t) * l1x), (w * x / d, -w * t / d)


def _hinge_oracle(x, t, p):
    """w max(0, margin - y x); derivative -w y where margin - y x > 0, else 0."""
    w, m = p["weight"], p["margin"]
    if m - t * x > 0:
        return (w * m, -w * t * x), -w * t
    return mpmath.mpf(0), mpmath.mpf(0)


def _exponential_oracle(x, t, p):
    """w e^(-y x); derivative -w y e^(-y x)."""
    e = p["weight"] * mpmath.exp(-t * x)
    return e, -t * e


def _kl_div_oracle(x, t, p):
    """w (t log t - t x) (0 log 0 = 0), derivative -w t; log_target: w e^t (t - x),
    derivative -w e^t."""
    w = p["weight"]
    if p["log_target"]:
        e = mpmath.exp(t)
        return (w * e * t, -w * e * x), -w * e
    tlogt = t * mpmath.log(t) if t != 0 else mpmath.mpf(0)
    return (w * tlogt, -w * t * x), -w * t


def _heatmap_oracle(x, t, p):
    """CenterNet: s = sigmoid(x); t == 1: -(1 - s)^a log s, else -(1 - t)^b s^a log(1 - s),
    where -log s = log(1 + e^-x), -log(1 - s) = log(1 + e^x).  Derivatives (ds/dx = s (1 - s)):
    pos (1 - s)^a (a s log s - (1 - s)), neg (1 - t)^b s^a (s - a (1 - s) log(1 - s)).
    Each positive counts 1 in the mean's denominator."""
    a, b, w = p["alpha"], p["beta"], p["weight"]
    s, q = _sigmoid(x), _sigmoid(-x)
    nls, nlq = _log1pexp(-x), _log1pexp(x)
    if t == 1:
        qa = q**a
        return w * qa * nls, (-w * qa * a * s * nls, -w * qa * q), 1
    r = w * (1 - t) ** b * s**a
    return r * nlq, (r * s, r * a * q * nlq), 0


def _nll_oracle(z, target, p):
    """-w[y] z[y]; derivative -w[y] at y; ignored rows 0, not counted; counts w[y]."""
    C = len(z)
    zero = mpmath.mpf(0)
    if target == p["ignore_index"]:
        return zero, [zero] * C, zero
    w = p["weight"][target]
    return -w * z[target], [(-w if j == target else zero) for j in range(C)], w


def _softmax_focal_oracle(z, target, p):
    """-a_y (1 - p_y)^g log p_y, p = softmax(z): with E_j = e^(z_j - z_y), p_y = 1 / sum E,
    q = 1 - p_y = sum_{j != y} E_j p_y, log p_y = -log1p(sum_{j != y} E_j).  d/dz_j:
    -a_y q^g (1 - g p_y log p_y / q) ([j == y] - p_j) (log p_y / q -> -1 as q -> 0)."""
    C = len(z)
    zero = mpmath.mpf(0)
    if target == p["ignore_index"]:
        return zero, [zero] * C, zero
    a, g = p["alpha"][target], p["gamma"]
    e = [mpmath.exp(z[j] - z[target]) for j in range(C)]
    rest = mpmath.fsum(e[j] for j in range(C) if j != target)
    py = 1 / (1 + rest)
    q = rest * py
    lp = -mpmath.log1p(rest)
    qg = q**g if g != 0 else mpmath.mpf(1)
    ratio = lp / q if q != 0 else mpmath.mpf(-1)
    c = a * qg * (1 - g * py * ratio)
    grad = [c * e[j] * py if j != target else -c * q for j in range(C)]
    return -a * qg * lp, grad, mpmath.mpf(1)


def _multi_margin_oracle(z, target, p):
    """w_y / C sum_{j != y} max(0, margin - z_y + z_j)^p; derivative w_y / C p z_j^(p-1) for
    z_j > 0 (j != y), minus their sum at y; every row counts 1."""
    C = len(z)
    m, pw, w = p["margin"], int(p["p"]), p["weight"][target] / C
    zs = [m - z[target] + z[j] if j != target else mpmath.mpf(0) for j in range(C)]
    terms = tuple(w * v**pw for j, v in enumerate(zs) if j != target and v > 0)
    d = [
        w * (1 if pw == 1 else 2 * v) if j != target and v > 0 else mpmath.mpf(0)
        for j, v in enumerate(zs)
    ]
    d[target] = tuple(-v for v in d)
    return terms or mpmath.mpf(0), d, mpmath.mpf(1)


def _dice_oracle(z, t, p):
    """One sample of soft Dice on s = sigmoid(z): with N = 2 sum(s t) + smooth and
    D = sum(s) + sum(t) + smooth, loss = 1 - N / D (terms 1 and -N / D: where N ~ D only
    accuracy relative to 1 is possible); d loss / d z_j = s_j (1 - s_j) (N - 2 t_j D) / D^2
    (ds/dz = s (1 - s) = sigmoid(z) sigmoid(-z)): terms s_j (1 - s_j) N / D^2 and
    -2 t_j s_j (1 - s_j) / D.  Every sample counts 1."""
    sm = p["smooth"]
    s = [_sigmoid(v) for v in z]
    ds = [_sigmoid(v) * _sigmoid(-v) for v in z]
    num = 2 * mpmath.fsum(a * b for a, b in zip(s, t)) + sm
    den = mpmath.fsum(s) + mpmath.fsum(t) + sm
    if den == 0:  # smooth = 0 and an empty sample: 1 - 0 / 0 is not defined
        raise AssertionError("dice oracle: an empty sample with smooth = 0")
    grad = [(d * num / den**2, -2 * tj * d / den) for d, tj in zip(ds, t)]
    return (mpmath.mpf(1), -num / den), grad, mpmath.mpf(1)


def _margin_ranking_oracle(u, y, p):
    """max(0, z), z = -y (x1 - x2) + margin; derivatives (-y, y) where z >= 0 (PyTorch's
    clamp_min passes the gradient at z == 0), else 0."""
    x1, x2 = u
    m = p["margin"]
    zero = mpmath.mpf(0)
    if -y * (x1 - x2) + m >= 0:
        return (-y * x1, y * x2, m), (-y, y)
    return zero, (zero, zero)


def _p_norm(v, q):
    """||v||_q and its gradient sign(v_j) |v_j|^(q-1) / ||v||^(q-1) (0 where v_j == 0 or the
    norm is 0)."""
    zero = mpmath.mpf(0)
    norm = mpmath.fsum(abs(a) ** q for a in v) ** (1 / q)
    if norm == 0:
        return norm, [zero] * len(v)
    return norm, [mpmath.sign(a) * (abs(a) / norm) ** (q - 1) if a != 0 else zero for a in v]


def _triplet_oracle(u, target, p):
    """F.triplet_margin_loss of one row: d(u, v) = ||u - v + eps||_q, d_neg = d(a, n) (swap:
    min(d(a, n), d(p, n)), a tie giving each half the gradient, as torch.min), loss
    max(0, d(a, p) - d_neg + margin), terms d(a, p), -d_neg, margin; where the argument is
    >= 0 the gradients are those of d(a, p) - d_neg, by the chain rule through each norm's
    gradient (terms: one per distance)."""
    a, pos, neg = u
    m, q, eps = p["margin"], p["p"], p["eps"]
    R = len(a)
    zero = mpmath.mpf(0)
    d_ap, g_ap = _p_norm([a[j] - pos[j] + eps for j in range(R)], q)
    d_an, g_an = _p_norm([a[j] - neg[j] + eps for j in range(R)], q)
    w_an, w_pn, d_neg, g_pn = mpmath.mpf(1), zero, d_an, [zero] * R
    if p["swap"]:
        d_pn, g_pn = _p_norm([pos[j] - neg[j] + eps for j in range(R)], q)
        d_neg = min(d_an, d_pn)
        half = mpmath.mpf(1) / 2
        w_an = mpmath.mpf(1) if d_an < d_pn else half if d_an == d_pn else zero
        w_pn = mpmath.mpf(1) if d_pn < d_an else half if d_an == d_pn else zero
    if d_ap - d_neg + m < 0:
        return zero, ([zero] * R,) * 3
    ga = [(g_ap[j], -w_an * g_an[j]) for j in range(R)]
    gp = [(-g_ap[j], -w_pn * g_pn[j]) for j in range(R)]
    gn = [(w_an * g_an[j], w_pn * g_pn[j]) for j in range(R)]
    return (d_ap, -d_neg, m), (ga, gp, gn)


def _contrastive_oracle(u, y, p):
    """One row: v = x1 - x2 + eps, d = ||v||_2, loss y d^2 + (1 - y) max(0, m - d)^2 (terms
    y v_j^2 and, where d < m, (1 - y) m^2, -2 (1 - y) m d, (1 - y) d^2);
    d loss / d x1_j = 2 y v_j - 2 (1 - y) max(0, m - d) v_j / d (terms 2 y v_j, and where
    0 < d < m: -2 (1 - y) m v_j / d, 2 (1 - y) v_j; 0 at d == 0) = -d loss / d x2_j."""
    x1, x2 = u
    m, eps = p["margin"], p["eps"]
    v = [a - b + eps for a, b in zip(x1, x2)]
    d2 = mpmath.fsum(c * c for c in v)
    d = mpmath.sqrt(d2)
    loss = tuple(y * c * c for c in v)
    g1 = [(2 * y * c,) for c in v]
    if m - d > 0:
        loss += ((1 - y) * m * m, -2 * (1 - y) * m * d, (1 - y) * d2)
        if d > 0:
            g1 = [g + (-2 * (1 - y) * m * c / d, 2 * (1 - y) * c) for g, c in zip(g1, v)]
    g2 = [tuple(-t for t in g) for g in g1]
    return loss, (g1, g2)


ORACLES = {
    "softmax_cross_entropy": Oracle(_softmax_ce_oracle),
    "binary_cross_entropy_with_logits": Oracle(_bce_oracle),
    "sigmoid_focal_loss": Oracle(_focal_oracle),
    "huber_loss": Oracle(_huber_oracle),
    "smooth_l1_loss": Oracle(_smooth_l1_oracle),
    "mse_loss": Oracle(_mse_oracle, rtol64=1e-14),
    "l1_loss": Oracle(_l1_oracle, rtol64=1e-14),
    "binary_cross_entropy": Oracle(_bce_prob_oracle),
    "hinge_loss": Oracle(_hinge_oracle, rtol64=1e-14),
    "exponential_loss": Oracle(_exponential_oracle),
    "kl_div": Oracle(_kl_div_oracle),
    "heatmap_focal_loss": Oracle(_heatmap_oracle, min_denom=1),
    "nll_loss": Oracle(_nll_oracle, rtol64=1e-14),
    "softmax_focal_loss": Oracle(_softmax_focal_oracle),
    "multi_margin_loss": Oracle(_multi_margin_oracle),
    "dice_loss": Oracle(_dice_oracle),
    "margin_ranking_loss": Oracle(_margin_ranking_oracle, rtol64=1e-14),
    "triplet_margin_loss": Oracle(_triplet_oracle),
    "contrastive_loss": Oracle(_contrastive_oracle),
}

ACCURACY_ROW = 4  # the last axis of the element-wise accuracy inputs
_ACC_LOGITS = (0.0, 1e-300, -1e-300, 0.5, -0.5, 2.5, -2.5, 10.0, -10.0, 30.0, -30.0)
_ACC_LOGITS += (36.75, -36.75, 80.0, -80.0)
_ACC_UNIT_TARGETS = (0.0, 1.0, 0.375, 0.5)
_ACC_ERRORS = (0.0, 1e-300, -1e-300, 1e-160, -3e-154, 1e-30, 1e-8, -1e-8, 0.3, -0.3)
_ACC_ERRORS += (1e3, -1e3, 1e20, -1e20, 1e150, -1e150, 1e300)
_ACC_REAL_TARGETS = (0.0, -0.7, 1e4)
_ACC_PROBS = (0.0, 1e-300, 1e-30, 1e-14, 1e-8, 0.25, 0.5, 0.75, 1 - 1e-8, 1 - 2.0**-50, 1.0)
_ACC_LOGPROBS = (0.0, -1e-300, -1e-8, -0.5, -2.5, -30.0, -80.0, -700.0)
_ACC_PROB_TARGETS = (0.0, 1e-300, 1e-30, 0.375, 1.0)
_ACC_LOG_TARGETS = (0.0, -1e-8, -0.5, -30.0, -700.0, -1000.0)
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


ACC_SAMPLE = 6  # the elements per sample of the "sample" accuracy inputs
_ACC_SAMPLES = (
    ((-80.0,) * 6, (0.0,) * 6),  # loss ~1e-35: 1 - N / D cancels
    ((80.0,) * 6, (1.0,) * 6),
    ((80.0,) * 6, (0.0,) * 6),
    ((-80.0,) * 6, (1.0,) * 6),
    ((-30.0,) * 6, (0.0,) * 6),
    ((1e-300, -1e-300, 0.0, 0.5, -0.5, 2.5), (0.0, 1.0, 0.375, 0.5, 1.0, 0.0)),
    ((10.0, -10.0, 30.0, -30.0, 36.75, -36.75), (1.0, 0.0, 0.375, 1.0, 0.0, 0.5)),
    ((80.0, -80.0, 0.5, -2.5, 10.0, -36.75), (1.0, 1.0, 0.0, 0.0, 0.375, 1.0)),
)
_ACC_DIFFS = _ACC_LOGITS + (1e3, -1e3, 1e150, -1e150, 1e300, -1e300)
_ACC_SCORES = (0.0, 0.5, -3.0)  # the second scores of margin_ranking_loss


def _dyadic(rng, shape, bits=8):
    """N(0, 1) values with ``bits`` fractional bits: their differences are exact in float32
    and float64 (and stay exact when scaled by a power of two)."""
    return np.round(rng.normal(size=shape) * 2.0**bits) / 2.0**bits


def _row_kinks(spec, args, kw, rel):
    """The rows of a row-wise "multi" spec whose clamp argument (or, with swap, the two
    negative distances) is within ``rel`` of the distances' magnitude: where rounding
    decides the branch.  Exact ties (swap, positive == anchor) are not near a kink."""
    if spec.name != "triplet_margin_loss":
        return np.zeros(loss_shape(spec, np.shape(args[0])), bool)
    a, pos, neg = (np.asarray(v, np.float64) for v in args)
    f = {p.name: kw.get(p.name, p.default) for p in spec.params}
    q, eps, m = float(f["p"]), float(f["eps"]), float(f["margin"])
    d_ap, d_an, d_pn = (_rows_norm64(u + eps, q) for u in (a - pos, a - neg, pos - neg))
    d_neg = np.minimum(d_an, d_pn) if f["swap"] else d_an
    near = np.abs(d_ap - d_neg + m) <= rel * (d_ap + d_neg + abs(m))
    if f["swap"]:
        tie = (a == pos).all(axis=-1)
        near |= (np.abs(d_an - d_pn) <= rel * (d_an + d_pn)) & ~tie
    return near


def _multi_accuracy_inputs(spec, kw, dtype, rng):
    """The accuracy inputs of "multi" specs (see accuracy_inputs)."""
    if not spec.rows:  # margin_ranking_loss: x1 = x2 + y s, z = margin - s
        m = float(kw.get("margin", 0.0))
        ss = list(_ACC_DIFFS)
        if dtype == np.float64:
            ss += [m * (1 - 2.0**-40), m, m * (1 + 2.0**-40)]
        else:  # float32 kernels see the margin rounded: no kink point is well defined
            ss = [s for s in ss if abs(float(np.float32(s)) - m) > 1e-6 * max(abs(m), 1e-30)]
        trip = [(x2 + y * s, x2, y) for s in ss for x2 in _ACC_SCORES for y in (1.0, -1.0)]
        with np.errstate(over="ignore"):
            cols = [np.asarray([r[k] for r in trip]).astype(dtype) for k in range(3)]
        keep = np.isfinite(cols[0]) & np.isfinite(cols[1])
        cols = [c[keep] for c in cols]
        n = -(-(cols[0].size + 12) // ACCURACY_ROW) * ACCURACY_ROW - cols[0].size
        more = (rng.normal(size=n) * 3, rng.normal(size=n) * 3, rng.choice([-1.0, 1.0], n))
        return tuple(
            np.concatenate([c, o.astype(dtype)]).reshape(-1, ACCURACY_ROW)
            for c, o in zip(cols, more)
        )
    R = ACCURACY_ROW
    scales = (1.0, 2.0**-10, 2.0**10) + (
        (2.0**-100, 2.0**100) if dtype == np.float64 else (2.0**-30, 2.0**30)
    )
    rel = 1e-9 if dtype == np.float64 else 1e-4
    rows = []
    for s in scales:
        for _ in range(6):
            a = _dyadic(rng, R) * 4
            sd = rng.choice([0.125, 0.5, 2.0])
            b = a + _dyadic(rng, R) * sd
            c = b + _dyadic(rng, R) * rng.choice([0.125, 1.0]) if len(spec.inputs) == 3 else None
            rows.append([v * s for v in (a, b, c) if v is not None])
        a = _dyadic(rng, R) * s
        rows.append([a, a.copy()] + ([_dyadic(rng, R) * s] if spec.n_grads == 3 else []))
        rows.append([a] * spec.n_grads)  # equal rows: every difference is eps
    ins = [np.stack([r[k] for r in rows]).astype(dtype) for k in range(spec.n_grads)]
    if len(spec.inputs) > spec.n_grads:
        t = np.resize(np.array(_ACC_UNIT_TARGETS), len(rows))
        ins.append(t.astype(dtype))
    keep = ~_row_kinks(spec, ins, kw, rel)
    return tuple(v[keep] for v in ins)


def _sample_accuracy_inputs(spec, kw, dtype, rng):
    """The accuracy inputs of "sample" specs (see accuracy_inputs)."""
    xs = [r[0] for r in _ACC_SAMPLES] + list(rng.normal(size=(4, ACC_SAMPLE)) * 3)
    ts = [r[1] for r in _ACC_SAMPLES] + list(rng.uniform(size=(4, ACC_SAMPLE)))
    ts[-1] = np.round(ts[-1])
    return np.asarray(xs).astype(dtype), np.asarray(ts).astype(dtype)


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

    * "sample": samples of ACC_SAMPLE logits, all at +-80 or -30 (a loss of ~1e-35 where
      every prediction is right), +-1e-300, the logits above, with targets 0, 1, 0.375 and
      0.5, and ordinary samples;
    * "multi", element-wise (margin_ranking_loss): x1 = x2 + y s for the logits above and
      differences up to +-1e300, s = margin (1 -+ 2^-40), margin (float64 only), second
      scores 0, 0.5, -3, labels +-1;
    * "multi", rows (ACCURACY_ROW long): rows of dyadic values (differences exact, so the
      only roundings are the kernel's) at scales 1, 2^+-10 and 2^+-100 (float32: 2^+-30),
      near and far, equal rows (every difference eps; swap: an exact tie), targets 0, 1,
      0.375, 0.5; rows whose clamp argument (or swap's comparison) is within rounding of
      0 left out.

    Returns the positional arguments (a tuple).  Element-wise inputs have shape (n,
    ACCURACY_ROW), so "row" weights vary."""
    dtype = np.dtype(dtype)
    if spec.kind == "multi":
        return _multi_accuracy_inputs(spec, kw, dtype, rng)
    if spec.kind == "sample":
        return _sample_accuracy_inputs(spec, kw, dtype, rng)
    if spec.kind == "elementwise" and (spec.input_domain != "real" or spec.target_domain == "sign"):
        if spec.input_domain == "prob":
            pairs = [(x, t) for x in _ACC_PROBS for t in _ACC_UNIT_TARGETS]
        elif spec.input_domain == "logprob":
            ts = _ACC_LOG_TARGETS if kw.get("log_target", False) else _ACC_PROB_TARGETS
            pairs = [(x, t) for x in _ACC_LOGPROBS for t in ts]
        else:  # labels +-1, around the hinge's kink y x = margin
            m = float(kw.get("margin", 1.0))
            xs = list(_ACC_LOGITS)
            if dtype == np.float64:
                xs += [m * (1 - 2.0**-40), m, m * (1 + 2.0**-40)]
            else:  # float32 kernels see the margin rounded: no kink point is well defined
                xs = [x for x in xs if abs(abs(np.float32(x)) - m) > 1e-6 * abs(m)]
            pairs = [(y * x, y) for x in xs for y in (1.0, -1.0)] + [(x, 1.0) for x in xs]
        x, t, n = _pairs([a for a, _ in pairs], [b for _, b in pairs], dtype)
        if spec.input_domain == "prob":
            xo = rng.uniform(size=n)
            to = rng.uniform(size=n)
        elif spec.input_domain == "logprob":
            xo = np.log(rng.uniform(size=n))
            to = np.log(rng.uniform(size=n)) if kw.get("log_target", False) else rng.uniform(size=n)
        else:
            xo = rng.normal(size=n) * 3
            to = rng.choice([-1.0, 1.0], size=n)
        x = np.concatenate([x, xo.astype(dtype)]).reshape(-1, ACCURACY_ROW)
        t = np.concatenate([t, to.astype(dtype)]).reshape(-1, ACCURACY_ROW)
        return x, t
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
    if spec.target_domain not in ("index", "class"):
        raise AssertionError(f"no accuracy inputs for target_domain {spec.target_domain!r}")
    C = N_CLASSES
    base = [(list(r) + [0.0] * C)[:C] for r in _ACC_ROWS]
    base += list(rng.normal(size=(4, C)) * 3)
    rows, targets = [], []
    for r in base:
        hi, lo = int(np.argmax(r)), int(np.argmin(r))
        if variant in ("index", "class"):
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
    if variant in ("index", "class"):
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


def oracle_arguments(spec, args, kw):
    """Yields ``(i, u, target, p)`` for every element (element-wise specs), row (class-axis
    and row-wise "multi" specs) or sample ("sample" specs) ``i`` of the "none" loss: the
    oracle's arguments ``oracle.fn(u, target, p)`` at the exact values of the positional
    arguments ``args`` and the public keywords ``kw`` (weights of the compute dtype; float
    parameters rounded to it, as the float32 kernels take them): mpf,
    a list of mpf (a row of logits, of class probabilities, a sample flattened), an int (a
    class index), or ("multi") a tuple of the differentiable inputs' mpf / lists and the
    target's mpf (None without a target)."""
    args = [np.asarray(a) for a in args]
    x = args[0]
    # float parameters as the kernels use them: rounded to the compute dtype
    cdt = _F32 if x.dtype == _F32 else np.dtype(np.float64)
    floats = {
        p.name: mpmath.mpf(float(cdt.type(kw.get(p.name, p.default))))
        if p.kind == "float"
        else bool(kw.get(p.name, p.default))
        for p in spec.floats
    }
    ints = {p.name: int(kw.get(p.name, p.default)) for p in spec.params if p.kind == "int"}
    weights = {}
    for p in spec.weights:
        w = kw.get(p.name)
        w = np.asarray(1.0 if w is None else w, np.float64)
        if spec.kind == "class_axis":
            weights[p.name] = [mpmath.mpf(float(v)) for v in np.broadcast_to(w, x.shape[-1:])]
        else:
            weights[p.name] = np.broadcast_to(w, x.shape)

    def mp(a):
        return (
            [mpmath.mpf(float(v)) for v in np.reshape(a, -1)]
            if np.ndim(a)
            else (mpmath.mpf(float(a)))
        )

    for i in np.ndindex(loss_shape(spec, x.shape)):
        p = dict(floats, **ints)
        if spec.kind == "multi":
            k = spec.n_grads
            u = tuple(mp(a[i]) for a in args[:k])
            target = mp(args[k][i]) if len(args) > k else None
        elif spec.kind == "sample":
            u, target = mp(x[i]), mp(args[1][i])
        elif spec.kind == "class_axis":
            t = args[1]
            p.update(weights)
            u = mp(x[i])
            target = int(t[i]) if t.dtype.kind in "iu" else mp(t[i])
        else:
            p.update({k: mpmath.mpf(float(v[i])) for k, v in weights.items()})
            u, target = mp(x[i]), mp(args[1][i])
        yield i, u, target, p


def oracle_gradients(spec, g):
    """An oracle's gradient part as a tuple (one entry per differentiable input) of lists
    (the values per element of the loss's row / sample; one value for an element-wise
    loss)."""
    g = tuple(g) if spec.kind == "multi" else (g,)
    return tuple(list(v) if isinstance(v, list) else [v] for v in g)


def oracle_values(spec, args, kw):
    """The spec's oracle at the exact values of the positional arguments ``args`` and the
    public keywords ``kw`` (weights of the compute dtype), at ORACLE_DPS digits.

    Returns float64 arrays and numbers (rounded from the mpmath values: beyond float64's
    range they are +-inf, below it 0 or subnormal): "loss" and "grads" (one per
    differentiable input; "grad" the first), each (true, scale), the scale the sum of the
    magnitudes of the closed form's terms; "sum" and "mean" of the losses (true, scale;
    "mean" None over nothing) and "denom", the mean's denominator; "slices": (sum, scale,
    denom) of each leading-axis slice (a sample, for "sample" specs)."""
    oracle = ORACLES[spec.name]
    xshape = np.shape(args[0])
    lshape = loss_shape(spec, xshape)
    per = math.prod(xshape) // max(math.prod(lshape), 1)
    loss = np.zeros((2,) + lshape)
    grads = [np.zeros((2,) + lshape + (per,)) for _ in range(n_grads(spec))]
    with mpmath.workdps(ORACLE_DPS):
        zero = mpmath.mpf(0)
        n_slices = lshape[0] if lshape else 1
        slices = [[zero, zero, zero] for _ in range(n_slices)]
        for i, u, target, p in oracle_arguments(spec, args, kw):
            lo, g, *rest = oracle.fn(u, target, p)
            count = rest[0] if rest else 1
            for arr, gk in zip(grads, oracle_gradients(spec, g)):
                assert len(gk) == per, (spec.name, len(gk), per)
                for j, gj in enumerate(gk):
                    arr[(slice(None),) + i + (j,)] = [float(v) for v in _mp_sum(gj)]
            value, scale = _mp_sum(lo)
            loss[(slice(None),) + i] = [float(value), float(scale)]
            acc = slices[i[0] if i else 0]
            acc[0] += value
            acc[1] += scale
            acc[2] += count
        total, total_scale, denom = (mpmath.fsum(s[k] for s in slices) for k in range(3))
        denom = max(denom, oracle.min_denom)
        for s in slices:
            s[2] = max(s[2], oracle.min_denom)
        grads = [(g[0].reshape(xshape), g[1].reshape(xshape)) for g in grads]
        return {
            "loss": (loss[0], loss[1]),
            "grads": grads,
            "grad": grads[0],
            "sum": (float(total), float(total_scale)),
            "mean": (float(total / denom), float(total_scale / denom)) if denom else None,
            "denom": float(denom),
            "slices": [tuple(float(v) for v in s) for s in slices],
        }


# ----------------------------------------------------------------------------- kinks


def _rows_norm64(v, p):
    if p == 2.0:
        return np.sqrt((v * v).sum(-1))
    return np.power(np.power(np.abs(v), p).sum(-1), 1.0 / p)


def _near_kink(spec, args, kw, h):
    """A bool array of the loss's shape: the entries within ``h`` of a point where the
    loss is not differentiable in its inputs (None: smooth everywhere)."""
    a = [np.asarray(v, np.float64) for v in args]
    f = {p.name: kw.get(p.name, p.default) for p in spec.params}
    name = spec.name
    if kinks(spec, kw):
        k = np.array(kinks(spec, kw))
        return (np.abs((a[0] - a[1])[..., None] - k) < h).any(axis=-1)
    if name == "hinge_loss":
        return np.abs(f["margin"] - a[1] * a[0]) < h
    if name == "margin_ranking_loss":
        return np.abs(-a[2] * (a[0] - a[1]) + f["margin"]) < h
    if name == "multi_margin_loss":
        x, t = a[0], args[1]
        xy = np.take_along_axis(x, t[..., None].astype(np.intp), -1)
        z = f["margin"] - xy + x
        z = np.where(np.arange(x.shape[-1]) == t[..., None], np.inf, z)
        return (np.abs(z) < h).any(axis=-1)
    if name == "triplet_margin_loss":
        p, eps = float(f["p"]), float(f["eps"])
        diffs = [a[0] - a[1] + eps, a[0] - a[2] + eps, a[1] - a[2] + eps]
        d_ap, d_an, d_pn = (_rows_norm64(v, p) for v in diffs)
        d_neg = np.minimum(d_an, d_pn) if f["swap"] else d_an
        near = np.abs(d_ap - d_neg + f["margin"]) < h
        if f["swap"]:
            near |= np.abs(d_an - d_pn) < h
        for v in diffs:  # |v_j|^p is not smooth at 0 for p <= 1, steep for p < 2
            near |= (np.abs(v) < 10 * h).any(axis=-1)
        return near
    if name == "contrastive_loss":
        d = np.sqrt(((a[0] - a[1] + f["eps"]) ** 2).sum(-1))
        return np.abs(d - f["margin"]) < h
    return None


def smooth_point(spec, args, kw, rng, h=1e-3):
    """``args`` moved (copies) so that the loss is differentiable within ``h`` of them:
    probabilities kept inside [0.02, 0.98], entries near a kink (margins, hinge points,
    zero differences of a norm) perturbed until none is."""
    args = [np.array(v, copy=True) for v in args]
    if spec.input_domain == "prob":
        args[0] = np.clip(args[0], 0.02, 0.98).astype(args[0].dtype)
    for _ in range(100):
        near = _near_kink(spec, args, kw, h)
        if near is None or not near.any():
            return tuple(args)
        lshape = loss_shape(spec, args[0].shape)
        for k in range(n_grads(spec)):
            view = args[k].reshape(lshape + (-1,))
            view[near] += rng.normal(size=view[near].shape) * 0.05
    raise AssertionError("could not move the inputs away from the kinks")
