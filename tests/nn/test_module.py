"""The Module base: registration, state dicts (PyTorch's keys and order), modes, gradients, dtype."""

import collections

import numpy as np
import pytest
import torch

from npconv.nn import Module, Parameter, Sequential


class Affine(Module):
    """y = x * scale + shift, with a buffer counting calls: a minimal layer for the base's tests."""

    def __init__(self, n):
        super().__init__()
        self.scale = Parameter(np.arange(1, n + 1))
        self.shift = Parameter(np.zeros(n))
        self.register_buffer("calls", np.zeros((), dtype=np.int64))

    def forward(self, x):
        self._x = x
        self.calls += 1
        return x * self.scale.data + self.shift.data

    def backward(self, grad_output):
        self.scale.accumulate((grad_output * self._x).sum(axis=0))
        self.shift.accumulate(grad_output.sum(axis=0))
        return grad_output * self.scale.data


class TorchAffine(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.arange(1, n + 1, dtype=torch.float64))
        self.shift = torch.nn.Parameter(torch.zeros(n, dtype=torch.float64))
        self.register_buffer("calls", torch.zeros((), dtype=torch.int64))

    def forward(self, x):
        return x * self.scale + self.shift


def test_state_dict_keys_and_order_match_torch():
    ours = Sequential(Affine(3), Sequential(Affine(3), Affine(3)))
    theirs = torch.nn.Sequential(TorchAffine(3), torch.nn.Sequential(TorchAffine(3), TorchAffine(3)))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [name for name, _ in ours.named_parameters()] == [name for name, _ in theirs.named_parameters()]


def test_load_state_dict_copies_in_place_and_casts():
    model = Sequential(Affine(2), Affine(2))
    scale = model[0].scale.data
    state = {k: np.full(v.shape, 7, dtype=np.float64) for k, v in model.state_dict().items()}
    model.load_state_dict(state)
    assert model[0].scale.data is scale and scale.dtype == np.float32
    np.testing.assert_array_equal(scale, [7, 7])
    assert model[1].calls.dtype == np.int64 and model[1].calls == 7
    state["0.shift"][:] = 0  # the model holds copies, not the caller's arrays
    np.testing.assert_array_equal(model[0].shift.data, [7, 7])


def test_load_state_dict_strict_errors_name_every_key():
    model = Sequential(Affine(2))
    state = dict(model.state_dict())
    del state["0.shift"]
    state["0.extra"] = np.zeros(1)
    before = model[0].scale.data.copy()
    state["0.scale"] = np.ones(2) * 9
    with pytest.raises(ValueError, match=r"load_state_dict into Sequential: missing keys \['0.shift'\], "
                                         r"unexpected keys \['0.extra'\]"):
        model.load_state_dict(state)
    np.testing.assert_array_equal(model[0].scale.data, before)  # nothing changed on error
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert (missing, unexpected) == (["0.shift"], ["0.extra"])
    np.testing.assert_array_equal(model[0].scale.data, [9, 9])


def test_load_state_dict_rejects_wrong_shapes_even_when_not_strict():
    model = Sequential(Affine(2))
    state = {k: np.asarray(v) for k, v in model.state_dict().items()}
    state["0.scale"] = np.zeros(3)
    with pytest.raises(ValueError, match=r"wrong shapes \(0.scale: expected \(2,\), got \(3,\)\)"):
        model.load_state_dict(state, strict=False)


def test_torch_state_dict_loads():
    theirs = torch.nn.Sequential(TorchAffine(4))
    with torch.no_grad():
        theirs[0].scale.uniform_()
    ours = Sequential(Affine(4))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = np.random.default_rng(0).standard_normal((2, 4))
    np.testing.assert_allclose(ours(x), theirs(torch.from_numpy(x)).detach().numpy(), rtol=1e-6)


def test_sequential_backward_matches_autograd_and_accumulates():
    rng = np.random.default_rng(1)
    ours = Sequential(Affine(3), Affine(3)).to(np.float64)
    theirs = torch.nn.Sequential(TorchAffine(3), TorchAffine(3))
    for p in ours.parameters():
        p.data[...] = rng.standard_normal(p.shape)
    theirs.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in ours.state_dict().items()})
    x, g = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    xt = torch.from_numpy(x).requires_grad_()
    for _ in range(2):  # the second pass accumulates, as PyTorch's .grad does
        ours(x)
        gx = ours.backward(g)
        theirs(xt).backward(torch.from_numpy(g))
    np.testing.assert_allclose(gx, xt.grad.numpy() / 2)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), err_msg=name)
    ours.zero_grad()
    assert all(p.grad is None for p in ours.parameters())


def test_train_eval_recurse():
    model = Sequential(Affine(1), Sequential(Affine(1)))
    assert model.eval() is model
    assert not any(m.training for m in model.modules())
    model.train()
    assert all(m.training for m in model.modules())


def test_to_casts_parameters_and_float_buffers_only():
    model = Affine(2)
    model.register_buffer("stat", np.zeros(2, dtype=np.float32))
    model.to(np.float64)
    assert model.scale.dtype == np.float64 and model.stat.dtype == np.float64
    assert model.calls.dtype == np.int64


def test_attribute_registration():
    model = Affine(2)
    model.shift = None  # an optional parameter set to None leaves the state dict, as in PyTorch
    assert "shift" not in model.state_dict() and model.shift is None
    model.child = Affine(1)
    assert [name for name, _ in model.named_children()] == ["child"]
    with pytest.raises(AttributeError, match="'Affine' object has no attribute 'nope'"):
        model.nope


def test_init_must_run_before_assignment():
    class Broken(Module):
        def __init__(self):
            self.weight = Parameter(np.zeros(1))

    with pytest.raises(AttributeError, match=r"Broken: call Module.__init__\(\) before assigning 'weight'"):
        Broken()


def test_sequential_from_ordered_dict_and_indexing():
    a, b = Affine(1), Affine(1)
    model = Sequential(collections.OrderedDict(first=a, second=b))
    assert list(model.state_dict())[:2] == ["first.scale", "first.shift"]
    assert model[1] is b and len(model) == 2 and list(model) == [a, b]
    assert list(model[1:]) == [b]
    with pytest.raises(TypeError, match="Sequential: entry '0' must be a Module, got int"):
        Sequential(3)


def test_parameter_accumulate_checks_shape():
    p = Parameter(np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"gradient shape \(3,\) does not match the parameter's shape \(2, 2\)"):
        p.accumulate(np.zeros(3))


def test_unimplemented_forward_and_backward_name_the_class():
    with pytest.raises(NotImplementedError, match="Module does not define forward"):
        Module()(1)
    with pytest.raises(NotImplementedError, match="Module does not define backward"):
        Module().backward(1)


def test_backward_before_forward_says_so():
    from npconv.nn.conv import Conv2d

    with pytest.raises(RuntimeError, match="Conv2d.backward: called before forward, nothing to differentiate"):
        Conv2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1)))
