"""SGD and Adam against torch.optim: the same parameters and gradients, compared after every step."""

import numpy as np
import pytest
import torch

import npconv.nn
from npconv.nn import SGD, Adam, Parameter

SHAPES = [(4, 3), (5,), (2, 3, 2)]


def run_both(make_npconv, make_torch, rng, steps=5, groups=None, dtype=np.float64, none_grad=()):
    """Run ``steps`` optimizer steps on the same parameters and gradients in npconv and torch.

    ``groups``: per-group options (a list of dicts, one group per shape) or None for a plain
    parameter list.  Parameters whose index is in ``none_grad`` never get a gradient.
    Returns the npconv parameters and torch tensors after checking them at each step.
    """
    init = [rng.standard_normal(shape) for shape in SHAPES]
    ours = [Parameter(a, dtype=dtype) for a in init]
    theirs = [torch.tensor(a.astype(dtype), requires_grad=True) for a in init]
    if groups is None:
        opt, topt = make_npconv(ours), make_torch(theirs)
    else:
        opt = make_npconv([{"params": [p], **g} for p, g in zip(ours, groups)])
        topt = make_torch([{"params": [p], **g} for p, g in zip(theirs, groups)])
    tol = {"rtol": 1e-12, "atol": 1e-14} if dtype == np.float64 else {"rtol": 2e-6, "atol": 1e-7}
    for _ in range(steps):
        opt.zero_grad()
        topt.zero_grad()
        for i, (p, t) in enumerate(zip(ours, theirs)):
            if i not in none_grad:
                g = rng.standard_normal(p.shape).astype(dtype)
                p.accumulate(g)
                t.grad = torch.tensor(g)
        grads = [None if p.grad is None else p.grad.copy() for p in ours]
        opt.step()
        topt.step()
        for p, t, g in zip(ours, theirs, grads):
            assert p.data.dtype == dtype
            np.testing.assert_allclose(p.data, t.detach().numpy(), **tol)
            if g is not None:
                np.testing.assert_array_equal(p.grad, g)          # step never modifies .grad
    return ours, opt


@pytest.mark.parametrize("options", [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.3),
    dict(lr=0.05, momentum=0.8, nesterov=True),
    dict(lr=0.05, momentum=0.9, weight_decay=0.01),
    dict(lr=0.05, momentum=0.7, weight_decay=0.1, nesterov=True),
    dict(lr=0.02, weight_decay=0.5),
])
def test_sgd_matches_torch(rng, options):
    run_both(lambda p: SGD(p, **options), lambda p: torch.optim.SGD(p, **options), rng)


@pytest.mark.parametrize("options", [
    dict(),
    dict(lr=0.01, betas=(0.8, 0.99)),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.003, betas=(0.5, 0.9), eps=1e-3, weight_decay=0.05, amsgrad=True),
    dict(lr=0.01, betas=(0.0, 0.0)),
])
def test_adam_matches_torch(rng, options):
    run_both(lambda p: Adam(p, **options), lambda p: torch.optim.Adam(p, **options), rng, steps=6)


@pytest.mark.parametrize("optimizer", ["SGD", "Adam"])
def test_float32(rng, optimizer):
    options = dict(lr=0.01, momentum=0.9) if optimizer == "SGD" else dict(lr=0.01, amsgrad=True)
    run_both(lambda p: getattr(npconv.nn, optimizer)(p, **options),
             lambda p: getattr(torch.optim, optimizer)(p, **options), rng, dtype=np.float32)


def test_param_groups_override_defaults(rng):
    groups = [dict(lr=0.3), dict(momentum=0.9, nesterov=True), dict(weight_decay=0.2, dampening=0.5, momentum=0.5)]
    _, opt = run_both(lambda p: SGD(p, lr=0.05), lambda p: torch.optim.SGD(p, lr=0.05), rng, groups=groups)
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.05, 0.05]
    adam_groups = [dict(lr=0.1), dict(betas=(0.5, 0.6)), dict(amsgrad=True)]
    run_both(lambda p: Adam(p, lr=0.01), lambda p: torch.optim.Adam(p, lr=0.01), rng, groups=adam_groups)


