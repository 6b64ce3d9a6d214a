"""Timing of npconv's algorithms against PyTorch's CPU convolution on the layer suite.

Every candidate of a layer (each requested npconv algorithm that applies, auto's choice
always, and torch) runs once to warm up, then all are timed in turn, interleaved,
``repeats`` times; the median is reported.  FLOPs are 2 x the multiply-accumulates of a
direct convolution, whatever the algorithm, so an algorithm doing fewer (Winograd) can
pass 100% of the sgemm peak.  The speed ratio is torch ms / npconv ms: above 1, npconv is
faster.

:func:`run` returns a report (a JSON-ready dict); :func:`format_report` prints it,
:func:`plot_ratios` charts it.
"""

import math
import os
import platform
import statistics
import sys
import time

import numpy as np

from .algorithms import REGISTRY, select
from .algorithms.weight_cache import freeze, planning_for
from .config import get_num_threads
from .conv import conv2d
from .suite import LAYERS, TARGET_BATCHES, TARGETS

# Idle worker threads spin before they sleep.  OpenBLAS's spin for about 2**28 cycles after
# each GEMM by default: timed interleaved in one process, torch then ran while they held
# the cores (its 0.9 ms conv measured 3.8 ms).  2**4 cycles stops that; it must be set
# before OpenBLAS loads, hence :func:`use_timing_env`.  PyTorch's OpenMP (libgomp) threads
# spin 4-8 ms after each call; shortening that (GOMP_SPINCOUNT=10000) slowed torch's calls
# under 0.5 ms by 13-27%, so :func:`median_seconds` lets each function settle instead.
#
# glibc's malloc maps each block above its mmap threshold afresh (page faults on every first
# touch) and returns a heap's free top above its trim threshold to the system.  The threshold
# starts at 128 KiB and rises, up to 32 MiB, as mapped blocks are freed, so a layer's time
# depended on what the process had allocated before: torch's ResNet-50 stem at batch 8 took
# 19-20 ms in a fresh process and 6.9-7.9 ms once a 31 MiB block had come and gone, making
# that layer's ratio 2.2-2.4 in a ``--network resnet50`` run and 0.86 in the whole suite.
# Both thresholds are pinned at the state a long-running process reaches.
MALLOC_TUNABLES = "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=67108864"
TIMING_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4", "GLIBC_TUNABLES": MALLOC_TUNABLES}

SGEMM_SIZE = 2048
SGEMM_REPEATS = 5


def timing_env(environ):
    """``environ`` with :data:`TIMING_ENV` set, its ``GLIBC_TUNABLES`` added to any the
    environment already lists (glibc reads one colon-separated list) rather than replacing them."""
    tunables = environ.get("GLIBC_TUNABLES", "")
    if MALLOC_TUNABLES not in tunables:
        tunables = ":".join(filter(None, (tunables, MALLOC_TUNABLES)))
    return {**environ, **TIMING_ENV, "GLIBC_TUNABLES": tunables}


def use_timing_env():
    """Re-execute this process's command line with :func:`timing_env`, unless it already has it.

    Call it before timing anything interleaved: OpenBLAS and glibc read their settings only
    when they load.
    """
    env = timing_env(os.environ)
    if env != dict(os.environ):
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


# Seconds each function runs untimed before its timed call in a round (comment on
# TIMING_ENV): longer than the 4-8 ms PyTorch's OpenMP threads spin after a call.
SETTLE_SECONDS = 0.01


def median_seconds(functions, repeats, settle=SETTLE_SECONDS):
    """Median wall time of each function, timed in interleaved rounds after one warm-up call each.

    In each round every function runs back to back for ``settle`` seconds (at least once)
    before its timed call, so it is timed as it runs alone: the one before it may leave
    threads spinning on the cores (PyTorch's OpenMP threads spin-wait 4-8 ms after each call;
    npconv measured up to 1.7x slower right after torch), and a function's own threads,
    buffers and caches are warm after its own calls.  Round r runs the functions in the
    r-th of their order's rotations and its reversal's, so each follows each other one about
    equally often.
    """
    for f in functions:
        f()
    count = len(functions)
    orders = [[(start + i) % count for i in range(count)][::step] for step in (1, -1) for start in range(count)]
    times = [[] for _ in functions]
    for round_ in range(repeats):
        for index in orders[round_ % len(orders)]:
            f = functions[index]
            until = time.perf_counter() + settle
            f()
            while time.perf_counter() < until:
                f()
            start = time.perf_counter()
            f()
            times[index].append(time.perf_counter() - start)
    return [statistics.median(samples) for samples in times]


