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
    hi_open; or one of ``choices``), "bool" (True / False, passed to the kernel as
    1.0 / 0.0 with the floats), "int" (an integer, e.g. ignore_index) or "weight"
    (an optional array broadcast to the input, or for class-axis losses one value per
    class).
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
    choices: tuple = ()

    def range_text(self):
        """The valid range as text, e.g. '> 0' or 'in [0, 1]'."""
        if self.choices:
            return "in {" + ", ".join(_num(c) for c in self.choices) + "}"
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
        if self.choices:
            return v in self.choices
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
    "elementwise" (input and target of one shape, a loss per element),
    "class_axis" (a class axis, the last unless ``axis=``; a loss per row), "sample"
    (the first axis is the sample axis, every other axis is summed within a sample; a
    loss per sample)
    or "multi" (several differentiable inputs of one shape, the first ``n_grads``
    inputs; a loss per element, or per row of the last axis when ``rows``; a target,
    when the loss has one, of the loss's shape); inputs: the positional argument
    names; params: the keywords before ``reduction``, in signature order;
    input_domain: "real", "prob" (probabilities in [0, 1], checked: ValueError) or
    "logprob" (log-probabilities, not checked); target_domain: "real", "unit"
    (probabilities in [0, 1], not checked), "sign" (labels in {-1, +1}, checked:
    ValueError; NaN propagates), "index" (class indices, or probabilities of the
    logits' shape) or "class" (class indices only); reductions: the reductions
    taken beyond mean / sum / none (kl_div's "batchmean"); reference: the NumPy twin in
    fusedloss.reference (same name); torch: the PyTorch function it matches
    (documentation and tests); formula: the loss per element / row (docstring);
    grad: its gradient; hess: its second derivative (the diagonal of the hessian), for
    the losses that take return_hess ("" for the others)."""

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
    hess: str = ""
    extra_kernels: tuple = field(default=())
    input_domain: str = "real"
    n_grads: int = 1
    rows: bool = False
    reductions: tuple = ()

    @property
    def floats(self):
        """The scalar parameters the kernel receives (floats and bools), in its
        param[] order."""
        return tuple(p for p in self.params if p.kind in ("float", "bool"))

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
        summary="Softmax cross-entropy over a class axis (the last by default).",
        formula="loss = -sum_c w_c y_c log softmax(z)_c",
        grad="grad = (sum_c w_c y_c) softmax(z) - w * y",
        hess="hess = (sum_c w_c y_c) softmax(z) (1 - softmax(z))",
    )
)


def _add(kind, name, kernel, inputs, params, torch, summary, formula, grad, **fields):
    """Registers a loss of `kind` (the positional fields every spec has; the rest by
    keyword)."""
    _register(
        LossSpec(
            name=name,
            kernel=kernel,
            kind=kind,
            inputs=inputs,
            params=params,
            torch=torch,
            summary=summary,
            formula=formula,
            grad=grad,
            **fields,
        )
    )


def _elementwise(*args, **fields):
    """Registers an element-wise loss."""
    _add("elementwise", *args, **fields)


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
    hess="hess = w (pw t + 1 - t) sigmoid(x) sigmoid(-x)",
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
    hess="hess: the closed form (negative in places for gamma > 0; finite for every gamma >= 0)",
)


def _regression(name, kernel, summary, formula, grad, hess, params=()):
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
        hess=hess,
    )


_regression(
    "huber_loss",
    "huber",
    "Huber loss.",
    "loss = 0.5 e^2 if |e| <= delta else delta (|e| - delta / 2)",
    "grad = clamp(e, -delta, delta)",
    "hess = 1 if |e| <= delta else 0",
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
    "hess = 1 / beta if |e| < beta else 0",
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
_regression("mse_loss", "mse", "Mean squared error.", "loss = e^2", "grad = 2 e", "hess = 2")
_regression(
    "l1_loss",
    "l1",
    "L1 loss (mean absolute error).",
    "loss = |e|",
    "grad = sign(e) (0 at e == 0, NaN kept)",
    "hess = 0",
)


# ---- the wider family ---------------------------------------------------------

_elementwise(
    "binary_cross_entropy",
    "bce_prob",
    ("input", "target"),
    (_WEIGHT,),
    "torch.nn.functional.binary_cross_entropy",
    "Binary cross-entropy on probabilities (each log clamped to >= -100, as PyTorch).",
    "loss = -w (t max(log x, -100) + (1 - t) max(log(1 - x), -100))",
    "grad = w (x - t) / max(x (1 - x), 1e-12)",
    input_domain="prob",
    target_domain="unit",
    hess="hess = w (x^2 - 2 t x + t) / (x (1 - x))^2, or w / 1e-12 where the clamp holds",
    notes="``input`` must hold probabilities: a value outside [0, 1] is a ValueError "
    "(NaN propagates).",
)


def _margin(name, kernel, summary, formula, grad, hess, params=()):
    """A margin loss on labels y in {-1, +1}."""
    _elementwise(
        name,
        kernel,
        ("input", "target"),
        params + (_WEIGHT,),
        "",
        summary,
        formula,
        grad,
        target_domain="sign",
        hess=hess,
        notes="``target`` holds labels in {-1, +1}: any other value is a ValueError "
        "(NaN propagates).",
    )


_margin(
    "hinge_loss",
    "hinge",
    "Hinge loss (the linear SVM's), labels in {-1, +1}.",
    "loss = w max(0, margin - y x)",
    "grad = -w y where margin - y x > 0, else 0 (0 at the kink)",
    "hess = 0",
    (Param("margin", 1.0, doc="the margin the prediction must clear"),),
)
_margin(
    "exponential_loss",
    "exponential",
    "Exponential loss (AdaBoost's), labels in {-1, +1}.",
    "loss = w exp(-y x)",
    "grad = -w y exp(-y x)",
    "hess = w exp(-y x)",
)
_elementwise(
    "kl_div",
    "kl_div",
    ("input", "target"),
    (
        Param(
            "log_target",
            False,
            "bool",
            doc="``target`` holds log-probabilities (no exp overflow: the loss is "
            "``exp(t) (t - x)``)",
        ),
        _WEIGHT,
    ),
    "torch.nn.functional.kl_div",
    "Kullback-Leibler divergence; ``input`` holds log-probabilities.",
    "loss = w (xlogy(t, t) - t x)   (log_target: w exp(t) (t - x))",
    "grad = -w t   (log_target: -w exp(t))",
    input_domain="logprob",
    hess="hess = 0 (the loss is linear in the input)",
    reductions=("batchmean",),
    notes='``reduction="batchmean"`` divides the sum by the length of the first axis '
    '(the mathematical KL divergence per sample); ``"mean"`` divides by the number of '
    "elements, as PyTorch.  A zero target gives 0 (``xlogy``).",
)
_elementwise(
    "heatmap_focal_loss",
    "heatmap_focal",
    ("logits", "heatmap"),
    (
        Param("alpha", 2.0, lo=0.0, doc="focusing exponent on the prediction"),
        Param("beta", 4.0, lo=0.0, doc="penalty reduction around the peaks: (1 - heatmap)^beta"),
        _WEIGHT,
    ),
    "",
    "CenterNet / CornerNet penalty-reduced focal loss on a heatmap, from the logits.",
    "loss = -(1 - p)^alpha log p where heatmap == 1, else "
    "-(1 - heatmap)^beta p^alpha log(1 - p); p = sigmoid(x)",
    "the closed form, in log-space from the logits (no clamping)",
    target_domain="unit",
    hess="hess: the closed form, in log-space from the logits",
    notes='``"mean"`` divides the sum by ``max(1, number of positives)`` (elements with '
    "heatmap == 1) over the whole input, as CenterNet does.",
)


def _class_index(*args, **fields):
    """A loss over the class axis with class-index targets only."""
    _add("class_axis", *args, target_domain="class", **fields)


_IGNORE = Param(
    "ignore_index",
    -100,
    "int",
    doc="rows whose class index equals it add nothing",
)
_class_index(
    "nll_loss",
    "nll",
    ("input", "target"),
    (
        Param(
            "weight",
            None,
            "weight",
            doc="class weights, shape ``(C,)``; the mean divides by the summed weights of "
            "the rows that count",
        ),
        _IGNORE,
    ),
    "torch.nn.functional.nll_loss",
    "Negative log-likelihood; ``input`` holds log-probabilities over the class axis.",
    "loss = -w[y] x[y]",
    "grad = -w[y] at the target class, 0 elsewhere",
)
_class_index(
    "softmax_focal_loss",
    "softmax_focal",
    ("logits", "target"),
    (
        Param("alpha", None, "weight", doc="class weights, shape ``(C,)``, or None"),
        Param("gamma", 2.0, lo=0.0, doc="focusing exponent"),
        _IGNORE,
    ),
    "",
    "Multi-class focal loss on softmax probabilities.",
    "loss = -alpha[y] (1 - p_y)^gamma log p_y, p = softmax(z)",
    "the closed form, finite for every gamma >= 0 at saturated predictions (the analytic limit)",
    hess="hess: the closed form's diagonal, finite for every gamma >= 0 (may be negative)",
    notes='``"mean"`` divides by the number of rows that are not ignored (not by the '
    "summed alpha); ``gamma=0`` with ``alpha=None`` is ``softmax_cross_entropy``.",
)
_class_index(
    "multi_margin_loss",
    "multi_margin",
    ("input", "target"),
    (
        Param("p", 1, choices=(1, 2), doc="1 for the hinge, 2 for the squared hinge"),
        Param("margin", 1.0, doc="the margin the target's score must clear"),
        Param(
            "weight",
            None,
            "weight",
            doc="class weights, shape ``(C,)``: a row is weighted by its target's",
        ),
    ),
    "torch.nn.functional.multi_margin_loss",
    "Multi-class hinge loss (the multi-class SVM's) over the class axis.",
    "loss = w[y] / C sum_{j != y} max(0, margin - x[y] + x[j])^p",
    "grad_j = w[y] / C p max(0, margin - x[y] + x[j])^(p-1) (j != y), grad_y = -sum_j grad_j",
    notes='``"mean"`` divides by the number of rows.',
)
_add(
    "sample",
    "dice_loss",
    "dice",
    ("logits", "target"),
    (Param("smooth", 1.0, lo=0.0, doc="added to the numerator and denominator"),),
    "",
    "Soft Dice loss per sample on sigmoid probabilities.",
    "loss = 1 - (2 sum(p t) + smooth) / (sum(p) + sum(t) + smooth), "
    "p = sigmoid(x), sums over every axis but the first",
    "grad = p (1 - p) (N - 2 t D) / D^2, N and D the numerator and denominator",
    target_domain="unit",
    notes="The first axis is the sample axis; per-class Dice of ``(N, C, H, W)`` is the "
    "same call on the view ``(N * C, H * W)``.",
)


def _multi(name, kernel, inputs, n_grads, rows, *args, **fields):
    """A loss of several differentiable inputs (the first n_grads), per element or
    per row of the last axis."""
    _add("multi", name, kernel, inputs, *args, n_grads=n_grads, rows=rows, **fields)


_multi(
    "margin_ranking_loss",
    "margin_ranking",
    ("input1", "input2", "target"),
    2,
    False,
    (Param("margin", 0.0, doc="the margin"),),
    "torch.nn.functional.margin_ranking_loss",
    "Margin ranking loss: input1 should rank above input2 where target is 1.",
    "loss = max(0, -y (x1 - x2) + margin)",
    "grad = (-y, y) where -y (x1 - x2) + margin >= 0 (PyTorch's clamp_min), else 0",
)
_multi(
    "triplet_margin_loss",
    "triplet",
    ("anchor", "positive", "negative"),
    3,
    True,
    (
        Param("margin", 1.0, doc="the margin"),
        Param("p", 2.0, lo=0.0, lo_open=True, doc="the norm's degree"),
        Param("eps", 1e-6, doc="added to each difference before its norm"),
        Param(
            "swap",
            False,
            "bool",
            doc="use min(d(a, n), d(p, n)) as the negative distance (the distance swap)",
        ),
    ),
    "torch.nn.functional.triplet_margin_loss",
    "Triplet margin loss over rows of the last axis.",
    "loss = max(0, d(a, p) - d(a, n) + margin), d(u, v) = ||u - v + eps||_p",
    "the gradients for anchor, positive and negative",
)
_multi(
    "contrastive_loss",
    "contrastive",
    ("x1", "x2", "target"),
    2,
    True,
    (
        Param("margin", 1.0, doc="the margin dissimilar pairs are pushed beyond"),
        Param("eps", 1e-6, doc="added to the difference before its norm"),
    ),
    "",
    "Contrastive loss over rows of the last axis; target 1 for a similar pair.",
    "loss = y d^2 + (1 - y) max(0, margin - d)^2, d = ||x1 - x2 + eps||_2",
    "grad_x1 = 2 (y - (1 - y) max(0, margin - d) / d) (x1 - x2 + eps) = -grad_x2",
    notes="``target`` has the shape of the loss (the inputs' without the last axis).",
)


def public_names():
    """The public loss functions, in registry order."""
    return list(LOSSES)
