"""CrossEntropyLoss and MSELoss against torch.nn.functional: values and input gradients."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from npconv.nn import CrossEntropyLoss, MSELoss

REDUCTIONS = ("mean", "sum", "none")


def torch_loss_and_grad(fn, x, target, reduction, grad_output):
    """PyTorch's loss of ``x`` and the gradient of ``sum(loss * grad_output)`` wrt ``x``."""
    xt = torch.tensor(x, requires_grad=True)
    loss = fn(xt, torch.as_tensor(target), reduction)
    (loss * torch.as_tensor(grad_output, dtype=xt.dtype)).sum().backward()
    return loss.detach().numpy(), xt.grad.numpy()


def check(criterion, fn, x, target, rng):
    """``criterion`` matches ``fn`` (a torch functional taking ``reduction``), forward and backward."""
    loss = criterion(x, target)
    grad_output = rng.standard_normal(np.shape(loss)) if criterion.reduction == "none" else 1.7
    expected_loss, expected_grad = torch_loss_and_grad(fn, x, target, criterion.reduction, grad_output)
    tol = {"rtol": 1e-10, "atol": 1e-12} if x.dtype == np.float64 else {"rtol": 1e-5, "atol": 1e-6}
    assert np.shape(loss) == expected_loss.shape
    assert np.asarray(loss).dtype == x.dtype
    np.testing.assert_allclose(loss, expected_loss, **tol)
    grad = criterion.backward(grad_output)
    assert grad.shape == x.shape and grad.dtype == x.dtype
    np.testing.assert_allclose(grad, expected_grad, **tol)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.25])
@pytest.mark.parametrize("shape", [(6, 5), (3, 4, 2, 3), (2, 3, 5), (5,)])
def test_cross_entropy_class_indices(rng, reduction, weighted, smoothing, shape):
    x = rng.standard_normal(shape) * 3
    classes = shape[0] if len(shape) == 1 else shape[1]
    positions = () if len(shape) == 1 else shape[:1] + shape[2:]
    target = rng.integers(0, classes, size=positions)
    if target.ndim:
        target.flat[::3] = -1                                  # ignored positions
    weight = rng.uniform(0.2, 2.0, classes).astype(np.float32) if weighted else None
    criterion = CrossEntropyLoss(weight=weight, ignore_index=-1, reduction=reduction,
                                 label_smoothing=smoothing).to(np.float64)

    def fn(xt, tt, red):
        w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
        return F.cross_entropy(xt, tt, weight=w, ignore_index=-1, reduction=red, label_smoothing=smoothing)
    check(criterion, fn, x, target, rng)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("shape", [(4, 6), (2, 3, 4, 4), (7,)])
def test_cross_entropy_class_probabilities(rng, reduction, weighted, smoothing, shape):
    x = rng.standard_normal(shape) * 2
    class_axis = 0 if len(shape) == 1 else 1
    target = np.exp(rng.standard_normal(shape))
    target /= target.sum(axis=class_axis, keepdims=True)
    weight = rng.uniform(0.2, 2.0, shape[class_axis]).astype(np.float32) if weighted else None
    criterion = CrossEntropyLoss(weight=weight, reduction=reduction, label_smoothing=smoothing).to(np.float64)

    def fn(xt, tt, red):
        w = None if weight is None else torch.tensor(weight, dtype=torch.float64)
        return F.cross_entropy(xt, tt, weight=w, reduction=red, label_smoothing=smoothing)
    check(criterion, fn, x, target, rng)


def test_cross_entropy_float32_default_ignore_index_and_large_logits(rng):
    """float32 in, float32 out; logits of 1e4 do not overflow (stable log-softmax)."""
    x = (rng.standard_normal((8, 10)) * 1e4).astype(np.float32)
    target = rng.integers(0, 10, 8)
    target[2] = -100
    check(CrossEntropyLoss(), lambda xt, tt, red: F.cross_entropy(xt, tt, reduction=red), x, target, rng)
    assert np.isfinite(CrossEntropyLoss()(x, target))


def test_cross_entropy_every_target_ignored_is_nan_with_zero_gradient(rng):
    x = rng.standard_normal((3, 4))
    criterion = CrossEntropyLoss(ignore_index=2).to(np.float64)
    fn = lambda xt, tt, red: F.cross_entropy(xt, tt, ignore_index=2, reduction=red)  # noqa: E731
    check(criterion, fn, x, np.full(3, 2), rng)
    assert np.isnan(criterion(x, np.full(3, 2)))


