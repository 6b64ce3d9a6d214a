"""BatchNorm1d and BatchNorm2d against torch.nn: state dicts, both modes, running statistics, gradients, errors."""

import inspect

import numpy as np
import pytest
import torch

from npconv import nn

from .torch_check import assert_close, check_against_torch, load_from_torch

SHAPES = {"BatchNorm1d": [(6, 4), (5, 4, 7)], "BatchNorm2d": [(3, 4, 5, 6)]}
CASES = [(name, shape) for name, shapes in SHAPES.items() for shape in shapes]
OPTIONS = [dict(), dict(momentum=None), dict(affine=False), dict(track_running_stats=False), dict(bias=False),
           dict(eps=1e-2, momentum=0.3), dict(affine=False, track_running_stats=False, momentum=None)]


def pair(name, num_features=4, **kwargs):
    """Ours and torch's, torch's weights and running statistics made non-trivial (loaded into ours by the checks)."""
    theirs = getattr(torch.nn, name)(num_features, **kwargs)
    generator = torch.Generator().manual_seed(7)
    for key, value in theirs.state_dict().items():
        if value.is_floating_point():
            value.copy_(torch.rand(value.shape, generator=generator) + 0.5)
    return getattr(nn, name)(num_features, **kwargs), theirs


def inputs(rng, shape):
    """Per-channel offsets and scales, so that normalising has something to do."""
    scale = np.linspace(0.5, 3, shape[1]).reshape((1, -1) + (1,) * (len(shape) - 2))
    return rng.standard_normal(shape) * scale + scale * 2


@pytest.mark.parametrize("name", ["BatchNorm1d", "BatchNorm2d"])
def test_signature_and_repr_match_torch(name):
    def parameters(cls):
        return [(p.name, p.default, p.kind) for p in inspect.signature(cls).parameters.values()
                if p.name not in ("device", "dtype")]
    assert parameters(getattr(nn, name)) == parameters(getattr(torch.nn, name))
    for kwargs in OPTIONS:
        assert repr(getattr(nn, name)(3, **kwargs)) == repr(getattr(torch.nn, name)(3, **kwargs))


@pytest.mark.parametrize("kwargs", OPTIONS)
def test_state_dict_matches_torch(kwargs):
    ours, theirs = nn.BatchNorm2d(5, **kwargs), torch.nn.BatchNorm2d(5, **kwargs)
    expected = {k: v.numpy() for k, v in theirs.state_dict().items()}
    state = ours.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert state[key].dtype == value.dtype and state[key].shape == value.shape, key
        np.testing.assert_array_equal(state[key], value)
    assert [k for k, _ in ours.named_parameters()] == [k for k, _ in theirs.named_parameters()]


@pytest.mark.parametrize("kwargs", OPTIONS)
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name, shape", CASES)
def test_forward_backward_and_running_stats_match_torch(name, shape, training, kwargs, rng):
    """Output, input and parameter gradients, then every buffer (float64), over a few steps."""
    ours, theirs = pair(name, **kwargs)
    ours.train(training)
    theirs.train(training)
    for _ in range(3):
        ours.zero_grad()
        theirs.zero_grad()
        check_against_torch(ours, theirs, inputs(rng, shape), rng)  # loads torch's state into ours first
        for key, value in theirs.state_dict().items():
            np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-12, err_msg=key)


@pytest.mark.parametrize("kwargs", OPTIONS)
@pytest.mark.parametrize("name, shape", CASES)
def test_running_stats_over_several_training_steps(name, shape, kwargs, rng):
    """Only the first step copies torch's state; after that each module updates its own buffers (float32)."""
    ours, theirs = pair(name, **kwargs)
    load_from_torch(ours, theirs)
    for _ in range(4):
        x = inputs(rng, shape).astype(np.float32)
        assert_close(ours(x), theirs(torch.from_numpy(x)), np.float32, "output")
    for key, value in theirs.state_dict().items():
        assert ours.state_dict()[key].dtype == value.numpy().dtype, key
        np.testing.assert_allclose(ours.state_dict()[key], value.numpy(), rtol=1e-5, err_msg=key)
    ours.eval()
    theirs.eval()
    x = inputs(rng, shape).astype(np.float32)
    assert_close(ours(x), theirs(torch.from_numpy(x)), np.float32, "eval output after training")


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("name, shape", CASES)
def test_float32_and_non_contiguous_input(name, shape, training, rng):
    ours, theirs = pair(name)
    ours.train(training)
    theirs.train(training)
    x = inputs(rng, shape + (2,))[..., 1]  # a strided view
    assert x.shape == shape and not x.flags.c_contiguous
    y = check_against_torch(ours, theirs, x, rng, dtype=np.float32)
    assert y.dtype == np.float32


