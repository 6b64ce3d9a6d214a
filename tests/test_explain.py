"""npconv.explain: counts against torch (output shapes, parameter counts) and an independent
loop count, conv's own errors, auto's choice against select, and the textbook facts."""

import math
import re
import sys
import tracemalloc

import numpy as np
import pytest
import torch

import npconv
from npconv.algorithms import REGISTRY, select

CASES = [
    # (input shape, weight shape, conv args)
    ((2, 8, 13, 11), (6, 8, 3, 3), dict(padding=1)),
    ((1, 6, 20, 17), (9, 2, 5, 3), dict(stride=(2, 1), padding=(2, 0), dilation=(1, 2), groups=3)),
    ((3, 4, 31), (5, 4, 4), dict(stride=3, padding=2)),
    ((1, 2, 5, 6, 7), (4, 1, 3, 2, 3), dict(groups=2, padding=1, dilation=(1, 2, 1))),
    ((1, 3, 9, 9), (3, 1, 3, 3), dict(padding=2, groups=3, padding_mode="reflect")),
]


def direct_macs(input_shape, weight_shape, out_shape, groups):
    """MACs by walking every output value's receptive field (an independent count)."""
    c_out, cg, *kernel = weight_shape
    total = 0
    for _ in range(input_shape[0]):
        for _ in range(c_out):
            for _ in range(math.prod(out_shape[2:])):
                total += cg * math.prod(kernel)
    return total


def torch_conv(weight_shape, groups, bias, padding_mode="zeros", **args):
    rank = len(weight_shape) - 2
    layer = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)[rank - 1]
    return layer(weight_shape[1] * groups, weight_shape[0], weight_shape[2:], groups=groups, bias=bias,
                 padding_mode=padding_mode, **args)


@pytest.mark.parametrize("input_shape, weight_shape, args", CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_counts_match_torch(input_shape, weight_shape, args, bias):
    cost = npconv.explain(input_shape, weight_shape, bias=bias, **args)
    layer = torch_conv(weight_shape, bias=bias, **{"groups": 1, **args})
    out = layer(torch.zeros(input_shape))
    assert cost.output_shape == tuple(out.shape)
    assert cost.params == sum(p.numel() for p in layer.parameters())
    assert cost.bias_params == (weight_shape[0] if bias else 0)
    assert cost.macs == direct_macs(input_shape, weight_shape, cost.output_shape, args.get("groups", 1))
    assert cost.flops == 2 * cost.macs
    c_in, kvol = input_shape[1], math.prod(weight_shape[2:])
    assert cost.im2col_bytes == input_shape[0] * c_in * kvol * math.prod(cost.output_shape[2:]) * 4
    moved = (math.prod(input_shape) + cost.params + math.prod(cost.output_shape)) * 4
    assert cost.arithmetic_intensity == pytest.approx(cost.flops / moved)


@pytest.mark.parametrize("input_shape, weight_shape, args", CASES)
def test_choice_is_autos(input_shape, weight_shape, args):
    cost = npconv.explain(input_shape, weight_shape, **args)
    alg = select("conv", cost.geometry, "auto")
    assert cost.algorithm.split(" ")[0] == alg.name
    assert cost.workspace_bytes == alg.workspace_bytes(cost.geometry)
    competing = [c for c in cost.candidates if c.rejected is None]
    assert min(competing, key=lambda c: c.seconds).seconds == pytest.approx(alg.estimated_seconds(cost.geometry))
    assert {c.name for c in cost.candidates} == set(REGISTRY)
    for c in cost.candidates:
        reason = REGISTRY[c.name].why_unsupported(cost.geometry)
        assert (c.seconds is None) == (reason is not None)
        if reason is not None:
            assert reason in c.rejected


def test_choice_runs_the_same_as_conv():
    """The geometry explain describes is the one conv runs: same output as torch's conv."""
    input_shape, weight_shape, args = CASES[1]
    rng = np.random.default_rng(0)
    x = rng.standard_normal(input_shape).astype(np.float32)
    w = rng.standard_normal(weight_shape).astype(np.float32)
    cost = npconv.explain(input_shape, weight_shape, bias=False, **args)
    out = npconv.conv(x, w, algo=cost.algorithm.split(" ")[0], **args)
    assert out.shape == cost.output_shape
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), **args).numpy()
    np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-4)