def test_cross_entropy_does_not_modify_inputs(rng):
    x, target = rng.standard_normal((4, 3)), np.array([0, 2, -100, 1])
    x0, t0 = x.copy(), target.copy()
    criterion = CrossEntropyLoss(label_smoothing=0.1)
    criterion(x, target)
    criterion.backward()
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(target, t0)


def test_cross_entropy_weight_is_a_buffer_with_torchs_key():
    weight = np.array([1.0, 2.0, 0.5])
    assert list(CrossEntropyLoss(weight).state_dict()) == list(torch.nn.CrossEntropyLoss(torch.tensor(weight)).state_dict())
    assert list(CrossEntropyLoss().state_dict()) == []


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 4), ()])
def test_mse(rng, reduction, shape):
    x, target = rng.standard_normal(shape), rng.standard_normal(shape)
    check(MSELoss(reduction), lambda xt, tt, red: F.mse_loss(xt, tt, reduction=red), x, target, rng)


def test_mse_float32(rng):
    x, target = rng.standard_normal((4, 6)).astype(np.float32), rng.standard_normal((4, 6)).astype(np.float32)
    check(MSELoss(), lambda xt, tt, red: F.mse_loss(xt, tt, reduction=red), x, target, rng)


def test_losses_are_modules_returning_scalars(rng):
    loss = CrossEntropyLoss()(rng.standard_normal((2, 3)).astype(np.float32), np.array([0, 1]))
    assert isinstance(loss, np.float32)
    assert isinstance(MSELoss(reduction="sum")(np.ones(3), np.zeros(3)), np.float64)
    assert repr(CrossEntropyLoss()) == "CrossEntropyLoss(ignore_index=-100, reduction='mean', label_smoothing=0.0)"


@pytest.mark.parametrize("make, args, error, match", [
    (lambda: CrossEntropyLoss(reduction="avg"), None, ValueError, r"CrossEntropyLoss: reduction must be one of .*'avg'"),
    (lambda: MSELoss(reduction="batchmean"), None, ValueError, r"MSELoss: reduction must be one of .*'batchmean'"),
    (lambda: CrossEntropyLoss(label_smoothing=1.5), None, ValueError, r"label_smoothing must be between 0.0 and 1.0, got 1.5"),
    (lambda: CrossEntropyLoss(weight=np.ones((2, 2))), None, ValueError, r"weight must be 1-d .* \(2, 2\)"),
    (CrossEntropyLoss, (np.zeros((3, 4)), np.array([1, 2, 5])), ValueError, r"target class 5 is out of range for 4 classes"),
    (CrossEntropyLoss, (np.zeros((3, 4)), np.array([1, -2, 0])), ValueError, r"target class -2 is out of range"),
    (CrossEntropyLoss, (np.zeros((3, 4)), np.array([1.0, 2.0, 3.0])), TypeError,
     r"CrossEntropyLoss: target must hold integer class indices of shape \(3,\) .* got dtype float64"),
    (CrossEntropyLoss, (np.zeros((3, 4)), np.array([[1, 2, 3]])), ValueError,
     r"target of class indices must have shape \(3,\) for input \(3, 4\), got \(1, 3\)"),
    (CrossEntropyLoss, (np.zeros((3, 4), dtype=np.int64), np.array([1, 2, 3])), TypeError,
     r"CrossEntropyLoss: input must be a floating-point array, got dtype int64"),
    (CrossEntropyLoss, (np.float64(1.0), np.array(0)), ValueError, r"input must have a class dimension"),
    (lambda: CrossEntropyLoss(weight=np.ones(3)), (np.zeros((3, 4)), np.array([1, 2, 3])), ValueError,
     r"weight has 3 entries for 4 classes"),
    (MSELoss, (np.zeros((3, 4)), np.zeros(4)), ValueError, r"MSELoss: target shape \(4,\) must equal input shape \(3, 4\)"),
])
def test_errors(make, args, error, match):
    with pytest.raises(error, match=match):
        make()(*args) if args else make()


def test_backward_errors(rng):
    with pytest.raises(RuntimeError, match="MSELoss.backward called before forward"):
        MSELoss().backward()
    criterion = CrossEntropyLoss(reduction="none")
    criterion(rng.standard_normal((3, 4)), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"grad_output must have the loss's shape \(3,\) \(reduction='none'\), got \(\)"):
        criterion.backward(1.0)
    mse = MSELoss()
    mse(np.zeros(3), np.ones(3))
    with pytest.raises(ValueError, match=r"MSELoss.backward: grad_output must be a scalar \(reduction='mean'\), got shape \(3,\)"):
        mse.backward(np.ones(3))
