"""fusedloss for PyTorch: drop-ins for ``torch.nn.functional`` losses (CPU).

    import fusedloss.torch as FL

    loss = FL.cross_entropy(logits, target, label_smoothing=0.1)   # as F.cross_entropy
    loss.backward()

Each function has PyTorch's own signature, defaults and layout (the class axis is 1) and
is a custom op, ``torch.ops.fusedloss.loss``, with a registered autograd formula and a
fake (meta) kernel, so ``torch.compile(fullgraph=True)`` traces through it and
``torch.library.opcheck`` passes; eager calls run the same forward and backward as a plain
``torch.autograd.Function`` (a fraction of the custom op's per-call cost).  The forward
runs fusedloss's fused kernel, which gives the loss and its gradient in one pass; the
backward hands that gradient over as it is for ``loss.backward()`` (no pass) and scales
it by ``grad_output`` otherwise (one multiply).  Nothing is written into the caller's
tensors, and a graph retained and back-propagated twice gives the same gradient twice.

CPU float32 and float64 tensors run the kernels.  Everything else falls back to
``torch.nn.functional`` (the same call): other devices (CUDA, ...) and dtypes (float16,
bfloat16, ...), a target or weight that requires grad, the deprecated ``size_average`` /
``reduce`` arguments, torch.func transforms (grad, vmap, ...), and double backward
(``create_graph=True``: the backward then differentiates PyTorch's own formula).
Class-axis inputs with more than two dimensions (``(N, C, d1, ...)``) are computed in
place of that layout (the kernels' ``axis=1``), without a copy.

PyTorch is not a dependency of fusedloss: ``pip install "fusedloss[torch]"``.
"""

import math

try:
    import torch
    import torch.nn.functional as F
except ImportError as e:  # pragma: no cover - exercised without torch
    raise ImportError(
        'fusedloss.torch needs PyTorch: pip install "fusedloss[torch]" (or pip install torch)'
    ) from e

from typing import List, Optional

import numpy as np

from . import losses as _L

__all__ = [
    "cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "huber_loss",
    "smooth_l1_loss",
    "mse_loss",
    "l1_loss",
    "nll_loss",
    "kl_div",
    "margin_ranking_loss",
    "triplet_margin_loss",
    "CrossEntropyLoss",
    "BCEWithLogitsLoss",
    "HuberLoss",
    "SmoothL1Loss",
    "MSELoss",
    "L1Loss",
    "NLLLoss",
    "KLDivLoss",
    "MarginRankingLoss",
    "TripletMarginLoss",
]

_DTYPES = (torch.float32, torch.float64)
_REDUCTIONS = ("none", "mean", "sum")


# ---- the calls into fusedloss -------------------------------------------------------
#
# Each entry: (fusedloss function, number of differentiable inputs, class-axis loss?,
# how its float / int parameters and optional tensors map to keywords).  The op passes
# every tensor as a NumPy view (no copy for contiguous CPU tensors) and returns new
# tensors: the loss and one gradient per differentiable input, in the inputs' layout.


def _np(t):
    return None if t is None else t.detach().numpy()


def _kw_weight(others):
    w = others[1] if len(others) > 1 else None
    return {} if w is None else {"weight": _np(w)}


def _call_ce(name, xs, others, fp, ip, reduction):
    x, t = _np(xs[0]), _np(others[0])
    kw = _kw_weight(others)
    if name == "cross_entropy":
        kw["label_smoothing"] = fp[0]
        fn = _L.softmax_cross_entropy
    else:
        fn = _L.nll_loss
    # PyTorch's class axis: 1 for (N, C, d1, ...), computed in place of that layout
    axis = 1 if x.ndim >= 2 else -1
    return fn(x, t, ignore_index=ip[0], axis=axis, reduction=reduction, return_grad=True, **kw)


def _call_bce(name, xs, others, fp, ip, reduction):
    kw = _kw_weight(others)
    if others[2] is not None:
        kw["pos_weight"] = _np(others[2])
    return _L.binary_cross_entropy_with_logits(
        _np(xs[0]), _np(others[0]), reduction=reduction, return_grad=True, **kw
    )


