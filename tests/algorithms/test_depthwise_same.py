"""depthwise's path for outputs the input's size: which geometries take it, its masked offsets,
forward and gradients against torch, planes and channels shared out mid-image, non-finite inputs."""

import numpy as np
import pytest
import torch

import npconv
from npconv.algorithms import depthwise_same
from npconv.geometry import conv_geometry

from ..conftest import assert_matches_torch, random_conv_inputs, resolve_padding
from ..test_backward import check_conv


def geometry(x_shape, w_shape, **params):
    pairs = resolve_padding(params.pop("padding", 0), x_shape[2:], w_shape[2:], dilation=params.get("dilation", 1))
    geom, _ = conv_geometry("test", x_shape, w_shape, None, **{"stride": 1, "dilation": 1, "groups": x_shape[1],
                                                              **params, "padding": pairs},
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    return geom


@pytest.mark.parametrize("x_shape, w_shape, params, takes", [
    ((1, 4, 7, 7), (4, 1, 3, 3), dict(padding=1), True),
    ((1, 4, 7, 7), (8, 1, 5, 3), dict(padding=((2, 2), (1, 1))), True),  # multiplier 2
    ((1, 4, 9), (4, 1, 3), dict(padding=2, dilation=2), True),
    ((1, 4, 7, 7), (4, 1, 3, 3), dict(padding=1, stride=2), False),
    ((1, 4, 7, 7), (4, 1, 3, 3), dict(padding=0), False),  # smaller output
    ((1, 4, 7, 7), (2, 2, 3, 3), dict(padding=1, groups=2), False),  # two channels a group
])
def test_which_geometries_take_it(x_shape, w_shape, params, takes):
    assert depthwise_same.applies(geometry(x_shape, w_shape, **params)) is takes


@pytest.mark.parametrize("kernel, dilation, pairs, full", [
    ((3, 3), (1, 1), ((1, 1), (1, 1)), True),  # offset 0 (the centre) first
    ((3, 2), (1, 3), ((1, 1), (2, 1)), False),  # columns shifted by -2 or 1: no offset 0
])
def test_offsets_and_masks_read_a_padded_plane(kernel, dilation, pairs, full):
    """Each offset's masked flat reads are that kernel offset's slice of the zero-padded plane."""
    in_size = (4, 6)
    geom = geometry((1, 1, *in_size), (1, 1, *kernel), dilation=dilation, padding=pairs)
    order, offsets, masks, got_full = depthwise_same.taps(geom)
    assert sorted(order) == list(range(np.prod(kernel))) and got_full is full
    assert bool(offsets[0] == 0) is full and bool(masks[0].all()) is full
    plane = np.arange(1.0, 1.0 + np.prod(in_size)).reshape(in_size)
    padded = np.pad(plane, pairs)
    positions = np.arange(plane.size)
    for t, k in enumerate(order):
        kh, kw = np.unravel_index(k, kernel)
        expected = padded[kh * dilation[0]:, kw * dilation[1]:][:in_size[0], :in_size[1]].reshape(-1)
        read = np.where(masks[t], plane.reshape(-1)[np.clip(positions + offsets[t], 0, plane.size - 1)], 0)
        np.testing.assert_array_equal(read, expected)


@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 5, 7, 7), (5, 1, 3, 3), dict(padding=1)),
    ((2, 3, 6, 9), (6, 1, 3, 3), dict(padding=1)),  # multiplier 2
    ((1, 4, 8, 5), (4, 1, 5, 5), dict(padding=2)),  # 25 offsets: two passes of nine, seven of one
    ((2, 3, 9, 9), (3, 1, 7, 7), dict(padding=3)),  # 49: five of nine, four of one
    ((1, 3, 7, 8), (3, 1, 3, 2), dict(dilation=(1, 3), padding=((1, 1), (2, 1)))),  # no offset 0
    ((2, 4, 1, 6), (4, 1, 1, 3), dict(padding=((0, 0), (1, 1)))),  # one row
    ((3, 2, 11), (2, 1, 3), dict(padding=2, dilation=2)),  # rank 1: three passes of one
    ((1, 2, 4, 5, 3), (4, 1, 3, 3, 3), dict(padding=1)),  # rank 3, 27 offsets
    ((1, 3, 5, 5), (3, 1, 2, 2), dict(padding=((1, 0), (0, 1)))),  # even kernel, asymmetric padding
])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_gradients_match_torch(rng, x_shape, w_shape, params, dtype):
    geom = geometry(x_shape, w_shape, **params)
    assert depthwise_same.applies(geom)
    x, w, b = random_conv_inputs(rng, x_shape, w_shape, dtype=dtype)
    y = npconv.conv(x, w, b, groups=x_shape[1], algo="depthwise", **params)
    assert_matches_torch(y, x, w, b, groups=x_shape[1], **params)
    needs = ("input", "weight", "bias") if w_shape[0] == x_shape[1] else ("weight", "bias")  # input: multiplier 1
    check_conv(rng, x_shape, w_shape, dtype=dtype, needs=needs, groups=x_shape[1], **params)


@pytest.mark.parametrize("multiplier", [1, 3])
def test_planes_and_channels_shared_out_mid_image(rng, multiplier):
    """Forward pieces that start and stop inside an image and between one input channel's
    outputs follow their planes' channels and images from where they start; weight gradient
    pieces, between one input channel's outputs."""
    x_shape, w_shape = (3, 4, 6, 5), (4 * multiplier, 1, 3, 3)
    geom = geometry(x_shape, w_shape, padding=1)
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False)
    order, offsets, masks, full = depthwise_same.taps(geom)
    out = np.full((3, 4 * multiplier, 6, 5), np.nan)
    planes = out.shape[0] * out.shape[1]
    for first, last in ((0, 5), (5, 7), (7, planes)):
        depthwise_same.masked_taps_kernel(x.reshape(-1), np.ascontiguousarray(w.reshape(w.shape[0], -1)[:, order]),
                                          out.reshape(-1), offsets, masks, multiplier, full, first, last)
    assert_matches_torch(out, x, w, padding=1, groups=4)
    grad = rng.standard_normal(out.shape)
    gw = np.full((w_shape[0], 9), np.nan)
    for first, last in ((0, 2), (2, w_shape[0])):
        depthwise_same.masked_taps_weight_gradient_kernel(x.reshape(-1), grad.reshape(-1), gw, offsets, masks,
                                                          multiplier, first, last)
    wt = torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(torch.tensor(x), wt, padding=1, groups=4).backward(torch.tensor(grad))
    np.testing.assert_allclose(gw, wt.grad.numpy().reshape(w_shape[0], 9)[:, order], rtol=1e-10, atol=1e-12)


def test_a_non_finite_input_stays_in_its_plane(rng):
    """Masked offsets never read past a plane's edge, so an infinity at a plane's corner
    reaches only its own plane's outputs, as in torch."""
    x, w, _ = random_conv_inputs(rng, (2, 3, 5, 5), (3, 1, 3, 3), bias=False)
    x[0, 1, 0, 0], x[1, 0, 4, 4] = np.inf, np.nan  # neighbours in the flat input: planes (0, 0), (0, 2), (1, 1)
    y = npconv.conv2d(x, w, padding=1, groups=3, algo="depthwise")
    expected = torch.nn.functional.conv2d(torch.tensor(x), torch.tensor(w), padding=1, groups=3).numpy()
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(expected))
    assert np.isfinite(y[0, 0]).all() and np.isfinite(y[0, 2]).all() and np.isfinite(y[1, 1]).all()
    finite = np.isfinite(expected)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-10, atol=1e-12)
