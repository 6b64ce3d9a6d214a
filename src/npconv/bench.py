"""Timing of npconv's algorithms against PyTorch's CPU convolution on the layer suite.

Every candidate of a layer (each applicable npconv algorithm, and torch) runs once to warm
up, then all are timed in turn, interleaved, ``repeats`` times; the median is reported.
FLOPs are 2 x the multiply-accumulates of a direct convolution, whatever the algorithm.
"""

import statistics
import time

import numpy as np

from .algorithms import REGISTRY, select
from .config import get_num_threads
from .conv import conv2d
from .geometry import conv_geometry
from .suite import LAYERS, QUICK


def median_seconds(functions, repeats):
    """Median wall time of each function, timed in interleaved rounds after one warm-up call each."""
    for f in functions:
        f()
    times = [[] for _ in functions]
    for _ in range(repeats):
        for f, samples in zip(functions, times):
            start = time.perf_counter()
            f()
            samples.append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def _torch_conv(x, w, layer):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(get_num_threads())
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)
    return lambda: torch.nn.functional.conv2d(
        tx, tw, stride=layer.stride, padding=layer.padding, groups=layer.groups
    )


def bench_layer(layer, batch, repeats, algos, seed=0):
    """Result rows (one per applicable algorithm) for one layer at one batch size."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, layer.in_channels, layer.size, layer.size), dtype=np.float32)
    w = rng.standard_normal((layer.out_channels, layer.in_channels // layer.groups, layer.kernel, layer.kernel),
                            dtype=np.float32)
    geom, _ = conv_geometry("bench", x.shape, w.shape, None, stride=layer.stride, padding=layer.padding,
                            dilation=1, groups=layer.groups, padding_mode="zeros", dtype=np.float32)
    names = [n for n in algos if REGISTRY[n].why_unsupported(geom) is None]
    functions = [
        (lambda n=n: conv2d(x, w, stride=layer.stride, padding=layer.padding, groups=layer.groups, algo=n))
        for n in names
    ]
    torch_fn = _torch_conv(x, w, layer)
    seconds = median_seconds(functions + ([torch_fn] if torch_fn else []), repeats)
    torch_s = seconds[-1] if torch_fn else None
    chosen = select("bench", geom, "auto").name
    return [
        {
            "network": layer.network, "layer": layer.name, "batch": batch, "algo": name, "auto": name == chosen,
            "ms": s * 1e3, "gflops": geom.flops / s / 1e9,
            "torch_ms": None if torch_s is None else torch_s * 1e3,
            "ratio": None if torch_s is None else torch_s / s,
        }
        for name, s in zip(names, seconds)
    ]


def run(quick=False, batches=None, repeats=None, algos=None, networks=None, progress=None):
    """Benchmark rows for the suite (or its quick subset)."""
    layers = [l for l in LAYERS if not quick or l.name in QUICK]
    if networks:
        layers = [l for l in layers if l.network in networks]
    batches = batches or ((1,) if quick else (1, 8))
    repeats = repeats or (3 if quick else 7)
    algos = algos or [n for n, alg in REGISTRY.items() if not alg.reference]
    rows = []
    for batch in batches:
        for layer in layers:
            if progress:
                progress(f"{layer.network} {layer.name} batch {batch}")
            rows.extend(bench_layer(layer, batch, repeats, algos))
    return rows


def format_table(rows):
    """A plain-text table of benchmark rows."""
    header = f"{'network':<16} {'layer':<22} {'N':>2} {'algo':<9} {'ms':>9} {'GFLOP/s':>8} {'torch ms':>9} {'ratio':>6}"
    lines = [header, "-" * len(header)]
    for r in rows:
        torch_ms = "-" if r["torch_ms"] is None else f"{r['torch_ms']:9.3f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:6.2f}"
        lines.append(
            f"{r['network']:<16} {r['layer']:<22} {r['batch']:>2} {r['algo'] + ('*' if r['auto'] else ''):<9} {r['ms']:9.3f} "
            f"{r['gflops']:8.1f} {torch_ms:>9} {ratio:>6}"
        )
    ratios = [r["ratio"] for r in rows if r["auto"] and r["ratio"]]
    if ratios:
        lines.append(f"geometric mean speed ratio of auto's choices (*), torch ms / npconv ms: "
                     f"{float(np.exp(np.mean(np.log(ratios)))):.2f}")
    lines.append("GFLOP/s counts FLOPs as 2 x the multiply-accumulates of a direct convolution.")
    return "\n".join(lines)
