"""Differential tests of ``npconv.conv_transpose`` against PyTorch, and its adjoint identity with ``conv``.

The oracle runs ``torch.nn.functional.conv_transpose{1,2,3}d`` in float64.  Asymmetric
``(lo, hi)`` padding, which PyTorch lacks, is checked against PyTorch's uncropped output
(padding 0), extended by ``output_padding`` zeros and cropped by hand.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv
from npconv.errors import UnsupportedAlgorithmError
from npconv.geometry import conv_transpose_geometry
from npconv.parallel import threads_for
from npconv.transpose import (BIAS, SKIP, is_reached, phase_grid, place_phases, placing_seconds,
                              subpixel_geometries)

from .conftest import per_dim, tolerance

_TORCH_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
PATHS = ("auto", "subpixel", "col2im")
SIZES = {1: (7,), 2: (5, 4), 3: (4, 3, 5)}


def torch_conv_transpose(x, w, b=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """PyTorch's transposed convolution in float64; ``padding`` may hold ``(lo, hi)`` pairs."""
    x, w = np.asarray(x, dtype=np.float64), np.asarray(w, dtype=np.float64)
    rank = w.ndim - 2
    stride, dilation, output_padding = per_dim(stride, rank), per_dim(dilation, rank), per_dim(output_padding, rank)
    xt, wt = torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(np.ascontiguousarray(w))
    bt = None if b is None else torch.from_numpy(np.asarray(b, dtype=np.float64).copy())
    pairs = isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding)
    if not pairs:
        return _TORCH_CONV_TRANSPOSE[rank](
            xt, wt, bt, stride=stride, padding=per_dim(padding, rank), output_padding=output_padding,
            groups=groups, dilation=dilation,
        ).numpy()
    full = _TORCH_CONV_TRANSPOSE[rank](xt, wt, None, stride=stride, groups=groups, dilation=dilation).numpy()
    full = np.pad(full, ((0, 0), (0, 0), *((0, p) for p in output_padding)))  # output_padding: zeros at the end
    crop = tuple(slice(lo, full.shape[2 + dim] - hi) for dim, (lo, hi) in enumerate(padding))
    out = full[(slice(None), slice(None), *crop)]
    return out if b is None else out + np.asarray(b, dtype=np.float64).reshape(-1, *(1,) * rank)


def expected_size(in_size, kernel, stride, padding, output_padding, dilation):
    """The documented formula, per dim."""
    rank = len(kernel)
    stride, dilation, output_padding = per_dim(stride, rank), per_dim(dilation, rank), per_dim(output_padding, rank)
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        pairs = padding
    else:
        pairs = [(p, p) for p in per_dim(padding, rank)]
    return tuple((i - 1) * s - lo - hi + d * (k - 1) + p + 1
                 for i, k, s, (lo, hi), p, d in zip(in_size, kernel, stride, pairs, output_padding, dilation))


def check(x, w, b=None, algos=PATHS, **params):
    """Each of ``algos`` matches the oracle in shape, dtype and values; returns auto's result."""
    expected = torch_conv_transpose(x, w, b, **params)
    assert expected.shape[2:] == expected_size(x.shape[2:], w.shape[2:], params.get("stride", 1),
                                               params.get("padding", 0), params.get("output_padding", 0),
                                               params.get("dilation", 1))
    results = {algo: npconv.conv_transpose(x, w, b, algo=algo, **params) for algo in algos}
    for algo, actual in results.items():
        assert actual.shape == expected.shape, algo
        assert actual.dtype == np.result_type(x, w, *([] if b is None else [b])), algo
        np.testing.assert_allclose(actual.astype(np.float64), expected, err_msg=f"algo={algo}",
                                   **tolerance(actual.dtype, w.shape))
    return results[algos[0]]


def inputs(rng, rank, cin=4, cout_per_group=3, groups=1, kernel=3, size=None, batch=2, bias=True, dtype=np.float64):
    """``x`` (N, C_in, *size), ``w`` (C_in, C_out/groups, *kernel), ``b`` (C_out,) of ``dtype``."""
    size = SIZES[rank] if size is None else size
    x = rng.standard_normal((batch, cin, *size)).astype(dtype)
    w = rng.standard_normal((cin, cout_per_group, *per_dim(kernel, rank))).astype(dtype)
    b = rng.standard_normal(cout_per_group * groups).astype(dtype) if bias else None
    return x, w, b