def sgemm_gflops(repeats=SGEMM_REPEATS):
    """The machine's practical float32 peak: median GFLOP/s of a 2048x2048 ``np.matmul`` at the current threads."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((SGEMM_SIZE, SGEMM_SIZE), dtype=np.float32) for _ in range(2))
    out = np.empty_like(a)
    (seconds,) = median_seconds([lambda: np.matmul(a, b, out=out)], repeats)
    return 2 * SGEMM_SIZE**3 / seconds / 1e9


def _torch():
    """The torch module, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    return torch


def versions():
    """Versions of what the timings depend on."""
    import numba
    from threadpoolctl import threadpool_info

    from . import __version__

    torch = _torch()
    return {
        "npconv": __version__, "python": platform.python_version(), "numpy": np.__version__,
        "numba": numba.__version__, "torch": torch.__version__ if torch else None,
        "blas": [f"{pool['internal_api']} {pool.get('version')} ({pool.get('architecture', '?')})"
                 for pool in threadpool_info() if pool["user_api"] == "blas"],
        "machine": platform.machine(), "cpus": os.cpu_count(),
    }


def bench_layer(layer, batch, repeats, algos, peak_gflops, seed=0, frozen=False):
    """Result rows (one per timed algorithm) for one layer at one batch size.

    ``algos`` are timed where they apply; auto's choice is timed even when not among them.
    ``frozen``: npconv runs on the weight frozen (:func:`npconv.freeze`), as inference with
    fixed weights may, its cached transforms then taken without a check.
    """
    geom = layer.geometry(batch)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(layer.input_shape(batch), dtype=np.float32)
    w = rng.standard_normal(layer.weight_shape, dtype=np.float32)
    tw = w
    w = freeze(w) if frozen else w
    with planning_for(w):
        chosen = select("bench", geom, "auto").name
    names = [n for n, alg in REGISTRY.items() if n == chosen or (n in algos and alg.why_unsupported(geom) is None)]
    candidates = {
        n: (lambda n=n: conv2d(x, w, stride=layer.stride, padding=layer.padding, groups=layer.groups, algo=n))
        for n in names
    }
    torch = _torch()
    if torch:  # keyed None, which no algorithm is named
        tx, tw = torch.from_numpy(x), torch.from_numpy(tw)
        candidates[None] = lambda: torch.nn.functional.conv2d(
            tx, tw, stride=layer.stride, padding=layer.padding, groups=layer.groups
        )
    seconds = dict(zip(candidates, median_seconds(list(candidates.values()), repeats)))
    torch_s = seconds.pop(None, None)
    rows = []
    for name, s in seconds.items():
        gflops = geom.flops / s / 1e9
        rows.append({
            "network": layer.network, "layer": layer.name, "group": layer.group,
            "input_shape": list(layer.input_shape(batch)), "weight_shape": list(layer.weight_shape),
            "stride": layer.stride, "padding": layer.padding, "groups": layer.groups, "batch": batch,
            "algo": name, "auto": name == chosen, "ms": s * 1e3, "gflops": gflops, "peak": gflops / peak_gflops,
            "torch_ms": None if torch_s is None else torch_s * 1e3,
            "ratio": None if torch_s is None else torch_s / s,
        })
    return rows


def run(layers=LAYERS, batches=TARGET_BATCHES, repeats=7, algos=None, progress=None, frozen=False):
    """Time ``layers`` at each of ``batches``; the report as a JSON-ready dict.

    ``algos`` defaults to every non-reference algorithm; ``progress`` is called with a
    line before each measurement.  The thread count is npconv's (torch is set to it).
    ``frozen``: the weights frozen (:func:`bench_layer`).
    """
    algos = [n for n, alg in REGISTRY.items() if not alg.reference] if algos is None else algos
    threads = get_num_threads()
    torch = _torch()
    if torch:
        torch.set_num_threads(threads)
    if progress:
        progress(f"sgemm peak, {SGEMM_SIZE}x{SGEMM_SIZE} float32 matmul")
    peak = sgemm_gflops()
    rows = []
    for batch in batches:
        for layer in layers:
            if progress:
                progress(f"{layer.network} {layer.name} batch {batch}")
            rows.extend(bench_layer(layer, batch, repeats, algos, peak, frozen=frozen))
    return {
        "threads": threads, "repeats": repeats, "frozen": frozen, "sgemm_gflops": peak, "versions": versions(),
        "rows": rows, "groups": summarize(rows),
    }


