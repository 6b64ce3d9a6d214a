"""``npconv.upsample_conv`` against PyTorch's interpolate followed by its convolution."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import npconv

from .conftest import tolerance, torch_conv


@pytest.mark.parametrize(
    "mode, rank, scale",
    [("nearest", 1, 2), ("linear", 1, 3), ("nearest", 2, 2), ("bilinear", 2, 2), ("bicubic", 2, 1.5),
     ("nearest-exact", 2, 2.5), ("nearest", 3, 2), ("trilinear", 3, 2)],
)
@pytest.mark.parametrize("kernel", [3, 4])
def test_matches_torch(rng, mode, rank, scale, kernel):
    x = rng.standard_normal((2, 4, *(5, 4, 3)[:rank]))
    w = rng.standard_normal((6, 2, *(kernel,) * rank))
    b = rng.standard_normal(6)
    align = {} if mode.startswith("nearest") else {"align_corners": False}
    up = F.interpolate(torch.from_numpy(x), scale_factor=scale, mode=mode, **align).numpy()
    expected = torch_conv(up, w, b, padding="same", groups=2)
    actual = npconv.upsample_conv(x, w, b, scale_factor=scale, mode=mode, groups=2, **align)
    assert actual.shape == expected.shape == (2, 6, *up.shape[2:])
    np.testing.assert_allclose(actual, expected, **tolerance(np.float64, w.shape))


def test_conv_arguments_pass_through(rng):
    """stride, padding, dilation, padding_mode and align_corners reach interpolate and conv."""
    x, w = rng.standard_normal((1, 3, 6, 5)), rng.standard_normal((2, 3, 3, 3))
    params = dict(stride=2, padding=((1, 0), (2, 1)), dilation=(1, 2), padding_mode="reflect")
    up = F.interpolate(torch.from_numpy(x), scale_factor=2, mode="bilinear", align_corners=True).numpy()
    expected = torch_conv(up, w, **params)
    actual = npconv.upsample_conv(x, w, mode="bilinear", align_corners=True, algo="im2col", **params)
    np.testing.assert_allclose(actual, expected, **tolerance(np.float64, w.shape))


def test_equals_interpolate_then_conv(rng):
    x, w = rng.standard_normal((2, 3, 7, 6)).astype(np.float32), rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    expected = npconv.conv2d(npconv.interpolate(x, scale_factor=2, mode="bilinear"), w, padding="same")
    np.testing.assert_array_equal(npconv.upsample_conv(x, w, mode="bilinear"), expected)
