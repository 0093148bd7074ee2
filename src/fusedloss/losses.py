"""The public loss functions, made from the registry (fusedloss._registry).

Each function has an explicit signature (introspectable: ``help()``,
``inspect.signature``, IDEs) and a docstring generated from its spec, and calls
the one compiled path (fusedloss._kernels.elementwise / class_axis / multi), which checks
every argument once, before anything is written, and runs one fused C kernel.
Semantics follow PyTorch's functions of the same names with the class axis last
(see the API contract).
"""

import textwrap

from . import _kernels
from ._registry import LOSSES

__all__ = list(LOSSES)

_COMMON = (
    (
        "reduction",
        '"mean"',
        "{'mean', 'sum', 'none'}, default 'mean'",
        '``"none"``: the per-element (per-row) losses; ``"sum"``: their sum; '
        '``"mean"``: the sum over the mean\'s denominator (NaN over nothing, with a zero '
        "gradient), as a NumPy scalar of the compute dtype.",
    ),
    (
        "return_grad",
        "False",
        "bool, default False",
        "also return the gradient with respect to the first input, from the same pass.",
    ),
    (
        "out",
        "None",
        "ndarray, optional",
        'receives the ``"none"`` losses (C-contiguous, the compute dtype).',
    ),
    (
        "grad_out",
        "None",
        "ndarray, optional",
        "receives the gradient; may be the first input itself (in place) when that is a "
        "C-contiguous array of the compute dtype.",
    ),
    (
        "n_threads",
        "None",
        "int, optional",
        "threads to use (default: ``fusedloss.get_num_threads()``); the results are the "
        "same, bit for bit, for every count.",
    ),
)

_HESS = (
    (
        "return_hess",
        "False",
        "bool, default False",
        "with ``return_grad=True``, also return the diagonal of the hessian with respect to "
        "the first input, from the same pass: ``(loss, grad, hess)``, scaled as the gradient "
        "(the weights, the mean's denominator).  Exact values: they may be negative, and are "
        "0 beyond a kink (at a kink, the branch the gradient takes); NaN where an input is NaN.",
    ),
    (
        "hess_out",
        "None",
        "ndarray, optional",
        "receives the hessian (C-contiguous, the compute dtype); it may not overlap any "
        "input or other output.",
    ),
)


_AXIS = (
    (
        "axis",
        "-1",
        "int, default -1",
        "the class axis (negative counts from the end), e.g. ``axis=1`` for PyTorch's "
        "``(N, C, H, W)``; computed in place of the layout, without a transposed copy.  "
        'Index targets and the ``"none"`` losses have the input\'s shape without it.',
    ),
)


def _common(spec):
    """The keyword arguments every loss of `spec`'s kind takes, in signature order."""
    common = _COMMON if not spec.hess else _COMMON[:-1] + _HESS + _COMMON[-1:]
    return _AXIS + common if spec.kind == "class_axis" else common


_DTYPES = (
    "float32 and float64 keep their dtype (the compute dtype); float16 is computed as "
    "float32, integers and bool as float64."
)
_TARGETS = {
    "real": "of the shape of ``{0}``, converted to the compute dtype.",
    "sign": "labels -1 or +1 of the shape of ``{0}`` (any other value is a ValueError; NaN "
    "propagates), converted to the compute dtype.",
    "class": "integer class indices of ``{0}``'s shape without the class axis (any integer "
    "dtype; one out of range is an IndexError).",
    "unit": "of the shape of ``{0}``, converted to the compute dtype; probabilities in "
    "[0, 1] (other values are computed by the same formula, not refused).",
    "index": "integer class indices of ``{0}``'s shape without the class axis (any integer "
    "dtype; one out of range is an IndexError), or floating class probabilities of "
    "``{0}``'s shape.",
}


_INPUTS = {
    "real": _DTYPES,
    "prob": "probabilities in [0, 1] (any other value is a ValueError; NaN propagates). " + _DTYPES,
    "logprob": "log-probabilities (not checked). " + _DTYPES,
}


def _param_doc(p):
    if p.kind == "bool":
        return f"{p.name} : bool, default {p.default!r}", p.doc
    if p.kind == "weight":
        return f"{p.name} : array_like, optional", p.doc
    if p.kind == "int":
        return f"{p.name} : int, default {p.default!r}", p.doc
    rng = "" if p.range_text() == "finite" else f", {p.range_text()}"
    return f"{p.name} : float, default {p.default!r}{rng}", p.doc


def _item(head, doc):
    """A numpydoc parameter entry: the head line, the description indented, wrapped."""
    return [head, textwrap.fill(doc, 88, initial_indent="    ", subsequent_indent="    ")]


