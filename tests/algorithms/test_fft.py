"""fft specifics: accuracy against torch with an FFT-sized tolerance, every rank, the plan's
chunking under the workspace cap, tracemalloc against workspace_bytes, and what it declines."""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv
from npconv.algorithms import REGISTRY, fft
from npconv.geometry import conv_geometry

from ..conftest import random_conv_inputs, torch_conv

FFT = REGISTRY["fft"]


def geometry(x_shape, w_shape, dtype=np.float32, **params):
    params = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **params}
    geom, _ = conv_geometry("test", x_shape, w_shape, None, padding_mode="zeros", dtype=np.dtype(dtype), **params)
    return geom


def assert_close(actual, expected, x, w):
    """``|actual - expected| <= 8 * eps * max|x| * sum|w[o]|`` for every output of channel ``o``.

    A transform's rounding error is relative to the largest values it transforms, not to each
    output: an output sums ``Cg * prod(kernel)`` products, each at most ``max|x| * |w|``, and
    the forward and inverse transforms and the GEMM each add about ``eps`` times that bound
    (times a slowly growing ``log2(T)``).  Measured worst case: 2.3 (float64) and 1.5
    (float32) times ``eps * max|x| * sum|w[o]|``, over 300 random geometries with values
    spanning 10^-3..10^3; 8 leaves room for that growth.
    """
    eps = np.finfo(actual.dtype).eps
    per_channel = np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).sum(axis=1)  # sum|w[o]| per output channel
    bound = 8 * eps * np.abs(x).max(initial=0) * per_channel.reshape(-1, *(1,) * (x.ndim - 2))  # (C_out, 1, ...)
    error = np.abs(actual.astype(np.float64) - expected)
    assert actual.shape == expected.shape
    assert np.all(error <= bound), f"worst error / bound = {np.max(error / np.maximum(bound, 1e-300)):.3g}"


def run_poisoned(x, w, geom):
    """``FFT.run`` into a NaN-filled output, which it must overwrite entirely."""
    out = np.full(geom.out_shape, np.nan, dtype=geom.dtype)
    FFT.run(np.ascontiguousarray(x, geom.dtype), np.ascontiguousarray(w, geom.dtype), geom, out)
    assert not np.isnan(out).any()
    return out


# Odd sizes; asymmetric padding; strides and dilations per dim; groups with C_in != C_out.
CASES = {
    "1d": ((2, 3, 29), (4, 3, 5), dict(padding=((3, 1),))),
    "1d-stride-dilation": ((1, 4, 40), (6, 2, 4), dict(stride=3, dilation=2, padding=((0, 5),), groups=2)),
    "2d": ((2, 3, 17, 13), (5, 3, 5, 4), dict(padding=((2, 0), (1, 3)))),
    "2d-strided": ((1, 4, 23, 19), (4, 4, 7, 7), dict(stride=(2, 3), padding=3)),
    "2d-dilated": ((2, 3, 21, 16), (2, 3, 3, 3), dict(dilation=(3, 2), padding=((4, 2), (0, 1)))),
    "2d-depthwise": ((2, 6, 15, 14), (6, 1, 5, 5), dict(groups=6, padding=2)),
    "2d-depthwise-multiplier": ((1, 4, 15, 14), (12, 1, 3, 5), dict(groups=4, padding=((1, 0), (2, 2)), stride=2)),
    "2d-groups-cin9-cout6": ((2, 9, 12, 11), (6, 3, 4, 3), dict(groups=3, padding=1)),
    "2d-kernel-equals-padded-input": ((1, 2, 5, 4), (3, 2, 7, 6), dict(padding=1)),
    "2d-stride-beyond-kernel": ((2, 3, 20, 18), (4, 3, 2, 3), dict(stride=(5, 4))),
    "3d": ((2, 3, 9, 8, 7), (4, 3, 3, 4, 2), dict(padding=((1, 2), (0, 1), (1, 0)))),
    "3d-strided-dilated-groups": ((1, 4, 11, 9, 10), (6, 2, 3, 2, 3), dict(stride=(2, 1, 3), dilation=(1, 2, 2),
                                                                        padding=1, groups=2)),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch(rng, case, dtype):
    x_shape, w_shape, params = CASES[case]
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False, dtype=dtype)
    y = npconv.conv(x, w, algo="fft", **params)
    assert y.dtype == dtype
    assert_close(y, torch_conv(x, w, **params), x, w)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_error_scales_with_the_largest_values(rng, dtype):
    """One huge input value: far-away outputs keep an error relative to it, as documented."""
    x, w, _ = random_conv_inputs(rng, (1, 2, 40, 40), (3, 2, 9, 9), bias=False, dtype=dtype)
    x[0, 0, 0, 0] = 1e4
    y = npconv.conv(x, w, padding=4, algo="fft")
    assert_close(y, torch_conv(x, w, padding=4), x, w)


