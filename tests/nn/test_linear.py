"""Linear, Flatten, Dropout and Identity against torch.nn."""

import inspect
import math

import numpy as np
import pytest
import torch

from npconv import nn

from .torch_check import check_against_torch


@pytest.mark.parametrize("name", ["Linear", "Flatten", "Dropout", "Identity"])
def test_signature_matches_torch(name):
    def parameters(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()
                if p.name not in ("device", "dtype")]
    assert parameters(getattr(nn, name)) == parameters(getattr(torch.nn, name))


@pytest.mark.parametrize("shape", [(7, 5), (2, 3, 5), (5,)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_matches_torch(shape, bias, rng):
    y = check_against_torch(nn.Linear(5, 3, bias=bias), torch.nn.Linear(5, 3, bias=bias), rng.standard_normal(shape),
                            rng)
    assert y.shape == (*shape[:-1], 3)


def test_linear_float32_matches_torch(rng):
    check_against_torch(nn.Linear(64, 10), torch.nn.Linear(64, 10), rng.standard_normal((8, 64)), rng,
                        dtype=np.float32)


def test_linear_large_enough_to_split_among_threads_matches_torch(rng):
    """64 x 512 @ 512 x 2048 is modelled above npconv.parallel.SPLIT_ABOVE_SECONDS: the output
    columns are shared out among the threads."""
    check_against_torch(nn.Linear(512, 2048), torch.nn.Linear(512, 2048), rng.standard_normal((4, 16, 512)), rng)


def test_linear_init_has_torchs_distribution():
    nn.manual_seed(5)
    ours, theirs = nn.Linear(100, 50), torch.nn.Linear(100, 50)
    bound = 1 / math.sqrt(100)
    for name in ("weight", "bias"):
        mine, torchs = getattr(ours, name).data, getattr(theirs, name).detach().numpy()
        assert mine.shape == torchs.shape and mine.dtype == np.float32
        assert np.abs(mine).max() <= bound * (1 + 1e-6) and np.abs(torchs).max() <= bound * (1 + 1e-6)
    assert np.abs(ours.weight.data).max() > 0.95 * bound
    assert abs(ours.weight.data.std() - bound / math.sqrt(3)) < 0.05 * bound


def test_linear_errors():
    with pytest.raises(ValueError, match=r"Linear: input must be \(\*, in_features=5\), got shape \(2, 4\)"):
        nn.Linear(5, 3)(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"Linear: out_features must be non-negative, got -1"):
        nn.Linear(5, -1)
    with pytest.raises(TypeError, match=r"Linear: in_features must be an int or a tuple of ints, got 2.0"):
        nn.Linear(2.0, 3)


@pytest.mark.parametrize("dims, shape", [((), (2, 3, 4, 5)), ((0, 2), (2, 3, 4, 5)), ((-3, -2), (2, 3, 4, 5)),
                                         ((1, 1), (2, 3, 4)), ((0, -1), (3, 4))])
def test_flatten_matches_torch(dims, shape, rng):
    y = check_against_torch(nn.Flatten(*dims), torch.nn.Flatten(*dims), rng.standard_normal(shape), rng)
    assert y.shape == tuple(torch.nn.Flatten(*dims)(torch.zeros(shape)).shape)


@pytest.mark.parametrize("dims", [(2, 1), (4, -1), (1, -5)])
def test_flatten_errors_name_the_dims(dims):
    with pytest.raises(ValueError, match=rf"Flatten: start_dim={dims[0]} and end_dim={dims[1]} must lie in \[-4, 3\] "
                                         r"with start_dim not after end_dim, for input shape \(2, 3, 4, 5\)"):
        nn.Flatten(*dims)(np.zeros((2, 3, 4, 5)))


def test_identity_passes_values_and_gradients(rng):
    check_against_torch(nn.Identity(54, unused="x"), torch.nn.Identity(54, unused="x"),
                        rng.standard_normal((2, 3)), rng)


@pytest.mark.parametrize("p", [0.2, 0.5, 0.8])
def test_dropout_in_training_zeroes_with_probability_p_and_scales_the_rest(p):
    nn.manual_seed(11)
    layer = nn.Dropout(p)
    x = np.ones((100, 100), np.float32)
    y = layer(x)
    assert y.dtype == np.float32
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / (1 - p), rtol=1e-6)
    assert abs(1 - kept.mean() - p) < 0.03  # 10,000 draws: std sqrt(p(1-p)/1e4) <= 0.005
    grad = np.random.default_rng(0).standard_normal(x.shape).astype(np.float32)
    np.testing.assert_allclose(layer.backward(grad), grad * y, rtol=1e-6)  # the same mask: x is ones
    np.testing.assert_array_equal(x, 1)


def test_dropout_masks_follow_the_seed_and_differ_between_calls():
    x = np.ones((20, 20))
    nn.manual_seed(2)
    layer = nn.Dropout()
    first, second = layer(x), layer(x)
    nn.manual_seed(2)
    np.testing.assert_array_equal(nn.Dropout()(x), first)
    assert not np.array_equal(first, second)


def test_dropout_backward_uses_the_latest_mask(rng):
    layer = nn.Dropout(0.5)
    x = rng.standard_normal((30, 30))
    layer(x)
    y = layer(x)
    grad = rng.standard_normal(x.shape)
    np.testing.assert_allclose(layer.backward(grad), np.where(y != 0, 2 * grad, 0))


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_dropout_in_eval_is_the_identity(p, rng):
    layer = nn.Dropout(p).eval()
    x = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(layer(x), x)
    grad = rng.standard_normal((4, 5))
    np.testing.assert_array_equal(layer.backward(grad), grad)


def test_dropout_edge_probabilities_match_torch_in_training(rng):
    x = rng.standard_normal((4, 5))
    for p in (0.0, 1.0):
        check_against_torch(nn.Dropout(p), torch.nn.Dropout(p), x, rng)


@pytest.mark.parametrize("p, error, message", [
    (1.5, ValueError, r"Dropout: probability p must be between 0 and 1, got 1.5"),
    (-0.1, ValueError, r"Dropout: probability p must be between 0 and 1, got -0.1"),
    ("0.5", TypeError, r"Dropout: probability p must be a number, got '0.5'"),
])
def test_dropout_errors(p, error, message):
    with pytest.raises(error, match=message):
        nn.Dropout(p)