def summarize(rows):
    """Per target group: the geometric-mean speed ratio of auto's choices and the verdict.

    Only rows at :data:`TARGET_BATCHES` count.  ``measured`` of ``needed`` says how many of
    the group's (layer, batch) pairs the rows cover; ``margin`` is ``geomean / target - 1``.
    ``geomean``, ``met`` and ``margin`` are None without ratios (no torch, or no rows).
    """
    summary = []
    for group, target in TARGETS.items():
        ratios = [
            r["ratio"] for r in rows
            if r["auto"] and r["group"] == group and r["batch"] in TARGET_BATCHES and r["ratio"] is not None
        ]
        geomean = statistics.geometric_mean(ratios) if ratios else None
        summary.append({
            "group": group, "what": target.what, "target": target.ratio, "geomean": geomean,
            "met": None if geomean is None else geomean >= target.ratio,
            "margin": None if geomean is None else geomean / target.ratio - 1,
            "measured": len(ratios),
            "needed": len(TARGET_BATCHES) * sum(layer.group == group for layer in LAYERS),
        })
    return summary


def _verdict(entry):
    if entry["geomean"] is None:
        return "no data"
    return f"{'met' if entry['met'] else 'missed'} by {abs(entry['margin']):.0%}"


def format_table(rows):
    """A plain-text table of benchmark rows; ``*`` marks auto's choice."""
    header = (f"{'network':<15} {'layer':<23} {'input':>10} {'N':>2} {'algo':<10} {'ms':>9} {'GFLOP/s':>8} "
              f"{'% peak':>6} {'torch ms':>9} {'ratio':>6}")
    lines = [header, "-" * len(header)]
    for r in rows:
        torch_ms = "-" if r["torch_ms"] is None else f"{r['torch_ms']:.3f}"
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        algo = r["algo"] + ("*" if r["auto"] else "")
        shape = "x".join(map(str, r["input_shape"][1:]))
        lines.append(
            f"{r['network']:<15} {r['layer']:<23} {shape:>10} {r['batch']:>2} {algo:<10} {r['ms']:9.3f} "
            f"{r['gflops']:8.1f} {r['peak']:6.0%} {torch_ms:>9} {ratio:>6}"
        )
    return "\n".join(lines)


def format_summary(summary):
    """The targets report: per group, the geometric mean of auto's ratios, the target and the verdict."""
    batches = " and ".join(map(str, TARGET_BATCHES))
    lines = [
        f"targets: geometric mean of auto's speed ratios (torch ms / npconv ms) per group, batch {batches}",
        f"{'group':<10} {'layers x batches':>16} {'geomean':>7} {'target':>8}  verdict",
    ]
    for e in summary:
        coverage = f"{e['measured']}/{e['needed']}" + ("" if e["measured"] == e["needed"] else " partial")
        geomean = "-" if e["geomean"] is None else f"{e['geomean']:.2f}"
        lines.append(f"{e['group']:<10} {coverage:>16} {geomean:>7} {'>= ' + format(e['target'], '.2f'):>8}  "
                     f"{_verdict(e)}  ({e['what']})")
    return "\n".join(lines)


def format_report(report):
    """Header, table and targets report of a :func:`run` report."""
    frozen = ", weights frozen (npconv.freeze)" if report.get("frozen") else ""
    header = (f"npconv bench: float32, {report['threads']} threads{frozen}, median of {report['repeats']} "
              "interleaved runs; "
              f"sgemm peak {report['sgemm_gflops']:.0f} GFLOP/s ({SGEMM_SIZE}x{SGEMM_SIZE} np.matmul); "
              "* marks auto's choice")
    notes = ("GFLOP/s counts 2 x the multiply-accumulates of a direct convolution; % peak is GFLOP/s over "
             "the sgemm peak; ratio is torch ms / npconv ms (above 1: npconv is faster).")
    return "\n".join([header, format_table(report["rows"]), notes, "", format_summary(report["groups"])])