# ---------------------------------------------------------------------------------------------
# Sweeps against PyTorch


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel", [1, 2, 3, 4])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_kernel_and_stride(rng, rank, kernel, stride):
    x, w, b = inputs(rng, rank, kernel=kernel)
    check(x, w, b, stride=stride, padding=min(1, kernel - 1))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("stride, dilation", [(1, 2), (2, 2), (2, 3), (3, 2), (4, 2), (2, 4), (3, 3)])
def test_dilation_with_stride(rng, rank, stride, dilation):
    """gcd(stride, dilation) > 1 leaves whole phases unreached; coprime ones use every (s/g)-th tap."""
    x, w, b = inputs(rng, rank, kernel=3)
    check(x, w, b, stride=stride, dilation=dilation, padding=1)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_per_dim_hyper_parameters(rng, rank):
    stride, dilation, padding, kernel = (2, 1, 3)[:rank], (1, 2, 1)[:rank], (1, 0, 2)[:rank], (3, 2, 4)[:rank]
    x, w, b = inputs(rng, rank, kernel=kernel)
    check(x, w, b, stride=stride, dilation=dilation, padding=padding, output_padding=(1, 1, 2)[:rank])


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(
    "cin, cout_per_group, groups",
    [(1, 1, 1), (3, 5, 1), (4, 1, 4), (4, 2, 4), (6, 3, 3), (6, 1, 2), (4, 3, 2)],
    ids=["1ch", "dense", "depthwise", "depthwise-x2", "cin6-cout9-g3", "cin6-cout2-g2", "cin4-cout6-g2"],
)
def test_groups(rng, rank, cin, cout_per_group, groups):
    """Groups with C_in != C_out: where grouped transposed convolutions' index bugs hide."""
    x, w, b = inputs(rng, rank, cin=cin, cout_per_group=cout_per_group, groups=groups)
    check(x, w, b, groups=groups, stride=2, padding=1, output_padding=1)


@pytest.mark.parametrize("rank", [1, 2])
@pytest.mark.parametrize("stride, output_padding, dilation", [(2, 1, 1), (3, 2, 1), (3, 1, 2), (1, 1, 2), (2, 2, 3)])
def test_output_padding(rng, rank, stride, output_padding, dilation):
    """Smaller than stride or dilation: with stride 1 it may reach dilation - 1."""
    x, w, b = inputs(rng, rank, kernel=3)
    check(x, w, b, stride=stride, output_padding=output_padding, dilation=dilation, padding=1)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize(
    "padding",
    [((0, 2),), ((3, 0),), ((2, 1),), ((4, 4),), ((0, 5),)],
    ids=["0-2", "3-0", "2-1", "4-4", "0-5"],
)
def test_asymmetric_padding(rng, rank, padding):
    """``(lo, hi)`` pairs crop the full output unevenly, as ONNX ``pads``; crops past a phase's input too."""
    pairs = (padding[0], (1, 0), (0, 1))[:rank]
    x, w, b = inputs(rng, rank, kernel=4)
    check(x, w, b, stride=2, padding=pairs, output_padding=1)


def test_padding_pairs_as_lists(rng):
    x, w, b = inputs(rng, 2, kernel=3)
    expected = torch_conv_transpose(x, w, b, stride=2, padding=((1, 0), (0, 2)))
    np.testing.assert_allclose(npconv.conv_transpose2d(x, w, b, stride=2, padding=[[1, 0], [0, 2]]), expected)


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("bias", [True, False], ids=["bias", "nobias"])
def test_kernel_smaller_than_stride(rng, rank, bias):
    """Phases no tap reaches hold only the bias (zeros without one)."""
    x, w, b = inputs(rng, rank, kernel=2, bias=bias)
    check(x, w, b, stride=3, output_padding=2)


def test_padding_crops_every_input(rng):
    """Heavy cropping: some phases read no input value at all."""
    x, w, b = inputs(rng, 1, kernel=5, size=(2,))
    check(x, w, b, stride=3, padding=((5, 0),), output_padding=2)