def _docstring(spec):
    lines = [spec.summary, ""]
    if spec.torch:
        lines += [
            f"As ``{spec.torch}``"
            + (
                " with the class axis last by default (``axis``)."
                if spec.kind == "class_axis"
                else "."
            ),
            "",
        ]
    per = {"elementwise": "Per element::", "sample": "Per sample::"}
    if spec.kind == "multi":
        per["multi"] = "Per row::" if spec.rows else "Per element::"
    lines += [
        per.get(spec.kind, "Per row::"),
        "",
        f"    {spec.formula}",
        f"    {spec.grad}",
    ]
    if spec.hess:
        lines += [f"    {spec.hess}"]
    lines += [
        "",
    ]
    if spec.notes:
        lines += [spec.notes, ""]
    lines += ["Parameters", "----------"]
    first, *others = spec.inputs
    lines += _item(f"{first} : array_like", _INPUTS[spec.input_domain])
    if spec.kind == "multi":
        for name in others[: spec.n_grads - 1]:
            lines += _item(f"{name} : array_like", f"of the shape of ``{first}``.")
        if len(spec.inputs) > spec.n_grads:
            shape = "``{0}.shape[:-1]``" if spec.rows else "the shape of ``{0}``"
            lines += _item(
                f"{spec.inputs[-1]} : array_like",
                ("of " + shape + ", converted to the compute dtype.").format(first),
            )
        others = []
    for name in others:
        lines += _item(f"{name} : array_like", _TARGETS[spec.target_domain].format(first))
    for p in spec.params:
        lines += _item(*_param_doc(p))
    for name, _, typ, doc in _common(spec):
        if name == "reduction" and spec.reductions:
            extra = ", ".join(repr(r) for r in spec.reductions)
            typ = "{'mean', 'sum', 'none', " + extra + "}, default 'mean'"
            doc += ' ``"batchmean"``: the sum over the length of the first axis.'
        if name == "grad_out" and spec.n_grads > 1:
            doc = (
                f"a tuple of {spec.n_grads} arrays (or None entries) receiving the "
                "gradients; each may be its own input (in place)."
            )
        lines += _item(f"{name} : {typ}", doc)
    lines += [
        "",
        "Returns",
        "-------",
        "loss : numpy scalar or ndarray",
        '    the reduced loss, or the per-element (per-row) losses for ``"none"``.',
    ]
    if spec.n_grads > 1:
        names = ", ".join(spec.inputs[: spec.n_grads])
        lines += [
            "grads : tuple of ndarray",
            f"    with ``return_grad=True``: the gradients with respect to {names} "
            "(then ``(loss, grads)`` is returned).",
        ]
    else:
        lines += [
            "grad : ndarray",
            "    with ``return_grad=True`` (then ``(loss, grad)`` is returned).",
        ]
    if spec.hess:
        lines += [
            "hess : ndarray",
            "    with ``return_hess=True`` (then ``(loss, grad, hess)`` is returned).",
        ]
    return "\n".join(lines) + "\n"


def _make(spec):
    """The public function of `spec`: a real signature, calling the compiled path."""
    kernel = _kernels.Kernel(spec)
    keywords = [f"{p.name}={p.default!r}" for p in spec.params]
    keywords += [f"{name}={default}" for name, default, _, _ in _common(spec)]
    floats = "".join(f"{p.name}, " for p in spec.floats)
    weights = [p.name for p in spec.weights] + ["None", "None"]
    tail = "reduction, return_grad, out, grad_out, n_threads"
    if spec.hess:
        tail += ", return_hess, hess_out"
    args = ", ".join(spec.inputs)
    if spec.kind == "elementwise":
        call = f"_elementwise(_K, {args}, ({floats}), {weights[0]}, {weights[1]}, {tail})"
    elif spec.kind in ("sample", "multi"):
        call = f"_multi(_K, ({args},), ({floats}), {tail})"
    else:
        ignore = "ignore_index" if any(p.name == "ignore_index" for p in spec.params) else "-100"
        call = f"_class_axis(_K, {args}, {weights[0]}, {ignore}, ({floats}), {tail}, axis=axis)"
    src = f"def {spec.name}({args}, *, {', '.join(keywords)}):\n    return {call}\n"
    namespace = {
        "_K": kernel,
        "_elementwise": _kernels.elementwise,
        "_class_axis": _kernels.class_axis,
        "_multi": _kernels.multi,
    }
    exec(compile(src, f"<fusedloss.{spec.name}>", "exec"), namespace)
    fn = namespace[spec.name]
    fn.__doc__ = _docstring(spec)
    fn.__module__ = "fusedloss"
    fn.__qualname__ = spec.name
    return fn


for _spec in LOSSES.values():
    globals()[_spec.name] = _make(_spec)
del _spec
