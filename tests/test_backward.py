"""Differential tests of ``npconv.conv_backward`` and ``npconv.conv_transpose_backward`` against torch autograd.

The oracle builds the forward in torch (explicit ``F.pad`` for the padding modes, and for
asymmetric transposed padding the uncropped output extended by ``output_padding`` zeros and
cropped by hand), runs ``backward`` with the same ``grad_output`` in float64 and compares the
three gradients.
"""

import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv
import npconv.backward
from npconv.algorithms import REGISTRY, select
from npconv.errors import UnsupportedAlgorithmError
from npconv.geometry import conv_geometry

from .conftest import PADDING_MODES, per_dim, resolve_padding, tolerance

_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_TORCH_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
SIZES = {1: (9,), 2: (7, 6), 3: (5, 4, 6)}


def _leaves(*arrays):
    return [None if a is None else torch.tensor(np.array(a, dtype=np.float64), requires_grad=True) for a in arrays]


def _grads(out, grad, leaves):
    out.backward(torch.from_numpy(np.array(grad, dtype=np.float64)))
    return tuple(None if t is None else t.grad.numpy() for t in leaves)


def torch_conv_out(x, w, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", bias=True):
    """The output shape of the torch forward (to make grad_output)."""
    rank = w.ndim - 2
    pairs = resolve_padding(padding, x.shape[2:], w.shape[2:], stride, dilation)
    return (x.shape[0], w.shape[0], *(
        (i + lo + hi - d * (k - 1) - 1) // s + 1
        for i, k, s, d, (lo, hi) in zip(x.shape[2:], w.shape[2:], per_dim(stride, rank), per_dim(dilation, rank),
                                        pairs)))


def torch_conv_grads(grad, x, w, bias=True, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """torch autograd's ``(grad_input, grad_weight, grad_bias)`` of conv, in float64."""
    rank = w.ndim - 2
    leaves = _leaves(x, w, np.zeros(w.shape[0]) if bias else None)
    pairs = resolve_padding(padding, x.shape[2:], w.shape[2:], stride, dilation)
    flat = [p for pair in reversed(pairs) for p in pair]  # F.pad starts from the last dim
    xt = F.pad(leaves[0], flat, mode=_TORCH_PAD_MODE[padding_mode]) if any(flat) else leaves[0]
    out = _TORCH_CONV[rank](xt, leaves[1], leaves[2], stride=per_dim(stride, rank), dilation=per_dim(dilation, rank),
                            groups=groups)
    return _grads(out, grad, leaves)


def torch_conv_transpose_grads(grad, x, w, bias=True, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """torch autograd's gradients of conv_transpose; ``padding`` may hold ``(lo, hi)`` pairs."""
    rank = w.ndim - 2
    leaves = _leaves(x, w, np.zeros(w.shape[1] * groups) if bias else None)
    pairs = resolve_padding(padding, x.shape[2:], w.shape[2:])
    full = _TORCH_CONV_TRANSPOSE[rank](leaves[0], leaves[1], stride=per_dim(stride, rank), groups=groups,
                                       dilation=per_dim(dilation, rank))
    full = F.pad(full, [p for op in reversed(per_dim(output_padding, rank)) for p in (0, op)])  # zeros at the end
    out = full[(slice(None), slice(None), *(slice(lo, full.shape[2 + dim] - hi) for dim, (lo, hi) in enumerate(pairs)))]
    if bias:
        out = out + leaves[2].reshape(-1, *(1,) * rank)
    return _grads(out, grad, leaves)


def assert_grads_match(actual, expected, grad, w, dtype=np.float64):
    """Shapes, dtypes and values; atol as the forward's, over the most terms a gradient entry sums
    (grad_input: a weight's worth; grad_weight and grad_bias: a batch and an output's space)."""
    terms = max(np.size(w), np.size(grad) // np.shape(grad)[1])
    for name, a, e in zip(("grad_input", "grad_weight", "grad_bias"), actual, expected):
        if e is None:
            assert a is None, name
            continue
        assert isinstance(a, np.ndarray) and a.shape == e.shape, (name, None if a is None else a.shape, e.shape)
        assert a.dtype == dtype, name
        np.testing.assert_allclose(a.astype(np.float64), e, err_msg=name, **tolerance(dtype, (0, terms)))


def check_conv(rng, x_shape, w_shape, bias=True, dtype=np.float64, needs=npconv.backward.NEEDS, **params):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    grad = rng.standard_normal(torch_conv_out(x, w, **params)).astype(dtype)
    copies = x.copy(), w.copy(), grad.copy()
    actual = npconv.conv_backward(grad, x, w, bias=bias, needs=needs, **params)
    expected = torch_conv_grads(grad, x, w, bias=bias, **params)
    expected = tuple(e if n in needs else None for n, e in zip(npconv.backward.NEEDS, expected))
    assert_grads_match(actual, expected, grad, w, dtype)
    for before, after in zip(copies, (x, w, grad)):
        np.testing.assert_array_equal(before, after)  # inputs never modified
    return actual


def check_transpose(rng, x_shape, w_shape, bias=True, needs=npconv.backward.NEEDS, **params):
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    out = npconv.conv_transpose(x, w, **params)
    grad = rng.standard_normal(out.shape)
    actual = npconv.conv_transpose_backward(grad, x, w, bias=bias, needs=needs, **params)
    expected = torch_conv_transpose_grads(grad, x, w, bias=bias, **params)
    expected = tuple(e if n in needs else None for n, e in zip(npconv.backward.NEEDS, expected))
    assert_grads_match(actual, expected, grad, w)


# ---------------------------------------------------------------------------------------------
# conv_backward against torch autograd


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("dilation", [1, 2])
def test_conv_kernel_stride_dilation(rng, rank, kernel, stride, dilation):
    check_conv(rng, (2, 3, *SIZES[rank]), (4, 3, *(kernel,) * rank), stride=stride, dilation=dilation,
               padding=min(1, kernel - 1))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 2, "valid", "same", "same_lower", "pairs", "per-dim"])
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv_padding_forms_and_modes(rng, rank, padding, padding_mode):
    padding = {"pairs": ((2, 1), (0, 2), (1, 0))[:rank], "per-dim": (1, 2, 0)[:rank]}.get(padding, padding)
    check_conv(rng, (2, 3, *SIZES[rank]), (2, 3, *(3, 2, 3)[:rank]), stride=(2, 1, 3)[:rank], padding=padding,
               padding_mode=padding_mode)


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("stride, dilation", [(1, 1), (2, 1), (1, 2), (3, 2)])
def test_conv_modes_with_stride_and_dilation(rng, padding_mode, stride, dilation):
    """Pads as large as each mode allows (reflect: in - 1; circular: in)."""
    size = 5
    pad = {"reflect": size - 1, "circular": size}.get(padding_mode, 6)
    check_conv(rng, (2, 2, size, size), (3, 2, 3, 3), stride=stride, dilation=dilation, padding=((pad, 1), (2, pad)),
               padding_mode=padding_mode)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(
    "cin, cout, groups",
    [(1, 1, 1), (3, 5, 1), (4, 4, 4), (4, 8, 4), (6, 9, 3), (6, 2, 2), (4, 6, 2)],
    ids=["1ch", "dense", "depthwise", "depthwise-x2", "cin6-cout9-g3", "cin6-cout2-g2", "cin4-cout6-g2"],
)
def test_conv_groups(rng, rank, cin, cout, groups):
    check_conv(rng, (2, cin, *SIZES[rank]), (cout, cin // groups, *(3,) * rank), groups=groups, stride=2, padding=1)


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("needs", [("input",), ("weight",), ("bias",), ("input", "bias"), ("weight", "bias"), ()])
def test_conv_needs_and_bias(rng, bias, needs):
    grads = check_conv(rng, (2, 3, 6, 5), (4, 3, 3, 3), bias=bias, needs=needs, padding=1, padding_mode="reflect")
    assert [g is not None for g in grads] == [n in needs and (n != "bias" or bias) for n in npconv.backward.NEEDS]


def _forbid(monkeypatch, name):
    def fail(*args, **kwargs):
        raise AssertionError(f"{name} ran although its gradient was not needed")

    monkeypatch.setattr(npconv.backward, name, fail)


def test_conv_needs_skips_work(rng, monkeypatch):
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    grad = rng.standard_normal((2, 4, 4, 4))
    _forbid(monkeypatch, "conv_transpose")
    _, grad_weight, _ = npconv.conv_backward(grad, x, w, needs=("weight",))
    assert grad_weight is not None
    monkeypatch.undo()
    _forbid(monkeypatch, "_correlate")
    grad_input, _, grad_bias = npconv.conv_backward(grad, x, w, needs=("input", "bias"))
    assert grad_input is not None and grad_bias is not None
    _forbid(monkeypatch, "conv_transpose")
    assert npconv.conv_backward(grad, x, w, bias=False, needs=("bias",)) == (None, None, None)


def test_transpose_needs_skips_work(rng, monkeypatch):
    x, w = rng.standard_normal((2, 3, 4, 4)), rng.standard_normal((3, 2, 3, 3))
    grad = rng.standard_normal((2, 2, 9, 9))
    calls = []
    monkeypatch.setattr(npconv.backward, "conv", lambda *args, **kw: calls.append(1) or npconv.conv(*args, **kw))
    _, grad_weight, _ = npconv.conv_transpose_backward(grad, x, w, stride=2, needs=("weight",))
    assert grad_weight is not None and len(calls) == 1  # the correlation's conv only
    monkeypatch.undo()
    _forbid(monkeypatch, "_correlate")
    grad_input, grad_weight, _ = npconv.conv_transpose_backward(grad, x, w, stride=2, needs=("input",))
    assert grad_input is not None and grad_weight is None


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_conv_low_precision(rng, dtype):
    check_conv(rng, (2, 3, 6, 5), (4, 3, 3, 3), dtype=dtype, padding=1, stride=2)


def test_conv_mixed_dtypes_promote(rng):
    x, w = rng.standard_normal((1, 2, 5)).astype(np.float32), rng.standard_normal((3, 2, 3)).astype(np.float32)
    grads = npconv.conv_backward(rng.standard_normal((1, 3, 3)), x, w)
    assert [g.dtype for g in grads] == [np.float64] * 3


def test_conv_empty_batch(rng):
    x, w = np.zeros((0, 2, 5, 5)), rng.standard_normal((3, 2, 3, 3))
    grad_input, grad_weight, grad_bias = npconv.conv_backward(np.zeros((0, 3, 3, 3)), x, w)
    assert grad_input.shape == x.shape
    np.testing.assert_array_equal(grad_weight, np.zeros(w.shape))
    np.testing.assert_array_equal(grad_bias, np.zeros(3))


def test_conv_every_algorithm(rng):
    """A named algorithm runs both gradient convolutions, or declines with UnsupportedAlgorithmError."""
    x, w = rng.standard_normal((2, 3, 6, 6)), rng.standard_normal((4, 3, 3, 3))
    grad = rng.standard_normal((2, 4, 6, 6))
    expected = torch_conv_grads(grad, x, w, padding=1)
    for name in ("direct", "fft"):
        assert_grads_match(npconv.conv_backward(grad, x, w, padding=1, algo=name), expected, grad, w)
    with pytest.raises(UnsupportedAlgorithmError, match="'winograd'.*3x3 or 2x2 kernel, got \\(6, 6\\)"):
        npconv.conv_backward(grad, x, w, padding=1, algo="winograd", needs=("weight",))  # a 6x6 correlation


@pytest.mark.parametrize("needs", [("input",), ("weight",)])
def test_conv_gradients_within_workspace_cap(rng, workspace_limit, needs):
    """Under a 256 KiB cap a gradient needs its result, copies of x and grad_output (the correlation's
    swapped layouts) and the cap; the uncapped column matrices (2.25x the input) would not fit."""
    x = rng.standard_normal((2, 16, 128, 128), dtype=np.float32)
    w = rng.standard_normal((16, 16, 3, 3), dtype=np.float32)
    grad = rng.standard_normal((2, 16, 64, 64), dtype=np.float32)
    workspace_limit(2**18)
    npconv.conv_backward(grad, x, w, padding=1, stride=2, needs=needs)  # warm up: compiles this path's kernels
    tracemalloc.start()
    try:
        npconv.conv_backward(grad, x, w, padding=1, stride=2, needs=needs)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak <= 2**18 + x.nbytes + grad.nbytes + 2**19


@settings(max_examples=40, deadline=None)
@given(
    rank=st.integers(1, 3),
    data=st.data(),
)
def test_conv_hypothesis(rank, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    groups = data.draw(st.integers(1, 3))
    cin, cout = groups * data.draw(st.integers(1, 2)), groups * data.draw(st.integers(1, 3))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(rank))
    size = tuple(data.draw(st.integers(d * (k - 1) + 1, 8)) for k, d in zip(kernel, dilation))
    mode = data.draw(st.sampled_from(PADDING_MODES))
    limit = {"reflect": min(size) - 1, "circular": min(size)}.get(mode, 3)
    padding = data.draw(st.one_of(
        st.sampled_from(["valid", "same", "same_lower"]),
        st.tuples(*(st.tuples(st.integers(0, limit), st.integers(0, limit)) for _ in range(rank))),
    ))
    check_conv(rng, (data.draw(st.integers(1, 2)), cin, *size), (cout, cin // groups, *kernel),
               bias=data.draw(st.booleans()), stride=stride, dilation=dilation, padding=padding, groups=groups,
               padding_mode=mode)


def assert_finite_differences(forward, arrays, grad, grads, rng, eps=1e-6):
    """``<grad, forward(a + eps*d) - forward(a - eps*d)> / 2eps == sum <grads, d>`` for random directions ``d``."""
    directions = [rng.standard_normal(np.shape(a)) for a in arrays]
    plus = np.vdot(grad, forward(*(a + eps * d for a, d in zip(arrays, directions))))
    minus = np.vdot(grad, forward(*(a - eps * d for a, d in zip(arrays, directions))))
    expected = sum(np.vdot(g, d) for g, d in zip(grads, directions))
    np.testing.assert_allclose((plus - minus) / (2 * eps), expected, rtol=1e-6)


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv_finite_differences(rng, padding_mode):
    x, w, b = rng.standard_normal((2, 2, 5, 4)), rng.standard_normal((4, 1, 2, 3)), rng.standard_normal(4)
    params = dict(stride=(2, 1), dilation=(1, 2), padding=((2, 1), (1, 2)), groups=2, padding_mode=padding_mode)
    grad = rng.standard_normal(npconv.conv(x, w, b, **params).shape)
    assert_finite_differences(lambda *a: npconv.conv(*a, **params), (x, w, b), grad,
                              npconv.conv_backward(grad, x, w, **params), rng)


def test_transpose_finite_differences(rng):
    x, w, b = rng.standard_normal((2, 2, 3, 4)), rng.standard_normal((2, 3, 3, 2)), rng.standard_normal(6)
    params = dict(stride=(2, 3), dilation=(1, 2), padding=((2, 1), (0, 1)), output_padding=(1, 2), groups=2)
    grad = rng.standard_normal(npconv.conv_transpose(x, w, b, **params).shape)
    assert_finite_differences(lambda *a: npconv.conv_transpose(*a, **params), (x, w, b), grad,
                              npconv.conv_transpose_backward(grad, x, w, **params), rng)


@pytest.mark.parametrize("mode", ["nearest", "bilinear", "bicubic"])
def test_interpolate_finite_differences(rng, mode):
    x = rng.standard_normal((2, 3, 4, 5))
    grad = rng.standard_normal((2, 3, 7, 3))
    assert_finite_differences(lambda a: npconv.interpolate(a, size=(7, 3), mode=mode), (x,), grad,
                              (npconv.interpolate_backward(grad, x.shape, size=(7, 3), mode=mode),), rng)


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_conv_rank4_adjoint_identity(rng, padding_mode):
    """Beyond torch's ranks: conv is linear in x and in w, so <conv(x, w), g> = <x, grad_input> = <w, grad_weight>."""
    x, w = rng.standard_normal((2, 2, 4, 3, 4, 3)), rng.standard_normal((4, 1, 2, 2, 1, 2))
    params = dict(stride=(2, 1, 1, 2), padding=((1, 0), (1, 1), (0, 1), (1, 1)), dilation=(1, 2, 1, 1), groups=2,
                  padding_mode=padding_mode)
    out = npconv.conv(x, w, **params)
    grad = rng.standard_normal(out.shape)
    grad_input, grad_weight, grad_bias = npconv.conv_backward(grad, x, w, **params)
    np.testing.assert_allclose([np.vdot(x, grad_input), np.vdot(w, grad_weight)], [np.vdot(out, grad)] * 2, rtol=1e-12)
    np.testing.assert_allclose(grad_bias, grad.sum(axis=(0, 2, 3, 4, 5)), rtol=1e-12)


def test_conv_views_accepted(rng):
    """Non-contiguous x, weight and grad_output: same gradients as their contiguous copies."""
    x = rng.standard_normal((2, 6, 10, 9))[:, ::2, ::-1]  # (2, 3, 10, 9), strided and reversed
    w = rng.standard_normal((3, 4, 3, 3)).swapaxes(0, 1)  # (4, 3, 3, 3), transposed
    grad = rng.standard_normal((2, 4, 7, 8)).transpose(0, 1, 3, 2)[:, :, ::2]  # (2, 4, 4, 7)
    actual = npconv.conv_backward(grad, x, w, stride=(2, 1))
    assert_grads_match(actual, torch_conv_grads(grad, x, w, stride=(2, 1)), grad, w)


# ---------------------------------------------------------------------------------------------
# conv_transpose_backward against torch autograd


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_transpose_kernel_and_stride(rng, rank, kernel, stride):
    check_transpose(rng, (2, 4, *SIZES[rank][:rank]), (4, 3, *(kernel,) * rank), stride=stride,
                    padding=min(1, kernel - 1))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("stride, dilation, output_padding", [(1, 2, 1), (2, 2, 1), (2, 3, 2), (3, 2, 2), (2, 4, 3)])
def test_transpose_dilation_and_output_padding(rng, rank, stride, dilation, output_padding):
    """output_padding >= stride (allowed when below the dilation) reaches past the input's last stride."""
    check_transpose(rng, (2, 3, *SIZES[rank]), (3, 2, *(3,) * rank), stride=stride, dilation=dilation, padding=1,
                    output_padding=output_padding)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_transpose_asymmetric_padding(rng, rank):
    check_transpose(rng, (2, 3, *SIZES[rank]), (3, 2, *(3, 4, 2)[:rank]), stride=(2, 3, 1)[:rank],
                    padding=((2, 0), (1, 3), (0, 1))[:rank], output_padding=(1, 0, 0)[:rank])


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize(
    "cin, cout_per_group, groups", [(4, 1, 4), (4, 2, 4), (6, 3, 3), (6, 1, 2), (4, 3, 2)],
    ids=["depthwise", "depthwise-x2", "cin6-cout9-g3", "cin6-cout2-g2", "cin4-cout6-g2"],
)
@pytest.mark.parametrize("bias", [True, False])
def test_transpose_groups(rng, rank, cin, cout_per_group, groups, bias):
    check_transpose(rng, (2, cin, *SIZES[rank]), (cin, cout_per_group, *(3,) * rank), bias=bias, groups=groups,
                    stride=2, padding=1, output_padding=1)


@pytest.mark.parametrize("needs", [("input",), ("weight",), ("bias",), ()])
def test_transpose_needs(rng, needs):
    check_transpose(rng, (2, 3, 5), (3, 2, 3), needs=needs, stride=2)


def test_transpose_rank4_adjoint_identity(rng):
    x, w = rng.standard_normal((2, 2, 3, 2, 3, 2)), rng.standard_normal((2, 3, 2, 2, 1, 3))
    params = dict(stride=(2, 1, 3, 2), padding=((1, 0), (0, 1), (0, 0), (1, 1)), dilation=(1, 2, 1, 1),
                  output_padding=(1, 1, 0, 0))
    out = npconv.conv_transpose(x, w, **params)
    grad = rng.standard_normal(out.shape)
    grad_input, grad_weight, _ = npconv.conv_transpose_backward(grad, x, w, **params)
    np.testing.assert_allclose([np.vdot(x, grad_input), np.vdot(w, grad_weight)], [np.vdot(out, grad)] * 2, rtol=1e-12)


def test_transpose_empty_batch(rng):
    w = rng.standard_normal((3, 2, 3, 3))
    grad_input, grad_weight, grad_bias = npconv.conv_transpose_backward(np.zeros((0, 2, 9, 9)), np.zeros((0, 3, 4, 4)),
                                                                        w, stride=2)
    assert grad_input.shape == (0, 3, 4, 4)
    np.testing.assert_array_equal(grad_weight, np.zeros(w.shape))
    np.testing.assert_array_equal(grad_bias, np.zeros(2))


@settings(max_examples=40, deadline=None)
@given(rank=st.integers(1, 3), data=st.data())
def test_transpose_hypothesis(rank, data):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    groups = data.draw(st.integers(1, 3))
    kernel = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(rank))
    output_padding = tuple(data.draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    size = tuple(data.draw(st.integers(1, 5)) for _ in range(rank))
    full = [(i - 1) * s + d * (k - 1) + 1 for i, k, s, d in zip(size, kernel, stride, dilation)]
    padding = tuple(data.draw(st.tuples(st.integers(0, (f - 1) // 2), st.integers(0, (f - 1) // 2))) for f in full)
    cin = groups * data.draw(st.integers(1, 2))
    check_transpose(rng, (data.draw(st.integers(1, 2)), cin, *size), (cin, data.draw(st.integers(1, 3)), *kernel),
                    bias=data.draw(st.booleans()), stride=stride, dilation=dilation, padding=padding,
                    output_padding=output_padding, groups=groups)


# ---------------------------------------------------------------------------------------------
# interpolate_backward against torch autograd

INTERPOLATE_CASES = [("nearest", 1), ("nearest", 2), ("nearest", 3), ("nearest-exact", 1), ("nearest-exact", 2),
                     ("nearest-exact", 3), ("linear", 1), ("bilinear", 2), ("bicubic", 2), ("trilinear", 3)]


def check_interpolate(rng, x_shape, dtype=np.float64, **kwargs):
    """The adjoint identity ``<interpolate(x), g> == <x, interpolate_backward(g)>``, and torch autograd's
    gradient wherever torch's backward is itself the adjoint of its forward.

    It is not for some scale factors that keep the size (``scale_factor=1.1`` on 5 for 1-d and
    3-d nearest, or bicubic): torch's forward samples with the scale, its backward without.
    """
    x = rng.standard_normal(x_shape)
    xt = torch.tensor(x, requires_grad=True)
    out = F.interpolate(xt, **kwargs)
    grad = rng.standard_normal(tuple(out.shape)).astype(dtype)
    before = grad.copy()
    (expected,) = _grads(out, grad, [xt])
    actual = npconv.interpolate_backward(grad, x_shape, **kwargs)
    assert actual.shape == x_shape and actual.dtype == dtype
    tol = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5}[np.dtype(dtype)]
    forward = np.vdot(npconv.interpolate(x, **kwargs), grad)
    np.testing.assert_allclose(np.vdot(x, actual), forward, rtol=tol, atol=tol * np.abs(grad).sum())
    if np.isclose(np.vdot(x, expected), np.vdot(out.detach().numpy(), grad), rtol=1e-9, atol=1e-9):
        np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol)
    else:  # only torch's known case
        assert "scale_factor" in kwargs and tuple(out.shape) == x_shape, kwargs
    np.testing.assert_array_equal(grad, before)


@pytest.mark.parametrize("mode, rank", INTERPOLATE_CASES)
@pytest.mark.parametrize("resize", [{"size": 1}, {"size": 4}, {"size": 11}, {"scale_factor": 0.6},
                                    {"scale_factor": 2.0}, {"scale_factor": 1.5}, {"scale_factor": 1.1}],
                         ids=["size1", "size4", "size11", "x0.6", "x2", "x1.5", "x1.1"])
def test_interpolate_backward(rng, mode, rank, resize):
    aligns = (None,) if mode.startswith("nearest") else (None, False, True)
    for align_corners in aligns:
        check_interpolate(rng, (2, 3, *(5, 4, 3)[:rank]), mode=mode, align_corners=align_corners, **resize)


@pytest.mark.parametrize("mode, rank", INTERPOLATE_CASES)
def test_interpolate_backward_float32_per_dim(rng, mode, rank):
    check_interpolate(rng, (1, 2, *(4, 6, 5)[:rank]), dtype=np.float32, size=(7, 3, 10)[:rank], mode=mode)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(INTERPOLATE_CASES), st.integers(0, 2**32 - 1), st.data())
def test_interpolate_backward_hypothesis(case, seed, data):
    mode, rank = case
    in_size = tuple(data.draw(st.integers(1, 7)) for _ in range(rank))
    size = tuple(data.draw(st.integers(1, 15)) for _ in range(rank))
    align_corners = None if mode.startswith("nearest") else data.draw(st.sampled_from((None, False, True)))
    check_interpolate(np.random.default_rng(seed), (1, 2, *in_size), size=size, mode=mode, align_corners=align_corners)


# ---------------------------------------------------------------------------------------------
# Errors


def test_conv_grad_output_shape_rejected(rng):
    x, w = rng.standard_normal((2, 3, 8, 8)), rng.standard_normal((4, 3, 3, 3))
    with pytest.raises(ValueError, match=r"conv_backward: grad_output has shape \(2, 4, 5, 5\) but the forward's "
                                         r"output is \(2, 4, 6, 6\)"):
        npconv.conv_backward(np.zeros((2, 4, 5, 5)), x, w)


def test_transpose_grad_output_shape_rejected(rng):
    x, w = rng.standard_normal((2, 3, 4)), rng.standard_normal((3, 2, 3))
    with pytest.raises(ValueError, match=r"conv_transpose_backward: grad_output has shape \(2, 2, 9\) but the "
                                         r"forward's output is \(2, 2, 12\)"):
        npconv.conv_transpose_backward(np.zeros((2, 2, 9)), x, w, stride=3, padding=1, output_padding=2)


@pytest.mark.parametrize("backward", [npconv.conv_backward, npconv.conv_transpose_backward])
def test_unknown_needs_rejected(rng, backward):
    x, w = rng.standard_normal((1, 2, 4)), rng.standard_normal((2, 2, 1))
    with pytest.raises(ValueError, match=r"needs may hold 'input', 'weight', 'bias', got unknown \['grad'\]"):
        backward(np.zeros((1, 2, 4)), x, w, needs=("input", "grad"))


def test_forward_validation_applies(rng):
    x, w = rng.standard_normal((1, 3, 4)), rng.standard_normal((2, 3, 3))
    with pytest.raises(ValueError, match="conv_backward: in_channels=3 is not divisible by groups=2"):
        npconv.conv_backward(np.zeros((1, 2, 2)), x, w, groups=2)
    with pytest.raises(TypeError, match="conv_backward: grad_output has dtype int64"):
        npconv.conv_backward(np.zeros((1, 2, 2), dtype=np.int64), x, w)


def test_interpolate_grad_output_shape_rejected():
    with pytest.raises(ValueError, match=r"interpolate_backward: grad_output has shape \(1, 2, 8, 8\) but the "
                                         r"forward's output is \(1, 2, 10, 8\)"):
        npconv.interpolate_backward(np.zeros((1, 2, 8, 8)), (1, 2, 5, 4), scale_factor=2, mode="bilinear")


def test_interpolate_backward_validates_like_forward():
    with pytest.raises(ValueError, match="interpolate_backward: mode 'bilinear' is for 2-d input"):
        npconv.interpolate_backward(np.zeros((1, 2, 8)), (1, 2, 4), size=8, mode="bilinear")
    with pytest.raises(TypeError, match="interpolate_backward: input_shape must be a tuple of ints, got 4"):
        npconv.interpolate_backward(np.zeros((1, 2, 8)), 4, size=8)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # NumPy's, on inf * 0
@pytest.mark.parametrize("x_shape, w_shape, where, params", [
    ((2, 8, 8, 8), (8, 1, 3, 3), "x", dict(groups=8)),  # depthwise, no padding: the dropped columns
    ((2, 8, 8, 8), (8, 2, 3, 3), "x", dict(groups=4, stride=2, padding=1)),  # grouped, stride phases
    ((2, 8, 8, 8), (8, 1, 3, 3), "grad", dict(groups=8, padding=1)),  # the same-size path skips the padding
    ((5, 3, 13, 1, 1), (6, 1, 3, 4, 4), "grad", dict(groups=3, padding="same", dilation=(2, 1, 2))),  # all padding
])
def test_weight_gradient_of_non_finite_values_matches_torch(x_shape, w_shape, where, params):
    """An infinity in the input or the output gradient, where auto runs the forward on the direct
    kernels: grad_weight is NaN, infinite and finite where torch's is.  In the last case every
    output's offsets read padding only along the last dim."""
    x, w = np.ones(x_shape), np.ones(w_shape)
    geom, _ = conv_geometry("test", x_shape, w_shape, None, **{"stride": 1, "dilation": 1, "padding": 0, **params},
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    assert select("test", geom, "auto").name in ("depthwise", "grouped")
    grad = np.ones(geom.out_shape)
    (x if where == "x" else grad)[(0, 0, 3 if where == "x" else 0, *(-1,) * (len(x_shape) - 3))] = np.inf
    _, grad_weight, _ = npconv.conv_backward(grad, x, w, needs="weight", **params)
    expected = torch_conv_grads(grad, x, w, **params)[1]
    assert not np.isfinite(expected).all() and np.isfinite(expected).any()
    np.testing.assert_allclose(grad_weight, expected, rtol=1e-12)


def test_grouped_forward_on_many_input_channels_leaves_its_backward_to_the_general_paths(rng, monkeypatch):
    """Where auto runs the forward on the direct kernel in wide blocks (past 64 input channels
    per group), the gradients come from conv_transpose and im2col, not the direct kernel's own
    backward (3.3x and 1.6-2x slower there), and match torch's."""
    x, w = rng.standard_normal((1, 96, 12, 11)), rng.standard_normal((80, 96, 3, 3))
    grad = rng.standard_normal(torch_conv_out(x, w, stride=2, padding=1))
    monkeypatch.setattr(npconv.backward, "select", lambda op, geom, algo: REGISTRY["grouped"])

    def refuse(*args):
        raise AssertionError("the direct kernel's own backward ran")

    monkeypatch.setattr(npconv.backward, "depthwise_input_gradient", refuse)
    monkeypatch.setattr(REGISTRY["grouped"], "weight_gradient", refuse)
    grad_input, grad_weight, _ = npconv.conv_backward(grad, x, w, stride=2, padding=1, needs=("input", "weight"))
    expected_input, expected_weight, _ = torch_conv_grads(grad, x, w, stride=2, padding=1)
    np.testing.assert_allclose(grad_input, expected_input, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(grad_weight, expected_weight, rtol=1e-10, atol=1e-10)
