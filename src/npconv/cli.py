"""The ``npconv`` command: ``npconv info``, ``npconv bench`` and ``npconv demo``."""

import argparse
import json
import os
import platform
import sys


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
    import npconv
    from npconv import bench
    from npconv.suite import NETWORKS, TARGET_BATCHES, suite_layers

    bench.use_timing_env()

    for option, given, known in (("--algo", args.algo, npconv.algorithms()), ("--network", args.network, NETWORKS)):
        unknown = [name for name in given or () if name not in known]
        if unknown:
            raise SystemExit(f"npconv bench: unknown {option} {', '.join(unknown)}; choose from {', '.join(known)}")
    if args.png:
        try:
            bench.require_plotting()
        except ImportError as exc:
            raise SystemExit(f"npconv bench --png: {exc}") from None
    if args.threads:
        npconv.set_num_threads(args.threads)
    layers = suite_layers(quick=args.quick, networks=args.network)
    if not layers:
        raise SystemExit("npconv bench: no layer of the given --network is in --quick's set")
    batches = args.batch or ((1,) if args.quick else TARGET_BATCHES)
    print(f"npconv bench: timing {len(layers)} layers at batch {', '.join(map(str, batches))}"
          f"{'' if args.verbose else ' (-v shows progress)'}", file=sys.stderr, flush=True)
    report = bench.run(
        layers, batches=batches, repeats=args.repeats or (3 if args.quick else 7), algos=args.algo,
        progress=(lambda msg: print(f"  timing {msg}", file=sys.stderr, flush=True)) if args.verbose else None,
    )
    print(bench.format_report(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        print(f"wrote {args.json}")
    if args.png:
        bench.plot_ratios(report, args.png)
        print(f"wrote {args.png}")


def _demo(args):
    from npconv import checkerboard

    if args.out:
        try:
            from npconv.bench import require_plotting

            require_plotting()
        except ImportError as exc:
            raise SystemExit(f"npconv demo checkerboard --out: {exc}") from None
    checkerboard.run_demo(out=args.out)


def build_parser():
    parser = argparse.ArgumentParser(prog="npconv", description="npconv: convolutions for Python, exact to PyTorch")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("info", help="versions, threads, BLAS and Numba status").set_defaults(func=_info)
    b = sub.add_parser("bench", help="time the algorithms on real network layers against PyTorch")
    b.add_argument("--quick", action="store_true", help="one or two layers per target group at batch 1, 3 runs each")
    b.add_argument("--batch", type=int, action="append", help="batch size (repeatable; default 1 and 8)")
    b.add_argument("--repeats", type=int, help="timed runs per candidate (default 7, quick 3)")
    b.add_argument("--algo", action="append",
                   help="algorithm to time (repeatable; default all but references; auto's choice is always timed)")
    b.add_argument("--network", action="append", help="only layers of this network (repeatable)")
    b.add_argument("--threads", type=int, help="thread count for npconv and torch (default: all cores)")
    b.add_argument("--json", metavar="FILE", help="also write the report (rows, targets, sgemm peak, versions) as JSON")
    b.add_argument("--png", metavar="FILE", help="also chart auto's speed ratios per layer (needs matplotlib)")
    b.add_argument("-v", "--verbose", action="store_true", help="print progress to stderr")
    b.set_defaults(func=_bench)
    d = sub.add_parser("demo", help="demonstrations: the checkerboard study (transposed vs resize-convolution)")
    d.add_argument("name", choices=["checkerboard"],
                   help="checkerboard: transposed convolution vs resize-convolution, scored by npconv.checkerboard_score")
    d.add_argument("--out", metavar="FILE.png", help="also draw the outputs to this PNG (needs matplotlib)")
    d.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