def _call_focal(name, xs, others, fp, ip, reduction):
    return _L.sigmoid_focal_loss(
        _np(xs[0]), _np(others[0]), alpha=fp[0], gamma=fp[1], reduction=reduction, return_grad=True
    )


def _call_regression(name, xs, others, fp, ip, reduction):
    fn = getattr(_L, name)
    kw = _kw_weight(others)
    if name == "huber_loss":
        kw["delta"] = fp[0]
    elif name == "smooth_l1_loss":
        kw["beta"] = fp[0]
    x, t = _np(xs[0]), _np(others[0])
    if "weight" in kw and reduction == "mean" and name in ("mse_loss", "l1_loss"):
        # PyTorch's mean with weight= divides by the summed (broadcast) weights
        s, g = fn(x, t, reduction="sum", return_grad=True, **kw)
        d = float(np.broadcast_to(kw["weight"], x.shape).sum(dtype=np.float64))
        g = g / g.dtype.type(d) if d != 0 else np.zeros_like(g)
        return (s / s.dtype.type(d) if d != 0 else s.dtype.type(math.nan)), g
    return fn(x, t, reduction=reduction, return_grad=True, **kw)


def _call_kl(name, xs, others, fp, ip, reduction):
    return _L.kl_div(
        _np(xs[0]), _np(others[0]), log_target=bool(ip[0]), reduction=reduction, return_grad=True
    )


def _call_ranking(name, xs, others, fp, ip, reduction):
    loss, (g1, g2) = _L.margin_ranking_loss(
        _np(xs[0]), _np(xs[1]), _np(others[0]), margin=fp[0], reduction=reduction, return_grad=True
    )
    return loss, g1, g2


def _call_triplet(name, xs, others, fp, ip, reduction):
    loss, gs = _L.triplet_margin_loss(
        *(_np(x) for x in xs),
        margin=fp[0],
        p=fp[1],
        eps=fp[2],
        swap=bool(ip[0]),
        reduction=reduction,
        return_grad=True,
    )
    return (loss, *gs)


_CALLS = {
    "cross_entropy": (_call_ce, 1, True),
    "nll_loss": (_call_ce, 1, True),
    "binary_cross_entropy_with_logits": (_call_bce, 1, False),
    "sigmoid_focal_loss": (_call_focal, 1, False),
    "huber_loss": (_call_regression, 1, False),
    "smooth_l1_loss": (_call_regression, 1, False),
    "mse_loss": (_call_regression, 1, False),
    "l1_loss": (_call_regression, 1, False),
    "kl_div": (_call_kl, 1, False),
    "margin_ranking_loss": (_call_ranking, 2, False),
    "triplet_margin_loss": (_call_triplet, 3, False),
}


def _loss_shape(name, xs, others, reduction):
    if reduction != "none":
        return ()
    x = xs[0]
    if _CALLS[name][2]:  # class axis 1: the loss has the input's shape without it
        return (x.shape[0],) + tuple(x.shape[2:]) if x.dim() >= 2 else ()
    if name == "triplet_margin_loss":
        return tuple(x.shape[:-1])
    return tuple(x.shape)


def _loss_impl(name, inputs, others, fparams, iparams, reduction):
    """[loss, grad_0, ...]: the loss and the gradient of each differentiable input (of
    the returned loss), from one fused pass.  Inputs are CPU tensors of one float dtype."""
    call = _CALLS[name][0]
    xs = [x.contiguous() for x in inputs]
    os_ = [None if o is None else o.contiguous() for o in others]
    res = call(name, xs, os_, fparams, iparams, reduction)
    loss, grads = res[0], res[1:]
    dtype = inputs[0].dtype
    out = [torch.from_numpy(np.array(loss, copy=True).reshape(np.shape(loss))).to(dtype)]
    out += [torch.from_numpy(g) for g in grads]
    return out


@torch.library.custom_op("fusedloss::loss", mutates_args=())
def _loss_op(
    name: str,
    inputs: List[torch.Tensor],
    others: List[Optional[torch.Tensor]],
    fparams: List[float],
    iparams: List[int],
    reduction: str,
) -> List[torch.Tensor]:
    """[loss, grad_0, ...] (_loss_impl) as a custom op: what tracers see."""
    return _loss_impl(name, inputs, others, fparams, iparams, reduction)


