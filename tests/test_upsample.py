"""``npconv.upsample_conv`` against PyTorch's interpolate followed by its convolution."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import npconv
from npconv.interpolate import resize

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


@pytest.mark.parametrize("rank, scale, kernel, padding", [
    (1, 2, 3, "same"), (1, 3, 1, 0), (1, 2, 4, (2,)),
    (2, 2, 3, "same"), (2, 2, 4, "same"), (2, (2, 3), 3, ((0, 2), (1, 0))), (2, 3, 2, 1),
    (3, 2, 3, "same"), (3, (1, 2, 2), 2, 0),
])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16])
def test_nearest_by_whole_factors_runs_as_a_transposed_convolution(rng, monkeypatch, rank, scale, kernel, padding,
                                                                   dtype):
    """No resized copy of the input: the box-filtered kernel's transposed convolution, equal to torch's
    resize then convolution."""
    def no_resize(*args):
        raise AssertionError("resized the input")

    monkeypatch.setattr(npconv.upsample, "resize", no_resize)
    x = rng.standard_normal((2, 4, *(5, 4, 3)[:rank])).astype(dtype)
    w = rng.standard_normal((6, 2, *(kernel,) * rank)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    up = F.interpolate(torch.from_numpy(x.astype(np.float64)), scale_factor=scale, mode="nearest").numpy()
    expected = torch_conv(up, w, b, padding=padding, groups=2)
    actual = npconv.upsample_conv(x, w, b, scale_factor=scale, padding=padding, groups=2)
    assert actual.shape == expected.shape and actual.dtype == dtype
    np.testing.assert_allclose(actual, expected, **tolerance(np.dtype(dtype), w.shape))


@pytest.mark.parametrize("params", [
    {"scale_factor": 2, "stride": 2}, {"scale_factor": 2, "dilation": 2},
    {"scale_factor": 2, "padding_mode": "reflect"}, {"scale_factor": 2, "padding": 3}, {"scale_factor": 1.5},
    {"scale_factor": 2, "mode": "bilinear"}, {"scale_factor": 2, "algo": "im2col"},
])
def test_other_resize_convolutions_resize_first(rng, monkeypatch, params):
    """Where the transposed form does not apply (or an algorithm is named), the input is resized,
    then convolved."""
    calls = []
    monkeypatch.setattr(npconv.upsample, "resize", lambda *args: calls.append(args) or resize(*args))
    x, w = rng.standard_normal((1, 2, 6, 5)), rng.standard_normal((3, 2, 3, 3))
    mode = params.pop("mode", "nearest")
    scale = params.pop("scale_factor")
    align = {} if mode == "nearest" else {"align_corners": False}
    up = F.interpolate(torch.from_numpy(x), scale_factor=scale, mode=mode, **align).numpy()
    conv = {k: v for k, v in params.items() if k != "algo"}
    expected = torch_conv(up, w, **{"padding": "same", **conv})
    actual = npconv.upsample_conv(x, w, scale_factor=scale, mode=mode, **align, **params)
    assert len(calls) == 1
    np.testing.assert_allclose(actual, expected, **tolerance(np.float64, w.shape))
