"""Forward + backward (input and weight gradients) against PyTorch autograd.

The issue's target: speed ratio (torch ms / npconv ms) >= 0.8 on ResNet-50's 3x3 and 1x1
layers and MobileNetV2's depthwise layers, float32, same threads, timed interleaved.
ResNeXt-50's grouped layers are timed too (no target).
npconv: ``conv`` then ``conv_backward(needs=("input", "weight"))``; torch: ``F.conv2d`` on
tensors that require grad, then ``backward``.

    python benchmarks/backward.py [--batch 8] [--repeats 7]

It re-executes itself with ``npconv.bench.TIMING_ENV`` set, as ``npconv bench`` does.
"""

import argparse
import statistics

import numpy as np

import npconv
from npconv.bench import median_seconds, use_timing_env
from npconv.suite import LAYERS

GROUPS = ("3x3", "1x1", "depthwise", "grouped")
TARGETED = ("3x3", "1x1", "depthwise")
NETWORKS = ("resnet50", "mobilenet_v2", "resnext50_32x4d")


def main():
    use_timing_env()
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    torch.set_num_threads(npconv.get_num_threads())
    rng = np.random.default_rng(0)
    print(f"float32, {npconv.get_num_threads()} threads, batch {args.batch}, median of {args.repeats} interleaved runs")
    print(f"{'layer':<40} {'npconv ms':>10} {'torch ms':>9} {'ratio':>6}")
    ratios = {g: [] for g in GROUPS}
    for layer in LAYERS:
        if layer.group not in GROUPS or layer.network not in NETWORKS:
            continue
        x = rng.standard_normal(layer.input_shape(args.batch), dtype=np.float32)
        w = rng.standard_normal(layer.weight_shape, dtype=np.float32)
        params = {"stride": layer.stride, "padding": layer.padding, "groups": layer.groups}
        gy = rng.standard_normal(npconv.conv2d(x, w, **params).shape, dtype=np.float32)
        tx, tw, tgy = (torch.from_numpy(a) for a in (x, w, gy))

        def ours():
            npconv.conv2d(x, w, **params)
            npconv.conv_backward(gy, x, w, bias=False, needs=("input", "weight"), **params)

        def theirs():
            xr, wr = tx.clone().requires_grad_(), tw.clone().requires_grad_()
            torch.nn.functional.conv2d(xr, wr, **params).backward(tgy)

        t_ours, t_theirs = median_seconds([ours, theirs], args.repeats)
        ratios[layer.group].append(t_theirs / t_ours)
        print(f"{layer.network + ' ' + layer.name:<40} {t_ours * 1e3:10.2f} {t_theirs * 1e3:9.2f} {t_theirs / t_ours:6.2f}")
    for group, values in ratios.items():
        print(f"{group}: geometric mean ratio {statistics.geometric_mean(values):.2f} over {len(values)} layers "
              f"({'target >= 0.8' if group in TARGETED else 'no target'})")


if __name__ == "__main__":
    main()