@_loss_op.register_fake
def _loss_fake(name, inputs, others, fparams, iparams, reduction):
    x = inputs[0]
    shape = _loss_shape(name, inputs, others, reduction)
    return [x.new_empty(shape)] + [
        torch.empty_like(i, memory_format=torch.contiguous_format) for i in inputs
    ]


def _traced(tensors):
    """Whether the op runs under a tracer (torch.compile, AOTAutograd, opcheck's fake
    tensors): the gradient then goes through save_for_backward and a multiply."""
    if torch.compiler.is_compiling():
        return True
    plain = (torch.Tensor, torch.nn.Parameter)
    return any(type(t) not in plain for t in tensors)


def _setup_context(ctx, inputs, output):
    name, xs, others, fparams, iparams, reduction = inputs
    # the fused-gradient outputs get no gradient of their own: without these two, autograd
    # would materialise a zero tensor of the input's size for each in every backward (a
    # full pass, and fresh pages, for nothing)
    ctx.mark_non_differentiable(*output[1:])
    ctx.set_materialize_grads(False)
    eager = not _traced(list(output) + list(xs))
    _remember(ctx, inputs, output[1:], eager)


def _remember(ctx, inputs, fused, eager):
    """What the backward needs of a call (the op's arguments `inputs`, its fused
    gradients), on ctx: the custom op's and the eager autograd.Function's alike."""
    name, xs, others, fparams, iparams, reduction = inputs
    ctx.name, ctx.reduction = name, reduction
    ctx.fparams, ctx.iparams = fparams, iparams
    ctx.n_inputs, ctx.n_others = len(xs), len(others)
    ctx.n_fp, ctx.n_ip = len(fparams), len(iparams)
    ctx.others_none = [o is None for o in others]
    present = [o for o in others if o is not None]
    ctx.eager = eager
    ctx.owned = None
    if not eager:
        # the fused gradients, and the inputs for a double backward (references)
        ctx.save_for_backward(*fused, *xs, *present)
    else:
        # Eager: the fused gradients are the op's own new tensors (the public functions
        # return only the loss), handed over to autograd by the first backward, which
        # then needs no pass over them when grad_output is 1 (loss.backward()) and
        # scales them in place otherwise.  A retained graph's next backward recomputes
        # them from the saved inputs: bitwise the same, nothing written into a tensor
        # anybody else holds.
        ctx.owned = [g.detach() for g in fused]  # no autograd history of their own
        ctx.save_for_backward(*xs, *present)


def _fused_again(ctx, xs, others):
    """The fused gradients recomputed (a retained graph's second backward)."""
    with torch.no_grad():
        res = _loss_op(ctx.name, list(xs), others, ctx.fparams, ctx.iparams, ctx.reduction)
    return list(res[1:])


def _backward(ctx, grads):
    return _grads_for(ctx, _input_grads(ctx, grads[0]))


def _input_grads(ctx, g_loss):
    """The gradient of each differentiable input, given the loss's grad_output."""
    if g_loss is None:  # (not materialised) nothing flows into the loss
        ctx.owned = None
        return [None] * ctx.n_inputs
    saved = ctx.saved_tensors
    k = ctx.n_inputs
    owned = ctx.eager
    if owned:
        xs, rest = saved[:k], saved[k:]
    else:
        fused, xs, rest = saved[:k], saved[k : 2 * k], saved[2 * k :]
    it = iter(rest)
    others = [None if none else next(it) for none in ctx.others_none]
    if torch.is_grad_enabled():
        # create_graph=True: differentiate PyTorch's own formula (double backward)
        with torch.enable_grad():
            loss = _torch_formula(
                ctx.name, list(xs), others, ctx.fparams, ctx.iparams, ctx.reduction
            )
            gin = torch.autograd.grad(loss, xs, g_loss, create_graph=True, allow_unused=True)
        return list(gin)
    if owned:
        fused = ctx.owned if ctx.owned is not None else _fused_again(ctx, xs, others)
        ctx.owned = None  # handed over: never touched again
    out = []
    for g in fused:
        if ctx.reduction == "none" and g_loss.dim() > 0:
            if _CALLS[ctx.name][2]:  # class axis 1
                gl = g_loss.unsqueeze(1)
            elif ctx.name == "triplet_margin_loss":
                gl = g_loss.unsqueeze(-1)
            else:
                gl = g_loss
            out.append(g.mul_(gl) if owned else g * gl)
        elif owned and _is_one(g_loss):
            out.append(g)  # loss.backward(): the fused gradient as it is
        else:
            out.append(g.mul_(g_loss) if owned else g * g_loss)  # one multiply by the scalar
    return out


