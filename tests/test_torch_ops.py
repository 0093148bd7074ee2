"""fusedloss.torch: drop-ins for torch.nn.functional as custom ops (skipped without torch).

Value and gradient parity with torch.nn.functional over layouts (class axis 1: (N, C),
(N, C, H, W), unbatched (C,)), dtypes, options and reductions, with random upstream
gradients; gradcheck in float64; the caller's tensors unmodified; torch.library.opcheck;
a compiled step (fullgraph=True) equal to eager; double backward and a retained graph
back-propagated twice; fallbacks (float16, bfloat16, a target that requires grad, the
legacy size_average / reduce) equal to PyTorch; the modules.
"""

import math

import cases
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional
FL = pytest.importorskip("fusedloss.torch")

DTYPES = [torch.float32, torch.float64]
REDUCTIONS = ["mean", "sum", "none"]


def _tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == torch.float32 else dict(rtol=1e-10, atol=1e-12)


_focal_ref = cases._sigmoid_focal_loss  # torchvision's formula, the tests' own


def _cases(dtype, g):
    """(id, fusedloss function, torch function, differentiable inputs, other args, kwargs)."""

    def r(*s, scale=2.0):
        return torch.randn(*s, generator=g, dtype=dtype) * scale

    def u(*s):
        return torch.rand(*s, generator=g, dtype=dtype)

    N, C = 13, 7
    idx = torch.randint(0, C, (N,), generator=g)
    idx[3] = -100
    idx4 = torch.randint(0, C, (2, 3, 5), generator=g)
    probs = torch.softmax(r(N, C), dim=1)
    w = u(C) + 0.5
    out = [
        ("ce", FL.cross_entropy, F.cross_entropy, [r(N, C)], [idx], {}),
        (
            "ce-smooth-w",
            FL.cross_entropy,
            F.cross_entropy,
            [r(N, C)],
            [idx],
            dict(weight=w, label_smoothing=0.2),
        ),
        (
            "ce-ignore1",
            FL.cross_entropy,
            F.cross_entropy,
            [r(N, C)],
            [idx.clamp(min=0)],
            dict(ignore_index=1),
        ),
        ("ce-4d", FL.cross_entropy, F.cross_entropy, [r(2, C, 3, 5)], [idx4], {}),
        (
            "ce-probs",
            FL.cross_entropy,
            F.cross_entropy,
            [r(N, C)],
            [probs],
            dict(label_smoothing=0.1),
        ),
        (
            "ce-probs-4d",
            FL.cross_entropy,
            F.cross_entropy,
            [r(2, C, 3, 5)],
            [torch.softmax(r(2, C, 3, 5), 1)],
            {},
        ),
        ("ce-unbatched", FL.cross_entropy, F.cross_entropy, [r(C)], [torch.tensor(2)], {}),
        ("nll", FL.nll_loss, F.nll_loss, [torch.log_softmax(r(N, C), 1)], [idx], dict(weight=w)),
        ("nll-4d", FL.nll_loss, F.nll_loss, [torch.log_softmax(r(2, C, 3, 5), 1)], [idx4], {}),
        (
            "bce",
            FL.binary_cross_entropy_with_logits,
            F.binary_cross_entropy_with_logits,
            [r(N, C)],
            [u(N, C)],
            dict(weight=u(C), pos_weight=u(C) + 1),
        ),
        (
            "focal",
            FL.sigmoid_focal_loss,
            _focal_ref,
            [r(N, C)],
            [(u(N, C) > 0.7).to(dtype)],
            dict(alpha=0.25, gamma=2.0),
        ),
        (
            "focal-g1.5",
            FL.sigmoid_focal_loss,
            _focal_ref,
            [r(N, C)],
            [u(N, C)],
            dict(alpha=-1.0, gamma=1.5),
        ),
        ("huber", FL.huber_loss, F.huber_loss, [r(N, C)], [r(N, C)], dict(delta=0.7)),
        ("smooth_l1", FL.smooth_l1_loss, F.smooth_l1_loss, [r(N, C)], [r(N, C)], dict(beta=0.5)),
        ("mse", FL.mse_loss, F.mse_loss, [r(N, C)], [r(N, C)], {}),
        ("mse-w", FL.mse_loss, F.mse_loss, [r(N, C)], [r(N, C)], dict(weight=u(N, C) + 0.5)),
        ("l1", FL.l1_loss, F.l1_loss, [r(N, C)], [r(N, C)], {}),
        ("l1-w", FL.l1_loss, F.l1_loss, [r(N, C)], [r(N, C)], dict(weight=u(N, C) + 0.5)),
        (
            "kl",
            FL.kl_div,
            F.kl_div,
            [torch.log_softmax(r(N, C), 1)],
            [torch.softmax(r(N, C), 1)],
            {},
        ),
        (
            "kl-logt",
            FL.kl_div,
            F.kl_div,
            [torch.log_softmax(r(N, C), 1)],
            [torch.log_softmax(r(N, C), 1)],
            dict(log_target=True),
        ),
        (
            "ranking",
            FL.margin_ranking_loss,
            F.margin_ranking_loss,
            [r(N), r(N)],
            [torch.sign(r(N)) + (r(N) == 0).to(dtype)],
            dict(margin=0.3),
        ),
        (
            "triplet",
            FL.triplet_margin_loss,
            F.triplet_margin_loss,
            [r(N, C), r(N, C), r(N, C)],
            [],
            dict(margin=1.0),
        ),
        (
            "triplet-p1-swap",
            FL.triplet_margin_loss,
            F.triplet_margin_loss,
            [r(N, C), r(N, C), r(N, C)],
            [],
            dict(p=1.0, swap=True),
        ),
    ]
    return out