def test_precision_policy_and_workspace_limit_are_reported():
    old = npconv.set_precision("highest")
    try:
        cost = npconv.explain((1, 16, 20, 20), (16, 16, 3, 3), padding=1)
    finally:
        npconv.set_precision(old)
    assert cost.precision == "highest"
    assert not cost.algorithm.startswith("winograd") and cost.algorithm != "fft"
    rejected = {c.name: c.rejected for c in cost.candidates}
    assert "precision policy 'highest' excludes its accuracy 'high'" in rejected["winograd4"]
    assert "excludes its accuracy 'medium'" in rejected["winograd6"]
    assert "reference" in rejected["direct"]
    old_limit = npconv.set_workspace_limit(2**20)
    try:
        small = npconv.explain((1, 16, 20, 20), (16, 16, 3, 3), padding=1)
    finally:
        npconv.set_workspace_limit(old_limit)
    assert small.workspace_limit == 2**20


def test_winograd_savings():
    cost = npconv.explain((1, 8, 12, 12), (4, 8, 3, 3), padding=1)  # 12 = 2 * 6 = 3 * 4: whole tiles
    savings = {w.m: w for w in cost.winograd}
    assert set(savings) == {2, 4, 6}
    for m, w in savings.items():
        assert w.ratio == pytest.approx(9 * m * m / (m + 2) ** 2)
        assert w.reduction == pytest.approx(w.ratio)  # no partial tiles
        assert w.multiplications == (12 // m) ** 2 * (m + 2) ** 2 * 8 * 4
    assert savings[2].ratio == 2.25 and savings[4].ratio == 4.0
    edge = npconv.explain((1, 8, 13, 13), (4, 8, 3, 3), padding=1)  # partial edge tiles
    assert all(w.reduction < w.ratio for w in edge.winograd)
    assert npconv.explain((1, 8, 12, 12), (4, 8, 3, 3), stride=2).winograd == ()
    two = npconv.explain((1, 8, 15, 15), (4, 8, 2, 2), padding=((1, 0), (1, 0)))  # 15 = 3 * 5: whole F(3, 2), F(5, 2) tiles
    assert [(w.m, w.r) for w in two.winograd] == [(3, 2), (5, 2), (7, 2)]
    assert two.winograd[0].ratio == 2.25 and two.winograd[0].reduction == 2.25
    assert "winograd F(5,2)" in str(two)
    assert npconv.explain((1, 8, 12, 12), (4, 8, 1, 1)).winograd == ()


# ---- textbook facts -------------------------------------------------------------------------


@pytest.mark.parametrize("groups", [2, 4, 32])
def test_grouping_divides_params_and_flops(groups):
    dense = npconv.explain((1, 64, 28, 28), (128, 64, 3, 3), padding=1, bias=False)
    grouped = npconv.explain((1, 64, 28, 28), (128, 64 // groups, 3, 3), padding=1, groups=groups, bias=False)
    assert grouped.params * groups == dense.params
    assert grouped.flops * groups == dense.flops
    assert grouped.macs * groups == dense.macs


@pytest.mark.parametrize("c_in, c_out, k", [(64, 128, 3), (256, 256, 3), (32, 64, 5)])
def test_depthwise_separable_ratio(c_in, c_out, k):
    """Depthwise KxK + pointwise 1x1 costs 1/C_out + 1/K^2 of the standard KxK convolution."""
    shape, pad = (1, c_in, 28, 28), k // 2
    standard = npconv.explain(shape, (c_out, c_in, k, k), padding=pad, bias=False)
    depthwise = npconv.explain(shape, (c_in, 1, k, k), padding=pad, groups=c_in, bias=False)
    pointwise = npconv.explain(depthwise.output_shape, (c_out, c_in, 1, 1), bias=False)
    ratio = (depthwise.macs + pointwise.macs) / standard.macs
    assert ratio == pytest.approx(1 / c_out + 1 / k**2)
    params = (depthwise.params + pointwise.params) / standard.params
    assert params == pytest.approx(1 / c_out + 1 / k**2)


def test_bottleneck_cuts_next_layer_by_four():
    """A 1x1 bottleneck 256 -> 64 makes the following 3x3 (to 64) layer 4x cheaper."""
    shape = (1, 256, 56, 56)
    direct = npconv.explain(shape, (64, 256, 3, 3), padding=1, bias=False)
    squeeze = npconv.explain(shape, (64, 256, 1, 1), bias=False)
    after = npconv.explain(squeeze.output_shape, (64, 64, 3, 3), padding=1, bias=False)
    assert direct.macs == 4 * after.macs
    assert direct.params == 4 * after.params


# ---- transposed ---------------------------------------------------------------------------


@pytest.mark.parametrize("input_shape, weight_shape, args", [
    ((1, 100, 1, 1), (100, 64, 4, 4), dict()),
    ((2, 16, 7, 9), (16, 4, 4, 4), dict(stride=2, padding=1, groups=2)),
    ((1, 6, 5), (6, 3, 3), dict(stride=3, padding=1, output_padding=2, dilation=2)),
])
def test_transposed_counts_match_torch(input_shape, weight_shape, args):
    cost = npconv.explain(input_shape, weight_shape, transposed=True, **args)
    groups = args.get("groups", 1)
    layer = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d)[len(weight_shape) - 3](
        weight_shape[0], weight_shape[1] * groups, weight_shape[2:], **args)
    out = layer(torch.zeros(input_shape))
    assert cost.output_shape == tuple(out.shape)
    assert cost.params == sum(p.numel() for p in layer.parameters())
    # every input value (per image) times C_out/groups outputs times every tap
    assert cost.macs == input_shape[0] * math.prod(input_shape[1:]) * weight_shape[1] * math.prod(weight_shape[2:])
    assert cost.algorithm.split(" ")[0] in ("col2im", "subpixel")
    assert {c.name for c in cost.candidates} == {"col2im", "subpixel"}


@pytest.mark.parametrize("x_shape, w_shape", [((8, 512, 4, 4), (512, 256, 4, 4)), ((2, 96, 32, 32), (96, 3, 3, 3))])
def test_col2im_workspace_bounds_what_it_allocates(x_shape, w_shape):
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal(x_shape, dtype=np.float32), rng.standard_normal(w_shape, dtype=np.float32)
    cost = npconv.explain(x_shape, w_shape, transposed=True, stride=2, padding=1)
    assert cost.algorithm == "col2im" and cost.workspace_bytes > 0
    y, peak = warm_peak(lambda: npconv.conv_transpose2d(x, w, stride=2, padding=1, algo="col2im"))
    assert peak <= y.nbytes + cost.workspace_bytes + 2**16  # the output, the scratch, small objects


def warm_peak(call):
    """``call()``'s result and the peak memory it allocates when run again, compiled and its
    caches warm (Numba's allocations traced too)."""
    call()
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_per_phase_winograd_workspace_bounds_what_it_allocates(monkeypatch):
    monkeypatch.setattr(npconv.transpose, "phasewise", lambda geom: True)
    monkeypatch.setattr(sys.modules["npconv.explain"], "phasewise", lambda geom: True)  # the module, not the function
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((8, 128, 16, 16), dtype=np.float32), rng.standard_normal((128, 64, 4, 4), dtype=np.float32)
    cost = npconv.explain(x.shape, w.shape, transposed=True, stride=2, padding=1)
    assert cost.algorithm == "subpixel (4 phases: winograd F(4,2) on each)"
    y, peak = warm_peak(lambda: npconv.conv_transpose2d(x, w, stride=2, padding=1, algo="subpixel"))
    assert peak <= y.nbytes + cost.workspace_bytes + 2**16


def test_transposed_output_size():
    cost = npconv.explain((1, 4, 5, 5), (4, 2, 3, 3), transposed=True, stride=2, output_size=(12, 12))
    assert cost.output_shape == (1, 2, 12, 12)
    assert cost.geometry.output_padding == (1, 1)


# ---- errors: conv's own -------------------------------------------------------------------------


@pytest.mark.parametrize("input_shape, weight_shape, args", [
    ((1, 6, 8, 8), (4, 4, 3, 3), dict(groups=2)),  # channels not divisible
    ((1, 4, 8, 8), (4, 4, 3, 3), dict(stride=0)),
    ((1, 4, 2, 2), (4, 4, 3, 3), dict()),  # kernel larger than input
    ((1, 4, 8), (4, 4, 3, 3), dict()),  # rank mismatch
    ((1, 4, 8, 8), (4, 4, 3, 3), dict(padding="full")),
    ((1, 4, 8, 8), (4, 4, 3, 3), dict(padding_mode="mirror")),
    ((1, 4, 8, 8), (4, 4, 3, 3), dict(padding=8, padding_mode="reflect")),
    ((1, 4, 8, 8), (4, 4, 3, 3), dict(dilation=1.5)),
    ((1, 4, 8, 8), (4, 4, 3, 3), dict(dtype=np.int32)),
])
def test_errors_are_convs(input_shape, weight_shape, args):
    dtype = args.pop("dtype", np.float32)
    with pytest.raises((ValueError, TypeError)) as conv_error:
        npconv.conv(np.zeros(input_shape, dtype), np.zeros(weight_shape, dtype), **args)
    with pytest.raises(conv_error.type, match=f"^{re.escape(str(conv_error.value))}$"):
        npconv.explain(input_shape, weight_shape, dtype=dtype, **args)


def test_transposed_errors_are_conv_transposes():
    with pytest.raises(ValueError) as conv_error:
        npconv.conv_transpose(np.zeros((1, 4, 5, 5), np.float32), np.zeros((4, 2, 3, 3), np.float32), stride=2,
                              output_size=(20, 20))
    with pytest.raises(ValueError) as explained:
        npconv.explain((1, 4, 5, 5), (4, 2, 3, 3), transposed=True, stride=2, output_size=(20, 20))
    assert str(explained.value) == str(conv_error.value)


def test_explain_own_errors():
    with pytest.raises(TypeError, match=r"conv: input_shape must be a tuple of ints, got 5"):
        npconv.explain(5, (4, 4, 3, 3))
    with pytest.raises(ValueError, match=r"conv: weight_shape must be non-negative"):
        npconv.explain((1, 4, 8, 8), (4, -4, 3, 3))
    with pytest.raises(ValueError, match=r"conv_transpose: transposed convolutions pad with zeros only"):
        npconv.explain((1, 4, 8, 8), (4, 4, 3, 3), transposed=True, padding_mode="reflect")
    with pytest.raises(ValueError, match=r"conv: output_padding and output_size apply to transposed"):
        npconv.explain((1, 4, 8, 8), (4, 4, 3, 3), output_padding=1)


def test_str_report():
    cost = npconv.explain((1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    text = str(cost)
    assert f"{cost.macs:,}" in text and f"{cost.flops:,}" in text and f"{cost.params:,}" in text
    assert "MACs" in text and "FLOPs" in text and "2 x MACs" in text
    assert "1x64x56x56" in text
    assert "winograd F(4,3)" in text and "4.00x" in text
    assert f"auto picks            {cost.algorithm}" in text
    assert "unsupported: it needs a 1x1 kernel" in text