@pytest.mark.parametrize("rank", [1, 2, 3])
def test_output_size(rng, rank):
    """output_size sets output_padding (PyTorch's rule): each end of the valid range, with and without (N, C)."""
    x, w, b = inputs(rng, rank, kernel=3)
    smallest = expected_size(x.shape[2:], w.shape[2:], 3, 1, 0, 1)
    for extra in (0, 2):
        size = tuple(s + extra for s in smallest)
        expected = torch_conv_transpose(x, w, b, stride=3, padding=1, output_padding=extra)
        for requested in (size, list(size), (x.shape[0], w.shape[1], *size)):
            np.testing.assert_allclose(npconv.conv_transpose(x, w, b, stride=3, padding=1, output_size=requested), expected)
    torch_module = getattr(torch.nn, f"ConvTranspose{rank}d")(4, 3, 3, stride=3, padding=1, bias=False).double()
    torch_module.weight.data = torch.from_numpy(w)
    size = tuple(s + 1 for s in smallest)
    expected = torch_module(torch.from_numpy(x), output_size=size).detach().numpy()
    np.testing.assert_allclose(npconv.conv_transpose(x, w, stride=3, padding=1, output_size=size), expected)


def test_rank_wrappers_equal_the_general_op(rng):
    for rank, wrapper in ((1, npconv.conv_transpose1d), (2, npconv.conv_transpose2d), (3, npconv.conv_transpose3d)):
        x, w, b = inputs(rng, rank)
        np.testing.assert_array_equal(wrapper(x, w, b, stride=2), npconv.conv_transpose(x, w, b, stride=2))


