"""MaxPool2d, AvgPool2d and AdaptiveAvgPool2d against torch.nn: outputs, input gradients, indices, errors."""

import inspect

import numpy as np
import pytest
import torch

from npconv import nn

from .torch_check import check_against_torch


def pair(name, *args, **kwargs):
    return getattr(nn, name)(*args, **kwargs), getattr(torch.nn, name)(*args, **kwargs)


@pytest.mark.parametrize("name", ["MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d"])
def test_signature_matches_torch(name):
    def parameters(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()]
    assert parameters(getattr(nn, name)) == parameters(getattr(torch.nn, name))


@pytest.mark.parametrize("name, args, kwargs", [
    ("MaxPool2d", (3, 2, 1), {}), ("MaxPool2d", ((3, 2),), {"dilation": 2, "ceil_mode": True}),
    ("AvgPool2d", (3,), {}), ("AvgPool2d", (2, 1, 1), {"count_include_pad": False}),
    ("AdaptiveAvgPool2d", ((None, 2),), {}), ("AdaptiveAvgPool2d", (7,), {})])
def test_repr_matches_torch(name, args, kwargs):
    ours, theirs = pair(name, *args, **kwargs)
    assert repr(ours) == repr(theirs)


# (kernel_size, stride, padding, dilation, ceil_mode, input H x W): ceil_mode cases include ones where the last
# window would start in the right padding and is dropped (H=6, k=2, s=2, p=1) and ones where it overhangs.
MAX_CASES = [
    (2, None, 0, 1, False, (8, 8)), (3, 2, 1, 1, False, (9, 10)), (3, 2, 1, 1, True, (10, 9)),
    (3, 1, 1, 1, False, (5, 5)), (2, 2, 1, 1, True, (6, 7)), (3, 3, 0, 1, True, (8, 7)),
    ((3, 2), (2, 1), (1, 0), 1, False, (9, 6)), (3, 2, 1, 2, False, (11, 9)), (3, 2, 1, 2, True, (12, 10)),
    ((2, 3), (3, 2), (1, 1), (3, 1), True, (10, 11)), (5, 2, 2, 1, True, (7, 8)), (1, 2, 0, 1, False, (5, 4)),
    (4, 3, 2, 1, True, (4, 4)),
]


@pytest.mark.parametrize("kernel, stride, padding, dilation, ceil_mode, size", MAX_CASES)
@pytest.mark.parametrize("values", ["random", "integers"])
def test_max_pool_matches_torch(kernel, stride, padding, dilation, ceil_mode, size, values, rng):
    kwargs = dict(stride=stride, padding=padding, dilation=dilation, ceil_mode=ceil_mode)
    x = rng.standard_normal((2, 3, *size)) if values == "random" else rng.integers(-2, 3, (2, 3, *size))
    check_against_torch(*pair("MaxPool2d", kernel, **kwargs), x, rng)
    y, indices = nn.MaxPool2d(kernel, return_indices=True, **kwargs)(x)
    y_t, indices_t = torch.nn.MaxPool2d(kernel, return_indices=True, **kwargs)(torch.from_numpy(x))
    np.testing.assert_array_equal(y, y_t.numpy())
    np.testing.assert_array_equal(indices, indices_t.numpy())
    assert indices.dtype == np.int64


@pytest.mark.parametrize("fill", [0.0, -np.inf, np.nan])
@pytest.mark.parametrize("kwargs", [dict(stride=2, padding=1, ceil_mode=True), dict(stride=1, padding=1, dilation=2)])
def test_max_pool_ties_and_special_values_route_like_torch(fill, kwargs, rng):
    """A constant input (every window one tie), -inf everywhere (the first element inside the input wins, never the
    padding) and NaNs (NaN wins, the last NaN in the scan)."""
    x = np.full((1, 2, 7, 7), fill)
    x[0, 1, ::3, 1::2] = rng.standard_normal((3, 3)) if fill != 0 else 1.0
    ours, theirs = pair("MaxPool2d", 3, **kwargs)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t)
    y = ours(x)
    np.testing.assert_array_equal(y, y_t.detach().numpy())
    grad = rng.standard_normal(y.shape)
    y_t.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(ours.backward(grad), x_t.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, args", [("MaxPool2d", (3, 2, 1)), ("AvgPool2d", (3, 2, 1)),
                                        ("AdaptiveAvgPool2d", ((3, 5),))])
def test_dtype_unbatched_and_non_contiguous_inputs(name, args, dtype, rng):
    batched = rng.standard_normal((5, 11, 4, 12)).transpose(0, 2, 3, 1)[:, :, ::2, 1:]  # (5, 4, 6, 10)
    assert not batched.flags.c_contiguous
    for x in (batched, batched[1]):  # (N, C, H, W) and unbatched (C, H, W)
        y = check_against_torch(*pair(name, *args), x, rng, dtype=dtype)
        assert y.ndim == x.ndim


def test_max_pool_of_float16_input(rng):
    """Computed in float32 and returned as float16, as every operation does: the maxima and
    the gradient's routing are exactly torch's on the same values."""
    x = rng.standard_normal((2, 3, 9, 10)).astype(np.float16)
    ours, theirs = pair("MaxPool2d", 3, 2, 1)
    x_t = torch.tensor(x.astype(np.float32), requires_grad=True)
    y_t = theirs(x_t)
    y = ours(x)
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y.astype(np.float32), y_t.detach().numpy())
    grad = rng.standard_normal(y.shape).astype(np.float16)
    y_t.backward(torch.from_numpy(grad.astype(np.float32)))
    grad_x = ours.backward(grad)
    assert grad_x.dtype == np.float16  # sums of float16 values, exact in float32, rounded once
    np.testing.assert_array_equal(grad_x, x_t.grad.numpy().astype(np.float16))