@pytest.mark.parametrize("stride, padding, dilation, groups", [
    ((1, 1, 1, 1), ((0, 0),) * 4, (1, 1, 1, 1), 1),
    ((2, 1, 2, 1), ((1, 2), (0, 1), (1, 1), (2, 0)), (2, 1, 1, 2), 2),
])
def test_rank4_matches_the_direct_reference(rng, stride, padding, dilation, groups):
    x, w, _ = random_conv_inputs(rng, (2, 4, 5, 4, 5, 4), (4, 4 // groups, 2, 3, 2, 2), bias=False)
    geom = geometry(x.shape, w.shape, np.float64, stride=stride, padding=padding, dilation=dilation, groups=groups)
    expected = np.empty(geom.out_shape)
    REGISTRY["direct"].run(x, w, geom, expected)
    assert_close(run_poisoned(x, w, geom), expected, x, w)


# ---------------------------------------------------------------------------------------------
# Plans: chunks, output-channel blocks and threads under the workspace cap


LIMITS = {
    "default": 64 * 2**20,
    "medium": 40_000,
    "tight": 3000,  # a few tiles, single output channels
    "1-byte": 1,  # nothing fits: the smallest plan
}


@pytest.mark.parametrize("case", ["1d-stride-dilation", "2d", "2d-groups-cin9-cout6", "3d-strided-dilated-groups"])
@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("threads", [1, 2])
def test_every_plan_writes_every_output(rng, workspace_limit, case, limit, threads):
    x_shape, w_shape, params = CASES[case]
    x, w, _ = random_conv_inputs(rng, (3, *x_shape[1:]), w_shape, bias=False)
    geom = geometry(x.shape, w.shape, np.float64, **params)
    workspace_limit(LIMITS[limit])
    old = npconv.get_num_threads()
    npconv.set_num_threads(threads)
    try:
        y = run_poisoned(x, w, geom)
    finally:
        npconv.set_num_threads(old)
    assert_close(y, torch_conv(x, w, **params), x, w)


REGIMES = {
    "several images per chunk": lambda p, geom: p.images > 1,
    "blocks of one image's tiles": lambda p, geom: math.prod(p.block) < math.prod(p.tiles.count),
    "output channels split within a group": lambda p, geom: p.outs < geom.out_per_group,
    "several groups, not all, per block": lambda p, geom: 1 < p.groups < geom.groups,
    "two threads": lambda p, geom: p.threads == 2,
}


@pytest.mark.parametrize("regime", REGIMES)
def test_each_chunking_regime_occurs_and_is_exact(rng, workspace_limit, regime):
    """Some cap in 1 KiB .. 1 GiB puts the plan in each regime the chunking code has."""
    x, w, _ = random_conv_inputs(rng, (4, 8, 40, 36), (16, 2, 9, 7), bias=False, dtype=np.float32)
    geom = geometry(x.shape, w.shape, padding=(4, 3), groups=4)
    limits = [2**e for e in range(10, 31) if REGIMES[regime](fft.plan(geom, 2**e, 2), geom)]
    assert limits
    workspace_limit(limits[0])
    old = npconv.get_num_threads()
    npconv.set_num_threads(2)
    try:
        y = run_poisoned(x, w, geom)
    finally:
        npconv.set_num_threads(old)
    assert_close(y, torch_conv(x, w, padding=(4, 3), groups=4), x, w)


@pytest.mark.parametrize("limit", [1, 2000, 30_000, 2**20, 64 * 2**20])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_plan_fits_the_cap_whenever_the_smallest_plan_does(limit, threads):
    geom = geometry((2, 16, 48, 40), (8, 16, 7, 5), padding=3, stride=(1, 2))
    p = fft.plan(geom, limit, threads)
    if fft.plan(geom, 1, 1).workspace <= limit:  # the smallest plan fits
        assert p.workspace <= limit
    assert 1 <= p.threads <= threads
    assert p.workspace == fft._workspace(geom, p.tiles, p.groups, p.outs, p.images, p.block, p.threads)


def _peak(x, w, geom):
    """tracemalloc's peak over one ``FFT.run`` (numpy reports its buffers to tracemalloc)."""
    out = np.empty(geom.out_shape, dtype=geom.dtype)
    FFT.run(x, w, geom, out)  # warm up: plan cache, numpy's FFT plans
    tracemalloc.start()
    try:
        FFT.run(x, w, geom, out)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


SLACK = 64 * 2**10  # Python objects: views, tuples, the chunk list


@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 8, 64, 64), (16, 8, 9, 9), dict(padding=4)),
    ((3, 6, 30, 33), (9, 2, 5, 4), dict(padding=((2, 1), (0, 3)), groups=3, stride=(1, 2))),
    ((1, 4, 12, 10, 11), (4, 4, 3, 3, 3), dict(padding=1)),
    ((2, 16, 500), (16, 16, 15), dict(padding=7, dilation=2)),
])
@pytest.mark.parametrize("limit", [2**15, 2**18, 2**21, 64 * 2**20])
def test_workspace_bytes_is_what_run_allocates(rng, workspace_limit, x_shape, w_shape, params, limit):
    """One thread: the peak is the kernel spectrum plus the larger of the dilated kernel and
    one chunk's buffers, exactly what workspace_bytes counts."""
    workspace_limit(limit)
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False, dtype=np.float32)
    geom = geometry(x.shape, w.shape, **params)
    old = npconv.get_num_threads()
    npconv.set_num_threads(1)
    try:
        expected = FFT.workspace_bytes(geom)
        peak = _peak(x, w, geom)
    finally:
        npconv.set_num_threads(old)
    assert expected - SLACK <= peak <= expected + SLACK


