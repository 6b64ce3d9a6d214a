"""Peak extra resident memory of one forward convolution, relative to its output's bytes.

Each measurement runs in a fresh process: warm up on a tiny convolution with the same
channels, kernel and algorithm (Numba kernels loaded, BLAS started), allocate and touch the
inputs, reset the peak RSS (Linux ``/proc/self/clear_refs``), run the one convolution and
read the peak RSS.  ``extra = peak increase - output bytes``: what the call needed beyond
its result.  The target: auto's choice needs at most 2x the output's bytes.

    python benchmarks/memory.py            # every case, npconv auto/im2col and torch
"""

import json
import subprocess
import sys

TARGET = 2.0  # auto's extra memory / output bytes, at most

CASES = {
    # name: (N, C_in, size, C_out, kernel, stride, padding)
    "vgg16 conv1_2 3x3 64 @224, batch 4": (4, 64, 224, 64, 3, 1, 1),
    "vgg16 conv3_2 3x3 256 @56, batch 4": (4, 256, 56, 256, 3, 1, 1),
    "resnet50 stem 7x7/2 @224, batch 16": (16, 3, 224, 64, 7, 2, 3),
    "9x9 32->32 @256x256, batch 1": (1, 32, 256, 32, 9, 1, 4),
}

_CHILD = r"""
import json, resource, sys
import numpy as np
case, who = json.loads(sys.argv[1]), sys.argv[2]
n, c, size, o, k, s, p = case
def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if who == "torch":
    import torch
    torch.set_num_threads(2)
    algo = "torch"
    run = lambda x, w, _algo: torch.nn.functional.conv2d(
        torch.from_numpy(x), torch.from_numpy(w), stride=s, padding=p).numpy()
else:
    import npconv
    from npconv.algorithms import select
    from npconv.suite import Layer
    algo = select("memory", Layer("memory", "case", c, size, o, k, s, p, 1, None).geometry(n), who).name
    run = lambda x, w, algo: npconv.conv2d(x, w, stride=s, padding=p, algo=algo)
# warm up with the algorithm the measured call runs: its kernels compiled and loaded, BLAS started
run(np.ones((1, c, 2 * k, 2 * k), np.float32), np.ones((o, c, k, k), np.float32), algo)
x = np.random.default_rng(0).standard_normal((n, c, size, size), dtype=np.float32)
w = np.random.default_rng(1).standard_normal((o, c, k, k), dtype=np.float32)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # the peak RSS is now the current RSS
before = peak()
y = run(x, w, who)
print(json.dumps({"extra": peak() - before - y.nbytes, "output": y.nbytes, "algo": algo}))
"""


def measure(case, who):
    """``{"extra", "output"}`` bytes and the algorithm run, of ``who`` (an npconv algo, "auto", or "torch")."""
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(case), who],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    print(f"{'case':<38} {'who':<18} {'output MiB':>10} {'extra MiB':>10} {'extra/output':>12}  target <= {TARGET:g}x")
    for name, case in CASES.items():
        for who in ("auto", "im2col", "torch"):
            r = measure(case, who)
            ratio = r["extra"] / r["output"]
            label = f"auto ({r['algo']})" if who == "auto" else who
            verdict = ("met" if ratio <= TARGET else f"missed by {ratio / TARGET - 1:.0%}") if who == "auto" else ""
            print(f"{name:<38} {label:<18} {r['output'] / 2**20:10.1f} {r['extra'] / 2**20:10.1f} "
                  f"{ratio:12.2f}  {verdict}")


if __name__ == "__main__":
    main()
