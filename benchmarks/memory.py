"""Peak extra resident memory of one forward convolution, relative to its output's bytes.

Each measurement runs in a fresh process: warm up on a tiny convolution (Numba kernels
loaded, BLAS started), allocate and touch the inputs, read the peak RSS, run the one
convolution, read the peak RSS again.  ``extra = peak increase - output bytes``: what the
call needed beyond its result.

    python benchmarks/memory.py            # every case, npconv auto/im2col and torch
"""

import json
import subprocess
import sys

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
    run = lambda x, w: torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=s, padding=p).numpy()
else:
    import npconv
    run = lambda x, w: npconv.conv2d(x, w, stride=s, padding=p, algo=who)
run(np.ones((1, c, 2 * k, 2 * k), np.float32), np.ones((o, c, k, k), np.float32))
x = np.random.default_rng(0).standard_normal((n, c, size, size), dtype=np.float32)
w = np.random.default_rng(1).standard_normal((o, c, k, k), dtype=np.float32)
before = peak()
y = run(x, w)
print(json.dumps({"extra": peak() - before - y.nbytes, "output": y.nbytes}))
"""


def measure(case, who):
    out = subprocess.run([sys.executable, "-c", _CHILD, json.dumps(case), who],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    print(f"{'case':<38} {'who':<7} {'output MiB':>10} {'extra MiB':>10} {'extra/output':>12}")
    for name, case in CASES.items():
        for who in ("auto", "im2col", "torch"):
            r = measure(case, who)
            print(f"{name:<38} {who:<7} {r['output'] / 2**20:10.1f} {r['extra'] / 2**20:10.1f} "
                  f"{r['extra'] / r['output']:12.2f}")


if __name__ == "__main__":
    main()