def test_every_conv_algorithm_runs_the_phases(rng):
    """A conv algorithm's name runs the sub-pixel path with it; one that cannot do a phase says so."""
    for kernel, stride in ((2, 2), (3, 2), (4, 2), (3, 1)):  # 1x1, mixed, 2x2 and 3x3 sub-kernels
        x, w, b = inputs(rng, 2, kernel=kernel)
        expected = torch_conv_transpose(x, w, b, stride=stride, padding=kernel // 2)
        for name in npconv.algorithms():
            try:
                actual = npconv.conv_transpose2d(x, w, b, stride=stride, padding=kernel // 2, algo=name)
            except UnsupportedAlgorithmError as exc:
                assert name not in ("direct", "im2col"), exc
                continue
            np.testing.assert_allclose(actual, expected, err_msg=name, **tolerance(np.float32, w.shape))


@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("kernel, stride, padding, dilation, stacked", [
    (4, 2, 1, 1, True),  # DCGAN: 2x2 sub-kernels, the phases shifted by one on the grid
    (2, 2, 0, 1, True),  # U-Net: 1x1 sub-kernels, no shift
    (4, 2, 3, 1, True),  # padding beyond the kernel's reach: phases crop the input
    (6, 3, (1, 2), 1, True),  # three phases per dim, asymmetric padding
    (4, 2, 1, 3, True),  # dilation: the sub-kernels dilated
    (3, 2, 1, 1, False),  # 2 and 1 taps: one convolution per phase
])
def test_stacked_phases(rng, rank, kernel, stride, padding, dilation, stacked):
    """Phases whose sub-kernels are one size run as one convolution on a common grid, with
    each group's outputs phase by phase; others phase by phase.  Both equal torch."""
    padding = [padding] * rank if isinstance(padding, tuple) else padding
    x, w, b = inputs(rng, rank, cin=4, cout_per_group=3, groups=2, kernel=kernel, size=(6, 5, 4)[:rank])
    geom = conv_transpose_geometry("test", x.shape, w.shape, b.shape, stride=stride, padding=padding,
                                   output_padding=0, groups=2, dilation=dilation, output_size=None,
                                   dtype=np.dtype(np.float64))
    reached = [phase for phase in phase_grid(geom) if is_reached(phase)]
    convs = subpixel_geometries(geom)
    assert len(convs) == (1 if stacked else len(reached))
    if stacked:
        assert convs[0].out_channels == len(reached) * geom.out_channels
    check(x, w, b, algos=("subpixel",), stride=stride, padding=padding, groups=2, dilation=dilation)


@pytest.mark.parametrize("rank, stride, grid", [(1, (3,), (7,)), (2, (2, 2), (5, 6)), (3, (2, 1, 3), (3, 4, 4))])
@pytest.mark.parametrize("groups", [1, 2])
def test_place_phases_against_slices(rng, rank, stride, grid, groups):
    """Every output from its phase's window of the source, its fill, or left alone -- as NumPy's
    strided slices give them -- for the planes of the call only."""
    n, og, count = 2, 3, math.prod(stride) - 1  # the last phase offset: no source
    out_size = tuple(s * (g - 1) - 1 for s, g in zip(stride, grid))  # windows start at 0 or 1
    which = np.arange(math.prod(stride))
    which[-1] = BIAS
    which[0], which[1] = SKIP, 0  # phase offset 1 reads the source's phase 0; offset 0 skipped
    starts = rng.integers(0, 2, (count, rank))
    source = rng.standard_normal((n, groups * count * og, *grid))
    fill = rng.standard_normal(groups * og)
    out = rng.standard_normal((n, groups * og, *out_size))
    expected = out.copy()
    for index, p in enumerate(which):
        offsets = np.unravel_index(index, stride)
        region = (slice(None), slice(None), *(slice(o, None, s) for o, s in zip(offsets, stride)))
        counts = expected[region].shape[2:]
        if p == BIAS:
            expected[region] = fill.reshape(-1, *(1,) * rank)
        elif p != SKIP:
            windows = (slice(a, a + c) for a, c in zip(starts[p], counts))
            window = source.reshape(n, groups, count, og, *grid)[:, :, p, :, *windows]  # (N, G, Og, *counts)
            expected[region] = window.reshape(n, groups * og, *counts)
    first, last = 1, 2 * groups * og - 1  # the first and last planes untouched
    expected[0, 0], expected[-1, -1] = out[0, 0], out[-1, -1]
    place_phases(source, out, which, starts, np.array(stride), groups, count, fill, first, last)
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("kernel", [2, 3], ids=["stacked", "phases"])
def test_phases_placed_by_two_threads(rng, kernel):
    """An output large enough to be placed by both threads, planes split between them (3 planes)."""
    x, w, b = inputs(rng, 2, cin=4, cout_per_group=3, kernel=kernel, size=(144, 144), batch=1)
    geom = conv_transpose_geometry("test", x.shape, w.shape, b.shape, stride=2, padding=0, output_padding=0,
                                   groups=1, dilation=1, output_size=None, dtype=np.dtype(np.float64))
    old = npconv.get_num_threads()
    npconv.set_num_threads(2)
    try:
        assert threads_for(placing_seconds(geom)) == 2
        check(x, w, b, algos=("subpixel",), stride=2)
    finally:
        npconv.set_num_threads(old)


def test_any_rank_through_the_phases(rng):
    """Rank 4 runs the sub-pixel path with the direct reference; col2im declines it."""
    x, w, _ = inputs(rng, 4, cin=2, cout_per_group=2, kernel=2, size=(3, 2, 3, 2), bias=False)
    y = rng.standard_normal((2, 2, 5, 3, 5, 4))
    out = npconv.conv_transpose(x, w, stride=(2, 1, 2, 2), padding=((0, 1), (0, 0), (1, 0), (0, 0)))
    assert out.shape == y.shape
    # adjoint: <conv(y, w), x> == <y, conv_transpose(x, w)>
    forward = npconv.conv(y, w, stride=(2, 1, 2, 2), padding=((0, 1), (0, 0), (1, 0), (0, 0)))
    assert math.isclose(np.vdot(forward, x), np.vdot(y, out), rel_tol=1e-10)
    with pytest.raises(UnsupportedAlgorithmError,
                       match="conv_transpose: algorithm 'col2im' cannot compute this transposed convolution: it "
                             "handles 1 to 3 spatial dims, got 4"):
        npconv.conv_transpose(x, w, algo="col2im")


@pytest.mark.parametrize("algo", PATHS)
def test_small_workspace_limit(rng, workspace_limit, algo):
    """A cap below one image's columns: col2im splits the output channels, one chunk after another."""
    workspace_limit(4096)
    x, w, b = inputs(rng, 2, cin=6, cout_per_group=5, kernel=4, size=(9, 8), batch=3)
    check(x, w, b, algos=(algo,), stride=2, padding=1)


@pytest.mark.parametrize("algo", PATHS)
def test_empty_batch(rng, algo):
    x, w, b = inputs(rng, 2, batch=0)
    out = npconv.conv_transpose2d(x, w, b, stride=2, algo=algo)
    assert out.shape == (0, 3, 11, 9)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("algo", PATHS)
@pytest.mark.parametrize("kernel", [3, 4], ids=["phases", "stacked"])
def test_dtypes(rng, dtype, algo, kernel):
    x, w, b = inputs(rng, 2, dtype=dtype, kernel=kernel)
    check(x, w, b, algos=(algo,), stride=2, padding=1)


def test_mixed_dtypes_promote(rng):
    x, w, b = inputs(rng, 1, dtype=np.float32)
    assert npconv.conv_transpose1d(x, w.astype(np.float64), b, stride=2).dtype == np.float64
    assert npconv.conv_transpose1d(x.astype(np.float16), w, b.astype(np.float16), stride=2).dtype == np.float32


@pytest.mark.parametrize("algo", PATHS)
@pytest.mark.parametrize("kernel", [3, 4], ids=["phases", "stacked"])
def test_inputs_unmodified_and_views_accepted(rng, algo, kernel):
    """Non-contiguous, Fortran-ordered and byte-swapped inputs work and are left as they were."""
    base, w, b = inputs(rng, 2, size=(10, 8), kernel=kernel)
    x = base[:, :, ::2, 1::2]  # (2, 4, 5, 4), strided
    wf, bs = np.asfortranarray(w), b.astype(">f8")
    before = [a.copy() for a in (base, wf, bs)]
    expected = torch_conv_transpose(x, w, b, stride=2, padding=1)
    np.testing.assert_allclose(npconv.conv_transpose2d(x, wf, bs, stride=2, padding=1, algo=algo), expected)
    for a, copy in zip((base, wf, bs), before):
        np.testing.assert_array_equal(a, copy)


# ---------------------------------------------------------------------------------------------
# Hypothesis: random geometries against PyTorch, and the adjoint identity


@st.composite
def geometries(draw):
    rank = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 3))
    cin = groups * draw(st.integers(1, 2))
    cout_per_group = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    size = tuple(draw(st.integers(1, 6)) for _ in range(rank))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation))
    padding = []
    for i, k, s, d, p in zip(size, kernel, stride, dilation, output_padding):
        full = (i - 1) * s + d * (k - 1) + p + 1
        lo = draw(st.integers(0, full - 1))
        padding.append((lo, draw(st.integers(0, full - 1 - lo))))
    return dict(rank=rank, groups=groups, cin=cin, cout_per_group=cout_per_group, kernel=kernel, stride=stride,
                dilation=dilation, size=size, output_padding=output_padding, padding=tuple(padding),
                bias=draw(st.booleans()), batch=draw(st.integers(1, 2)))


