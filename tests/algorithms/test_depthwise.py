"""depthwise and grouped specifics: which geometries they take; channel multipliers, odd strides, stride phases,
images stacked in the phases."""

import math
import tracemalloc

import numpy as np
import pytest
import torch

import npconv
from npconv.algorithms import REGISTRY, auto_rejections, depthwise, select
from npconv.algorithms.depthwise import input_gradient, weight_gradient
from npconv.geometry import conv_geometry

from ..conftest import assert_matches_torch, random_conv_inputs, resolve_padding

DEPTHWISE = REGISTRY["depthwise"]


def geometry(x_shape, w_shape, groups):
    geom, _ = conv_geometry("test", x_shape, w_shape, None, stride=1, padding=0, dilation=1,
                            groups=groups, padding_mode="zeros", dtype=np.float32)
    return geom


@pytest.mark.parametrize("x_shape, w_shape, groups, reason", [
    ((1, 4, 6, 6), (4, 2, 3, 3), 2, "needs groups == in_channels, got groups=2, in_channels=4"),
    ((1, 2, 3, 3, 3, 3), (2, 1, 1, 1, 1, 1), 2, "handles 1 to 3 spatial dims, got 4"),
])
def test_declines_with_reason(x_shape, w_shape, groups, reason):
    geom = geometry(x_shape, w_shape, groups)
    with pytest.raises(npconv.UnsupportedAlgorithmError, match="'depthwise' cannot compute this convolution: it " + reason):
        DEPTHWISE.check(geom)