def _is_one(g):
    """Whether a scalar grad_output is exactly 1 (an eager tensor)."""
    return g.dim() == 0 and type(g) is torch.Tensor and bool(g.item() == 1)


def _grads_for(ctx, input_grads):
    """The backward's result in the structure torch.library expects for the op's
    arguments: a list argument holding only tensors (or empty) is a list, one entry per
    element; a list holding anything else (a None, floats, ints) is a single leaf."""

    def like(n, only_tensors):
        return [None] * n if only_tensors or n == 0 else None

    return (
        None,
        input_grads,
        like(ctx.n_others, not any(ctx.others_none)),
        like(ctx.n_fp, False),
        like(ctx.n_ip, False),
        None,
    )


_loss_op.register_autograd(_backward, setup_context=_setup_context)


class _EagerLoss(torch.autograd.Function):
    """The eager path: the same forward (_loss_impl) and backward (_input_grads) as the
    custom op, as a plain autograd.Function, which costs tens of microseconds a call
    where the custom op's dispatch costs hundreds.  Tracers (torch.compile, opcheck, fake
    tensors) get the custom op."""

    @staticmethod
    def forward(ctx, name, others, fparams, iparams, reduction, *xs):
        inputs = (name, list(xs), others, fparams, iparams, reduction)
        res = _loss_impl(*inputs)
        _remember(ctx, inputs, res[1:], True)
        return res[0]

    @staticmethod
    def backward(ctx, g_loss):
        return (None, None, None, None, None, *_input_grads(ctx, g_loss))


def _torch_formula(name, xs, others, fp, ip, reduction):
    """The same loss in PyTorch (the fallback, and the double backward)."""
    if name == "cross_entropy":
        return F.cross_entropy(
            xs[0],
            others[0],
            weight=others[1],
            ignore_index=ip[0],
            reduction=reduction,
            label_smoothing=fp[0],
        )
    if name == "nll_loss":
        return F.nll_loss(
            xs[0], others[0], weight=others[1], ignore_index=ip[0], reduction=reduction
        )
    if name == "binary_cross_entropy_with_logits":
        return F.binary_cross_entropy_with_logits(
            xs[0], others[0], weight=others[1], pos_weight=others[2], reduction=reduction
        )
    if name == "sigmoid_focal_loss":
        return _torch_sigmoid_focal(xs[0], others[0], fp[0], fp[1], reduction)
    if name == "huber_loss":
        return F.huber_loss(xs[0], others[0], reduction=reduction, delta=fp[0], weight=others[1])
    if name == "smooth_l1_loss":
        return F.smooth_l1_loss(xs[0], others[0], reduction=reduction, beta=fp[0])
    if name in ("mse_loss", "l1_loss"):
        return getattr(F, name)(xs[0], others[0], reduction=reduction, weight=others[1])
    if name == "kl_div":
        return F.kl_div(xs[0], others[0], reduction=reduction, log_target=bool(ip[0]))
    if name == "margin_ranking_loss":
        return F.margin_ranking_loss(xs[0], xs[1], others[0], margin=fp[0], reduction=reduction)
    if name == "triplet_margin_loss":
        return F.triplet_margin_loss(
            *xs, margin=fp[0], p=fp[1], eps=fp[2], swap=bool(ip[0]), reduction=reduction
        )
    raise AssertionError(name)


