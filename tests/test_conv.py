"""Differential tests of ``npconv.conv`` against PyTorch, for "auto" and every registered algorithm."""

import math
import tracemalloc

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv
from npconv.algorithms import REGISTRY, im2col
from npconv.geometry import conv_geometry

from .conftest import (
    PADDING_MODES,
    assert_matches_torch,
    check_every_algorithm,
    out_size,
    random_conv_inputs,
    resolve_padding,
    run_every_algorithm,
    tolerance,
    torch_conv,
)

# Odd, uneven spatial sizes and mixed even/odd kernels, per rank.
SIZES = {1: (13,), 2: (9, 7), 3: (7, 5, 6)}
KERNELS = {1: (3,), 2: (3, 2), 3: (3, 2, 3)}
RANKS = (1, 2, 3)


def shapes(rank, batch=2, cin=3, cout=4, groups=1, size=None, kernel=None):
    """``(x_shape, w_shape)`` of a convolution."""
    size = SIZES[rank] if size is None else size
    kernel = KERNELS[rank] if kernel is None else kernel
    return (batch, cin, *size), (cout, cin // groups, *kernel)


# ---------------------------------------------------------------------------------------------
# Geometry sweeps


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("stride", [1, 2, "per_dim"])
@pytest.mark.parametrize("dilation", [1, 2, "per_dim"])
def test_stride_and_dilation(rng, rank, stride, dilation):
    stride = (2, 1, 3)[:rank] if stride == "per_dim" else stride
    dilation = (1, 2, 2)[-rank:] if dilation == "per_dim" else dilation
    x, w, b = random_conv_inputs(rng, *shapes(rank))
    check_every_algorithm(x, w, b, stride=stride, dilation=dilation, padding=1)


def _padding_cases():
    explicit = {
        "int": 2,
        "per_dim": (2, 0, 1),
        "pairs": ((0, 2), (3, 1), (1, 0)),
        "pairs-as-lists": [[0, 2], [3, 1], [1, 0]],
        "valid": "valid",
    }
    for rank in RANKS:
        for name, padding in explicit.items():
            padding = padding[:rank] if isinstance(padding, (tuple, list)) else padding
            yield pytest.param(rank, padding, 1, None, 1, id=f"{rank}d-{name}")
        for form in ("same", "same_lower"):
            for stride in (1, 2, 3):
                for k in (2, 3, 4):  # even and odd kernels
                    yield pytest.param(rank, form, stride, (k,) * rank, 1, id=f"{rank}d-{form}-s{stride}-k{k}")
            yield pytest.param(rank, form, 2, (3,) * rank, 2, id=f"{rank}d-{form}-s2-k3-d2")


@pytest.mark.parametrize("rank, padding, stride, kernel, dilation", list(_padding_cases()))
def test_padding_forms(rng, rank, padding, stride, kernel, dilation):
    x, w, b = random_conv_inputs(rng, *shapes(rank, kernel=kernel))
    results = check_every_algorithm(x, w, b, stride=stride, padding=padding, dilation=dilation)
    if padding in ("same", "same_lower"):
        expected = tuple(math.ceil(i / stride) for i in x.shape[2:])
        assert all(r.shape[2:] == expected for r in results.values())


def _mode_cases():
    forms = {
        "int": (1, 1),
        "pairs": (((2, 0), (0, 1), (1, 2)), 1),
        "same-s2-k4": ("same", 2),
        "same_lower-s1-k2": ("same_lower", 1),
    }
    for mode in PADDING_MODES:
        for rank in RANKS:
            for name, (padding, stride) in forms.items():
                if isinstance(padding, tuple):
                    padding = padding[:rank]
                kernel = {"same-s2-k4": (4,) * rank, "same_lower-s1-k2": (2,) * rank}.get(name)
                yield pytest.param(mode, rank, None, kernel, padding, stride, id=f"{mode}-{rank}d-{name}")
            # The largest pad each mode allows: reflect < size, circular <= size.
            size = (4, 3, 5)[:rank]
            pad = tuple(i - 1 if mode == "reflect" else i for i in size)
            yield pytest.param(mode, rank, size, (3,) * rank, pad, 1, id=f"{mode}-{rank}d-largest-pad")


@pytest.mark.parametrize("mode, rank, size, kernel, padding, stride", list(_mode_cases()))
def test_padding_modes(rng, mode, rank, size, kernel, padding, stride):
    x, w, b = random_conv_inputs(rng, *shapes(rank, size=size, kernel=kernel))
    check_every_algorithm(x, w, b, stride=stride, padding=padding, padding_mode=mode)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
@pytest.mark.parametrize(
    "cin, cout, groups",
    [(1, 1, 1), (3, 5, 1), (4, 4, 4), (4, 8, 4), (6, 9, 3), (6, 4, 2)],
    ids=["1ch", "dense", "depthwise", "multiplier2", "cin6-cout9-g3", "cin6-cout4-g2"],
)
def test_groups(rng, rank, bias, cin, cout, groups):
    x, w, b = random_conv_inputs(rng, *shapes(rank, cin=cin, cout=cout, groups=groups), bias=bias)
    check_every_algorithm(x, w, b, groups=groups, padding=1, stride=(1, 2, 1)[:rank])


@pytest.mark.parametrize(
    "x_shape, w_shape, params",
    [
        pytest.param((1, 3, 9, 7), (4, 3, 3, 3), {}, id="batch1"),
        pytest.param((3, 3, 9, 7), (4, 3, 3, 3), {"padding": 1}, id="batch3"),
        pytest.param((2, 3, 1), (2, 3, 1), {}, id="1d-size1-k1"),
        pytest.param((2, 3, 1), (2, 3, 3), {"padding": 1}, id="1d-size1-k3-pad1"),
        pytest.param((2, 3, 1, 7), (4, 3, 1, 3), {"stride": 2}, id="2d-size1-dim"),
        pytest.param((2, 3, 1, 1, 5), (4, 3, 1, 1, 2), {}, id="3d-two-size1-dims"),
        pytest.param((2, 3, 1, 1, 1), (4, 3, 3, 3, 3), {"padding": "same"}, id="3d-all-size1-same"),
        pytest.param((2, 3, 9, 7), (4, 3, 1, 1), {}, id="2d-1x1"),
        pytest.param((2, 3, 9, 7), (4, 3, 1, 1), {"stride": 2}, id="2d-1x1-stride2"),
        pytest.param((2, 4, 5, 6, 7), (4, 1, 1, 1, 1), {"groups": 4}, id="3d-1x1x1-depthwise"),
        pytest.param((2, 3, 5, 4), (4, 3, 5, 4), {}, id="kernel-equals-input"),
        pytest.param((2, 3, 5, 4), (4, 3, 3, 3), {"stride": 9}, id="stride-larger-than-input"),
        pytest.param((2, 3, 5), (2, 3, 2), {"padding": ((4, 6),)}, id="pad-larger-than-input"),
    ],
)
def test_small_and_degenerate_shapes(rng, x_shape, w_shape, params):
    x, w, b = random_conv_inputs(rng, x_shape, w_shape)
    check_every_algorithm(x, w, b, **params)


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("mode", PADDING_MODES)
def test_batch_zero_gives_empty_output_of_right_shape(rng, rank, mode):
    x_shape, w_shape = shapes(rank, batch=0)
    x, w, b = random_conv_inputs(rng, x_shape, w_shape)
    expected = (0, w_shape[0], *out_size(x_shape[2:], w_shape[2:], stride=2, padding=1))
    for name, result in run_every_algorithm(x, w, b, stride=2, padding=1, padding_mode=mode).items():
        assert result.shape == expected, name
        assert result.dtype == np.float64, name


# ---------------------------------------------------------------------------------------------
# dtypes, memory layouts, inputs


@pytest.mark.parametrize(
    "x_dtype, w_dtype, b_dtype, expected",
    [
        ("float32", "float32", None, "float32"),
        ("float32", "float32", "float32", "float32"),
        ("float64", "float64", "float64", "float64"),
        ("float16", "float16", None, "float16"),
        ("float16", "float16", "float16", "float16"),
        ("float32", "float64", None, "float64"),
        ("float64", "float32", "float32", "float64"),
        ("float32", "float32", "float64", "float64"),
        ("float16", "float32", None, "float32"),
        ("float16", "float16", "float32", "float32"),
        ("float16", "float64", "float16", "float64"),
        (">f8", "<f4", None, "float64"),  # byte-swapped input: native result
        (">f4", ">f4", ">f4", "float32"),
    ],
)
@pytest.mark.parametrize("rank", RANKS)
def test_dtypes(rng, rank, x_dtype, w_dtype, b_dtype, expected):
    x_shape, w_shape = shapes(rank, cin=6, cout=4, groups=2)
    x = rng.standard_normal(x_shape).astype(x_dtype)
    w = rng.standard_normal(w_shape).astype(w_dtype)
    b = None if b_dtype is None else rng.standard_normal(w_shape[0]).astype(b_dtype)
    # The oracle computes in float64 from the (already rounded) inputs; the tolerance
    # follows the result's dtype (float16 results: loose, for the final rounding).
    results = check_every_algorithm(x, w, b, groups=2, padding="same", stride=2)
    for name, result in results.items():
        assert result.dtype == np.dtype(expected), name


def _layouts(rng, x_shape, w_shape, dtype):
    """``(x, w, b)`` of ``dtype`` in a non-contiguous memory layout, by layout name."""
    rank = len(x_shape) - 2
    rev = tuple(reversed(range(2, 2 + rank)))  # spatial axes, reversed
    n, c, *space = x_shape
    o, cg, *kernel = w_shape

    def normal(shape):
        return rng.standard_normal(shape).astype(dtype)

    every_other = (slice(None, None, 2),) * rank
    return {
        # Transposed views: stored as (C, N, *space reversed) and (Cg, C_out, *kernel reversed).
        "transposed": lambda: (
            normal((c, n, *space[::-1])).transpose(1, 0, *rev),  # (N, C, *space)
            normal((cg, o, *kernel[::-1])).transpose(1, 0, *rev),  # (C_out, Cg, *kernel)
            normal(o),
        ),
        "strided": lambda: (
            normal((2 * n, c + 1, *(2 * s for s in space)))[(slice(None, None, 2), slice(1, None), *every_other)],
            normal((o, 2 * cg, *kernel))[:, ::2],
            normal(2 * o)[::2],
        ),
        "fortran": lambda: (np.asfortranarray(normal(x_shape)), np.asfortranarray(normal(w_shape)), normal(o)),
        "negative-strides": lambda: (
            normal(x_shape)[:, ::-1, ..., ::-1],
            normal(w_shape)[::-1, :, ::-1],
            normal(o)[::-1],
        ),
    }


@pytest.mark.parametrize("rank", RANKS)
@pytest.mark.parametrize("layout", ["transposed", "strided", "fortran", "negative-strides"])
@pytest.mark.parametrize("mode", PADDING_MODES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_noncontiguous_inputs_are_read_correctly_and_never_modified(rng, rank, layout, mode, dtype):
    x_shape, w_shape = shapes(rank, cin=4, cout=6, groups=2)
    x, w, b = _layouts(rng, x_shape, w_shape, dtype)[layout]()
    assert x.shape == x_shape and w.shape == w_shape and x.dtype == w.dtype == b.dtype == dtype
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    copies = [a.copy() for a in (x, w, b)]
    results = check_every_algorithm(x, w, b, groups=2, padding=((1, 2), (2, 0), (0, 1))[:rank], padding_mode=mode)
    for original, copy in zip((x, w, b), copies):
        np.testing.assert_array_equal(original, copy)
    for result in results.values():
        assert not any(np.shares_memory(result, a) for a in (x, w, b))


@pytest.mark.parametrize("mode", PADDING_MODES)
def test_contiguous_inputs_are_never_modified_nor_aliased(rng, mode):
    x, w, b = random_conv_inputs(rng, *shapes(2, size=(3, 3), kernel=(1, 1)))  # 1x1: no padding or copy needed
    copies = [a.copy() for a in (x, w, b)]
    for params in ({}, {"padding": 1, "padding_mode": mode}):
        for result in run_every_algorithm(x, w, b, **params).values():
            assert not any(np.shares_memory(result, a) for a in (x, w, b))
            result[...] = np.nan  # writing to the result must not reach the inputs
    for original, copy in zip((x, w, b), copies):
        np.testing.assert_array_equal(original, copy)


def test_read_only_inputs(rng):
    x, w, b = random_conv_inputs(rng, *shapes(2), dtype=np.float32)
    for a in (x, w, b):
        a.setflags(write=False)
    check_every_algorithm(x, w, b, padding=1)


def test_list_input(rng):
    x, w, b = random_conv_inputs(rng, *shapes(1, size=(6,)))
    results = check_every_algorithm(x.tolist(), w.tolist(), b.tolist(), padding=1)
    assert all(r.dtype == np.float64 for r in results.values())


@pytest.mark.parametrize("rank", RANKS)
def test_rank_specific_wrappers(rng, rank):
    wrapper = {1: npconv.conv1d, 2: npconv.conv2d, 3: npconv.conv3d}[rank]
    x, w, b = random_conv_inputs(rng, *shapes(rank))
    check_every_algorithm(x, w, b, conv=wrapper, stride=2, padding="same", dilation=2)


# ---------------------------------------------------------------------------------------------
# More than 3 spatial dims: only the reference handles them


def torch_conv4d(x, w, b, stride, padding, dilation, groups):
    """A 4-d convolution as a sum, over the first kernel dim, of 3-d torch convolutions.

    The first spatial dim's output positions are folded into the batch.
    """
    x, w = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64))
    (s0, *s3), (d0, *d3) = stride, dilation
    flat = [p for pair in reversed(padding) for p in pair]
    x = F.pad(x, flat)  # (N, C, A+, B+, C+, D+) zero padded
    n, c, a = x.shape[:3]
    out_a = (a - d0 * (w.shape[2] - 1) - 1) // s0 + 1
    total = 0
    for i in range(w.shape[2]):
        window = x[:, :, i * d0 : i * d0 + (out_a - 1) * s0 + 1 : s0]  # (N, C, out_a, B+, C+, D+)
        folded = window.transpose(1, 2).reshape(n * out_a, c, *x.shape[3:])  # (N*out_a, C, B+, C+, D+)
        part = F.conv3d(folded, w[:, :, i], stride=s3, dilation=d3, groups=groups)  # (N*out_a, O, ...)
        total = total + part.reshape(n, out_a, *part.shape[1:]).transpose(1, 2)  # (N, O, out_a, ...)
    return (total + torch.from_numpy(b).reshape(-1, 1, 1, 1, 1)).numpy()


