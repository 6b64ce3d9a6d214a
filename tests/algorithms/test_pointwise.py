"""pointwise specifics: which geometries it takes, and that stride 1 needs no workspace."""

import numpy as np
import pytest

import npconv
from npconv.algorithms import REGISTRY
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
