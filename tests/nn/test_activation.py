"""ReLU, ReLU6, LeakyReLU, Sigmoid and Tanh against torch.nn."""

import inspect

import numpy as np
import pytest
import torch

from npconv import nn

from .torch_check import check_against_torch

NAMES = ["ReLU", "ReLU6", "LeakyReLU", "Sigmoid", "Tanh"]


def pair(name, **kwargs):
    return getattr(nn, name)(**kwargs), getattr(torch.nn, name)(**kwargs)


def values(rng, shape=(3, 4, 5, 6)):
    """Random values plus the kinks and tails: integers (0 and 6 among them) and +-100."""
    x = rng.standard_normal(shape) * 4
    x.flat[::3] = np.round(x.flat[::3])
    x.flat[1::7] = 0
    x.flat[2::11] = 6
    x.flat[3::13] = 100
    x.flat[4::17] = -100
    return x


@pytest.mark.parametrize("name", NAMES)
def test_signature_and_repr_match_torch(name):
    def parameters(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()
                if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]  # torch's Sigmoid(*args, **kwargs)
    assert parameters(getattr(nn, name)) == parameters(getattr(torch.nn, name))
    assert repr(getattr(nn, name)()) == repr(getattr(torch.nn, name)())


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name, kwargs", [(name, {}) for name in NAMES] + [("LeakyReLU", {"negative_slope": 0.2}),
                                                                          ("LeakyReLU", {"negative_slope": -1.5})])
def test_forward_and_backward_match_torch(name, kwargs, dtype, rng):
    ours, theirs = pair(name, **kwargs)
    with np.errstate(over="raise", divide="raise", invalid="raise"):  # no overflow in Sigmoid's tails
        y = check_against_torch(ours, theirs, values(rng), rng, dtype=dtype)
    assert y.dtype == dtype


@pytest.mark.parametrize("name", NAMES)
def test_non_contiguous_input(name, rng):
    x = values(rng, (4, 6, 10)).transpose(2, 0, 1)[::2, :, 1:]
    assert not x.flags.c_contiguous
    check_against_torch(*pair(name), x, rng)


@pytest.mark.parametrize("name", ["ReLU", "ReLU6", "LeakyReLU"])
def test_inplace_is_accepted_and_leaves_the_input_alone(name, rng):
    x = values(rng)
    x_copy = x.copy()
    ours = getattr(nn, name)(inplace=True)
    y = ours(x)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(y, getattr(nn, name)()(x))
    assert repr(ours) == repr(getattr(torch.nn, name)(inplace=True))


def test_leaky_relu_repr_matches_torch():
    assert repr(nn.LeakyReLU(0.2, inplace=True)) == repr(torch.nn.LeakyReLU(0.2, inplace=True))


@pytest.mark.parametrize("name", NAMES)
def test_in_a_sequential(name, rng):
    ours = nn.Sequential(getattr(nn, name)(), nn.Tanh())
    theirs = torch.nn.Sequential(getattr(torch.nn, name)(), torch.nn.Tanh())
    check_against_torch(ours, theirs, values(rng), rng)