@pytest.mark.parametrize(
    "stride, padding, dilation, groups",
    [
        ((1, 1, 1, 1), ((0, 0),) * 4, (1, 1, 1, 1), 1),
        ((2, 1, 2, 1), ((1, 2), (0, 1), (1, 1), (2, 0)), (2, 1, 1, 2), 2),
    ],
)
def test_rank4_direct_and_auto(rng, stride, padding, dilation, groups):
    x, w, b = random_conv_inputs(rng, (2, 4, 5, 4, 5, 4), (4, 4 // groups, 2, 3, 2, 2))
    expected = torch_conv4d(x, w, b, stride, padding, dilation, groups)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    results = run_every_algorithm(x, w, b, **params)
    assert "direct" in results
    for name, result in results.items():
        np.testing.assert_allclose(result, expected, **tolerance(np.float64, w.shape), err_msg=name)


def test_im2col_rejects_rank4_but_auto_works(rng):
    x, w, b = random_conv_inputs(rng, (1, 2, 3, 3, 3, 3), (2, 2, 2, 2, 2, 2))
    with pytest.raises(npconv.UnsupportedAlgorithmError, match="'im2col' cannot compute .* got 4"):
        npconv.conv(x, w, b, algo="im2col")
    expected = torch_conv4d(x, w, b, (1,) * 4, ((1, 0),) * 4, (1,) * 4, 1)
    np.testing.assert_allclose(npconv.conv(x, w, b, padding=((1, 0),) * 4), expected, **tolerance(np.float64, w.shape))


# ---------------------------------------------------------------------------------------------
# Random geometries


@st.composite
def conv_cases(draw):
    rank = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    form = draw(st.sampled_from(["int", "per_dim", "pairs", "valid", "same", "same_lower"]))
    if form in ("valid", "same", "same_lower"):
        padding = form
        lo_hi = [(0, 0)] * rank
    elif form == "int":
        padding = draw(st.integers(0, 3))
        lo_hi = [(padding, padding)] * rank
    elif form == "per_dim":
        padding = tuple(draw(st.integers(0, 3)) for _ in range(rank))
        lo_hi = [(p, p) for p in padding]
    else:
        padding = tuple((draw(st.integers(0, 3)), draw(st.integers(0, 3))) for _ in range(rank))
        lo_hi = list(padding)
    # Explicit pads: the kernel must fit the padded input ("same" always fits).
    size = tuple(draw(st.integers(max(1, sp - lo - hi), 9)) for sp, (lo, hi) in zip(span, lo_hi))
    pairs = resolve_padding(padding, size, kernel, stride, dilation)
    # torch's limits: reflect pads < size, circular pads <= size.
    modes = ["zeros", "replicate"]
    if all(max(p) < i for p, i in zip(pairs, size)):
        modes.append("reflect")
    if all(max(p) <= i for p, i in zip(pairs, size)):
        modes.append("circular")
    params = dict(
        stride=stride if len(set(stride)) > 1 else stride[0],
        padding=padding,
        dilation=dilation,
        groups=groups,
        padding_mode=draw(st.sampled_from(modes)),
    )
    x_shape = (draw(st.integers(0, 3)), cin, *size)
    w_shape = (cout, cin // groups, *kernel)
    return x_shape, w_shape, draw(st.booleans()), draw(st.sampled_from(["float32", "float64"])), params


@settings(max_examples=60, deadline=None)
@given(case=conv_cases(), seed=st.integers(0, 2**32 - 1), limit=st.sampled_from([None, 1, 1024, 10**4]))
def test_random_geometries(case, seed, limit):
    x_shape, w_shape, bias, dtype, params = case
    x, w, b = random_conv_inputs(np.random.default_rng(seed), x_shape, w_shape, bias=bias, dtype=dtype)
    old = npconv.set_workspace_limit(limit) if limit else None  # (not a fixture: hypothesis reruns the body)
    try:
        check_every_algorithm(x, w, b, **params)
    finally:
        if old is not None:
            npconv.set_workspace_limit(old)


# ---------------------------------------------------------------------------------------------
# Workspace cap: im2col chunks its column matrix (others their scratch) and must stay exact

WORKSPACE_GEOMETRIES = {
    "1d": ((5, 3, 23), (4, 3, 3), dict(stride=2, padding=((2, 1),), dilation=2)),
    "2d": ((5, 3, 9, 7), (4, 3, 3, 3), dict(stride=(1, 2), padding=((1, 2), (2, 0)), dilation=(2, 1))),
    "2d-groups-reflect": ((5, 4, 8, 7), (6, 2, 2, 3), dict(padding=1, groups=2, padding_mode="reflect")),
    "3d": ((5, 2, 5, 4, 6), (3, 2, 2, 3, 2), dict(stride=(2, 1, 1), padding="same", dilation=(1, 1, 2))),
    "2d-1x1-strided": ((5, 4, 9, 7), (6, 4, 1, 1), dict(stride=(2, 3))),
    "2d-depthwise": ((5, 4, 8, 7), (8, 1, 3, 2), dict(stride=2, padding=((1, 0), (2, 1)), dilation=(1, 2), groups=4)),
}

# Cap, as a function of the bytes of one column (all rows of one output position) and
# the number of output positions of one image.
WORKSPACE_LIMITS = {
    "1-byte": lambda col, pos: 1,
    "below-one-column": lambda col, pos: col - 1,
    "one-column": lambda col, pos: col,
    "1024-bytes": lambda col, pos: 1024,
    "7-columns": lambda col, pos: 7 * col,  # chunks straddle output rows
    "almost-one-image": lambda col, pos: col * pos - 1,
    "one-image": lambda col, pos: col * pos,
    "two-images": lambda col, pos: 2 * col * pos + col,  # 5 images: chunks of 2, 2, 1
}


def _geometry(x, w, params, dtype):
    """The ConvGeometry npconv builds for these arguments."""
    defaults = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros"}
    geom, _ = conv_geometry("test", x.shape, w.shape, None, dtype=dtype, **{**defaults, **params})
    return geom


@pytest.mark.parametrize("geometry", WORKSPACE_GEOMETRIES)
@pytest.mark.parametrize("limit", WORKSPACE_LIMITS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_exact_under_any_workspace_cap(rng, workspace_limit, geometry, limit, dtype):
    x_shape, w_shape, params = WORKSPACE_GEOMETRIES[geometry]
    x, w, b = random_conv_inputs(rng, x_shape, w_shape, dtype=dtype)
    geom = _geometry(x, w, params, np.dtype(dtype))
    column = geom.in_channels * math.prod(geom.kernel) * np.dtype(dtype).itemsize
    workspace_limit(WORKSPACE_LIMITS[limit](column, math.prod(geom.out_size)))
    assert "im2col" in check_every_algorithm(x, w, b, **params)


@pytest.mark.parametrize("geometry", WORKSPACE_GEOMETRIES)
@pytest.mark.parametrize("limit", ["default", "1-byte", "7-columns", "two-images"])
def test_algorithms_write_every_output_element(rng, workspace_limit, geometry, limit):
    """``Algorithm.run`` must overwrite all of a NaN-poisoned ``out`` (zero padding only)."""
    x_shape, w_shape, params = WORKSPACE_GEOMETRIES[geometry]
    params = {k: v for k, v in params.items() if k != "padding_mode"}
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False)
    geom = _geometry(x, w, params, x.dtype)
    if limit != "default":
        column = geom.in_channels * math.prod(geom.kernel) * x.itemsize
        workspace_limit(WORKSPACE_LIMITS[limit](column, math.prod(geom.out_size)))
    for name, alg in REGISTRY.items():
        if alg.why_unsupported(geom) is not None:
            continue
        out = np.full(geom.out_shape, np.nan)
        alg.run(x, w, geom, out)
        assert not np.isnan(out).any(), name
        np.testing.assert_allclose(out, torch_conv(x, w, **params), **tolerance(np.float64, w.shape), err_msg=name)


@pytest.mark.parametrize("limit", ["one-column", "7-columns", "almost-one-image", "one-image", "two-images"])
def test_im2col_workspace_within_cap_when_one_column_fits(workspace_limit, limit):
    x_shape, w_shape, params = WORKSPACE_GEOMETRIES["2d"]
    geom = _geometry(np.empty(x_shape), np.empty(w_shape), params, np.dtype(np.float32))
    table = 4 * math.prod(geom.kernel) if im2col.fill_kernel(geom) is im2col.gather_columns else 0  # its int32s
    column = geom.in_channels * math.prod(geom.kernel) * 4 + table
    workspace_limit(WORKSPACE_LIMITS[limit](column, math.prod(geom.out_size)))
    assert 0 < REGISTRY["im2col"].workspace_bytes(geom) <= npconv.get_workspace_limit()


def test_im2col_9x9_kernel_uses_a_fraction_of_the_column_matrix(rng, workspace_limit):
    workspace_limit(64 * 2**20)
    x = rng.standard_normal((1, 16, 256, 256), dtype=np.float32)
    w = rng.standard_normal((8, 16, 9, 9), dtype=np.float32)
    geom = _geometry(x, w, {"padding": "same"}, np.dtype(np.float32))
    full = 16 * 81 * 256 * 256 * 4  # (C*K, P) column matrix of float32: 324 MiB
    assert REGISTRY["im2col"].workspace_bytes(geom) <= min(npconv.get_workspace_limit(), full // 4)

    npconv.conv(x[:, :, :16, :16], w, padding="same", algo="im2col")  # warm up (Numba cache load)
    tracemalloc.start()
    try:
        result = npconv.conv(x, w, padding="same", algo="im2col")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # NumPy reports its buffers to tracemalloc: scratch + output, well under the full matrix.
    assert peak <= npconv.get_workspace_limit() + result.nbytes + 2**20
    assert_matches_torch(result, x, w, padding="same")
