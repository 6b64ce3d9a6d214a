"""implicit_gemm: the register-blocked implicit GEMM against torch over its geometries, its units
(several images, bands of rows, groups of chunks, on one and two threads), what it declines,
its weight cache and its workspace."""

import math
import tracemalloc

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv
from npconv.algorithms import REGISTRY, implicit_gemm, select, weight_cache
from npconv.algorithms.weight_cache import WEIGHT_CACHE
from npconv.geometry import conv_geometry

from ..conftest import assert_matches_torch, random_conv_inputs


def geometry(x_shape, w_shape, dtype=np.float32, **params):
    params = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, **params}
    return conv_geometry("test", x_shape, w_shape, None, padding_mode="zeros", dtype=np.dtype(dtype), **params)[0]


def conv(x, w, b=None, **params):
    return (npconv.conv1d if w.ndim == 3 else npconv.conv2d)(x, w, b, algo="implicit", **params)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 5, 9, 11), (7, 5, 3, 3), {"stride": 2, "padding": 1}),  # C_out below one vector
    ((3, 3, 20, 17), (64, 3, 7, 7), {"stride": 2, "padding": 3}),  # a stem: 3 channels, 7x7/2
    ((2, 128, 14, 14), (50, 128, 3, 3), {"stride": 2, "padding": ((0, 2), (1, 0)), "dilation": (2, 1)}),
    ((1, 256, 6, 6), (33, 256, 3, 3), {"padding": 1}),  # 256 channels: positions one vector deeper
    ((2, 16, 8, 8), (100, 16, 1, 1), {}),  # 1x1: one kernel offset
    ((1, 8, 30), (20, 8, 5), {"stride": 3, "padding": 2}),  # 1-d
    ((1, 4, 1, 1), (4, 4, 1, 1), {}),  # one output
    ((2, 6, 5, 5), (10, 6, 5, 5), {}),  # one output each, a kernel as large as the input
    ((1, 2, 4, 40), (3, 2, 1, 3), {"stride": (1, 3), "padding": (0, 1)}),  # a row of outputs
])
def test_matches_torch(rng, dtype, x_shape, w_shape, params):
    x, w, b = random_conv_inputs(rng, x_shape, w_shape, dtype=dtype)
    x_before, w_before = x.copy(), w.copy()
    assert_matches_torch(conv(x, w, b, **params), x, w, b, **params)
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(w, w_before)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("plan", [(1, 1, 1), (1, 4, 1), (1, 5, 1), (3, 1, 1), (2, 1, 4), (1, 2, 3), (4, 1, 2)])
def test_every_unit_plan(rng, monkeypatch, threads, plan):
    """Units of several images (the last stack short), bands of rows (the last short, or past
    the 6 rows: 5 bands of 2) and groups of chunks, run on one or two threads: every output
    written once, right."""
    monkeypatch.setattr(implicit_gemm, "_plan", lambda geom, threads: plan)
    monkeypatch.setattr(implicit_gemm, "threads_for", lambda seconds: threads)
    x, w, _ = random_conv_inputs(rng, (5, 12, 11, 9), (100, 12, 3, 3), bias=False)
    geom = geometry(x.shape, w.shape, dtype=np.float64, stride=2, padding=1)
    out = np.full(geom.out_shape, np.nan)
    REGISTRY["implicit"].run(x, w, geom, out)
    assert_matches_torch(out, x, w, stride=2, padding=1)


