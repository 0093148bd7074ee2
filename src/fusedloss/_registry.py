"""The loss registry: one declarative entry per public loss.

Everything that used to be listed by hand is made from :data:`LOSSES`: the public
functions (with explicit, introspectable signatures and generated parameter
sections in their docstrings), ``fusedloss.__all__``, the argument checks (ranges,
defaults, which broadcast weights a loss takes) and, in the test-suite, the
parametrisation of every generic test (tests/cases.py adds the argument makers and
the PyTorch twins).  The C side has its own list, csrc/losses.def, with one entry
per kernel; :func:`fusedloss._kernels.kernel_id` maps a spec's ``kernel`` to it
and fails at import if the two lists disagree.

Adding an element-wise loss: its closed form and ``FL_DEFINE_ELEMWISE`` in a
family's .inc file (e.g. csrc/regression.inc), one ``X(arg, name)`` line in
csrc/losses.def, one :class:`LossSpec` below, its NumPy twin in
:mod:`fusedloss.reference`.  See CONTRIBUTING.md.
"""

import math
from dataclasses import dataclass, field

__all__ = ["Param", "LossSpec", "LOSSES", "public_names"]

_INF = math.inf


@dataclass(frozen=True)
class Param:
    """One keyword of a loss.

    kind: "float" (a finite real scalar in [lo, hi], an open end when lo_open /
    hi_open), "int" (an integer, e.g. ignore_index) or "weight" (an optional array
    broadcast to the input, or for class-axis losses one value per class).
    scale_like: float32 must hold it as 0 or a normal number (delta, beta), since
    the kernel divides by it or compares errors with it."""

    name: str
    default: object = None
    kind: str = "float"
    lo: float = -_INF
    hi: float = _INF
    lo_open: bool = False
    hi_open: bool = False
    scale_like: bool = False
    doc: str = ""

    def range_text(self):
        """The valid range as text, e.g. '> 0' or 'in [0, 1]'."""
        if self.lo == -_INF and self.hi == _INF:
            return "finite"
        if self.hi == _INF:
            return f"{'>' if self.lo_open else '>='} {_num(self.lo)}"
        if self.lo == -_INF:
            return f"{'<' if self.hi_open else '<='} {_num(self.hi)}"
        return (
            f"in {'(' if self.lo_open else '['}{_num(self.lo)}, {_num(self.hi)}"
            f"{')' if self.hi_open else ']'}"
        )

    def in_range(self, v):
        if self.lo_open and not v > self.lo or not self.lo_open and not v >= self.lo:
            return False
        if self.hi_open and not v < self.hi or not self.hi_open and not v <= self.hi:
            return False
        return True


def _num(v):
    return str(int(v)) if float(v).is_integer() else repr(v)


@dataclass(frozen=True)
class LossSpec:
    """One public loss.

    name: the public function; kernel: its entry in csrc/losses.def; kind:
    "elementwise" (input and target of one shape, a loss per element) or
    "class_axis" (a class axis, last; a loss per row); inputs: the positional
    argument names; params: the keywords before ``reduction``, in signature order;
    target_domain: "real", "unit" (probabilities in [0, 1]) or "index" (class
    indices, or probabilities of the logits' shape); reference: the NumPy twin in
    fusedloss.reference (same name); torch: the PyTorch function it matches
    (documentation and tests); formula: the loss per element / row (docstring);
    grad: its gradient; hess: whether return_hess is implemented (not yet public)."""

    name: str
    kernel: str
    kind: str
    inputs: tuple
    params: tuple = ()
    target_domain: str = "real"
    torch: str = ""
    summary: str = ""
    formula: str = ""
    grad: str = ""
    notes: str = ""
    hess: bool = False
    extra_kernels: tuple = field(default=())

    @property
    def floats(self):
        """The float parameters, in the kernel's param[] order."""
        return tuple(p for p in self.params if p.kind == "float")

    @property
    def weights(self):
        return tuple(p for p in self.params if p.kind == "weight")

    @property
    def reference(self):
        """The NumPy twin, ``fusedloss.reference.<name>`` (same signature)."""
        from . import reference

        return getattr(reference, self.name)


_WEIGHT = Param(
    "weight",
    None,
    "weight",
    doc="a per-element factor on the loss and gradient, broadcast to the input's "
    'shape (``"mean"`` still divides by the number of elements)',
)

_POS_WEIGHT = Param(
    "pos_weight",
    None,
    "weight",
    doc="a factor on the positive term, broadcast to the logits' shape (typically shape ``(C,)``)",
)

LOSSES = {}


def _register(spec):
    LOSSES[spec.name] = spec
    return spec