CASE_IDS = [c[0] for c in _cases(torch.float64, torch.Generator().manual_seed(0))]


def _case(cid, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    for c in _cases(dtype, g):
        if c[0] == cid:
            return c
    raise KeyError(cid)


def _reductions(cid):
    return REDUCTIONS + (["batchmean"] if cid.startswith("kl") else [])


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("cid", CASE_IDS)
def test_value_and_gradient_parity(cid, dtype):
    _, fl_fn, t_fn, xs, others, kw = _case(cid, dtype)
    for reduction in _reductions(cid):
        a_in = [x.clone().requires_grad_() for x in xs]
        b_in = [x.clone().requires_grad_() for x in xs]
        a = fl_fn(*a_in, *others, reduction=reduction, **kw)
        b = t_fn(*b_in, *others, reduction=reduction, **kw)
        assert a.shape == b.shape and a.dtype == b.dtype, (reduction, a.shape, b.shape)
        torch.testing.assert_close(a, b, **_tol(dtype), msg=f"loss {reduction}")
        up = torch.randn(b.shape, dtype=dtype, generator=torch.Generator().manual_seed(1))
        ga = torch.autograd.grad(a, a_in, up)
        gb = torch.autograd.grad(b, b_in, up)
        for k, (u, v) in enumerate(zip(ga, gb)):
            torch.testing.assert_close(u, v, **_tol(dtype), msg=f"grad {k} {reduction}")


@pytest.mark.parametrize("cid", CASE_IDS)
def test_gradcheck_float64(cid):
    _, fl_fn, _, xs, others, kw = _case(cid, torch.float64)
    xs = [x.clone().requires_grad_() for x in xs]
    for reduction in ("none", "mean"):
        assert torch.autograd.gradcheck(
            lambda *z: fl_fn(*z, *others, reduction=reduction, **kw), tuple(xs)
        )


@pytest.mark.parametrize("cid", CASE_IDS)
def test_the_callers_tensors_are_not_modified(cid):
    _, fl_fn, _, xs, others, kw = _case(cid, torch.float32)
    xs = [x.clone().requires_grad_() for x in xs]
    tensors = xs + [o for o in others if torch.is_tensor(o)]
    tensors += [v for v in kw.values() if torch.is_tensor(v)]
    before = [t.detach().clone() for t in tensors]
    loss = fl_fn(*xs, *others, **kw)
    loss.sum().backward()
    for t, b in zip(tensors, before):
        assert torch.equal(t.detach(), b)


@pytest.mark.parametrize("cid", CASE_IDS)
def test_backward_makes_no_full_size_pass(cid):
    # the backward hands over the fused gradient: no zero tensor for the op's gradient
    # outputs (autograd materialises one per output unless told not to), and for a
    # scalar loss's backward() not even a multiply
    from torch.profiler import ProfilerActivity, profile

    _, fl_fn, _, xs, others, kw = _case(cid, torch.float32)
    for reduction in ("mean", "none"):
        xs_ = [x.clone().requires_grad_() for x in xs]
        loss = fl_fn(*xs_, *others, reduction=reduction, **kw)
        up = torch.ones_like(loss)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            loss.backward(up if reduction == "none" else None)
        names = {e.name for e in prof.events()}
        assert not names & {"aten::zeros", "aten::zero_", "aten::zeros_like"}, names
        if reduction == "mean":
            assert not names & {"aten::mul", "aten::mul_"}, names
        assert all(x.grad is not None and x.grad.shape == x.shape for x in xs_)


@pytest.mark.parametrize("cid", CASE_IDS)
def test_retained_graph_gives_the_same_gradient_twice(cid):
    _, fl_fn, _, xs, others, kw = _case(cid, torch.float64)
    xs = [x.clone().requires_grad_() for x in xs]
    loss = fl_fn(*xs, *others, **kw).sum()
    first = torch.autograd.grad(loss, xs, retain_graph=True)
    second = torch.autograd.grad(loss, xs)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


@pytest.mark.parametrize("cid", ["ce", "ce-smooth-w", "bce", "huber", "mse", "triplet"])
def test_double_backward_matches_pytorch(cid):
    _, fl_fn, t_fn, xs, others, kw = _case(cid, torch.float64)
    res = []
    for fn in (fl_fn, t_fn):
        z = [x.clone().requires_grad_() for x in xs]
        loss = fn(*z, *others, **kw)
        g = torch.autograd.grad(loss, z, create_graph=True)
        h = torch.autograd.grad(sum((gi * gi).sum() for gi in g), z)
        res.append(h)
    for a, b in zip(*res):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def _op_args(cid):
    """The arguments of the custom op as the public function makes them (the eager path,
    an autograd.Function, calls the op's implementation with the same arguments)."""
    calls = []
    real = FL._loss_impl

    def spy(*args):
        calls.append(args)
        return real(*args)

    _, fl_fn, _, xs, others, kw = _case(cid, torch.float64)
    xs = [x.clone().requires_grad_() for x in xs]
    FL._loss_impl = spy
    try:
        fl_fn(*xs, *others, **kw)
    finally:
        FL._loss_impl = real
    assert len(calls) == 1
    return calls[0]


@pytest.mark.parametrize("cid", CASE_IDS)
def test_opcheck(cid):
    args = _op_args(cid)
    result = torch.library.opcheck(torch.ops.fusedloss.loss.default, args)
    assert all(v == "SUCCESS" for v in result.values()), result


@pytest.mark.parametrize("backend", ["aot_eager"])
def test_compiled_training_step_equals_eager(backend):
    torch.manual_seed(0)
    torch._dynamo.reset()
    model = torch.nn.Linear(8, 5)
    x = torch.randn(32, 8)
    t = torch.randint(0, 5, (32,))
    y = torch.rand(32, 5)

    def forward(x, t, y):
        z = model(x)
        return (
            FL.cross_entropy(z, t, label_smoothing=0.1)
            + FL.binary_cross_entropy_with_logits(z, y)
            + FL.huber_loss(z, y)
            + FL.triplet_margin_loss(z, model(x + 1), model(x - 1))
        )

    model.zero_grad()
    eager = forward(x, t, y)
    eager.backward()
    g_eager = [p.grad.clone() for p in model.parameters()]
    compiled = torch.compile(forward, fullgraph=True, backend=backend)
    model.zero_grad()
    got = compiled(x, t, y)
    got.backward()
    torch.testing.assert_close(got, eager)
    for p, g in zip(model.parameters(), g_eager):
        torch.testing.assert_close(p.grad, g)


def test_compiled_with_inductor_equals_eager():
    """The default backend (Inductor generates C++ around the custom op): one case, the
    compile alone takes tens of seconds."""
    torch._dynamo.reset()
    x = torch.randn(64, 10, requires_grad=True)
    t = torch.randint(0, 10, (64,))

    def f(x, t):
        return FL.cross_entropy(x * 2.0, t)

    eager = f(x, t)
    (ge,) = torch.autograd.grad(eager, x)
    got = torch.compile(f, fullgraph=True)(x, t)
    (gc,) = torch.autograd.grad(got, x)
    torch.testing.assert_close(got, eager)
    torch.testing.assert_close(gc, ge)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_other_dtypes_fall_back_to_pytorch(dtype):
    x = torch.randn(6, 5).to(dtype).requires_grad_()
    t = torch.randint(0, 5, (6,))
    a = FL.cross_entropy(x, t)
    b = F.cross_entropy(x, t)
    assert torch.equal(a, b) and a.dtype == dtype
    y = torch.rand(6, 5).to(dtype)
    assert torch.equal(FL.mse_loss(x, y), F.mse_loss(x, y))


def test_a_target_that_requires_grad_falls_back_and_gets_its_gradient():
    x = torch.randn(6, 5, dtype=torch.float64, requires_grad=True)
    y = torch.rand(6, 5, dtype=torch.float64, requires_grad=True)
    a = FL.binary_cross_entropy_with_logits(x, y)
    gx, gy = torch.autograd.grad(a, (x, y))
    b = F.binary_cross_entropy_with_logits(x, y)
    hx, hy = torch.autograd.grad(b, (x, y))
    torch.testing.assert_close((gx, gy), (hx, hy))
    l1 = FL.mse_loss(x, y)
    assert torch.autograd.grad(l1, y)[0].abs().sum() > 0


def test_legacy_arguments_fall_back():
    x = torch.randn(6, 5)
    y = torch.randn(6, 5)
    with pytest.warns(UserWarning):
        a = FL.mse_loss(x, y, size_average=False)
    with pytest.warns(UserWarning):
        b = F.mse_loss(x, y, size_average=False)
    assert torch.equal(a, b)


def test_bad_reduction_is_pytorchs_error():
    x = torch.randn(4, 3)
    with pytest.raises(ValueError):
        F.mse_loss(x, x, reduction="avg")
    with pytest.raises(ValueError):
        FL.mse_loss(x, x, reduction="avg")


def test_sigmoid_focal_gradient_stays_finite_where_autograd_gives_nan():
    x = torch.tensor([40.0, -40.0], dtype=torch.float64, requires_grad=True)
    t = torch.tensor([1.0, 0.0], dtype=torch.float64)
    (g,) = torch.autograd.grad(FL.sigmoid_focal_loss(x, t, gamma=0.5).sum(), x)
    assert torch.isfinite(g).all()
    x2 = x.detach().clone().requires_grad_()
    (g2,) = torch.autograd.grad(_focal_ref(x2, t, gamma=0.5).sum(), x2)
    assert not torch.isfinite(g2).all()  # torchvision's formula under autograd


def test_registered_under_torch_ops():
    assert hasattr(torch.ops.fusedloss, "loss")
    x = torch.randn(4, 3, dtype=torch.float64)
    t = torch.randint(0, 3, (4,))
    loss, grad = torch.ops.fusedloss.loss("cross_entropy", [x], [t, None], [0.0], [-100], "sum")
    ref_x = x.clone().requires_grad_()
    (want,) = torch.autograd.grad(F.cross_entropy(ref_x, t, reduction="sum"), ref_x)
    torch.testing.assert_close(grad, want)


@pytest.mark.parametrize(
    "mod,ref,args",
    [
        (
            FL.CrossEntropyLoss(label_smoothing=0.1),
            torch.nn.CrossEntropyLoss(label_smoothing=0.1),
            "ce",
        ),
        (FL.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss(), "bce"),
        (FL.HuberLoss(delta=0.5), torch.nn.HuberLoss(delta=0.5), "reg"),
        (FL.SmoothL1Loss(beta=0.5), torch.nn.SmoothL1Loss(beta=0.5), "reg"),
        (FL.MSELoss(reduction="sum"), torch.nn.MSELoss(reduction="sum"), "reg"),
        (FL.L1Loss(), torch.nn.L1Loss(), "reg"),
        (FL.NLLLoss(), torch.nn.NLLLoss(), "nll"),
        (FL.KLDivLoss(reduction="batchmean"), torch.nn.KLDivLoss(reduction="batchmean"), "kl"),
        (FL.MarginRankingLoss(margin=0.2), torch.nn.MarginRankingLoss(margin=0.2), "rank"),
        (FL.TripletMarginLoss(), torch.nn.TripletMarginLoss(), "triplet"),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, torch.nn.Module) else None,
)
def test_modules_mirror_torch_nn(mod, ref, args):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 5, generator=g, dtype=torch.float64)
    a = {
        "ce": (x, torch.randint(0, 5, (8,), generator=g)),
        "bce": (x, torch.rand(8, 5, generator=g, dtype=torch.float64)),
        "reg": (x, torch.randn(8, 5, generator=g, dtype=torch.float64)),
        "nll": (torch.log_softmax(x, 1), torch.randint(0, 5, (8,), generator=g)),
        "kl": (torch.log_softmax(x, 1), torch.softmax(torch.randn(8, 5, dtype=torch.float64), 1)),
        "rank": (x[:, 0], x[:, 1], torch.sign(x[:, 2])),
        "triplet": (x, x + 0.5, x * 0.5),
    }[args]
    torch.testing.assert_close(mod(*a), ref(*a))
    assert isinstance(mod, torch.nn.Module)


