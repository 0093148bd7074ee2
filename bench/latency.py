"""Small-call latency: microseconds per call, end to end, for each loss.

    python bench/latency.py [--json FILE] [--repeat 7]

Each case is timed as the minimum-of-batches median: `repeat` batches of calls,
the median batch's time per call.  Small arrays (32 x 10: logits, elements, rows)
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
    """Cross-entropy with class weights, then every loss of the registry at 32 x 10
    (its arguments in its domains, as ``python -m fusedloss.bench`` makes them): with a
    fresh gradient, into grad_out, and reduction="none"."""
    from fusedloss._registry import LOSSES
    from fusedloss.bench import _bench_args

    rng = np.random.default_rng(0)
    z = rng.normal(size=(32, 10)).astype(np.float32)
    t = rng.integers(0, 10, 32)
    w = np.ones(10, np.float32)
    out = {
        "ce 32x10 grad weight": lambda: fl.softmax_cross_entropy(z, t, weight=w, return_grad=True),
    }
    for spec in LOSSES.values():
        args = _bench_args(spec, 32, 10, np.dtype(np.float32), rng)
        n_grads = spec.n_grads if spec.kind == "multi" else 1
        grads = tuple(np.empty_like(args[0]) for _ in range(n_grads))
        g = grads if n_grads > 1 else grads[0]
        f = getattr(fl, spec.name)
        short = spec.name.replace("binary_cross_entropy_with_logits", "bce")
        out[f"{short} 32x10 grad"] = lambda f=f, a=args: f(*a, return_grad=True)
        out[f"{short} 32x10 grad_out"] = lambda f=f, a=args, g=g: f(
            *a, return_grad=True, grad_out=g
        )
        out[f"{short} 32x10 none"] = lambda f=f, a=args: f(*a, reduction="none")
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
