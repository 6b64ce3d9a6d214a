"""Conv1d/2d/3d, ConvTranspose1d/2d/3d and DepthwiseSeparableConv2d against torch.nn with copied weights."""

import collections
import inspect
import math

import numpy as np
import pytest
import torch

from npconv import nn

from .torch_check import check_against_torch

CONV = {1: (nn.Conv1d, torch.nn.Conv1d), 2: (nn.Conv2d, torch.nn.Conv2d), 3: (nn.Conv3d, torch.nn.Conv3d)}
TRANSPOSE = {1: (nn.ConvTranspose1d, torch.nn.ConvTranspose1d), 2: (nn.ConvTranspose2d, torch.nn.ConvTranspose2d),
             3: (nn.ConvTranspose3d, torch.nn.ConvTranspose3d)}

# (in_channels, out_channels, kernel_size, keyword arguments, input spatial size); the rank is len(size)
CONV_CASES = [
    (4, 6, 3, {}, (9,)),
    (4, 6, 4, dict(padding="same", padding_mode="reflect", dilation=2), (11,)),
    (3, 5, 3, dict(stride=2, padding=2, bias=False, padding_mode="circular"), (10,)),
    (4, 6, 3, dict(stride=2, padding=1, groups=2), (9, 8)),
    (6, 4, (3, 2), dict(padding="same", padding_mode="replicate", groups=2, dilation=(1, 2)), (7, 8)),
    (4, 4, 3, dict(groups=4, padding=(1, 0), padding_mode="reflect", bias=False), (6, 7)),
    (4, 8, 3, dict(groups=4, stride=(2, 1), padding=1), (7, 6)),
    (3, 8, 1, dict(stride=2), (5, 6)),
    (3, 5, 2, dict(padding="valid"), (5, 4)),
    (4, 6, 3, dict(stride=(1, 2, 1), padding=1, groups=2, dilation=(2, 1, 1)), (7, 6, 5)),
    (2, 3, 2, dict(padding="same", padding_mode="circular", bias=False), (4, 5, 3)),
]

TRANSPOSE_CASES = [
    (4, 6, 3, dict(stride=2, output_padding=1, groups=2), (5,)),
    (3, 2, 4, dict(dilation=2, padding=1, bias=False), (6,)),
    (4, 6, 3, dict(stride=2, padding=1, output_padding=1, groups=2), (4, 5)),
    (6, 4, (3, 2), dict(stride=(2, 3), padding=(1, 0), dilation=(1, 2), output_padding=(1, 2), groups=2), (3, 4)),
    (4, 4, 4, dict(stride=2, padding=1, groups=4), (5, 5)),
    (4, 2, 3, dict(stride=2, padding=1, output_padding=(1, 0, 1)), (3, 4, 3)),
]


def _case_id(case):
    cin, cout, k, kwargs, size = case
    return f"{len(size)}d-{cin}to{cout}-k{k}-" + "-".join(f"{key}={value}" for key, value in kwargs.items())


@pytest.mark.parametrize("case", CONV_CASES, ids=map(_case_id, CONV_CASES))
def test_conv_matches_torch(case, rng):
    cin, cout, k, kwargs, size = case
    ours, theirs = CONV[len(size)]
    x = rng.standard_normal((2, cin, *size))
    check_against_torch(ours(cin, cout, k, **kwargs), theirs(cin, cout, k, **kwargs), x, rng)


@pytest.mark.parametrize("case", TRANSPOSE_CASES, ids=map(_case_id, TRANSPOSE_CASES))
def test_conv_transpose_matches_torch(case, rng):
    cin, cout, k, kwargs, size = case
    ours, theirs = TRANSPOSE[len(size)]
    x = rng.standard_normal((2, cin, *size))
    check_against_torch(ours(cin, cout, k, **kwargs), theirs(cin, cout, k, **kwargs), x, rng)


@pytest.mark.parametrize("output_size", [(10, 9), [9, 10], (2, 6, 10, 10)])
def test_conv_transpose_output_size_matches_torch(output_size, rng):
    # sizes from (5 - 1) * 2 - 2 + 2 + 1 = 9 to 10; output_padding=1 is ignored, as in PyTorch
    args = (4, 6, 3)
    kwargs = dict(stride=2, padding=1, output_padding=1, groups=2)
    x = rng.standard_normal((2, 4, 5, 5))
    y = check_against_torch(nn.ConvTranspose2d(*args, **kwargs), torch.nn.ConvTranspose2d(*args, **kwargs), x, rng,
                            output_size=output_size)
    assert y.shape[2:] == tuple(output_size[-2:])