@pytest.mark.parametrize("training", [True, False])
def test_float16_input_is_computed_in_float32(training, rng):
    """A channel whose spread is small next to its mean: its float16 statistics would be off by
    5%; computed in float32 from the same float16 values, as torch does, and returned as float16."""
    ours, theirs = pair("BatchNorm2d")
    load_from_torch(ours, theirs)
    ours.train(training)
    theirs.train(training)
    if not training:  # running statistics near the values, as after training on them
        theirs.running_mean.fill_(3.6)
        theirs.running_var.fill_(1e-3)
        load_from_torch(ours, theirs)
    x = (3.6 + 0.02 * rng.standard_normal((4, 4, 3, 3))).astype(np.float16)
    x_t = torch.tensor(x.astype(np.float32), requires_grad=True)
    y_t = theirs(x_t)
    y = ours(x)
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.astype(np.float32), y_t.detach().numpy(), rtol=2e-3, atol=2e-3)
    grad = rng.standard_normal(y.shape).astype(np.float16)
    y_t.backward(torch.from_numpy(grad.astype(np.float32)))
    grad_x = ours.backward(grad)
    assert grad_x.dtype == np.float16
    scale = np.abs(x_t.grad.numpy()).max()
    np.testing.assert_allclose(grad_x.astype(np.float32), x_t.grad.numpy(), rtol=2e-3, atol=2e-3 * scale)


def test_eval_without_running_stats_uses_the_batch(rng):
    ours, theirs = pair("BatchNorm2d", track_running_stats=False)
    x = inputs(rng, (2, 4, 3, 3))
    check_against_torch(ours.eval(), theirs.eval(), x, rng)
    y = ours(x)
    np.testing.assert_allclose(y.mean(axis=(0, 2, 3)), ours.bias.data, atol=1e-6)


def test_single_value_per_channel_is_allowed_in_eval(rng):
    check_against_torch(*(m.eval() for m in pair("BatchNorm1d")), rng.standard_normal((1, 4)), rng)


def test_load_state_dict_keeps_the_running_buffers_live(rng):
    ours, theirs = pair("BatchNorm2d")
    load_from_torch(ours, theirs)
    state = ours.state_dict()
    ours(inputs(rng, (2, 4, 3, 3)))
    assert state["running_mean"] is ours.running_mean and int(state["num_batches_tracked"]) == 1


@pytest.mark.parametrize("module, shape, message", [
    (nn.BatchNorm2d(3), (2, 3, 4), r"BatchNorm2d: expected 4-d \(N, C, H, W\) input, got 3-d input of shape "
                                   r"\(2, 3, 4\)"),
    (nn.BatchNorm1d(3), (2, 3, 4, 4), r"BatchNorm1d: expected 2-d \(N, C\) or 3-d \(N, C, L\) input, got 4-d"),
    (nn.BatchNorm1d(3), (3,), r"BatchNorm1d: expected 2-d .* got 1-d input of shape \(3,\)"),
    (nn.BatchNorm2d(3), (2, 4, 5, 5), r"BatchNorm2d: expected 3 channels \(axis 1\), got input of shape "
                                      r"\(2, 4, 5, 5\)"),
    (nn.BatchNorm1d(3), (1, 3), r"BatchNorm1d: expected more than 1 value per channel when training, got input of "
                                r"shape \(1, 3\)"),
    (nn.BatchNorm2d(3), (1, 3, 1, 1), r"BatchNorm2d: expected more than 1 value per channel when training"),
])
def test_input_errors(module, shape, message):
    with pytest.raises(ValueError, match=message):
        module(np.zeros(shape, np.float32))


@pytest.mark.parametrize("num_features", [0, -2, 2.0, True, None])
def test_num_features_must_be_a_positive_int(num_features):
    with pytest.raises(ValueError, match=rf"BatchNorm1d: num_features must be a positive int, got {num_features}"):
        nn.BatchNorm1d(num_features)
