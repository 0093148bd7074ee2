"""Microbenchmark: ``python -m fusedloss.bench [--quick] [--json] [--threads N] [--plot F]``.

For each loss, dtype and size it times the fused loss + gradient call and
reports, all measured in the same run:
  - the median time per call and the bandwidth it reaches (bytes of the
    inputs read plus the gradient written, per second),
  - ``x copy``: that time over the time of ``np.copyto`` of the logits-sized
    array (the memory roofline: a fused pass reads the logits and writes the
    gradient, exactly what a copy does; element-wise losses also read a target,
    so their floor is 1.5x),
  - the speed-up over the NumPy reference (fusedloss.reference) and, when
    installed, over PyTorch CPU forward + backward and over scikit-learn's
    Cython losses (sklearn._loss: HalfMultinomialLoss for cross-entropy,
    HalfBinomialLoss for BCE, HuberLoss for Huber; loss_gradient with
    preallocated outputs, one thread).
"""

import argparse
import json
import statistics
import sys
import time

import numpy as np

from . import _config, losses, reference
from ._registry import LOSSES

CE_SIZES = [(32, 10), (65536, 10), (4096, 1000), (512, 32000)]
EW_SIZES = [(32, 10), (4096, 1024)]  # 4096 x 1024 = 4M elements
QUICK_CE = [(32, 10), (8192, 10), (512, 1000)]
QUICK_EW = [(32, 10), (512, 1024)]


def _time(fn, min_time=0.2, max_repeat=200, min_repeat=5):
    """Median seconds per call; calls are batched so one sample lasts >= ~1 ms."""
    fn()
    t0 = time.perf_counter()
    fn()
    once = max(time.perf_counter() - t0, 1e-7)
    inner = max(1, int(1e-3 / once))
    samples = []
    deadline = time.perf_counter() + min_time
    while len(samples) < min_repeat or (
        time.perf_counter() < deadline and len(samples) < max_repeat
    ):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def _torch():
    try:
        import torch  # noqa: F401
        import torch.nn.functional as F  # noqa: F401
    except Exception:
        return None
    return torch


def _cases(dtype, ce_sizes, ew_sizes, rng):
    """(loss name, shape, fast call, reference call, torch call factory, bytes): every
    loss of the registry; class-axis losses at ``ce_sizes``, the others at
    ``ew_sizes`` (elements, samples x features, or rows x features)."""
    out = []
    for spec in LOSSES.values():
        sizes = ce_sizes if spec.kind == "class_axis" else ew_sizes
        for n, c in sizes:
            out.append(_case(spec, n, c, np.dtype(dtype), rng))
    return out


_SK = {
    "softmax_cross_entropy": lambda L, x: L.HalfMultinomialLoss(n_classes=x.shape[1]),
    "binary_cross_entropy_with_logits": lambda L, x: L.HalfBinomialLoss(),
    "huber_loss": lambda L, x: L.HuberLoss(delta=1.0),
}


def _bench_args(spec, n, c, dtype, rng):
    """The positional arguments of `spec` at size (n, c), in its domains."""
    x = rng.normal(size=(n, c)).astype(dtype) * 3
    if spec.kind == "class_axis":
        t = rng.integers(0, c, n)
        if spec.name == "nll_loss":
            x = x - np.log(np.exp(x).sum(-1, keepdims=True))
        return (x.astype(dtype), t)
    if spec.kind == "multi":
        others = [rng.normal(size=(n, c)).astype(dtype) * 3 for _ in range(spec.n_grads - 1)]
        args = [x, *others]
        if len(spec.inputs) > spec.n_grads:
            shape = (n,) if spec.rows else (n, c)
            y = rng.uniform(size=shape) > 0.5
            args.append((np.where(y, 1.0, -1.0) if not spec.rows else y).astype(dtype))
        return tuple(args)
    if spec.input_domain == "prob":
        x = rng.uniform(size=(n, c)).astype(dtype)
    elif spec.input_domain == "logprob":
        x = np.log(rng.dirichlet(np.ones(c), size=n)).astype(dtype)
    if spec.target_domain == "sign":
        t = np.where(rng.uniform(size=(n, c)) > 0.5, 1.0, -1.0).astype(dtype)
    elif spec.target_domain == "unit":
        t = (rng.uniform(size=(n, c)) > 0.7).astype(dtype)
        if spec.name == "heatmap_focal_loss":
            t = np.where(rng.uniform(size=(n, c)) > 0.99, 1.0, rng.uniform(size=(n, c)) * 0.9)
            t = t.astype(dtype)
    elif spec.input_domain == "logprob":  # kl_div: probabilities
        t = rng.dirichlet(np.ones(c), size=n).astype(dtype)
    else:
        t = (x + rng.normal(size=(n, c))).astype(dtype)
    return (x, t)