def test_threads_stay_within_workspace_bytes_and_the_cap(rng, workspace_limit):
    workspace_limit(8 * 2**20)
    x, w, _ = random_conv_inputs(rng, (1, 16, 160, 160), (16, 16, 9, 9), bias=False, dtype=np.float32)
    geom = geometry(x.shape, w.shape, padding=4)
    assert FFT.workspace_bytes(geom) <= npconv.get_workspace_limit()
    assert _peak(x, w, geom) <= FFT.workspace_bytes(geom) + SLACK


def test_large_kernel_stays_well_under_the_default_cap(rng, workspace_limit):
    """A 9x9 kernel over 256x256 images: im2col's full column matrix would be 324 MiB."""
    workspace_limit(64 * 2**20)
    x, w, _ = random_conv_inputs(rng, (2, 16, 256, 256), (8, 16, 9, 9), bias=False, dtype=np.float32)
    geom = geometry(x.shape, w.shape, padding="same")
    assert FFT.workspace_bytes(geom) <= npconv.get_workspace_limit()
    assert _peak(x, w, geom) <= npconv.get_workspace_limit() + SLACK
    assert_close(npconv.conv(x, w, padding="same", algo="fft"), torch_conv(x, w, padding="same"), x, w)


# ---------------------------------------------------------------------------------------------
# Random geometries, caps and thread counts


@st.composite
def fft_cases(draw):
    rank = draw(st.integers(1, 3))
    groups = draw(st.integers(1, 3))
    cin, cout = groups * draw(st.integers(1, 3)), groups * draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 7)) for _ in range(rank))
    stride = tuple(draw(st.integers(1, 4)) for _ in range(rank))
    dilation = tuple(draw(st.integers(1, 3)) for _ in range(rank))
    padding = tuple((draw(st.integers(0, 4)), draw(st.integers(0, 4))) for _ in range(rank))
    span = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    lows = [max(1, sp - lo - hi) for sp, (lo, hi) in zip(span, padding)]  # the kernel must fit the padded input
    size = tuple(draw(st.integers(low, low + (20 if rank < 3 else 6))) for low in lows)
    params = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    x_shape = (draw(st.integers(1, 3)), cin, *size)
    return x_shape, (cout, cin // groups, *kernel), draw(st.sampled_from([np.float32, np.float64])), params


@settings(max_examples=80, deadline=None)
@given(case=fft_cases(), seed=st.integers(0, 2**32 - 1), limit=st.sampled_from([None, 1, 3000, 10**5]),
       threads=st.sampled_from([1, 2]), magnitude=st.sampled_from([1e-3, 1.0, 1e3]))
def test_random_geometries(case, seed, limit, threads, magnitude):
    x_shape, w_shape, dtype, params = case
    rng = np.random.default_rng(seed)
    x = (magnitude * rng.standard_normal(x_shape)).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    geom = geometry(x_shape, w_shape, dtype, **params)
    old_limit, old_threads = npconv.get_workspace_limit(), npconv.get_num_threads()
    npconv.set_workspace_limit(limit or old_limit)  # (not fixtures: hypothesis reruns the body)
    npconv.set_num_threads(threads)
    try:
        y = run_poisoned(x, w, geom)
    finally:
        npconv.set_workspace_limit(old_limit)
        npconv.set_num_threads(old_threads)
    assert_close(y, torch_conv(x, w, **params), x, w)


# ---------------------------------------------------------------------------------------------
# What it declines, and where auto wants it


@pytest.mark.parametrize("rank", [1, 2, 3, 4])
def test_supports_every_rank(rank):
    assert FFT.why_unsupported(geometry((1, 2, *(6,) * rank), (3, 2, *(3,) * rank))) is None


def test_cost_model_prefers_fft_for_large_kernels_only():
    """Ranking, not timing: FFT's model beats im2col's on a 9x9 kernel over a large image
    and loses on a 3x3 one."""
    large = geometry((1, 32, 256, 256), (32, 32, 9, 9), padding=4)
    small = geometry((1, 64, 56, 56), (64, 64, 3, 3), padding=1)
    assert FFT.estimated_seconds(large) < REGISTRY["im2col"].estimated_seconds(large)
    assert FFT.estimated_seconds(small) > REGISTRY["im2col"].estimated_seconds(small)


@pytest.mark.parametrize("n, expected", [(1, 1), (7, 8), (11, 12), (13, 15), (17, 18), (97, 100), (128, 128)])
def test_fast_size_is_the_next_5_smooth_number(n, expected):
    assert fft.fast_size(n) == expected