def _torch_sigmoid_focal(inputs, targets, alpha, gamma, reduction):
    """torchvision.ops.sigmoid_focal_loss, written out (torchvision is not needed)."""
    p = torch.sigmoid(inputs)
    ce = F.binary_cross_entropy_with_logits(inputs, targets, reduction="none")
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = ce * ((1 - p_t) ** gamma)
    if alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _runs_here(xs, others):
    """Whether the kernels take this call: CPU float32/float64 inputs of one dtype, and no
    target or weight that requires grad (those fall back to PyTorch)."""
    dt = xs[0].dtype
    if dt not in _DTYPES:
        return False
    if torch._C._are_functorch_transforms_active():
        return False  # torch.func (grad, vmap, ...): custom ops do not take part
    for x in xs:
        if x.device.type != "cpu" or x.dtype != dt or x.layout != torch.strided:
            return False
    for o in others:
        if o is None:
            continue
        if o.device.type != "cpu" or o.layout != torch.strided or o.requires_grad:
            return False
    return True


def _run(name, xs, others, fparams, iparams, reduction):
    if reduction not in _REDUCTIONS and not (name == "kl_div" and reduction == "batchmean"):
        # PyTorch's own message for a bad reduction
        return _torch_formula(name, xs, others, fparams, iparams, reduction)
    if not _runs_here(xs, others):
        return _torch_formula(name, xs, others, fparams, iparams, reduction)
    dt = xs[0].dtype
    conv = []
    for i, o in enumerate(others):
        if o is not None and o.is_floating_point() and o.dtype != dt:
            o = o.to(dt)
        conv.append(o)
    fparams, iparams = [float(v) for v in fparams], [int(v) for v in iparams]
    if _traced(list(xs) + [o for o in conv if o is not None]):
        return _loss_op(name, list(xs), conv, fparams, iparams, reduction)[0]
    return _EagerLoss.apply(name, conv, fparams, iparams, reduction, *xs)


def _legacy(size_average, reduce):
    return size_average is not None or reduce is not None


# ---- the functions ---------------------------------------------------------------------


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0.0,
):
    """``torch.nn.functional.cross_entropy`` on fusedloss's kernel (class axis 1)."""
    if _legacy(size_average, reduce) or input.dim() == 0:
        return F.cross_entropy(
            input, target, weight, size_average, ignore_index, reduce, reduction, label_smoothing
        )
    if input.dim() == 1:  # unbatched (C,)
        return cross_entropy(
            input.unsqueeze(0),
            target.unsqueeze(0),
            weight,
            None,
            ignore_index,
            None,
            reduction,
            label_smoothing,
        ).squeeze(0)
    return _run(
        "cross_entropy", [input], [target, weight], [label_smoothing], [ignore_index], reduction
    )


def nll_loss(
    input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"
):
    """``torch.nn.functional.nll_loss`` on fusedloss's kernel (class axis 1)."""
    if _legacy(size_average, reduce) or input.dim() < 2:
        return F.nll_loss(input, target, weight, size_average, ignore_index, reduce, reduction)
    return _run("nll_loss", [input], [target, weight], [], [ignore_index], reduction)


def binary_cross_entropy_with_logits(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
):
    """``torch.nn.functional.binary_cross_entropy_with_logits`` on fusedloss's kernel."""
    if _legacy(size_average, reduce):
        return F.binary_cross_entropy_with_logits(
            input, target, weight, size_average, reduce, reduction, pos_weight
        )
    return _run(
        "binary_cross_entropy_with_logits", [input], [target, weight, pos_weight], [], [], reduction
    )


def sigmoid_focal_loss(inputs, targets, alpha=0.25, gamma=2, reduction="none"):
    """``torchvision.ops.sigmoid_focal_loss`` (default ``reduction="none"``, as there) on
    fusedloss's kernel, which keeps the gradient finite where autograd of torchvision's
    formula gives NaN (gamma < 1 at saturated, correct predictions)."""
    return _run("sigmoid_focal_loss", [inputs], [targets], [alpha, gamma], [], reduction)


def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """``torch.nn.functional.huber_loss`` on fusedloss's kernel."""
    return _run("huber_loss", [input], [target, weight], [delta], [], reduction)


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    """``torch.nn.functional.smooth_l1_loss`` on fusedloss's kernel."""
    if _legacy(size_average, reduce):
        return F.smooth_l1_loss(input, target, size_average, reduce, reduction, beta)
    return _run("smooth_l1_loss", [input], [target], [beta], [], reduction)


