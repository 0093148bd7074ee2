"""Small-call latency: microseconds per call, end to end, for each loss.

    python bench/latency.py [--json FILE] [--repeat 7]

Each case is timed as the minimum-of-batches median: `repeat` batches of calls,
the median batch's time per call.  Small arrays (32 x 10 logits, 320 elements)
measure the fixed cost of a call (argument checks, dispatch, result objects),
not the kernels.  Run it before and after a change on the same machine: absolute
times move between machines and runs.
"""

import argparse
import json
import statistics
import timeit

import numpy as np

import fusedloss as fl


def cases():
    """Cross-entropy (index targets; class weights), then every element-wise loss of
    the registry: with a fresh gradient, into grad_out, and reduction="none"."""
    from fusedloss._registry import LOSSES

    rng = np.random.default_rng(0)
    z = rng.normal(size=(32, 10)).astype(np.float32)
    t = rng.integers(0, 10, 32)
    w = np.ones(10, np.float32)
    x = rng.normal(size=320).astype(np.float32)
    targets = {
        "unit": rng.random(320).astype(np.float32),
        "real": rng.normal(size=320).astype(np.float32),
    }
    g = np.empty_like(x)
    out = {
        "ce 32x10 grad": lambda: fl.softmax_cross_entropy(z, t, return_grad=True),
        "ce 32x10 loss": lambda: fl.softmax_cross_entropy(z, t),
        "ce 32x10 grad weight": lambda: fl.softmax_cross_entropy(z, t, weight=w, return_grad=True),
    }
    for spec in LOSSES.values():
        if spec.kind != "elementwise":
            continue
        f, y = getattr(fl, spec.name), targets[spec.target_domain]
        short = spec.name.replace("binary_cross_entropy_with_logits", "bce")
        out[f"{short} 320 grad"] = lambda f=f, y=y: f(x, y, return_grad=True)
        out[f"{short} 320 grad_out"] = lambda f=f, y=y: f(x, y, return_grad=True, grad_out=g)
        out[f"{short} 320 none"] = lambda f=f, y=y: f(x, y, reduction="none")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    res = {}
    for name, f in cases().items():
        f()
        n = 2000
        times = timeit.repeat(f, number=n, repeat=args.repeat)
        res[name] = statistics.median(times) / n * 1e6
        print(f"{name:32s} {res[name]:7.2f} us")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"fusedloss": fl.__version__, "us_per_call": res}, fh, indent=1)


if __name__ == "__main__":
    main()