def _case(spec, n, c, dtype, rng):
    name = spec.name
    args = _bench_args(spec, n, c, dtype, rng)
    x = args[0]
    n_diff = spec.n_grads if spec.kind == "multi" else 1
    grads = tuple(np.empty_like(x) for _ in range(n_diff))
    g = grads if n_diff > 1 else grads[0]
    fast_fn = getattr(losses, name)
    ref_fn = getattr(reference, name)
    isz = dtype.itemsize
    # bytes: every input read, every gradient written
    nbytes = sum(np.asarray(a).nbytes for a in args) + n_diff * x.size * isz
    sk = _SK.get(name)
    if sk is not None and name == "softmax_cross_entropy":
        sklearn = lambda L, x=x, t=args[1]: _sk_call(sk(L, x), t.astype(x.dtype), x)  # noqa: E731
    elif sk is not None:
        sklearn = lambda L, x=x, t=args[1]: _sk_call(sk(L, x), t.ravel(), x.ravel())  # noqa: E731
    else:
        sklearn = None
    return dict(
        loss=name,
        shape=(n, c),
        x=x,
        fast=lambda f=fast_fn, a=args, g=g: f(*a, return_grad=True, grad_out=g),
        ref=lambda f=ref_fn, a=args: f(*a, return_grad=True),
        torch=lambda torch, name=name, a=args, k=n_diff: (
            [torch.from_numpy(v) for v in a],
            k,
            _torch_fn(torch, name),
        ),
        sklearn=sklearn,
        nbytes=nbytes,
    )


def _sklearn():
    try:
        from sklearn._loss import loss as L
    except Exception:
        return None
    return L


def _sk_call(loss, y, raw):
    """A callable running sklearn's fused loss_gradient with preallocated outputs."""
    lo = np.empty(raw.shape[0], dtype=raw.dtype)
    go = np.empty_like(raw)
    return lambda: loss.loss_gradient(y, raw, loss_out=lo, gradient_out=go, n_threads=1)


def _torch_fn(torch, name):
    """The PyTorch computation timed against `name` (forward, mean): torch.nn.functional's
    function of that name, or the same formula in torch operations where torch has none
    (torchvision's focal loss; hinge, exponential, heatmap focal, softmax focal, Dice,
    contrastive)."""
    F = torch.nn.functional
    if name == "softmax_cross_entropy":
        return F.cross_entropy
    if name == "sigmoid_focal_loss":
        from .torch import _torch_sigmoid_focal  # torchvision's formula, written out

        return lambda x, t: _torch_sigmoid_focal(x, t, 0.25, 2.0, "mean")
    if name == "hinge_loss":
        return lambda x, y: torch.clamp_min(1.0 - y * x, 0).mean()
    if name == "exponential_loss":
        return lambda x, y: torch.exp(-y * x).mean()
    if name == "kl_div":
        return lambda x, t: F.kl_div(x, t, reduction="mean")
    if name == "heatmap_focal_loss":

        def heatmap(x, t, alpha=2.0, beta=4.0):
            pos = t.eq(1)
            p = torch.sigmoid(x)
            lp, lq = F.logsigmoid(x), F.logsigmoid(-x)
            pos_loss = -((1 - p) ** alpha) * lp * pos
            neg_loss = -((1 - t) ** beta) * p**alpha * lq * (~pos)
            return (pos_loss.sum() + neg_loss.sum()) / pos.sum().clamp_min(1)

        return heatmap
    if name == "softmax_focal_loss":

        def sfocal(x, t, gamma=2.0):
            lp = F.log_softmax(x, -1).gather(1, t[:, None])[:, 0]
            return (-((1 - lp.exp()) ** gamma) * lp).mean()

        return sfocal
    if name == "dice_loss":

        def dice(x, t, smooth=1.0):
            p = torch.sigmoid(x).flatten(1)
            t = t.flatten(1)
            num = 2 * (p * t).sum(1) + smooth
            return (1 - num / (p.sum(1) + t.sum(1) + smooth)).mean()

        return dice
    if name == "contrastive_loss":

        def contrastive(x1, x2, y, margin=1.0):
            d = F.pairwise_distance(x1, x2)
            return (y * d**2 + (1 - y) * torch.clamp_min(margin - d, 0) ** 2).mean()

        return contrastive
    return getattr(F, name)


def _torch_time(torch, case):
    args, n_diff, f = case["torch"](torch)

    def run():
        a = [v.detach().requires_grad_(True) if i < n_diff else v for i, v in enumerate(args)]
        f(*a).backward()

    return _time(run)