_register(
    LossSpec(
        name="softmax_cross_entropy",
        kernel="ce_index",
        extra_kernels=("ce_prob",),
        kind="class_axis",
        inputs=("logits", "target"),
        params=(
            Param(
                "weight",
                None,
                "weight",
                doc="class weights, shape ``(C,)``; the mean divides by the summed weights of "
                "the rows that count",
            ),
            Param(
                "ignore_index",
                -100,
                "int",
                doc="rows whose class index equals it add nothing (index targets only)",
            ),
            Param(
                "label_smoothing",
                0.0,
                lo=0.0,
                hi=1.0,
                doc="mixes the target with the uniform distribution: ``(1 - eps) y + eps / C``",
            ),
        ),
        target_domain="index",
        torch="torch.nn.functional.cross_entropy",
        summary="Softmax cross-entropy over the last axis.",
        formula="loss = -sum_c w_c y_c log softmax(z)_c",
        grad="grad = (sum_c w_c y_c) softmax(z) - w * y",
    )
)


def _elementwise(name, kernel, inputs, params, torch, summary, formula, grad, **fields):
    """Registers an element-wise loss."""
    _register(
        LossSpec(
            name=name,
            kernel=kernel,
            kind="elementwise",
            inputs=inputs,
            params=params,
            torch=torch,
            summary=summary,
            formula=formula,
            grad=grad,
            **fields,
        )
    )


def _on_logits(name, kernel, params, torch, summary, formula, grad, **fields):
    """An element-wise loss on logits with targets in [0, 1]."""
    _elementwise(
        name,
        kernel,
        ("logits", "target"),
        params,
        torch,
        summary,
        formula,
        grad,
        target_domain="unit",
        **fields,
    )


_on_logits(
    "binary_cross_entropy_with_logits",
    "bce",
    (_WEIGHT, _POS_WEIGHT),
    "torch.nn.functional.binary_cross_entropy_with_logits",
    "Binary cross-entropy on logits, stable for logits of any magnitude.",
    "loss = w (pw t softplus(-x) + (1 - t) softplus(x))",
    "grad = w ((1 - t) sigmoid(x) - pw t sigmoid(-x))",
    hess=True,
)
_on_logits(
    "sigmoid_focal_loss",
    "focal",
    (
        Param(
            "alpha",
            0.25,
            doc="weight of the positive class; ``alpha < 0`` disables the alpha weighting",
        ),
        Param("gamma", 2.0, lo=0.0, doc="focusing exponent"),
        _WEIGHT,
    ),
    "torchvision.ops.sigmoid_focal_loss",
    'Sigmoid focal loss (torchvision\'s, but ``reduction="mean"`` by default).',
    "loss = a_t ce (1 - p_t)^gamma, ce the BCE with logits, p = sigmoid(x)",
    "the closed form, with its finite analytic limit where autograd gives NaN "
    "(gamma < 1 at saturated, correct predictions)",
)


def _regression(name, kernel, summary, formula, grad, params=()):
    """An element-wise loss on e = input - target, with weight= and a hessian."""
    _elementwise(
        name,
        kernel,
        ("input", "target"),
        params + (_WEIGHT,),
        f"torch.nn.functional.{name}",
        summary,
        formula + ", e = input - target",
        grad,
        hess=True,
    )


_regression(
    "huber_loss",
    "huber",
    "Huber loss.",
    "loss = 0.5 e^2 if |e| <= delta else delta (|e| - delta / 2)",
    "grad = clamp(e, -delta, delta)",
    (
        Param(
            "delta",
            1.0,
            lo=0.0,
            lo_open=True,
            scale_like=True,
            doc="where the loss turns from quadratic to linear",
        ),
    ),
)
_regression(
    "smooth_l1_loss",
    "smooth_l1",
    "Smooth-L1 loss (``beta == 0`` is the L1 loss).",
    "loss = 0.5 e^2 / beta if |e| < beta else |e| - beta / 2",
    "grad = e / beta inside, sign(e) outside (sign(0) == 0)",
    (
        Param(
            "beta",
            1.0,
            lo=0.0,
            scale_like=True,
            doc="where the loss turns from quadratic to linear; 0 gives the L1 loss",
        ),
    ),
)
_regression("mse_loss", "mse", "Mean squared error.", "loss = e^2", "grad = 2 e")
_regression(
    "l1_loss",
    "l1",
    "L1 loss (mean absolute error).",
    "loss = |e|",
    "grad = sign(e) (0 at e == 0, NaN kept)",
)


def public_names():
    """The public loss functions, in registry order."""
    return list(LOSSES)
