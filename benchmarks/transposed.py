"""Transposed convolution: npconv.conv_transpose2d against torch.nn.functional.conv_transpose2d.

The layers: DCGAN's generator at batch 8 (Radford et al. 2016, 64x64 output: the 100-d code
to 512x4x4, then 4x4/2 with padding 1 up to 3x64x64) and the 2x2/2 up-convolutions of the
original U-Net (Ronneberger et al. 2015, 572x572 input tile, batch 1 as in the paper).
Target: speed ratio (torch ms / npconv ms) >= 1.0 on the DCGAN 4x4/2 layers and on U-Net's.

    python benchmarks/transposed.py [--repeats N] [--threads N] [--frozen]

Each layer times auto's choice, both paths forced (``subpixel``, ``col2im``) and torch,
interleaved in balanced orders (see :func:`balanced_medians`), median of ``--repeats``
rounds.  It re-executes itself with ``npconv.bench.TIMING_ENV`` set, as ``npconv bench`` does.
``--frozen`` runs npconv on frozen weights (:func:`npconv.freeze`), as inference with fixed
weights may: its cached sub-kernels are then taken without a check.

A second table times the resize-convolution alternative on the same layers (nearest x2, then
a "same" 3x3 convolution, no target): ``npconv.upsample_conv``, which runs it as a 4x4/2
transposed convolution of the box-filtered kernel, against torch's ``interpolate`` then
``conv2d``.
"""

import argparse
import statistics

import numpy as np

import npconv
from npconv.bench import median_seconds, use_timing_env
from npconv.geometry import conv_transpose_geometry
from npconv.transpose import auto_path


LAYERS = [
    # (name, N, C_in, size, C_out, kernel, stride, padding, targeted)
    ("dcgan z->512 4x4/1", 8, 100, 1, 512, 4, 1, 0, False),
    ("dcgan 512->256 4x4/2", 8, 512, 4, 256, 4, 2, 1, True),
    ("dcgan 256->128 4x4/2", 8, 256, 8, 128, 4, 2, 1, True),
    ("dcgan 128->64 4x4/2", 8, 128, 16, 64, 4, 2, 1, True),
    ("dcgan 64->3 4x4/2", 8, 64, 32, 3, 4, 2, 1, True),
    ("unet 1024->512 2x2/2", 1, 1024, 28, 512, 2, 2, 0, True),
    ("unet 512->256 2x2/2", 1, 512, 52, 256, 2, 2, 0, True),
    ("unet 256->128 2x2/2", 1, 256, 100, 128, 2, 2, 0, True),
    ("unet 128->64 2x2/2", 1, 128, 196, 64, 2, 2, 0, True),
]


def main():
    use_timing_env()
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=16, help="timed rounds (at least 8, one per order)")
    parser.add_argument("--threads", type=int, help="threads for npconv and torch (default: all cores)")
    parser.add_argument("--frozen", action="store_true", help="npconv on frozen weights (npconv.freeze)")
    args = parser.parse_args()
    if args.threads:
        npconv.set_num_threads(args.threads)
    torch.set_num_threads(npconv.get_num_threads())
    rng = np.random.default_rng(0)
    print(f"float32, {npconv.get_num_threads()} threads{', weights frozen' if args.frozen else ''}, "
          f"median of {args.repeats} interleaved runs; "
          "ratio = torch ms / npconv auto ms (above 1: npconv is faster)")
    print(f"{'layer':<22} {'input':>12} {'auto':>8} {'ms':>8} {'subpixel':>9} {'col2im':>8} {'torch':>8} {'ratio':>6}")
    targeted = []
    for name, n, c_in, size, c_out, k, s, p, target in LAYERS:
        x = rng.standard_normal((n, c_in, size, size), dtype=np.float32)
        w = rng.standard_normal((c_in, c_out, k, k), dtype=np.float32)
        geom = conv_transpose_geometry("bench", x.shape, w.shape, None, stride=s, padding=p, output_padding=0,
                                       groups=1, dilation=1, output_size=None, dtype=np.float32)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        w = npconv.freeze(w) if args.frozen else w
        candidates = [
            lambda algo=algo: npconv.conv_transpose2d(x, w, stride=s, padding=p, algo=algo)
            for algo in ("auto", "subpixel", "col2im")
        ]
        candidates.append(lambda: torch.nn.functional.conv_transpose2d(tx, tw, stride=s, padding=p))
        auto, subpixel, col2im, torch_s = median_seconds(candidates, args.repeats)
        ratio = torch_s / auto
        if target:
            targeted.append(ratio)
        choice = auto_path(geom)
        print(f"{name:<22} {f'{n}x{c_in}x{size}x{size}':>12} {choice:>8} {auto * 1e3:8.2f} {subpixel * 1e3:9.2f} "
              f"{col2im * 1e3:8.2f} {torch_s * 1e3:8.2f} {ratio:6.2f}{'' if target else '  (no target)'}")
    print(f"geometric mean ratio over the targeted layers: {statistics.geometric_mean(targeted):.2f} "
          f"(target >= 1.0 each; lowest {min(targeted):.2f})")
    print(f"\nresize-convolution: nearest x2 then a 'same' 3x3 convolution (no target)")
    print(f"{'layer':<22} {'input':>12} {'npconv':>8} {'torch':>8} {'ratio':>6}")
    for name, n, c_in, size, c_out, k, s, p, _ in LAYERS:
        if s != 2:
            continue
        x = rng.standard_normal((n, c_in, size, size), dtype=np.float32)
        w = rng.standard_normal((c_out, c_in, 3, 3), dtype=np.float32)
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)
        ours, theirs = median_seconds([
            lambda: npconv.upsample_conv(x, w, scale_factor=2),
            lambda: torch.nn.functional.conv2d(torch.nn.functional.interpolate(tx, scale_factor=2), tw, padding=1),
        ], args.repeats)
        print(f"{name.split()[0] + ' ' + name.split()[1]:<22} {f'{n}x{c_in}x{size}x{size}':>12} {ours * 1e3:8.2f} "
              f"{theirs * 1e3:8.2f} {theirs / ours:6.2f}")


if __name__ == "__main__":
    main()
