"""fusedloss.torch against torch.nn.functional: forward + backward, one thread and all.

    python bench/torch_ops.py [--repeat 9] [--threads 1 2]

For each case, the median time of ``loss = f(x, ...); loss.backward()`` with
fusedloss.torch's function and with PyTorch's own (``torch.nn.functional``; torchvision's
sigmoid focal loss written out), each after a warm-up, x requiring grad, its .grad
cleared between runs; the threads set with torch.set_num_threads and
fusedloss.set_num_threads together.  The values and gradients are compared before timing.
Cases: cross-entropy 4096x1000, 512x32000, 65536x10, segmentation (32, 21, 512, 512)
(class axis 1; ``--seg 8 21 128 128`` for a smaller one), BCE with logits and sigmoid
focal loss on 4M elements.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

import fusedloss  # noqa: E402
import fusedloss.torch as FL  # noqa: E402

F = torch.nn.functional


def focal_ref(x, t):
    """torchvision's sigmoid focal loss (alpha 0.25, gamma 2), its mean."""
    return FL._torch_sigmoid_focal(x, t, 0.25, 2.0, "mean")


def cases(seg):
    g = torch.Generator().manual_seed(0)

    def ce(shape, C):
        x = torch.randn(*shape, generator=g)
        tshape = (shape[0],) + tuple(shape[2:])
        return x, (torch.randint(0, C, tshape, generator=g),)

    yield "CE 4096x1000", FL.cross_entropy, F.cross_entropy, *ce((4096, 1000), 1000)
    yield "CE 512x32000", FL.cross_entropy, F.cross_entropy, *ce((512, 32000), 32000)
    yield "CE 65536x10", FL.cross_entropy, F.cross_entropy, *ce((65536, 10), 10)
    name = f"CE ({','.join(map(str, seg))}) axis 1"
    yield name, FL.cross_entropy, F.cross_entropy, *ce(tuple(seg), seg[1])
    n = 1 << 22
    x = torch.randn(n, generator=g)
    t = (torch.rand(n, generator=g) < 0.3).float()
    yield "BCE 4M", FL.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits, x, (t,)
    yield "focal 4M", lambda a, b: FL.sigmoid_focal_loss(a, b, reduction="mean"), focal_ref, x, (t,)


def timed(fn, x, args, repeat):
    x = x.detach().clone().requires_grad_()
    ts = []
    for i in range(repeat + 2):
        x.grad = None
        t0 = time.perf_counter()
        fn(x, *args).backward()
        if i >= 2:
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts), x.grad


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, os.cpu_count() or 1])
    ap.add_argument("--seg", type=int, nargs=4, default=[32, 21, 512, 512], metavar="N C H W")
    a = ap.parse_args()
    print(f"torch {torch.__version__}, fusedloss {fusedloss.__version__}; median of {a.repeat}")
    print()
    print("| case | threads | fusedloss.torch | torch | torch / fusedloss |")
    print("| --- | --- | --- | --- | --- |")
    for threads in a.threads:
        torch.set_num_threads(threads)
        fusedloss.set_num_threads(threads)
        for name, ours, theirs, x, args in cases(a.seg):
            t_ours, g_ours = timed(ours, x, args, a.repeat)
            t_theirs, g_theirs = timed(theirs, x, args, a.repeat)
            torch.testing.assert_close(g_ours, g_theirs, rtol=1e-4, atol=1e-6)
            print(
                f"| {name} | {threads} | {t_ours * 1e3:.2f} ms | {t_theirs * 1e3:.2f} ms "
                f"| {t_theirs / t_ours:.1f}x |"
            )


if __name__ == "__main__":
    main()
