"""register_block: the register-blocked sums against NumPy, each block size, vector count and dtype, and what it
writes."""

import numpy as np
import pytest
from numba import njit

from npconv.algorithms import register_block

BLOCKS = [(ob, count) for ob in (8, 4, 2, 1) for count in range(1, register_block.vectors(ob) + 1)]


@njit(cache=True)
def _call(ob, count, src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out, out_start,
          out_stride):
    register_block.run_block(ob, count, src, src_start, plane, offsets, channels, w, w_start, w_stride,
                             w_channel_stride, out, out_start, out_stride)


def _block_case(rng, ob, count, dtype, channels, taps):
    """Random operands of one block call, every start off the vectors' alignment, gaps between the
    outputs' weights, their channels' and their rows, offsets in any order; ``out`` NaN."""
    run = count * register_block.lanes(np.dtype(dtype).itemsize)
    plane, src_start, w_start, out_start = run + 61, 5, 3, 7
    w_channel_stride = taps + 3
    w_stride, out_stride = channels * w_channel_stride + 2, run + 9
    offsets = rng.permutation(60)[:taps].astype(np.int64)
    src = rng.standard_normal(src_start + channels * plane).astype(dtype)
    w = rng.standard_normal(w_start + ob * w_stride).astype(dtype)
    out = np.full(out_start + ob * out_stride + 4, np.nan, dtype=dtype)
    return (src, src_start, plane, offsets, channels, w, w_start, w_stride, w_channel_stride, out, out_start,
            out_stride), run


@pytest.mark.parametrize("ob, count", BLOCKS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels, taps", [(1, 1), (3, 9), (16, 9), (2, 25)])
def test_block_sums_match_numpy_and_write_only_its_block(rng, ob, count, dtype, channels, taps):
    args, run = _block_case(rng, ob, count, dtype, channels, taps)
    src, src_start, plane, offsets, _, w, w_start, w_stride, w_channel_stride, out, out_start, out_stride = args

    _call(ob, count, *args)

    q = np.arange(run)
    inputs = src[src_start + np.arange(channels)[:, None, None] * plane + offsets[None, :, None] + q]  # (c, t, q)
    weights = w[w_start + np.arange(ob)[:, None, None] * w_stride + np.arange(channels)[:, None] * w_channel_stride
                + np.arange(taps)]  # (o, c, t)
    expected = np.einsum("oct,ctq->oq", weights.astype(np.float64), inputs.astype(np.float64))
    rows = out_start + np.arange(ob)[:, None] * out_stride + q
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out[rows], expected, rtol=tol, atol=tol * np.abs(expected).max())
    written = np.zeros(out.size, dtype=bool)
    written[rows.ravel()] = True
    assert np.isnan(out[~written]).all()  # nothing outside the block's rows


_GATHERED = register_block.block(8, gathered=True)


@njit(cache=True)
def _call_gathered(count, src, src_start, plane, offsets, channels, w, positions, first, w_channel_stride, w_offsets,
                   out, out_start, out_stride):
    _GATHERED(count, src, src_start, plane, offsets, channels, w, positions, first, w_channel_stride, w_offsets, out,
              out_start, out_stride)


