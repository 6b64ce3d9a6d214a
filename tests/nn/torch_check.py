"""A differential check of an npconv.nn module against the matching torch.nn module with copied weights."""

import numpy as np
import torch

TOLERANCE = {np.dtype(np.float32): (1e-4, 1e-5), np.dtype(np.float64): (1e-9, 1e-11)}  # rtol, atol / max|expected|


def assert_close(actual, expected, dtype, what):
    """``actual`` (NumPy) equals ``expected`` (a tensor) within ``dtype``'s tolerance, atol scaled to magnitude."""
    expected = expected.detach().numpy()
    assert isinstance(actual, np.ndarray) and actual.shape == expected.shape, (what, np.shape(actual), expected.shape)
    assert actual.dtype == dtype, (what, actual.dtype)
    rtol, atol = TOLERANCE[np.dtype(dtype)]
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * max(1.0, np.abs(expected).max(initial=0)),
                               err_msg=what)


def load_from_torch(ours, theirs):
    """Load ``theirs``' state dict (tensors as NumPy arrays) into ``ours``, whose keys must be PyTorch's, in order."""
    state = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(state)
    ours.load_state_dict(state)


def check_against_torch(ours, theirs, x, rng, dtype=np.float64, **forward_kwargs):
    """Forward and backward of ``ours`` equal ``theirs``' (torch autograd): the output, the input gradient and
    every parameter's gradient.  Also checks that neither pass modifies its arguments.  Returns the output."""
    ours.to(dtype)
    theirs.to(torch.float64 if dtype == np.float64 else torch.float32)
    load_from_torch(ours, theirs)
    x = np.asarray(x, dtype=dtype)
    x_t = torch.tensor(x, requires_grad=True)
    y_t = theirs(x_t, **forward_kwargs)
    x_copy = x.copy()
    y = ours(x, **forward_kwargs)
    assert_close(y, y_t, dtype, "output")
    grad = rng.standard_normal(y.shape).astype(dtype)
    grad_copy = grad.copy()
    y_t.backward(torch.from_numpy(grad))
    assert_close(ours.backward(grad), x_t.grad, dtype, "input gradient")
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(grad, grad_copy)
    own = dict(ours.named_parameters())
    assert list(own) == [name for name, _ in theirs.named_parameters()]
    for name, p in theirs.named_parameters():
        assert_close(own[name].grad, p.grad, dtype, f"gradient of {name}")
    return y