@pytest.mark.parametrize("optimizer, options", [(SGD, dict(lr=0.1, momentum=0.9)), (Adam, dict(lr=0.1))])
def test_params_without_grad_are_skipped(rng, optimizer, options):
    torch_optimizer = getattr(torch.optim, optimizer.__name__)
    ours, opt = run_both(lambda p: optimizer(p, **options), lambda p: torch_optimizer(p, **options),
                         rng, none_grad={1})
    assert ours[1] not in opt.state and ours[0] in opt.state


def test_updates_in_place_and_zero_grad():
    """``step`` writes into the live ``.data`` arrays (so a module's state_dict sees it)."""
    p = Parameter(np.ones(3))
    data = p.data
    opt = SGD([p], lr=0.5)
    p.accumulate(np.full(3, 2.0))
    opt.step()
    assert p.data is data
    np.testing.assert_array_equal(data, np.zeros(3))
    opt.zero_grad()
    assert p.grad is None


def test_module_parameters_generator_is_accepted():
    module = npconv.nn.Module()
    module.weight = Parameter(np.ones(2))
    opt = Adam(module.parameters())
    assert opt.param_groups[0]["params"] == [module.weight]
    assert opt.param_groups[0]["betas"] == (0.9, 0.999)


@pytest.mark.parametrize("make, error, match", [
    (lambda p: SGD(p, lr=-0.1), ValueError, r"SGD: invalid lr value: must be >= 0, got -0.1"),
    (lambda p: SGD(p, momentum=-1), ValueError, r"SGD: invalid momentum value: must be >= 0, got -1"),
    (lambda p: SGD(p, weight_decay=-1e-4), ValueError, r"SGD: invalid weight_decay value: must be >= 0, got -0.0001"),
    (lambda p: SGD(p, nesterov=True), ValueError,
     r"SGD: Nesterov momentum requires a momentum > 0 and zero dampening, got momentum=0, dampening=0"),
    (lambda p: SGD(p, momentum=0.9, dampening=0.1, nesterov=True), ValueError, r"momentum=0.9, dampening=0.1"),
    (lambda p: SGD([{"params": p, "lr": -1.0}], lr=0.1), ValueError, r"SGD: invalid lr value: must be >= 0, got -1.0"),
    (lambda p: Adam(p, lr=-1e-3), ValueError, r"Adam: invalid lr value: must be >= 0, got -0.001"),
    (lambda p: Adam(p, eps=-1.0), ValueError, r"Adam: invalid eps value: must be >= 0, got -1.0"),
    (lambda p: Adam(p, weight_decay=float("nan")), ValueError, r"Adam: invalid weight_decay value: must be >= 0, got nan"),
    (lambda p: Adam(p, betas=(1.0, 0.9)), ValueError, r"Adam: invalid beta parameter at index 0: must be in \[0, 1\), got 1.0"),
    (lambda p: Adam(p, betas=(0.9, -0.1)), ValueError, r"Adam: invalid beta parameter at index 1: must be in \[0, 1\), got -0.1"),
    (lambda p: SGD([]), ValueError, r"SGD: got an empty parameter list"),
    (lambda p: SGD(p[0]), TypeError, r"SGD: params must be an iterable of Parameters or of dicts, got a single Parameter"),
    (lambda p: Adam([np.ones(3)]), TypeError, r"Adam: can only optimize Parameters, but one of the params is ndarray"),
    (lambda p: SGD({"params": p}), TypeError, r"SGD: params must be an iterable .* got a single dict"),
    (lambda p: SGD([{"params": set(p)}]), TypeError, r"SGD: parameters must be in an ordered collection, not a set"),
    (lambda p: SGD([{"lr": 0.1}]), ValueError, r"SGD.add_param_group: param_group has no 'params' entry"),
    (lambda p: SGD(p + p[:1]), ValueError, r"SGD: some parameters appear more than once"),
    (lambda p: SGD([{"params": p}, {"params": p[1]}]), ValueError, r"SGD: some parameters appear more than once"),
])
def test_errors(make, error, match):
    with pytest.raises(error, match=match):
        make([Parameter(np.ones(2)), Parameter(np.ones(3))])


def test_add_param_group_error():
    opt = SGD([Parameter(np.ones(2))])
    with pytest.raises(TypeError, match=r"SGD.add_param_group: param_group must be a dict, got list"):
        opt.add_param_group([Parameter(np.ones(2))])
