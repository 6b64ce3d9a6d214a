"""Whole-model forward passes of ``npconv.nn.models`` in evaluation mode, batch 1 and 8.

Not a comparison with torch (torchvision does not install here): it shows what a user's
inference costs end to end -- convolutions, batch norm, activations, pooling, the classifier
-- and where the time goes besides the convolutions.  Run as a user would, without
``npconv.bench.TIMING_ENV``: OpenBLAS's threads spin as they do by default, which is what
npconv's single-threaded BLAS calls guard against (README, "Settings").

    python benchmarks/models.py [--repeats 7] [--models mobilenet_v2 resnet50]
"""

import argparse
import statistics
import time

import numpy as np

import npconv
from npconv.nn import models

BATCHES = (1, 8)


def forward_ms(model, x, repeats):
    """Median ms of ``model(x)`` over ``repeats`` calls back to back, after one warm-up call."""
    model(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=["mobilenet_v2", "resnet50"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    print(f"float32, {npconv.get_num_threads()} threads, eval mode, median of {args.repeats} forward passes")
    print(f"{'model':<16} {'batch':>5} {'ms':>8}")
    for name in args.models:
        model = getattr(models, name)().eval()
        for batch in BATCHES:
            x = rng.standard_normal((batch, 3, 224, 224), dtype=np.float32)
            print(f"{name:<16} {batch:>5} {forward_ms(model, x, args.repeats):8.1f}")


if __name__ == "__main__":
    main()
