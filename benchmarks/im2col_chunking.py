"""im2col speed with its default chunking against one whole column matrix per call.

The issue's bound: chunked at most ~10% slower than building the matrix whole.  "Whole"
lifts both the workspace limit and the chunk target above the full matrix's size.

    python benchmarks/im2col_chunking.py

It re-executes itself with ``npconv.bench.TIMING_ENV`` set, as ``npconv bench`` does.
"""

import numpy as np

import npconv
from npconv.algorithms import base, im2col
from npconv.bench import median_seconds, use_timing_env

CASES = [
    # (N, C_in, size, C_out, kernel, stride, padding)
    (1, 64, 56, 64, 3, 1, 1),
    (1, 256, 14, 256, 3, 1, 1),
    (8, 64, 56, 64, 3, 1, 1),
    (8, 256, 14, 256, 3, 1, 1),
    (4, 64, 224, 64, 3, 1, 1),
    (1, 3, 224, 64, 7, 2, 3),
    (1, 32, 128, 32, 9, 1, 4),
]


def main():
    use_timing_env()
    rng = np.random.default_rng(0)
    print(f"{'case (N, C_in, size, C_out, k, s, p)':<36} {'chunked ms':>10} {'whole ms':>9} {'chunked/whole':>13}")
    ratios = []
    for n, c, size, o, k, s, p in CASES:
        x = rng.standard_normal((n, c, size, size), dtype=np.float32)
        w = rng.standard_normal((o, c, k, k), dtype=np.float32)
        default = (npconv.get_workspace_limit(), im2col.CHUNK_BYTES, base.MIN_SCRATCH_BYTES)

        def chunked():
            npconv.set_workspace_limit(default[0])
            im2col.CHUNK_BYTES, base.MIN_SCRATCH_BYTES = default[1:]
            npconv.conv2d(x, w, stride=s, padding=p, algo="im2col")

        def whole():
            npconv.set_workspace_limit(2**40)
            im2col.CHUNK_BYTES = base.MIN_SCRATCH_BYTES = 2**40
            npconv.conv2d(x, w, stride=s, padding=p, algo="im2col")

        t_chunked, t_whole = median_seconds([chunked, whole], repeats=9)
        chunked()  # restore the defaults
        ratios.append(t_chunked / t_whole)
        print(f"{str((n, c, size, o, k, s, p)):<36} {t_chunked * 1e3:10.2f} {t_whole * 1e3:9.2f} {ratios[-1]:13.2f}")
    print(f"geometric mean chunked/whole: {float(np.exp(np.mean(np.log(ratios)))):.2f} (below 1: chunked is faster)")


if __name__ == "__main__":
    main()