@pytest.mark.parametrize("multiplier", [1, 3])
@pytest.mark.parametrize("kernel, stride, dilation, padding", [
    ((3, 3), 1, 1, 1),
    ((3, 3), 2, 1, 1),
    ((5, 2), (2, 3), (1, 2), ((2, 0), (1, 3))),
    ((7, 7), 1, 1, 3),
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(rng, multiplier, kernel, stride, dilation, padding, dtype):
    x, w, b = random_conv_inputs(rng, (2, 5, 13, 11), (5 * multiplier, 1, *kernel), dtype=dtype)
    y = npconv.conv2d(x, w, b, stride=stride, dilation=dilation, padding=padding, groups=5, algo="depthwise")
    assert_matches_torch(y, x, w, b, stride=stride, dilation=dilation, padding=padding, groups=5)


@pytest.mark.parametrize("groups, cin, cout, size, reason", [
    (2, 130, 4, 6, "got 65 in, 2 out, 9360 bytes"),  # few outputs a group
    (1, 65, 64, 128, "got 65 in, 64 out, 4259840 bytes"),  # planes past MAX_PLANES_BYTES
])
def test_grouped_declines_with_reason(groups, cin, cout, size, reason):
    geom = geometry((1, cin, size, size), (cout, cin // groups, 3, 3), groups)
    rule = ("takes at most 64 input channels per group, or more with at least 64 outputs per group whose planes "
            r"\(a stack of images', in their stride phases\) fit in 1048576 bytes; ")
    with pytest.raises(npconv.UnsupportedAlgorithmError,
                       match="'grouped' cannot compute this convolution: it " + rule + reason):
        REGISTRY["grouped"].check(geom)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_grouped_with_many_input_channels_runs_a_threads_share_of_outputs(rng, request, threads, stride):
    """Past 64 input channels per group, where a stack's planes fit MAX_PLANES_BYTES, each unit
    computes a thread's share of the outputs (100 on two threads: 50, six blocks of 8 and one
    of 2) rather than OUTPUT_BLOCK of them."""
    request.addfinalizer(lambda old=npconv.get_num_threads(): npconv.set_num_threads(old))
    npconv.set_num_threads(threads)
    x, w, b = random_conv_inputs(rng, (1, 96, 12, 11), (100, 96, 3, 3))
    geom, _ = conv_geometry("test", x.shape, w.shape, None, stride=stride, padding=1, dilation=1, groups=1,
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    assert depthwise._output_block(geom) == -(-100 // threads) and depthwise._units(geom) == threads
    assert not depthwise.runs_own_backward(geom)
    y = npconv.conv2d(x, w, b, stride=stride, padding=1, algo="grouped")
    assert_matches_torch(y, x, w, b, stride=stride, padding=1)


def test_auto_takes_wide_blocks_on_resnets_wide_strided_layer_at_batch_1_only(request):
    """ResNet-50's 512-channel 3x3/2 layer: at batch 1 its 0.56 MB of planes stay in L2 (measured:
    grouped 1.27 ms, im2col 1.51, implicit 1.85); at batch 8, 4.5 MB, grouped declines."""
    request.addfinalizer(lambda old=npconv.get_num_threads(): npconv.set_num_threads(old))
    npconv.set_num_threads(2)
    for batch, chosen in [(1, True), (8, False)]:
        geom, _ = conv_geometry("test", (batch, 512, 14, 14), (512, 512, 3, 3), None, stride=2, padding=1,
                                dilation=1, groups=1, padding_mode="zeros", dtype=np.dtype(np.float32))
        assert (select("test", geom, "auto").name == "grouped") == chosen
        assert (REGISTRY["grouped"].why_unsupported(geom) is None) == chosen


@pytest.mark.parametrize("groups, cin, cout", [(32, 128, 128), (3, 6, 9), (2, 8, 2), (2, 4, 38), (1, 3, 16)])  # 4, 3, 1, 19, 16 outputs per group
@pytest.mark.parametrize("stride", [1, 2])
def test_grouped_matches_torch(rng, groups, cin, cout, stride):
    x, w, b = random_conv_inputs(rng, (2, cin, 9, 10), (cout, cin // groups, 3, 3), dtype=np.float32)
    y = npconv.conv2d(x, w, b, stride=stride, padding=1, groups=groups, algo="grouped")
    assert_matches_torch(y, x, w, b, stride=stride, padding=1, groups=groups)


@pytest.mark.parametrize("out_per_group", [2, 3, 7, 13, 40])  # blocks 2; 2+1; 4+2+1; 8+4+1; 32, then 8
@pytest.mark.parametrize("x_size, stride", [((2, 3), 1), ((17, 13), 1), ((15, 12), 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_output_blocks_and_runs_match_torch(rng, out_per_group, x_size, stride, dtype):
    """Every split of a group's outputs into register blocks (:mod:`npconv.algorithms.register_block`)
    and past OUTPUT_BLOCK; planes shorter than one run of positions and longer than several, the
    last run narrower."""
    x, w, b = random_conv_inputs(rng, (3, 6, *x_size), (3 * out_per_group, 2, 3, 3), dtype=dtype)
    y = npconv.conv2d(x, w, b, stride=stride, padding=1, groups=3, algo="grouped")
    assert_matches_torch(y, x, w, b, stride=stride, padding=1, groups=3)


def test_auto_prefers_depthwise_for_depthwise_layers():
    geom = geometry((1, 32, 56, 56), (32, 1, 3, 3), 32)
    assert select("test", geom, "auto").name == "depthwise"


# Stride phases: strides above the kernel and dilation, inputs not a multiple of the stride,
# asymmetric padding, ranks 1-3, multipliers and groups of several channels.
PHASE_CASES = [
    ((2, 3, 5), (6, 1, 3), dict(stride=3, padding=((0, 2),), groups=3)),
    ((1, 2, 5, 7), (4, 1, 2, 2), dict(stride=(1, 3), dilation=2, padding=((1, 2), (2, 0)), groups=2)),
    ((2, 4, 7, 6), (4, 2, 3, 3), dict(stride=2, padding=1, groups=2)),
    ((1, 2, 2, 5), (4, 1, 3, 3), dict(stride=(2, 3), padding=((0, 2), (0, 0)), groups=2)),
    ((1, 3, 5, 4, 6), (3, 1, 2, 3, 1), dict(stride=(2, 1, 4), dilation=(2, 1, 1), padding=1, groups=3)),
    ((1, 2, 3, 3), (2, 1, 1, 1), dict(stride=4, groups=2)),  # taps reach one phase of sixteen
]


@pytest.mark.parametrize("x_shape, w_shape, params", PHASE_CASES)
def test_stride_phases_forward_and_weight_gradient_match_torch(rng, x_shape, w_shape, params):
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False)
    algo = "depthwise" if params["groups"] == x_shape[1] else "grouped"
    y = npconv.conv(x, w, algo=algo, **params)
    assert_matches_torch(y, x, w, **params)
    grad = rng.standard_normal(y.shape)
    geom, expected = _gradients_by_torch(x, w, grad, params)
    np.testing.assert_allclose(weight_gradient(x, grad, geom), expected[1], rtol=1e-10, atol=1e-12)


def _gradients_by_torch(x, w, grad, params):
    """The float64 geometry of ``params`` and torch's (input, weight) gradients for it."""
    pairs = resolve_padding(params.get("padding", 0), x.shape[2:], w.shape[2:])
    torch_params = {**params, "padding": 0}  # torch pads symmetrically only: pad explicitly
    xt = torch.tensor(np.pad(x, ((0, 0), (0, 0), *pairs)), requires_grad=True)
    wt = torch.tensor(w, requires_grad=True)
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[w.ndim - 3]
    conv(xt, wt, **torch_params).backward(torch.tensor(grad))
    geom, _ = conv_geometry("test", x.shape, w.shape, None, **{"stride": 1, "dilation": 1, **params, "padding": pairs},
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    crop = tuple(slice(lo, lo + size) for (lo, _), size in zip(pairs, x.shape[2:]))
    return geom, (xt.grad.numpy()[(..., *crop)], wt.grad.numpy())



@pytest.mark.parametrize("images", [1, 2, 5])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    *PHASE_CASES[:5],
    ((1, 2, 5, 3, 3), (2, 1, 2, 1, 1), dict(stride=(2, 1, 1), groups=2)),  # depth 5: its last row unread
])
def test_images_stacked_in_the_phases(rng, monkeypatch, request, images, x_shape, w_shape, params):
    """One image a unit, two (the last of three stacks holding one), or all five, per phase:
    each image's outputs read only its own part of the phases; the gradients too."""
    x_shape = (5, *x_shape[1:])
    x, w, b = random_conv_inputs(rng, x_shape, w_shape)
    geom, _ = conv_geometry("test", x_shape, w_shape, None, **{"stride": 1, "dilation": 1, "padding": 0, **params},
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    monkeypatch.setattr(depthwise, "STACK_VALUES", images * math.prod(depthwise._phase_shape(geom)))
    depthwise._images.cache_clear()  # remembered per geometry: forget it before and after
    request.addfinalizer(depthwise._images.cache_clear)
    assert depthwise._images(geom) == images
    algo = "depthwise" if params["groups"] == x_shape[1] else "grouped"
    y = npconv.conv(x, w, b, algo=algo, **params)
    assert_matches_torch(y, x, w, b, **params)
    grad = rng.standard_normal(y.shape)
    geom, (expected_input, expected_weight) = _gradients_by_torch(x, w, grad, params)
    np.testing.assert_allclose(depthwise.input_gradient(grad, w, geom), expected_input, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weight_gradient(x, grad, geom), expected_weight, rtol=1e-10, atol=1e-12)


# Stride 1: rows and stacked images share their borders where the output still fits a row
# (``in + max(lo, hi)`` per dim), else keep both (where a pad exceeds the kernel's reach);
# ranks 1-3, dilation, asymmetric padding.
SHARED_BORDER_CASES = [
    ((3, 4, 7, 7), (8, 2, 3, 3), dict(padding=1, groups=2), (1, 8, 8)),
    ((2, 3, 6, 9), (3, 1, 3, 2), dict(padding=((2, 0), (0, 1)), groups=3), (1, 8, 10)),
    ((2, 2, 5, 6), (4, 1, 3, 3), dict(padding=((1, 2), (3, 1)), dilation=(2, 1), groups=2), (1, 7, 9)),
    ((3, 2, 9), (2, 1, 5), dict(padding=((1, 4),), dilation=2, groups=2), (1, 1, 13)),
    ((2, 2, 4, 5, 6), (4, 1, 2, 3, 3), dict(padding=((2, 2), (1, 1), (0, 1)), groups=2), (8, 6, 7)),  # depth: 2 > k - 1
    ((2, 4, 6, 6), (4, 2, 3, 3), dict(padding=((3, 3), (0, 0)), groups=2), (1, 12, 6)),  # 3 > k - 1
]


@pytest.mark.parametrize("x_shape, w_shape, params, phase", SHARED_BORDER_CASES)
def test_shared_borders_forward_and_gradients_match_torch(rng, monkeypatch, request, x_shape, w_shape, params, phase):
    """Every image stacked in one phase buffer, so the last one's reads run past the stack's
    end; an infinite value stays in its own image, as in torch."""
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False)
    x[0, 0].flat[-1] = np.inf
    pairs = resolve_padding(params["padding"], x_shape[2:], w_shape[2:])
    geom, _ = conv_geometry("test", x_shape, w_shape, None, **{"stride": 1, "dilation": 1, **params, "padding": pairs},
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    assert tuple(depthwise._phase_shape(geom)) == phase
    monkeypatch.setattr(depthwise, "STACK_VALUES", x_shape[0] * math.prod(depthwise._phase_shape(geom)))
    depthwise._images.cache_clear()
    request.addfinalizer(depthwise._images.cache_clear)
    algo = "depthwise" if params["groups"] == x_shape[1] else "grouped"
    y = npconv.conv(x, w, algo=algo, **params)
    grad = rng.standard_normal(y.shape)
    torch_params = {**params, "padding": 0}  # torch pads symmetrically only: pad explicitly
    xt, wt = torch.tensor(np.pad(x, ((0, 0), (0, 0), *pairs)), requires_grad=True), torch.tensor(w, requires_grad=True)
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[len(w_shape) - 3]
    expected = conv(xt, wt, **torch_params)
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert np.isfinite(y[1:]).all()
    finite = np.isfinite(x).all(axis=tuple(range(1, x.ndim)))  # gradients of the images without the inf
    x, xt = x[finite], torch.tensor(np.pad(x[finite], ((0, 0), (0, 0), *pairs)), requires_grad=True)
    grad = grad[finite]
    conv(xt, wt, **torch_params).backward(torch.tensor(grad))
    geom, _ = conv_geometry("test", x.shape, w_shape, None, **{"stride": 1, "dilation": 1, **params, "padding": pairs},
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    crop = tuple(slice(lo, lo + size) for (lo, _), size in zip(pairs, x_shape[2:]))
    np.testing.assert_allclose(depthwise.input_gradient(grad, w, geom), xt.grad.numpy()[(..., *crop)],
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weight_gradient(x, grad, geom), wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("width, padding", [(21, 1), (20, 0), (19, (2, 1)), (14, 1), (3, 0)])
def test_stride_2_rows_copied_in_pairs(rng, width, padding):
    """Every row goes into both column phases in one deal, the longer phase's last value alone;
    forward, input and weight gradients all move planes that way."""
    x_shape, w_shape = (2, 3, 5, width), (3, 1, 3, 3)
    pairs = (((0, 0), padding) if isinstance(padding, tuple) else ((padding, padding),) * 2)
    geom, _ = conv_geometry("test", x_shape, w_shape, None, stride=2, padding=pairs, dilation=1, groups=3,
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    params = depthwise._plan(geom, 1)[0]
    singles, paired = depthwise._row_copies(np.array((1, 5, width)), params[1], params[3], params[4])
    assert paired.shape[0] > 0 and np.all(singles[:, 2] == 1)  # a row's odd value out, if any
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False)
    y = npconv.conv(x, w, stride=2, padding=pairs, groups=3, algo="depthwise")
    grad = rng.standard_normal(y.shape)
    xt, wt = torch.tensor(np.pad(x, ((0, 0), (0, 0), *pairs)), requires_grad=True), torch.tensor(w, requires_grad=True)
    expected = torch.nn.functional.conv2d(xt, wt, stride=2, groups=3)
    expected.backward(torch.tensor(grad))
    np.testing.assert_allclose(y, expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    grad_x, grad_w, _ = npconv.conv_backward(grad, x, w, stride=2, padding=pairs, groups=3, bias=False)
    crop = (slice(None), slice(None), *(slice(lo, lo + n) for (lo, _), n in zip(pairs, x_shape[2:])))
    np.testing.assert_allclose(grad_x, xt.grad.numpy()[crop], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grad_w, wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 16, 40, 40), (16, 16, 3, 3), dict(padding=1, stride=2, groups=1)),  # one group: a block per thread
    ((1, 96, 12, 12), (100, 96, 3, 3), dict(padding=1, stride=2, groups=1)),  # wide blocks: a thread's outputs
    ((3, 64, 14, 14), (64, 4, 3, 3), dict(padding=1, groups=16)),  # stacked images
    ((2, 8, 31, 29), (24, 1, 3, 3), dict(padding=1, stride=2, groups=8)),  # depthwise, multiplier 3
    ((1, 2, 40, 40), (48, 1, 3, 3), dict(padding=1, stride=2, groups=2)),  # the input gradient's buffers the largest
    ((2, 6, 9, 8, 7), (6, 2, 3, 3, 3), dict(padding=1, stride=(1, 2, 2), groups=3)),
])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_allocate_within_workspace_bytes(rng, request, x_shape, w_shape, params, threads):
    """workspace_bytes bounds what the forward and both gradients allocate beyond their results
    (Numba's allocations are traced too), as auto's workspace rule relies on it: with one
    thread each bound is one thread's buffers."""
    request.addfinalizer(lambda old=npconv.get_num_threads(): npconv.set_num_threads(old))
    npconv.set_num_threads(threads)
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False, dtype=np.float32)
    geom, _ = conv_geometry("test", x.shape, w.shape, None, **{"stride": 1, "dilation": 1, **params},
                            padding_mode="zeros", dtype=np.dtype(np.float32))
    alg = REGISTRY["depthwise" if geom.groups == geom.in_channels else "grouped"]
    out = np.empty(geom.out_shape, dtype=np.float32)
    grad = rng.standard_normal(geom.out_shape).astype(np.float32)
    steps = [(lambda: alg.run(x, w, geom, out), 0), (lambda: input_gradient(grad, w, geom), x.nbytes),
             (lambda: weight_gradient(x, grad, geom), w.nbytes)]
    for step, result in steps:
        step()  # compiled, caches warm
        tracemalloc.start()
        try:
            step()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak <= result + alg.workspace_bytes(geom) + 2**16


def test_auto_passes_it_over_beyond_the_workspace_limit(workspace_limit):
    """Its planes are not chunked: over the limit auto runs another algorithm, and says why; named, it runs."""
    geom, _ = conv_geometry("test", (1, 16, 64, 64), (16, 16, 3, 3), None, stride=2, padding=1, dilation=1, groups=1,
                            padding_mode="zeros", dtype=np.dtype(np.float32))
    grouped = REGISTRY["grouped"]
    need = grouped.workspace_bytes(geom)
    workspace_limit(need)
    assert auto_rejections(geom)["grouped"] is None
    workspace_limit(need - 1)
    assert auto_rejections(geom)["grouped"] == (f"its planes need {need} bytes of scratch, above the workspace limit "
                                                f"of {need - 1}")
    assert select("test", geom, "auto").name != "grouped"
    assert select("test", geom, "grouped") is grouped


@pytest.mark.parametrize("w_shape, padding, groups, passed_over", [
    ((8, 4, 1, 1), 0, 4, True),  # 1x1, 4 input channels per group: pointwise's
    ((8, 16, 1, 1), 0, 1, True),
    ((16, 1, 1, 1), 0, 16, False),  # one input channel per group: depthwise, this kernel's
    ((8, 4, 1, 1), 1, 4, False),  # padded: pointwise does not take it
    ((8, 4, 3, 3), 0, 4, False),
])
def test_auto_leaves_1x1_kernels_of_several_channels_to_pointwise(w_shape, padding, groups, passed_over):
    geom, _ = conv_geometry("test", (2, 16, 9, 9), w_shape, None, stride=2, padding=padding, dilation=1,
                            groups=groups, padding_mode="zeros", dtype=np.dtype(np.float32))
    reason = auto_rejections(geom)["grouped"]
    if passed_over:
        assert reason == "pointwise runs 1x1 kernels of several input channels per group as GEMMs on the input in place"
        assert select("test", geom, "auto").name == "pointwise"
        assert select("test", geom, "grouped") is REGISTRY["grouped"]  # named, it runs
    else:
        assert reason is None