def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """``torch.nn.functional.mse_loss`` on fusedloss's kernel (``weight=``'s mean divides
    by the summed weights, as PyTorch's)."""
    if _legacy(size_average, reduce):
        return F.mse_loss(input, target, size_average, reduce, reduction, weight=weight)
    return _run("mse_loss", [input], [target, weight], [], [], reduction)


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """``torch.nn.functional.l1_loss`` on fusedloss's kernel (``weight=``'s mean divides
    by the summed weights, as PyTorch's)."""
    if _legacy(size_average, reduce):
        return F.l1_loss(input, target, size_average, reduce, reduction, weight=weight)
    return _run("l1_loss", [input], [target, weight], [], [], reduction)


def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """``torch.nn.functional.kl_div`` on fusedloss's kernel."""
    if _legacy(size_average, reduce):
        return F.kl_div(input, target, size_average, reduce, reduction, log_target)
    return _run("kl_div", [input], [target], [], [int(bool(log_target))], reduction)


def margin_ranking_loss(
    input1, input2, target, margin=0.0, size_average=None, reduce=None, reduction="mean"
):
    """``torch.nn.functional.margin_ranking_loss`` on fusedloss's kernel."""
    if (
        _legacy(size_average, reduce)
        or input1.shape != input2.shape
        or target.shape != input1.shape
    ):
        return F.margin_ranking_loss(
            input1, input2, target, margin, size_average, reduce, reduction
        )
    return _run("margin_ranking_loss", [input1, input2], [target], [margin], [], reduction)


def triplet_margin_loss(
    anchor,
    positive,
    negative,
    margin=1.0,
    p=2,
    eps=1e-6,
    swap=False,
    size_average=None,
    reduce=None,
    reduction="mean",
):
    """``torch.nn.functional.triplet_margin_loss`` on fusedloss's kernel."""
    if (
        _legacy(size_average, reduce)
        or not (anchor.shape == positive.shape == negative.shape)
        or anchor.dim() != 2
    ):
        return F.triplet_margin_loss(
            anchor, positive, negative, margin, p, eps, swap, size_average, reduce, reduction
        )
    return _run(
        "triplet_margin_loss",
        [anchor, positive, negative],
        [],
        [margin, p, eps],
        [int(bool(swap))],
        reduction,
    )


# ---- modules ---------------------------------------------------------------------------


class _Loss(torch.nn.Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


class CrossEntropyLoss(_Loss):
    """``torch.nn.CrossEntropyLoss`` on fusedloss's kernel."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_Loss):
    """``torch.nn.NLLLoss`` on fusedloss's kernel."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class BCEWithLogitsLoss(_Loss):
    """``torch.nn.BCEWithLogitsLoss`` on fusedloss's kernel."""

    def __init__(self, weight=None, reduction="mean", pos_weight=None):
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


class HuberLoss(_Loss):
    """``torch.nn.HuberLoss`` on fusedloss's kernel."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input, target):
        return huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class SmoothL1Loss(_Loss):
    """``torch.nn.SmoothL1Loss`` on fusedloss's kernel."""

    def __init__(self, reduction="mean", beta=1.0):
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input, target):
        return smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class MSELoss(_Loss):
    """``torch.nn.MSELoss`` on fusedloss's kernel."""

    def forward(self, input, target):
        return mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """``torch.nn.L1Loss`` on fusedloss's kernel."""

    def forward(self, input, target):
        return l1_loss(input, target, reduction=self.reduction)


class KLDivLoss(_Loss):
    """``torch.nn.KLDivLoss`` on fusedloss's kernel."""

    def __init__(self, reduction="mean", log_target=False):
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MarginRankingLoss(_Loss):
    """``torch.nn.MarginRankingLoss`` on fusedloss's kernel."""

    def __init__(self, margin=0.0, reduction="mean"):
        super().__init__(reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return margin_ranking_loss(
            input1, input2, target, margin=self.margin, reduction=self.reduction
        )


class TripletMarginLoss(_Loss):
    """``torch.nn.TripletMarginLoss`` on fusedloss's kernel."""

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, reduction="mean"):
        super().__init__(reduction)
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        return triplet_margin_loss(
            anchor,
            positive,
            negative,
            margin=self.margin,
            p=self.p,
            eps=self.eps,
            swap=self.swap,
            reduction=self.reduction,
        )