@pytest.mark.parametrize("threads", [1, 2, 3])
@pytest.mark.parametrize("x_shape, w_shape, stride", [
    ((1, 16, 14, 400), (64, 16, 3, 3), 2),  # 7 wide rows: 6 units wanted at 3 threads, 4 bands of 2 rows
    ((8, 128, 56, 56), (128, 128, 3, 3), 2),  # ResNet-50's layer2 3x3/2 at batch 8
    ((1, 128, 56, 56), (128, 128, 3, 3), 2),
    ((8, 512, 14, 14), (512, 512, 3, 3), 2),  # 7x7 outputs: images stacked
    ((1, 256, 28, 28), (256, 256, 3, 3), 2),
    ((2, 3, 224, 224), (64, 3, 7, 7), 2),
])
def test_plan_units(monkeypatch, threads, x_shape, w_shape, stride):
    """A unit holds MIN_UNIT_POSITIONS outputs where it can, several images where one has fewer,
    and input rows within SLAB_BYTES where bands can cut them; there are 2 units a thread where
    that leaves them so; its chunk groups exist."""
    geom = geometry(x_shape, w_shape, stride=stride, padding=w_shape[-1] // 2)
    images, bands, groups = implicit_gemm._plan(geom, threads)
    out_h, out_w = geom.out_size
    positions = images * -(-out_h // bands) * out_w
    units = -(-geom.batch // images) * bands * groups
    assert positions >= min(implicit_gemm.MIN_UNIT_POSITIONS, geom.batch * out_h * out_w, out_w)
    assert images == 1 or bands == 1
    assert (bands - 1) * -(-out_h // bands) < out_h  # no band past the last row
    assert bands == 1 or math.prod(implicit_gemm._slab_shape(geom, 1, bands - 1)) * 4 > implicit_gemm.SLAB_BYTES or (
        -(-geom.batch // images) * (bands - 1) < 2 * threads)
    assert units >= min(2 * threads, len(implicit_gemm._chunks(geom.out_channels, 4)) * geom.batch)
    assert 1 <= groups <= len(implicit_gemm._chunks(geom.out_channels, 4))


@pytest.mark.parametrize("out_channels, itemsize, sizes", [
    (128, 4, [2, 3, 3]), (256, 4, [2, 3, 3, 2, 3, 3]), (7, 4, [1]), (48, 4, [3]), (100, 8, [2, 3, 2, 3, 3]),
])
def test_chunks_split_the_vectors_evenly(out_channels, itemsize, sizes):
    chunks = implicit_gemm._chunks(out_channels, itemsize)
    lanes = 64 // itemsize
    assert list(chunks[:, 1]) == sizes
    assert list(chunks[:, 0]) == list(np.cumsum([0] + sizes[:-1]) * lanes)
    assert chunks[:, 1].sum() * lanes >= out_channels


@pytest.mark.parametrize("groups, expected", [(1, [0, 6]), (2, [0, 3, 6]), (3, [0, 2, 4, 6])])
def test_chunk_groups_hold_about_equal_vectors(groups, expected):
    assert list(implicit_gemm._group_starts(256, 4, groups)) == expected


@pytest.mark.parametrize("x_shape, w_shape, params, reason", [
    ((1, 2, 4, 4, 4), (3, 2, 3, 3, 3), {}, "it handles 1 or 2 spatial dims, got 3"),
    ((1, 4, 5, 5), (6, 2, 3, 3), {"groups": 2}, "it needs groups == 1, got 2"),
])
def test_declines_with_reason(x_shape, w_shape, params, reason):
    geom = geometry(x_shape, w_shape, **params)
    assert REGISTRY["implicit"].why_unsupported(geom) == reason
    x, w = np.ones(x_shape), np.ones(w_shape)
    with pytest.raises(npconv.UnsupportedAlgorithmError, match=f"'implicit' cannot compute this convolution: {reason}"):
        npconv.conv(x, w, algo="implicit", **params)


def test_auto_passes_over_it_beyond_the_workspace_limit(workspace_limit):
    geom = geometry((8, 128, 56, 56), (128, 128, 3, 3), stride=2, padding=1)
    algorithm = REGISTRY["implicit"]
    workspace_limit(algorithm.workspace_bytes(geom) - 1)
    assert algorithm.why_not_auto(geom) == (f"its buffers need {algorithm.workspace_bytes(geom)} bytes of scratch, "
                                            f"above the workspace limit of {algorithm.workspace_bytes(geom) - 1}")
    workspace_limit(algorithm.workspace_bytes(geom))
    assert algorithm.why_not_auto(geom) is None


def test_auto_takes_it_for_resnet50s_first_strided_3x3_at_two_threads():
    threads = npconv.get_num_threads()
    try:
        npconv.set_num_threads(2)
        geom = geometry((8, 128, 56, 56), (128, 128, 3, 3), stride=2, padding=1)
        assert npconv.explain((8, 128, 56, 56), (128, 128, 3, 3), stride=2, padding=1).algorithm == "implicit"
        assert REGISTRY["implicit"].estimated_seconds(geom) < REGISTRY["im2col"].estimated_seconds(geom)
    finally:
        npconv.set_num_threads(threads)


def test_weight_changed_in_place_is_not_served_stale(rng):
    x, w, _ = random_conv_inputs(rng, (2, 16, 9, 9), (20, 16, 3, 3), bias=False, dtype=np.float32)
    conv(x, w, padding=1)
    w[3, 5, 1, 2] += 1.0
    assert_matches_torch(conv(x, w, padding=1), x, w, padding=1)


@pytest.mark.parametrize("call, w_shape", [
    (lambda x, w: npconv.conv2d(x, w, padding=1, algo="implicit"), (32, 32, 3, 3)),
    (lambda x, w: npconv.conv2d(x, w, padding=1, algo="winograd4"), (32, 32, 3, 3)),
    (lambda x, w: npconv.conv_transpose2d(x, w, stride=2, padding=1, algo="subpixel"), (32, 16, 4, 4)),
])
def test_a_frozen_weight_gives_the_same_result_and_is_not_compared(rng, monkeypatch, call, w_shape):
    """npconv.freeze: every transform its cache entry holds is returned without reading the
    weight's bytes again, and the result is the plain weight's."""
    x, w, _ = random_conv_inputs(rng, (2, 32, 9, 9), w_shape, bias=False, dtype=np.float32)
    plain = call(x, w)
    frozen = npconv.freeze(w)
    call(x, frozen)  # made, cached
    compared = []
    monkeypatch.setattr(weight_cache, "_same_bits", lambda *args: compared.append(1) or True)
    np.testing.assert_array_equal(call(x, frozen), plain)
    assert compared == []


def test_auto_counts_no_weight_check_for_a_frozen_weight():
    """A 512-channel 3x3/2 layer on 28x28 at batch 1: its 9.4 MB weight's check outweighs
    implicit's lead over im2col, unless the weight is frozen (measured: im2col 4.44 ms, implicit
    4.65, implicit on the frozen weight 3.96)."""
    threads = npconv.get_num_threads()
    try:
        npconv.set_num_threads(2)
        geom = geometry((1, 512, 28, 28), (512, 512, 3, 3), stride=2, padding=1)
        w = np.zeros((512, 512, 3, 3), dtype=np.float32)
        with weight_cache.planning_for(w):
            assert select("conv2d", geom, "auto").name == "im2col"
        with weight_cache.planning_for(npconv.freeze(w)):
            assert select("conv2d", geom, "auto").name == "implicit"
        assert not weight_cache.planned_frozen()
    finally:
        npconv.set_num_threads(threads)


def test_workspace_bounds_what_it_allocates(rng):
    """Warm (the packed weights cached): the threads' buffers, within the workspace; cold, the
    packing's zero-padded copy and the cache's snapshot besides."""
    x, w, _ = random_conv_inputs(rng, (4, 64, 30, 30), (96, 64, 3, 3), bias=False, dtype=np.float32)
    geom = geometry(x.shape, w.shape, stride=2, padding=1)
    workspace = REGISTRY["implicit"].workspace_bytes(geom)
    for cold in (False, True):
        conv(x, w, stride=2, padding=1)  # compiled, the cache warm
        if cold:
            WEIGHT_CACHE.clear()
        tracemalloc.start()
        try:
            y = conv(x, w, stride=2, padding=1)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak <= y.nbytes + workspace + cold * 2 * w.nbytes + 2**16  # the output, the scratch, small objects


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_random_geometries(data):
    rank = data.draw(st.integers(1, 2))
    kernel = tuple(data.draw(st.integers(1, 5)) for _ in range(rank))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(rank))
    dilation = tuple(data.draw(st.integers(1, 2)) for _ in range(rank))
    padding = tuple((data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in range(rank))
    size = tuple(data.draw(st.integers(max(1, d * (k - 1) + 1 - lo - hi), 12))
                 for k, d, (lo, hi) in zip(kernel, dilation, padding))
    cin, cout = data.draw(st.integers(1, 40)), data.draw(st.integers(1, 70))
    batch = data.draw(st.integers(1, 4))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    x, w, b = random_conv_inputs(np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))), (batch, cin, *size),
                                 (cout, cin, *kernel), dtype=dtype)
    params = {"stride": stride, "padding": padding, "dilation": dilation}
    assert_matches_torch(conv(x, w, b, **params), x, w, b, **params)