@pytest.mark.parametrize("kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, size", [
    (2, None, 0, False, True, None, (8, 8)), (3, 2, 1, False, True, None, (9, 10)),
    (3, 2, 1, False, False, None, (9, 10)), (3, 2, 1, True, True, None, (10, 9)),
    (3, 2, 1, True, False, None, (10, 9)), (2, 2, 1, True, True, None, (6, 7)), (3, 3, 1, True, True, None, (8, 7)),
    (3, 3, 1, True, False, None, (8, 7)), ((3, 2), (2, 1), (1, 1), False, False, None, (9, 6)),
    (3, 2, 1, False, True, 5, (9, 10)), (3, 2, 1, True, False, 2, (10, 9)), (1, 2, 0, True, True, None, (5, 4)),
    ((4, 5), (3, 2), (2, 2), True, False, None, (5, 6)),
])
def test_avg_pool_matches_torch(kernel, stride, padding, ceil_mode, count_include_pad, divisor_override, size, rng):
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    check_against_torch(*pair("AvgPool2d", *args), rng.standard_normal((2, 3, *size)), rng)


@pytest.mark.parametrize("output_size", [1, 2, 3, (4, 3), (None, 5), (6, None), (None, None), 7, (9, 13), [2, 4]])
def test_adaptive_avg_pool_matches_torch(output_size, rng):
    """Sizes that divide the 6 x 8 input, sizes that do not (overlapping bins) and sizes beyond it."""
    y = check_against_torch(*pair("AdaptiveAvgPool2d", output_size), rng.standard_normal((2, 3, 6, 8)), rng)
    assert y.shape[-2:] == tuple(torch.nn.AdaptiveAvgPool2d(output_size)(torch.zeros(1, 1, 6, 8)).shape[-2:])


def test_max_pool_resnet_stem_across_threads(rng):
    """Many planes (split across threads), float32, the ResNet stem's 3x3/2 pad-1 pool."""
    check_against_torch(*pair("MaxPool2d", 3, 2, 1), rng.standard_normal((3, 24, 28, 28)), rng, dtype=np.float32)


def test_backward_gives_the_latest_calls_gradient(rng):
    ours, theirs = pair("MaxPool2d", 2)
    ours(rng.standard_normal((1, 2, 6, 6)))
    check_against_torch(ours, theirs, rng.standard_normal((2, 3, 4, 4)), rng)


@pytest.mark.parametrize("name, kwargs, message", [
    ("MaxPool2d", dict(kernel_size=3, padding=2), r"MaxPool2d: padding should be at most half of kernel_size, got "
                                                  r"padding=2, kernel_size=3"),
    ("MaxPool2d", dict(kernel_size=(3, 2), padding=(1, 2)), r"MaxPool2d: padding .* got padding=\(1, 2\), "
                                                            r"kernel_size=\(3, 2\)"),
    ("MaxPool2d", dict(kernel_size=0), r"MaxPool2d: kernel_size must be an int or a pair of ints >= 1, got "
                                       r"kernel_size=0"),
    ("MaxPool2d", dict(kernel_size=2, stride=0), r"MaxPool2d: stride must be .* >= 1, got stride=0"),
    ("MaxPool2d", dict(kernel_size=2, dilation=(1, 0)), r"MaxPool2d: dilation must .* got dilation=\(1, 0\)"),
    ("MaxPool2d", dict(kernel_size=(2, 2, 2)), r"MaxPool2d: kernel_size must be an int or a pair"),
    ("AvgPool2d", dict(kernel_size=2, padding=-1), r"AvgPool2d: padding must be .* >= 0, got padding=-1"),
    ("AvgPool2d", dict(kernel_size=2.5), r"AvgPool2d: kernel_size must be .* got kernel_size=2.5"),
    ("AvgPool2d", dict(kernel_size=2, divisor_override=0), r"AvgPool2d: divisor_override must be None or a "
                                                           r"positive int, got 0"),
    ("AdaptiveAvgPool2d", dict(output_size=0), r"AdaptiveAvgPool2d: output_size must be a positive int, None or a "
                                               r"pair of those, got 0"),
    ("AdaptiveAvgPool2d", dict(output_size=(2, 3, 4)), r"AdaptiveAvgPool2d: output_size .* got \(2, 3, 4\)"),
])
def test_construction_errors(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        getattr(nn, name)(**kwargs)


@pytest.mark.parametrize("module, shape, message", [
    (nn.MaxPool2d(5), (1, 2, 4, 9), r"MaxPool2d: input size \(4, 9\) gives output size \(0, 1\), which is too "
                                     r"small \(kernel_size=5, stride=5, padding=0\)"),
    (nn.AvgPool2d(3), (1, 1, 2, 3), r"AvgPool2d: input size \(2, 3\) gives output size \(0, 1\)"),
    (nn.MaxPool2d(2), (4, 4), r"MaxPool2d: expected a \(C, H, W\) or \(N, C, H, W\) input with non-empty C, H and "
                              r"W, got shape \(4, 4\)"),
    (nn.AvgPool2d(2), (1, 2, 3, 4, 4), r"AvgPool2d: expected a \(C, H, W\) or \(N, C, H, W\) input"),
    (nn.AdaptiveAvgPool2d(2), (1, 0, 4, 4), r"AdaptiveAvgPool2d: expected .* got shape \(1, 0, 4, 4\)"),
])
def test_input_errors(module, shape, message):
    with pytest.raises(ValueError, match=message):
        module(np.zeros(shape))