@pytest.mark.parametrize("count", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels, taps", [(1, 1), (5, 9), (16, 3)])
def test_gathered_block_reads_w_through_its_tables(rng, count, dtype, channels, taps):
    """The gathered variant: position ``o`` of ``w`` from ``positions[first + o]``, offset ``t``
    from ``w_offsets[t]``, positions repeated and in any order."""
    (src, src_start, plane, offsets, _, _, _, _, _, out, out_start, out_stride), run = _block_case(
        rng, 8, count, dtype, channels, taps)
    w_channel_stride, first = 3, 2
    w_offsets = rng.permutation(50)[:taps].astype(np.int64) * w_channel_stride * channels
    positions = rng.integers(0, 40, first + 8).astype(np.int64)
    positions[first + 5] = positions[first + 1]  # a position twice, as a unit's last block repeats its last
    w = rng.standard_normal(positions.max() + channels * w_channel_stride + w_offsets.max()).astype(dtype)

    _call_gathered(count, src, src_start, plane, offsets, channels, w, positions, first, w_channel_stride, w_offsets,
                   out, out_start, out_stride)

    q = np.arange(run)
    inputs = src[src_start + np.arange(channels)[:, None, None] * plane + offsets[None, :, None] + q]  # (c, t, q)
    weights = w[positions[first:, None, None] + np.arange(channels)[:, None] * w_channel_stride + w_offsets]  # (o, c, t)
    expected = np.einsum("oct,ctq->oq", weights.astype(np.float64), inputs.astype(np.float64))
    rows = out_start + np.arange(8)[:, None] * out_stride + q
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(out[rows], expected, rtol=tol, atol=tol * np.abs(expected).max())
    written = np.zeros(out.size, dtype=bool)
    written[rows.ravel()] = True
    assert np.isnan(out[~written]).all()


@pytest.mark.parametrize("ob", [8, 4, 2, 1])
def test_block_of_no_vectors_writes_nothing(rng, ob):
    args, _ = _block_case(rng, ob, 1, np.float32, 2, 9)
    for count in (0, register_block.vectors(ob) + 1):
        _call(ob, count, *args)
        assert np.isnan(args[9]).all()


@pytest.mark.parametrize("outputs, block", [(1, 1), (2, 2), (3, 2), (4, 4), (7, 4), (8, 8), (33, 8)])
def test_fit_takes_the_largest_block_not_above(outputs, block):
    assert register_block.fit(outputs) == block


@njit(cache=True)
def _call_dots(ob, taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride):
    register_block.run_dots(ob, taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride)


@pytest.mark.parametrize("ob", [3, 2, 1])
@pytest.mark.parametrize("taps", range(1, register_block.TAP_BLOCK + 1))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n", [1, 17, 40])  # one masked step; a whole vector and a masked one; several
def test_dots_add_to_the_sums_and_nothing_else(rng, ob, taps, dtype, n):
    g_start, g_stride, x_start, t0, s_start, s_stride = 3, n + 5, 4, 2, 1, taps + 4
    offsets = rng.permutation(30)[: t0 + taps].astype(np.int64)  # the first t0 not summed
    g = rng.standard_normal(g_start + ob * g_stride).astype(dtype)
    x = rng.standard_normal(x_start + 30 + n).astype(dtype)
    sums = np.full(s_start + ob * s_stride + 2, np.nan, dtype=dtype)
    slots = s_start + np.arange(ob)[:, None] * s_stride + np.arange(taps)  # (o, i)
    before = rng.standard_normal(slots.shape).astype(dtype)
    sums[slots] = before

    _call_dots(ob, taps, g, g_start, g_stride, x, x_start, offsets, t0, n, sums, s_start, s_stride)

    gs = g[g_start + np.arange(ob)[:, None] * g_stride + np.arange(n)].astype(np.float64)  # (o, q)
    xs = x[x_start + offsets[t0:, None] + np.arange(n)].astype(np.float64)  # (i, q)
    expected = before + gs @ xs.T
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(sums[slots], expected, rtol=tol, atol=tol * np.abs(expected).max())
    touched = np.zeros(sums.size, dtype=bool)
    touched[slots.ravel()] = True
    assert np.isnan(sums[~touched]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch, rows, depth, width, first, cols_vectors", [
    (3, 17, 5, 7, 0, 7),  # rows past whole 8-row blocks, columns past whole 3-vector blocks
    (1, 8, 1, 4, 16, 4),  # a column window of b, one sum term
    (2, 1, 33, 3, 1, 2),  # one row, b's window off the vectors' alignment
    (4, 12, 64, 6, 48, 3),
])
def test_matmul_matches_numpy_and_writes_only_c(rng, dtype, batch, rows, depth, width, first, cols_vectors):
    lanes = register_block.lanes(np.dtype(dtype).itemsize)
    cols = cols_vectors * lanes
    a = rng.standard_normal((batch, rows, depth)).astype(dtype)
    b = rng.standard_normal((batch, depth, first + cols + width * lanes)).astype(dtype)
    a_before, b_before = a.copy(), b.copy()
    c = np.full((batch, rows, cols), np.nan, dtype=dtype)
    register_block.matmul(a, b, first, c)
    expected = np.matmul(a.astype(np.float64), b[:, :, first:first + cols].astype(np.float64))
    np.testing.assert_allclose(c, expected, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-4)
    np.testing.assert_array_equal(a, a_before)
    np.testing.assert_array_equal(b, b_before)