def test_cuda_falls_back_when_available():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here (CPU build of PyTorch)")
    x = torch.randn(6, 5, device="cuda")
    t = torch.randint(0, 5, (6,), device="cuda")
    assert torch.equal(FL.cross_entropy(x, t), F.cross_entropy(x, t))


def test_importing_fusedloss_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, fusedloss; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_mean_of_nothing_matches_pytorch():
    x = torch.randn(4, 3, requires_grad=True)
    t = torch.full((4,), -100)
    a = FL.cross_entropy(x, t)
    b = F.cross_entropy(x, t)
    assert math.isnan(a.item()) and math.isnan(b.item())
    (g,) = torch.autograd.grad(a, x)
    assert torch.equal(g, torch.zeros_like(g))
    np.testing.assert_array_equal(g.numpy(), 0)


def test_readme_example_runs():
    """The README's PyTorch section (its example is a doctest)."""
    import doctest
    import pathlib
    import re

    text = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text("utf-8")
    found = re.search(r"^## PyTorch.*?(?=^## |\Z)", text, re.S | re.M)
    assert found, "README.md has no '## PyTorch' section"
    test = doctest.DocTestParser().get_doctest(found.group(0), {}, "README PyTorch", None, 0)
    assert len(test.examples) > 8
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = []
    try:
        runner.run(test, out=report.append)
    finally:
        # drop the compiled graph while the doctest's globals still exist (dynamo's
        # guards on them otherwise complain at interpreter exit)
        torch._dynamo.reset()
        test.globs.clear()
    assert runner.failures == 0, "".join(report)