def require_plotting():
    """matplotlib's ``Figure`` class, imported only for charts; a clear ImportError when it is missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(
            "the chart needs matplotlib: pip install 'npconv[bench]' (or pip install matplotlib)"
        ) from None
    return Figure


def plot_ratios(report, path):
    """A PNG bar chart of the speed ratio of auto's choice per layer and batch, one panel per target group.

    Bars run from 1.0 (as fast as torch) on a log scale: right where npconv is faster, left
    where it is slower.  A target group's panel has a dashed line at its target.
    """
    figure_class = require_plotting()
    rows = [r for r in report["rows"] if r["auto"] and r["ratio"] is not None]
    if not rows:
        raise ValueError("no speed ratios to chart: the report has no torch timings")
    batches = sorted({r["batch"] for r in rows})
    panels = []  # (group, {label: {batch: ratio}}), groups in TARGETS order, then the rest
    for group in [*TARGETS, None]:
        ratios = {}
        for r in rows:
            if r["group"] == group:
                ratios.setdefault(f"{r['network']} {r['layer']}", {})[r["batch"]] = r["ratio"]
        if ratios:
            panels.append((group, ratios))
    n_bars = sum(len(ratios) for _, ratios in panels)
    fig = figure_class(figsize=(10, 1.5 + 0.16 * n_bars * len(batches) + 0.5 * len(panels)), layout="constrained")
    axes = fig.subplots(len(panels), 1, sharex=True, squeeze=False,
                        gridspec_kw={"height_ratios": [len(ratios) for _, ratios in panels]})[:, 0]
    summary = {e["group"]: e for e in report["groups"]}
    height = 0.8 / len(batches)
    for ax, (group, ratios) in zip(axes, panels):
        for i, per_batch in enumerate(ratios.values()):
            for j, batch in enumerate(batches):
                if batch in per_batch:
                    y, ratio = i + (j - (len(batches) - 1) / 2) * height, per_batch[batch]
                    ax.barh(y, ratio - 1, left=1, height=height, color=f"C{j}", label=f"batch {batch}")
                    ax.text(ratio, y, f" {ratio:.2f} ", va="center", ha="left" if ratio >= 1 else "right", fontsize=6)
        ax.set_yticks(range(len(ratios)), labels=list(ratios), fontsize=7)
        ax.set_ylim(len(ratios) - 0.5, -0.5)
        ax.axvline(1.0, color="black", linewidth=0.8)
        if group is None:
            ax.set_title("in no target group", fontsize=9, loc="left")
        else:
            e = summary[group]
            ax.axvline(e["target"], color="red", linestyle="--", linewidth=1)
            geomean = "-" if e["geomean"] is None else f"{e['geomean']:.2f}"
            ax.set_title(f"{e['what']}: geomean {geomean} ({e['measured']}/{e['needed']} layer-batches), "
                         f"target {e['target']:.2f} (dashed), {_verdict(e)}", fontsize=9, loc="left")
        ax.set_xscale("log")
        ax.grid(axis="x", alpha=0.3)
    all_ratios = [r["ratio"] for r in rows] + [t.ratio for t in TARGETS.values()]
    ticks = [2.0**k for k in range(math.floor(math.log2(min(all_ratios))), math.ceil(math.log2(max(all_ratios))) + 1)]
    axes[-1].set_xticks(ticks, labels=[f"{t:g}" for t in ticks])
    axes[-1].minorticks_off()
    handles, labels = axes[0].get_legend_handles_labels()
    by_label = dict(zip(labels, handles))
    axes[0].legend(by_label.values(), by_label.keys(), fontsize=7, loc="lower right")
    axes[-1].set_xlabel("speed ratio of auto's choice, torch ms / npconv ms (log scale; right of 1: npconv is faster)")
    fig.suptitle(f"npconv vs torch, float32, {report['threads']} threads, "
                 f"sgemm peak {report['sgemm_gflops']:.0f} GFLOP/s", fontsize=10)
    fig.savefig(path, dpi=110)
