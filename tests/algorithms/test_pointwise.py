"""pointwise specifics: which geometries it takes, its workspace, images side by side."""

import numpy as np
import pytest
import torch

import npconv
from npconv.algorithms import REGISTRY
from npconv.algorithms.pointwise import stacks
from npconv import parallel
from npconv.geometry import conv_geometry

from ..conftest import assert_matches_torch, random_conv_inputs

POINTWISE = REGISTRY["pointwise"]


def geometry(x_shape, w_shape, stride=1, padding=0, groups=1, dtype=np.float32):
    geom, _ = conv_geometry("test", x_shape, w_shape, None, stride=stride, padding=padding, dilation=1,
                            groups=groups, padding_mode="zeros", dtype=dtype)
    return geom


@pytest.mark.parametrize("w_shape, padding, reason", [
    ((4, 3, 3, 1), 0, r"needs a 1x1 kernel, got kernel \(3, 1\)"),
    ((4, 3, 1, 1), 1, r"takes no padding, got \(\(1, 1\), \(1, 1\)\)"),
])
def test_declines_with_reason(w_shape, padding, reason):
    geom = geometry((2, 3, 6, 6), w_shape, padding=padding)
    assert POINTWISE.why_unsupported(geom) is not None
    with pytest.raises(npconv.UnsupportedAlgorithmError, match="'pointwise' cannot compute this convolution: it " + reason):
        POINTWISE.check(geom)


def test_stride_one_needs_no_workspace_and_stride_two_stays_under_the_cap(workspace_limit):
    assert POINTWISE.workspace_bytes(geometry((8, 64, 28, 28), (32, 64, 1, 1))) == 0
    npconv.set_workspace_limit(3 * 64 * 14 * 14 * 4)  # three subsampled float32 images
    assert POINTWISE.workspace_bytes(geometry((8, 64, 28, 28), (32, 64, 1, 1), stride=2)) == 3 * 64 * 14 * 14 * 4


@pytest.mark.parametrize("stride", [1, 2, (3, 1)])
@pytest.mark.parametrize("groups", [1, 2])
def test_matches_torch_when_chunked_over_images(rng, workspace_limit, stride, groups):
    npconv.set_workspace_limit(1)  # one image per chunk at strides > 1
    x, w, b = random_conv_inputs(rng, (5, 4, 7, 9), (6, 4 // groups, 1, 1), dtype=np.float32)
    y = npconv.conv2d(x, w, b, stride=stride, groups=groups, algo="pointwise")
    assert_matches_torch(y, x, w, b, stride=stride, groups=groups)


@pytest.mark.parametrize("x_shape, w_shape, groups, stride, limit", [
    ((20, 256, 5, 5), (256, 256, 1, 1), 1, 1, None),  # pieces of 10 images: stacks of 8 and 2
    ((4, 512, 3, 3), (512, 256, 1, 1), 2, 1, None),
    ((3, 256, 9, 7), (256, 256, 1, 1), 1, 2, 1),  # one image per chunk: pieces split output channels
])
def test_images_side_by_side_match_torch(rng, workspace_limit, x_shape, w_shape, groups, stride, limit):
    if limit is not None:
        npconv.set_workspace_limit(limit)
    x, w, b = random_conv_inputs(rng, x_shape, w_shape)
    geom, _ = conv_geometry("test", x.shape, w.shape, None, stride=stride, padding=0, dilation=1, groups=groups,
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    assert stacks(geom)
    y = npconv.conv2d(x, w, b, stride=stride, groups=groups, algo="pointwise")
    assert_matches_torch(y, x, w, b, stride=stride, groups=groups)
    grad = rng.standard_normal(y.shape)
    gw = POINTWISE.weight_gradient(np.ascontiguousarray(x), grad, geom)
    wt = torch.tensor(w, requires_grad=True)
    torch.nn.functional.conv2d(torch.tensor(x), wt, stride=stride, groups=groups).backward(torch.tensor(grad))
    np.testing.assert_allclose(gw, wt.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("x_shape, w_shape, groups, splits", [
    ((1, 8, 3, 3), (24, 4, 1, 1), 2, "outputs"),  # 12 outputs per group, 9 positions
    ((1, 8, 4, 5), (16, 8, 1, 1), 1, "outputs"),  # 16 outputs, 10 positions a thread
    ((1, 8, 5, 6), (6, 8, 1, 1), 1, "positions"),  # 6 outputs, 15 positions a thread
])
def test_one_image_split_among_threads_matches_torch(rng, monkeypatch, x_shape, w_shape, groups, splits):
    """Fewer images than threads: each thread takes a range of output channels or of positions."""
    monkeypatch.setattr(parallel, "SPLIT_ABOVE_SECONDS", 0)  # split however small
    old = npconv.get_num_threads()
    npconv.set_num_threads(2)
    try:
        x, w, b = random_conv_inputs(rng, x_shape, w_shape)
        geom, _ = conv_geometry("test", x.shape, w.shape, None, stride=1, padding=0, dilation=1, groups=groups,
                                padding_mode="zeros", dtype=np.dtype(np.float64))
        (_, _, pieces), = POINTWISE._chunks(x, geom, 1.0, split_outputs=True)
        split = [name for name, part in zip(("images", "outputs", "positions"), pieces[0]) if part != slice(None)]
        assert len(pieces) == 2 and split == [splits]
        y = npconv.conv2d(x, w, b, groups=groups, algo="pointwise")
    finally:
        npconv.set_num_threads(old)
    assert_matches_torch(y, x, w, b, groups=groups)