@pytest.mark.parametrize("cid", ["ce", "bce", "triplet", "ranking"])
def test_handed_over_gradients_stay_independent(cid):
    """The first backward hands the fused gradient over (no pass when grad_output is 1,
    in place otherwise): it carries no autograd history, a caller who mutates it does not
    change a retained graph's next backward (recomputed), and accumulation into .grad
    over three backwards is 3x one."""
    _, fl_fn, t_fn, xs, others, kw = _case(cid, torch.float64)
    z = [x.clone().requires_grad_() for x in xs]
    w = [x.clone().requires_grad_() for x in xs]
    want = torch.autograd.grad(t_fn(*w, *others, **kw), w)
    loss = fl_fn(*z, *others, **kw)
    first = torch.autograd.grad(loss, z, retain_graph=True)
    for g, v in zip(first, want):
        assert not g.requires_grad and g.grad_fn is None
        torch.testing.assert_close(g, v)
        g.mul_(1000.0)  # the caller's to change
    second = torch.autograd.grad(loss, z, retain_graph=True)
    for g, v in zip(second, want):
        torch.testing.assert_close(g, v)
    for _ in range(3):
        loss.backward(retain_graph=True)
    for zi, v in zip(z, want):
        assert not zi.grad.requires_grad
        torch.testing.assert_close(zi.grad, 3 * v)
    # a loss used twice: grad_output 2, scaled in place
    z2 = [x.clone().requires_grad_() for x in xs]
    l2 = fl_fn(*z2, *others, **kw)
    (l2 + l2).backward()
    for zi, v in zip(z2, want):
        torch.testing.assert_close(zi.grad, 2 * v)