def test_conv_transpose_output_size_out_of_range_names_the_range(rng):
    layer = nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1)
    with pytest.raises(ValueError, match=r"ConvTranspose2d: requested an output size of \(11, 9\), but valid sizes "
                                         r"range from \(9, 9\) to \(10, 10\)"):
        layer(rng.standard_normal((1, 4, 5, 5)), output_size=(11, 9))


@pytest.mark.parametrize("bias", [True, False])
def test_depthwise_separable_matches_a_torch_sequential(bias, rng):
    kwargs = dict(stride=2, padding=1, dilation=1, bias=bias, padding_mode="reflect")
    ours = nn.DepthwiseSeparableConv2d(4, 6, 3, **kwargs)
    theirs = torch.nn.Sequential(collections.OrderedDict(
        depthwise=torch.nn.Conv2d(4, 4, 3, groups=4, **kwargs), pointwise=torch.nn.Conv2d(4, 6, 1, bias=bias)))
    y = check_against_torch(ours, theirs, rng.standard_normal((2, 4, 7, 8)), rng)
    assert y.shape == (2, 6, 4, 4)
    assert list(ours.state_dict()) == (["depthwise.weight", "depthwise.bias", "pointwise.weight", "pointwise.bias"]
                                       if bias else ["depthwise.weight", "pointwise.weight"])


def test_float32_matches_torch(rng):
    """The default dtype: float32 parameters, float32 results."""
    x = rng.standard_normal((2, 8, 10, 10))
    check_against_torch(nn.Conv2d(8, 16, 3, padding=1, groups=2), torch.nn.Conv2d(8, 16, 3, padding=1, groups=2),
                        x, rng, dtype=np.float32)
    check_against_torch(nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1),
                        torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1), x, rng, dtype=np.float32)


def test_backward_accumulates_parameter_gradients(rng):
    layer = nn.Conv1d(2, 3, 3)
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    grad = rng.standard_normal((1, 3, 4)).astype(np.float32)
    layer(x)
    first = layer.backward(grad)
    weight_grad, bias_grad = layer.weight.grad.copy(), layer.bias.grad.copy()
    np.testing.assert_array_equal(layer.backward(grad), first)
    np.testing.assert_allclose(layer.weight.grad, 2 * weight_grad, rtol=1e-6)
    np.testing.assert_allclose(layer.bias.grad, 2 * bias_grad, rtol=1e-6)


@pytest.mark.parametrize("name", ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d",
                                  "ConvTranspose3d"])
def test_signature_and_attributes_match_torch(name):
    ours, theirs = getattr(nn, name), getattr(torch.nn, name)
    expected = [(p.name, p.default) for p in inspect.signature(theirs).parameters.values()
                if p.name not in ("device", "dtype")]
    assert [(p.name, p.default) for p in inspect.signature(ours).parameters.values()] == expected
    args = (4, 6, 3)
    kwargs = dict(stride=2, padding=1, groups=2, bias=False)
    a, b = ours(*args, **kwargs), theirs(*args, **kwargs)
    for attribute in ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                      "output_padding", "padding_mode", "transposed"):
        assert getattr(a, attribute) == getattr(b, attribute), attribute
    assert list(a.state_dict()) == list(b.state_dict()) == ["weight"]
    assert a.weight.shape == tuple(b.weight.shape)


@pytest.mark.parametrize("ours, theirs, args", [
    (nn.Conv2d, torch.nn.Conv2d, (16, 32, (3, 2))),
    (nn.Conv3d, torch.nn.Conv3d, (8, 16, 3)),
    (nn.ConvTranspose2d, torch.nn.ConvTranspose2d, (32, 16, 3)),
])
@pytest.mark.parametrize("groups", [1, 4])
def test_init_has_torchs_distribution(ours, theirs, args, groups):
    """U(-b, b) with b = 1/sqrt(fan_in), fan_in = weight.shape[1] * prod(kernel) (for transposed layers too)."""
    nn.manual_seed(7)
    torch.manual_seed(7)
    a, b = ours(*args, groups=groups), theirs(*args, groups=groups)
    bound = 1 / math.sqrt(math.prod(b.weight.shape[1:]))
    assert a.weight.dtype == a.bias.dtype == np.float32
    for name in ("weight", "bias"):
        mine, torchs = getattr(a, name).data, getattr(b, name).detach().numpy()
        assert mine.shape == torchs.shape
        assert np.abs(mine).max() <= bound * (1 + 1e-6) and np.abs(torchs).max() <= bound * (1 + 1e-6)
        if name == "weight":  # thousands of draws: the spread of U(-b, b), std b/sqrt(3), as torch's
            assert np.abs(mine).max() > 0.95 * bound
            assert abs(mine.std() - torchs.std()) < 0.1 * bound / math.sqrt(3)
            assert abs(mine.std() - bound / math.sqrt(3)) < 0.1 * bound / math.sqrt(3)


