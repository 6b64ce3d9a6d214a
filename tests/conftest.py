"""Shared test helpers: a PyTorch oracle, tolerances, and fixtures.

The oracle resolves npconv-style padding by itself (independently of npconv's code),
pads explicitly with ``torch.nn.functional.pad`` and runs an unpadded
``torch.nn.functional.conv{1,2,3}d`` in float64.
"""

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import npconv
from npconv.errors import UnsupportedAlgorithmError

torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else 2)

SEED = 20240611
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")
_TORCH_PAD_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "replicate", "circular": "circular"}
_TORCH_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def per_dim(value, rank):
    """An int or a sequence of ``rank`` ints, as a tuple."""
    return tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank


def resolve_padding(padding, in_size, kernel, stride=1, dilation=1):
    """npconv-style padding spec -> one ``(lo, hi)`` pair per spatial dim."""
    rank = len(kernel)
    stride, dilation = per_dim(stride, rank), per_dim(dilation, rank)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * rank
        assert padding in ("same", "same_lower"), padding
        pairs = []
        for i, k, s, d in zip(in_size, kernel, stride, dilation):
            out = math.ceil(i / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - i, 0)
            lo, hi = total // 2, total - total // 2
            pairs.append((lo, hi) if padding == "same" else (hi, lo))
        return tuple(pairs)
    if isinstance(padding, (tuple, list)) and padding and isinstance(padding[0], (tuple, list)):
        return tuple((int(lo), int(hi)) for lo, hi in padding)
    return tuple((p, p) for p in per_dim(padding, rank))


def out_size(in_size, kernel, stride=1, padding=0, dilation=1):
    """The expected output spatial size, from the documented formula."""
    rank = len(kernel)
    stride, dilation = per_dim(stride, rank), per_dim(dilation, rank)
    pairs = resolve_padding(padding, in_size, kernel, stride, dilation)
    return tuple(
        (i + lo + hi - d * (k - 1) - 1) // s + 1
        for i, k, s, d, (lo, hi) in zip(in_size, kernel, stride, dilation, pairs)
    )


def torch_conv(x, w, b=None, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros"):
    """The PyTorch convolution of numpy ``x`` and ``w`` (and ``b``), computed in float64."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    pairs = resolve_padding(padding, x.shape[2:], w.shape[2:], stride, dilation)
    xt = torch.from_numpy(np.ascontiguousarray(x))
    # F.pad takes (lo, hi) pairs starting from the LAST dim.
    flat = [p for pair in reversed(pairs) for p in pair]
    if any(flat):
        xt = F.pad(xt, flat, mode=_TORCH_PAD_MODE[padding_mode])
    bt = None if b is None else torch.from_numpy(np.asarray(b, dtype=np.float64).copy())
    out = _TORCH_CONV[rank](
        xt, torch.from_numpy(np.ascontiguousarray(w)), bt,
        stride=per_dim(stride, rank), padding=0, dilation=per_dim(dilation, rank), groups=groups,
    )
    return out.numpy()


def tolerance(dtype, weight_shape):
    """``assert_allclose`` tolerances for a result of ``dtype``: atol grows as sqrt(Cg * prod(kernel))."""
    scale = math.sqrt(math.prod(weight_shape[1:]))  # Cg * prod(kernel) terms per output
    dtype = np.dtype(dtype)
    if dtype == np.float16:
        return {"rtol": 1e-3, "atol": 1e-3 * scale}
    if dtype == np.float32:
        return {"rtol": 1e-4, "atol": 1e-5 * scale}
    assert dtype == np.float64, dtype
    return {"rtol": 1e-10, "atol": 1e-11 * scale}


def assert_matches_torch(actual, x, w, b=None, **params):
    """``actual`` has the oracle's shape and values, within the tolerance of its own dtype."""
    expected = torch_conv(x, w, b, **params)
    assert isinstance(actual, np.ndarray)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual.astype(np.float64), expected, **tolerance(actual.dtype, np.shape(w)))


def _must_support(name, x, w, params):
    """Whether algorithm ``name`` is documented to support this geometry, so a wrongful
    UnsupportedAlgorithmError is caught.
    """
    rank = np.ndim(w) - 2
    kernel = np.shape(w)[2:]
    groups = params.get("groups", 1)
    winograd = (rank == 2 and tuple(kernel) == (3, 3) and per_dim(params.get("stride", 1), 2) == (1, 1)
                and per_dim(params.get("dilation", 1), 2) == (1, 1))
    padding = params.get("padding", 0)
    unpadded = all(lo == hi == 0 for lo, hi in resolve_padding(padding, np.shape(x)[2:], kernel,
                                                               params.get("stride", 1), params.get("dilation", 1)))
    return {
        "direct": True,
        "im2col": rank <= 3,
        "implicit": rank <= 2 and groups == 1,
        "pointwise": all(k == 1 for k in kernel) and unpadded,
        "depthwise": rank <= 3 and groups == np.shape(x)[1],
        "grouped": rank <= 3 and np.shape(w)[1] <= 64,
        **dict.fromkeys(("winograd", "winograd2", "winograd4", "winograd6"), winograd),
        "fft": True,
    }.get(name, False)


def run_every_algorithm(x, w, b=None, conv=npconv.conv, **params):
    """``{algo: result}`` of ``conv`` for "auto" and every registered algorithm that accepts the geometry.

    "auto" must always work; an algorithm may decline only with UnsupportedAlgorithmError,
    and the known ones only where they are documented to.
    """
    results = {"auto": conv(x, w, b, algo="auto", **params)}
    for name in npconv.algorithms():
        try:
            results[name] = conv(x, w, b, algo=name, **params)
        except UnsupportedAlgorithmError as exc:
            assert not _must_support(name, x, w, params), f"{name} wrongly declined: {exc}"
            assert repr(name) in str(exc)
    return results


def check_every_algorithm(x, w, b=None, conv=npconv.conv, **params):
    """Every algorithm (and auto) matches PyTorch; returns the results."""
    results = run_every_algorithm(x, w, b, conv, **params)
    for name, result in results.items():
        try:
            assert_matches_torch(result, x, w, b, **params)
        except AssertionError as exc:
            raise AssertionError(f"algo={name!r}: {exc}") from None
    return results


def random_conv_inputs(rng, x_shape, w_shape, bias=True, dtype=np.float64):
    """Standard-normal ``x``, ``w`` and (optional) ``b`` of ``dtype``."""
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[0]).astype(dtype) if bias else None
    return x, w, b


@pytest.fixture
def rng():
    return np.random.default_rng(SEED)


@pytest.fixture
def workspace_limit():
    """``set_workspace_limit``, with the old cap restored after the test."""
    old = npconv.get_workspace_limit()
    yield npconv.set_workspace_limit
    npconv.set_workspace_limit(old)