@settings(max_examples=60, deadline=None)
@given(geometries(), st.integers(0, 2**32 - 1))
def test_hypothesis_matches_torch(g, seed):
    rng = np.random.default_rng(seed)
    x, w, b = inputs(rng, g["rank"], cin=g["cin"], cout_per_group=g["cout_per_group"], groups=g["groups"],
                     kernel=g["kernel"], size=g["size"], batch=g["batch"], bias=g["bias"])
    check(x, w, b, stride=g["stride"], padding=g["padding"], output_padding=g["output_padding"],
          groups=g["groups"], dilation=g["dilation"])


@st.composite
def conv_geometries(draw):
    """A convolution whose input size the matching transposed convolution reproduces."""
    rank = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 2))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(rank))
    padding, size = [], []
    for k, d in zip(kernel, dilation):
        lo, hi = draw(st.integers(0, 2)), draw(st.integers(0, 2))
        padding.append((lo, hi))
        size.append(draw(st.integers(max(1, d * (k - 1) + 1 - lo - hi), 7)))
    return dict(rank=rank, groups=groups, cin=groups * draw(st.integers(1, 2)), cout=groups * draw(st.integers(1, 2)),
                kernel=kernel, stride=stride, dilation=dilation, padding=tuple(padding), size=tuple(size))


@settings(max_examples=60, deadline=None)
@given(conv_geometries(), st.integers(0, 2**32 - 1), st.sampled_from(PATHS))
def test_adjoint_identity(g, seed, algo):
    """<conv(x, w), y> == <x, conv_transpose(y, w)>: conv_transpose is conv's adjoint (its input gradient)."""
    rng = np.random.default_rng(seed)
    params = dict(stride=g["stride"], padding=g["padding"], dilation=g["dilation"], groups=g["groups"])
    x = rng.standard_normal((2, g["cin"], *g["size"]))
    w = rng.standard_normal((g["cout"], g["cin"] // g["groups"], *g["kernel"]))
    z = npconv.conv(x, w, **params)
    y = rng.standard_normal(z.shape)
    xt = npconv.conv_transpose(y, w, output_size=g["size"], algo=algo, **params)
    assert xt.shape == x.shape
    assert math.isclose(np.vdot(z, y), np.vdot(x, xt), rel_tol=1e-9, abs_tol=1e-9)
