"""The ``npconv`` command: ``npconv info`` and ``npconv bench``."""

import argparse
import json
import os
import platform
import sys

# OpenBLAS worker threads spin for about 2**28 cycles after each GEMM by default, and
# PyTorch's OpenMP threads spin after each conv: timed interleaved in one process, each
# library then runs while the other's threads still hold the cores (torch's 0.9 ms conv
# measured 3.8 ms).  2**4 cycles makes both measure as they do alone; it must be set
# before OpenBLAS loads, so ``npconv bench`` re-executes itself with it.
_BENCH_ENV = {"OPENBLAS_THREAD_TIMEOUT": "4"}


def _info(_args):
    import numba
    import numpy as np
    from threadpoolctl import threadpool_info

    import npconv

    print(f"npconv {npconv.__version__}")
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    print(f"numpy {np.__version__}")
    try:
        import torch

        print(f"torch {torch.__version__} (test oracle and benchmark baseline)")
    except ImportError:
        print("torch not installed (needed only for tests and benchmark comparisons)")
    print(f"threads: {npconv.get_num_threads()} (Numba and BLAS, set with npconv.set_num_threads)")
    np.ones(2) @ np.ones(2)  # make sure BLAS is loaded before asking threadpoolctl
    for pool in threadpool_info():
        print(
            f"{pool['user_api']}: {pool['internal_api']} {pool.get('version')} "
            f"({pool.get('architecture', '?')}), {pool['num_threads']} threads, {pool['filepath']}"
        )
    jit = "disabled (NUMBA_DISABLE_JIT)" if numba.config.DISABLE_JIT else "enabled"
    print(
        f"numba {numba.__version__}: JIT {jit}, threading layer setting {numba.config.THREADING_LAYER!r}, "
        f"{numba.config.NUMBA_NUM_THREADS} threads available, cache dir {numba.config.CACHE_DIR or '(next to sources)'}"
    )
    print(f"algorithms: {', '.join(npconv.algorithms())}")
    print(f"workspace limit: {npconv.get_workspace_limit() / 2**20:.0f} MiB")


def _bench(args):
    if not _BENCH_ENV.keys() <= os.environ.keys():
        os.execve(sys.executable, [sys.executable, "-m", "npconv.cli", *sys.argv[1:]], {**os.environ, **_BENCH_ENV})
    import npconv
    from npconv import bench

    if args.threads:
        npconv.set_num_threads(args.threads)
    print(f"npconv bench: float32, {npconv.get_num_threads()} threads, median of interleaved runs; "
          "* marks the algorithm auto picks", flush=True)
    rows = bench.run(
        quick=args.quick, batches=args.batch, repeats=args.repeats, algos=args.algo, networks=args.network,
        progress=(lambda msg: print(f"  timing {msg}", file=sys.stderr, flush=True)) if args.verbose else None,
    )
    print(bench.format_table(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": npconv.get_num_threads(), "rows": rows}, f, indent=1)
        print(f"wrote {args.json}")


def build_parser():
    parser = argparse.ArgumentParser(prog="npconv", description="npconv: convolutions for Python, exact to PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, threads, BLAS and Numba status").set_defaults(func=_info)
    b = sub.add_parser("bench", help="time the algorithms on real network layers against PyTorch")
    b.add_argument("--quick", action="store_true", help="a few layers at batch 1, 3 runs each")
    b.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1 and 8)")
    b.add_argument("--repeats", type=int, help="timed runs per candidate (default 7, quick 3)")
    b.add_argument("--algo", action="append", help="algorithm to time (repeatable; default all but references)")
    b.add_argument("--network", action="append", help="only layers of this network (repeatable)")
    b.add_argument("--threads", type=int, help="thread count for npconv and torch (default: all cores)")
    b.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    b.add_argument("-v", "--verbose", action="store_true", help="print progress to stderr")
    b.set_defaults(func=_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