def test_torch_func_transforms_fall_back():
    """torch.func.grad / vmap: the custom op takes no part, PyTorch's function does."""
    x = torch.randn(6, 4, dtype=torch.float64)
    t = torch.randint(0, 4, (6,))
    g = torch.func.grad(lambda z: FL.cross_entropy(z, t))(x)
    want = torch.func.grad(lambda z: F.cross_entropy(z, t))(x)
    torch.testing.assert_close(g, want)
    batched = torch.func.vmap(lambda z: FL.mse_loss(z, torch.zeros(4, dtype=torch.float64)))(x)
    torch.testing.assert_close(batched, (x * x).mean(dim=1))


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_channel_first_inputs_use_class_axis_1(dtype):
    # (N, C, d) with C == d, and a segmentation layout: class axis 1, as PyTorch's,
    # computed in place of that layout; probability targets too
    g = torch.Generator().manual_seed(7)
    for shape in [(2, 4, 4), (3, 5, 6, 7), (2, 21, 8, 8)]:
        x = torch.randn(shape, dtype=dtype, generator=g)
        t = torch.randint(0, shape[1], (shape[0],) + shape[2:], generator=g)
        p = torch.softmax(torch.randn(shape, dtype=dtype, generator=g), dim=1)
        for target in (t, p):
            for reduction in ("mean", "none"):
                a_in, b_in = x.clone().requires_grad_(), x.clone().requires_grad_()
                a = FL.cross_entropy(a_in, target, reduction=reduction, label_smoothing=0.1)
                b = F.cross_entropy(b_in, target, reduction=reduction, label_smoothing=0.1)
                torch.testing.assert_close(a, b, **_tol(dtype))
                up = torch.rand(b.shape, dtype=dtype, generator=g)
                (ga,) = torch.autograd.grad(a, a_in, up)
                (gb,) = torch.autograd.grad(b, b_in, up)
                torch.testing.assert_close(ga, gb, **_tol(dtype))
