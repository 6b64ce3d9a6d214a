"""How well ``algo="auto"`` chooses, off the layer suite: random 2-d geometries, auto's choice
timed against every algorithm that could run them.

``npconv bench`` times real layers, the ones the cost models were fitted to.  This script
draws geometries the suite does not have -- odd sizes, kernels of 1 to 7, strides, dilations,
group counts from 1 to depthwise -- and times, for each, auto's choice and every supported,
non-reference algorithm the precision policy allows (those ``auto`` passes over for a reason of
its own included: the direct kernel on 1x1 kernels, or beyond the workspace limit), interleaved
(:func:`npconv.bench.median_seconds`).  Its measure is the slowdown of auto's choice against
the fastest of them: 1.0 where auto chose the fastest.

    python benchmarks/auto_choice.py [--cases 300] [--seed 0] [--repeats 3] [--threads N]

It prints the geometric mean of the slowdowns, the share of cases within 10% and beyond 1.5x,
where the slowdown comes from (the pairs of auto's choice and the fastest algorithm), and the
worst cases.  Geometries above MAX_FLOPS are drawn again, so a run takes a few minutes.  It
re-executes itself with ``npconv.bench.TIMING_ENV`` set, as ``npconv bench`` does.
"""

import argparse
import collections
import math
import statistics

import numpy as np

import npconv
from npconv.algorithms import REGISTRY, select
from npconv.config import get_precision, precision_allows
from npconv.bench import median_seconds, use_timing_env
from npconv.geometry import conv_geometry

MAX_FLOPS = 4e9


def draw(rng):
    """One random geometry as ``conv2d`` arguments: ``(x shape, weight shape, stride, padding,
    dilation, groups)``, its output at least one position."""
    while True:
        in_channels = int(rng.choice([3, 8, 16, 32, 64, 96, 128, 256]))
        groups = int(rng.choice([1, 1, 1, 2, 4, 8, 32, in_channels]))
        groups = groups if in_channels % groups == 0 else 1
        per_group = int(rng.choice([1, 2, 4, 8, 16, 32, 64]))
        out_channels = groups * per_group if groups > 1 else int(rng.choice([8, 16, 32, 64, 128, 256]))
        kernel, stride, dilation = int(rng.choice([1, 2, 3, 3, 3, 5, 7])), int(rng.choice([1, 1, 2])), int(
            rng.choice([1, 1, 1, 2]))
        size, batch = int(rng.choice([7, 14, 17, 28, 33, 56, 64])), int(rng.choice([1, 2, 8]))
        padding = int(rng.integers(0, kernel // 2 + 1))
        if size + 2 * padding - dilation * (kernel - 1) >= 1:
            return ((batch, in_channels, size, size), (out_channels, in_channels // groups, kernel, kernel), stride,
                    padding, dilation, groups)


def main():
    use_timing_env()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=300, help="random geometries to time")
    parser.add_argument("--seed", type=int, default=0, help="seed of the geometries and data")
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds per case")
    parser.add_argument("--threads", type=int, help="threads for npconv (default: all cores)")
    args = parser.parse_args()
    if args.threads:
        npconv.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    cases = []
    while len(cases) < args.cases:
        x_shape, w_shape, stride, padding, dilation, groups = draw(rng)
        geom, _ = conv_geometry("auto_choice", x_shape, w_shape, None, stride=stride, padding=padding,
                                dilation=dilation, groups=groups, dtype=np.float32, padding_mode="zeros")
        if geom.flops > MAX_FLOPS:
            continue
        x = rng.standard_normal(x_shape, dtype=np.float32)
        w = rng.standard_normal(w_shape, dtype=np.float32)
        chosen = select("conv2d", geom, "auto").name
        names = sorted({alg.name for alg in REGISTRY.values() if not alg.reference and alg.why_unsupported(geom) is None
                        and precision_allows(get_precision(), alg.accuracy)} | {chosen})
        times = median_seconds([
            lambda name=name: npconv.conv2d(x, w, stride=stride, padding=padding, dilation=dilation, groups=groups,
                                            algo=name)
            for name in names], args.repeats)
        fastest = names[times.index(min(times))]
        cases.append((times[names.index(chosen)] / min(times), chosen, fastest, x_shape, w_shape, stride, padding,
                      dilation, groups, dict(zip(names, times))))
    slowdowns = [case[0] for case in cases]
    print(f"float32, {npconv.get_num_threads()} threads, {len(cases)} random geometries (seed {args.seed}), "
          f"median of {args.repeats} interleaved runs each")
    print(f"auto's slowdown against the fastest algorithm: geometric mean "
          f"{statistics.geometric_mean(slowdowns):.3f}; within 10% in {sum(s <= 1.1 for s in slowdowns)}, "
          f"beyond 1.5x in {sum(s > 1.5 for s in slowdowns)}")
    pairs = collections.defaultdict(list)
    for slowdown, chosen, fastest, *_ in cases:
        if slowdown > 1.1:
            pairs[chosen, fastest].append(slowdown)
    print("\nwhere it comes from (cases more than 10% slow), by share of the total log slowdown:")
    total = sum(math.log(s) for s in slowdowns) or 1.0
    print(f"{'auto chose':<12} {'fastest':<12} {'cases':>6} {'mean':>6} {'share':>6}")
    for (chosen, fastest), found in sorted(pairs.items(), key=lambda item: -sum(map(math.log, item[1]))):
        share = sum(map(math.log, found)) / total
        print(f"{chosen:<12} {fastest:<12} {len(found):>6} {statistics.geometric_mean(found):6.2f} {share:6.0%}")
    print("\nworst cases (ms per algorithm, * auto's choice):")
    for slowdown, chosen, _, x_shape, w_shape, stride, padding, dilation, groups, times in sorted(
            cases, key=lambda case: -case[0])[:10]:
        timed = ", ".join(f"{name}{'*' if name == chosen else ''} {t * 1e3:.3f}" for name, t in times.items())
        print(f"{slowdown:5.2f}x  x {x_shape} w {w_shape} stride {stride} padding {padding} dilation {dilation} "
              f"groups {groups}: {timed}")


if __name__ == "__main__":
    main()
