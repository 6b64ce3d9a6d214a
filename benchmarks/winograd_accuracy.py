"""float32 error of each algorithm on 3x3 and 2x2 layers, against a float64 reference.

On 2x2 kernels the Winograd variants keep their tiles: winograd2, winograd4 and winograd6
compute F(3,2), F(5,2) and F(7,2) there.

Unit-normal input and weights; error = max |y32 - y64| / max |y64| (relative to the
output's magnitude) and the median of |y32 - y64| / rms(y64).  The float64 reference is
npconv's im2col in float64 (exact to ~1e-16, checked against PyTorch by the tests).

    python benchmarks/winograd_accuracy.py
"""

import numpy as np

import npconv

# (N, C_in, size, C_out, kernel); the 2x2 ones as DCGAN's 4x4/2 layers' stacked phases
CASES = [(1, 64, 56, 64, 3), (1, 256, 14, 256, 3), (1, 512, 7, 512, 3), (8, 256, 8, 512, 2), (8, 128, 16, 256, 2)]
ALGOS = ["im2col", "winograd2", "winograd4", "winograd6", "fft"]


def main():
    rng = np.random.default_rng(0)
    algos = [a for a in ALGOS if a in npconv.algorithms()]
    print(f"{'layer (N, C_in, size, C_out, k)':<30} " + " ".join(f"{a:>21}" for a in algos))
    print(f"{'':<30} " + " ".join(f"{'max rel':>10} {'med rel':>10}" for _ in algos))
    for n, c, size, o, k in CASES:
        x = rng.standard_normal((n, c, size, size))
        w = rng.standard_normal((o, c, k, k)) / np.sqrt(k * k * c)
        reference = npconv.conv2d(x, w, padding=1, algo="im2col")
        scale, rms = np.abs(reference).max(), np.sqrt(np.mean(reference**2))
        cells = []
        for algo in algos:
            y = npconv.conv2d(x.astype(np.float32), w.astype(np.float32), padding=1, algo=algo)
            err = np.abs(y - reference)
            cells.append(f"{err.max() / scale:10.1e} {np.median(err) / rms:10.1e}")
        print(f"{str((n, c, size, o, k)):<30} " + " ".join(cells))


if __name__ == "__main__":
    main()