def run(dtypes=("float32", "float64"), quick=False, threads=None, torch=True, verbose=True):
    """Runs the benchmark; returns a list of result dicts."""
    if threads is not None:
        _config.set_num_threads(threads)
    tmod = _torch() if torch else None
    skl = _sklearn() if torch else None
    if tmod is not None:
        tmod.set_num_threads(_config.get_num_threads())
    rng = np.random.default_rng(0)
    results = []
    for dtype in dtypes:
        cases = _cases(
            np.dtype(dtype), QUICK_CE if quick else CE_SIZES, QUICK_EW if quick else EW_SIZES, rng
        )
        copies = {}
        for case in cases:
            key = case["x"].shape
            if key not in copies:
                src = case["x"]
                dst = np.empty_like(src)
                copies[key] = _time(lambda: np.copyto(dst, src))
            t_fast = _time(case["fast"])
            t_ref = _time(case["ref"], min_time=0.1, max_repeat=20, min_repeat=3)
            row = dict(
                loss=case["loss"],
                dtype=dtype,
                shape=list(case["shape"]),
                time_s=t_fast,
                gb_per_s=case["nbytes"] / t_fast / 1e9,
                x_copy=t_fast / copies[key],
                speedup_numpy=t_ref / t_fast,
                threads=_config.get_num_threads(),
            )
            if tmod is not None:
                row["speedup_torch"] = _torch_time(tmod, case) / t_fast
            if skl is not None and case.get("sklearn") is not None:
                row["speedup_sklearn"] = _time(case["sklearn"](skl)) / t_fast
            results.append(row)
            if verbose:
                print(_format_row(row), flush=True)
    return results


HEADER = (
    f"{'loss':<34} {'dtype':<8} {'shape':>12} {'time':>10} {'GB/s':>7} "
    f"{'x copy':>7} {'vs numpy':>9} {'vs torch':>9} {'vs sklearn':>10}"
)


def _fmt_time(s):
    return f"{s * 1e6:.1f} us" if s < 1e-3 else f"{s * 1e3:.2f} ms"


def _format_row(r):
    shape = "x".join(str(v) for v in r["shape"])
    torch_col = f"{r['speedup_torch']:8.1f}x" if "speedup_torch" in r else f"{'-':>9}"
    sk_col = f"{r['speedup_sklearn']:9.1f}x" if "speedup_sklearn" in r else f"{'-':>10}"
    return (
        f"{r['loss']:<34} {r['dtype']:<8} {shape:>12} {_fmt_time(r['time_s']):>10} "
        f"{r['gb_per_s']:7.2f} {r['x_copy']:7.2f} {r['speedup_numpy']:8.1f}x {torch_col} "
        f"{sk_col}"
    )


def _plot(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [
        f"{r['loss'].replace('_loss', '').replace('binary_cross_entropy_with_logits', 'bce')}"
        f"\n{r['dtype']} {'x'.join(map(str, r['shape']))}"
        for r in results
    ]
    fig, ax = plt.subplots(figsize=(max(8, 0.6 * len(results)), 5))
    ax.bar(range(len(results)), [r["x_copy"] for r in results])
    ax.axhline(1.0, color="k", lw=0.8)
    ax.set_xticks(range(len(results)), labels, rotation=90, fontsize=7)
    ax.set_ylabel("fused loss+grad time / np.copyto time")
    ax.set_title("fusedloss: time relative to a memory copy (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(
        prog="python -m fusedloss.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smaller sizes (a few seconds)")
    p.add_argument(
        "--json",
        metavar="FILE",
        nargs="?",
        const="-",
        help="write results as JSON to FILE (or stdout)",
    )
    p.add_argument("--threads", type=int, default=None, help="threads for the kernels")
    p.add_argument(
        "--dtype",
        choices=["float32", "float64"],
        action="append",
        help="only this dtype (repeatable)",
    )
    p.add_argument(
        "--no-torch", action="store_true", help="skip PyTorch and scikit-learn even if installed"
    )
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of the copy ratios")
    a = p.parse_args(argv)
    quiet_json = a.json == "-"
    if not quiet_json:
        from ._kernels import build_info

        compiler, _, selected = build_info()
        print(
            f"fusedloss {_config.__version__}  numpy {np.__version__}  {compiler}  "
            f"SIMD {selected}  threads {a.threads or _config.get_num_threads()}"
        )
        print(
            "medians; 'x copy' = time / np.copyto of the logits (roofline); "
            "'vs' = speed-up of fused loss+grad"
        )
        print(HEADER)
    res = run(
        tuple(a.dtype or ("float32", "float64")),
        quick=a.quick,
        threads=a.threads,
        torch=not a.no_torch,
        verbose=not quiet_json,
    )
    if a.json:
        text = json.dumps(res, indent=1)
        if quiet_json:
            print(text)
        else:
            with open(a.json, "w") as f:
                f.write(text)
    if a.plot:
        _plot(res, a.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