def test_init_follows_manual_seed():
    nn.manual_seed(3)
    first = nn.ConvTranspose1d(2, 3, 3).state_dict()
    nn.manual_seed(3)
    again = nn.ConvTranspose1d(2, 3, 3).state_dict()
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not np.array_equal(nn.ConvTranspose1d(2, 3, 3).weight.data, again["weight"])


@pytest.mark.parametrize("make, error, message", [
    (lambda: nn.Conv2d(5, 6, 3, groups=2), ValueError, r"Conv2d: in_channels=5 is not divisible by groups=2"),
    (lambda: nn.Conv2d(4, 6, 3, groups=4), ValueError, r"Conv2d: out_channels=6 is not divisible by groups=4"),
    (lambda: nn.ConvTranspose1d(4, 6, 3, groups=4), ValueError,
     r"ConvTranspose1d: out_channels=6 is not divisible by groups=4"),
    (lambda: nn.Conv2d(4, 4, 3, groups=0), ValueError, r"Conv2d: groups must be positive, got 0"),
    (lambda: nn.Conv1d(0, 4, 3), ValueError, r"Conv1d: in_channels must be positive, got 0"),
    (lambda: nn.Conv2d(4, 4, 0), ValueError, r"Conv2d: kernel_size must be positive, got 0"),
    (lambda: nn.Conv3d(4, 4, (3, 3)), ValueError, r"Conv3d: kernel_size needs one value per spatial dim \(3\), "
                                                  r"got \(3, 3\)"),
    (lambda: nn.Conv2d(4, 4, 2.5), TypeError, r"Conv2d: kernel_size must be an int or a tuple of ints, got 2.5"),
    (lambda: nn.Conv2d(4, 4, 3, stride=(1, 0)), ValueError, r"Conv2d: stride must be positive, got \(1, 0\)"),
    (lambda: nn.Conv2d(4, 4, 3, padding=-1), ValueError, r"Conv2d: padding must be non-negative, got -1"),
    (lambda: nn.Conv2d(4, 4, 3, padding="full"), ValueError,
     r"Conv2d: padding must be an int or one int per spatial dim or one of 'same', 'valid', got 'full'"),
    (lambda: nn.Conv1d(4, 4, 3, stride=2, padding="same"), ValueError,
     r"Conv1d: padding='same' is not supported for strided convolutions, got stride=\(2,\)"),
    (lambda: nn.Conv2d(4, 4, 3, padding_mode="mirror"), ValueError,
     r"Conv2d: padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', got 'mirror'"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding_mode="reflect"), ValueError,
     r"ConvTranspose2d: padding_mode must be one of 'zeros', got 'reflect'"),
    (lambda: nn.ConvTranspose2d(4, 4, 3, padding="same"), ValueError,
     r"ConvTranspose2d: padding must be an int or one int per spatial dim, got 'same'"),
    (lambda: nn.ConvTranspose1d(4, 4, 3, stride=2, output_padding=2), ValueError,
     r"ConvTranspose1d: output_padding=\(2,\) must be smaller than stride=\(2,\) or dilation=\(1,\)"),
    (lambda: nn.DepthwiseSeparableConv2d(4, 8, 3, groups=2), TypeError, r"groups"),
])
def test_construction_errors(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_forward_errors_on_a_wrong_input():
    with pytest.raises(ValueError, match=r"conv: input has 6 channels but weight \(6, 2, 3, 3\) with groups=2 expects "
                                         r"weight.shape\[1\] \* groups = 4"):
        nn.Conv2d(4, 6, 3, groups=2)(np.zeros((1, 6, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"ConvTranspose1d: input has 3 channels but weight \(4, 6, 3\)"):
        nn.ConvTranspose1d(4, 6, 3)(np.zeros((1, 3, 5), np.float32), output_size=(7,))
