"""The ``npconv`` command: ``npconv info``, ``bench``, ``demo``, ``summary``, ``explain`` and ``train``.

Each subcommand is one ``sub.add_parser`` block in :func:`build_parser` whose ``func`` takes
the parsed arguments; add a subcommand the same way."""

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
        frozen=args.frozen,
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


# The models of npconv.nn.models that ``npconv summary`` knows, and their default inputs.
SUMMARY_MODELS = ("resnet18", "resnet50", "resnext50_32x4d", "mobilenet_v2", "vgg16", "unet", "dcgan_generator")
SUMMARY_INPUTS = {"unet": (1, 3, 64, 64), "dcgan_generator": (1, 100, 1, 1)}
IMAGENET_INPUT = (1, 3, 224, 224)


def sizes(text):
    """``"1x3x224x224"`` -> ``(1, 3, 224, 224)`` (an argparse type)."""
    try:
        return tuple(int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected sizes joined by 'x' (like 1x3x224x224 or 3), got {text!r}") from None


def padding_arg(text):
    """``"same"``, ``"same_lower"``, ``"valid"`` or sizes (an argparse type)."""
    return text if text in ("same", "same_lower", "valid") else sizes(text)


def _summary(args):
    if args.model not in SUMMARY_MODELS:
        raise SystemExit(f"npconv summary: unknown model {args.model!r}; choose from {', '.join(SUMMARY_MODELS)}")
    import npconv
    from npconv.nn import models

    try:
        report = npconv.summary(getattr(models, args.model)(), args.input or SUMMARY_INPUTS.get(args.model, IMAGENET_INPUT))
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"npconv summary {args.model}: {exc}") from None
    print(report)


def _explain(args):
    import npconv

    def one_or_each(values):  # "3" -> 3, "3x5" -> (3, 5)
        return values[0] if len(values) == 1 else values

    rank = max(len(args.input) - 2, 1)
    kernel = args.kernel * rank if len(args.kernel) == 1 else args.kernel
    padding = args.padding if isinstance(args.padding, str) else one_or_each(args.padding)
    c_in = args.input[1] if len(args.input) > 1 else 0
    if args.transposed:  # weight (C_in, C_out/groups, *kernel)
        weight = (c_in, max(1, args.out_channels // args.groups), *kernel)
    else:  # weight (C_out, C_in/groups, *kernel); a wrong groups is left to explain's check
        weight = (args.out_channels, max(1, c_in // args.groups), *kernel)
    old = npconv.set_precision(args.precision) if args.precision else None
    try:
        cost = npconv.explain(args.input, weight, bias=not args.no_bias, stride=one_or_each(args.stride),
                              padding=padding, dilation=one_or_each(args.dilation), groups=args.groups,
                              padding_mode=args.padding_mode, dtype=args.dtype, transposed=args.transposed)
    except (TypeError, ValueError) as exc:
        raise SystemExit(f"npconv explain: {exc}") from None
    finally:
        if old is not None:
            npconv.set_precision(old)
    print(cost)


def _train(args):
    from npconv.train import train_digits

    try:
        train_digits(epochs=args.epochs, seed=args.seed, out=args.out,
                     progress=not args.no_progress and sys.stderr.isatty())
    except ImportError as exc:
        raise SystemExit(str(exc)) from None


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
    b.add_argument("--frozen", action="store_true",
                   help="run npconv on frozen weights (npconv.freeze): cached transforms taken without a check")
    b.add_argument("-v", "--verbose", action="store_true", help="print progress to stderr")
    b.set_defaults(func=_bench)
    d = sub.add_parser("demo", help="demonstrations: the checkerboard study (transposed vs resize-convolution)")
    d.add_argument("name", choices=["checkerboard"],
                   help="checkerboard: transposed convolution vs resize-convolution, scored by npconv.checkerboard_score")
    d.add_argument("--out", metavar="FILE.png", help="also draw the outputs to this PNG (needs matplotlib)")
    d.set_defaults(func=_demo)
    s = sub.add_parser("summary", help="a model's layers: output shapes, parameters, MACs, algorithms, workspace")
    s.add_argument("model", help=f"one of {', '.join(SUMMARY_MODELS)} (npconv.nn.models)")
    s.add_argument("--input", type=sizes, metavar="NxCxHxW",
                   help="input shape (default 1x3x224x224; unet 1x3x64x64; dcgan_generator 1x100x1x1)")
    s.set_defaults(func=_summary)
    e = sub.add_parser("explain", help="what one convolution costs and which algorithm auto runs it with")
    e.add_argument("--input", type=sizes, required=True, metavar="NxCxHxW", help="input shape, e.g. 1x64x56x56")
    e.add_argument("--out-channels", type=int, required=True)
    e.add_argument("--kernel", type=sizes, required=True, help="kernel size: one int, or one per dim (3x5)")
    e.add_argument("--stride", type=sizes, default=(1,), help="one int, or one per dim (default 1)")
    e.add_argument("--padding", type=padding_arg, default=(0,),
                   help="one int, one per dim (1x2), 'same', 'same_lower' or 'valid' (default 0)")
    e.add_argument("--dilation", type=sizes, default=(1,), help="one int, or one per dim (default 1)")
    e.add_argument("--groups", type=int, default=1)
    e.add_argument("--padding-mode", default="zeros", choices=["zeros", "reflect", "replicate", "circular"])
    e.add_argument("--no-bias", action="store_true", help="count no bias parameters")
    e.add_argument("--transposed", action="store_true",
                   help="a transposed convolution (weight C_in x C_out/groups x kernel)")
    e.add_argument("--dtype", default="float32", choices=["float16", "float32", "float64"])
    e.add_argument("--precision", choices=["highest", "high", "medium"],
                   help="the precision policy auto follows (default: the current one, 'high')")
    e.set_defaults(func=_explain)
    t = sub.add_parser("train", help="train a small network: a depthwise-separable CNN on the 8x8 digits")
    t.add_argument("dataset", choices=["digits"], help="digits: scikit-learn's bundled 8x8 digits (no download)")
    t.add_argument("--epochs", type=int, default=12)
    t.add_argument("--seed", type=int, default=0, help="the split, initial weights and batch order")
    t.add_argument("--out", default="digits.npz", help="where to save the trained weights (default digits.npz)")
    t.add_argument("--no-progress", action="store_true",
                   help="no progress bar on stderr (drawn only when stderr is a terminal)")
    t.set_defaults(func=_train)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
