"""Sub-pixel phases of 2x2 sub-kernels by Winograd F(4 x 4, 2 x 2), each phase on its own tiles.

A stride-2 transposed convolution whose kernel is twice its stride in both dims (DCGAN's
4x4/2) splits into four phases, each a stride-1 convolution of the input with a 2x2
sub-kernel (:mod:`npconv.transpose`).  Stacked on one grid they run as one convolution, but
the grid is one row and column larger than each phase (9x9 for four 8x8 phases), and no
F(m, 2) tiles both it and the phases exactly.  Here each phase is tiled on its own: F(4, 2)
computes a 4x4 output tile from a 5x5 input tile with 25 multiplications per channel pair
instead of 64 (2.56x fewer; the stacked grid's F(3, 2) does 1.78x), and 8x8 or 16x16 phases
are whole tiles::

    out_tile[o] = AT ( sum_c  U_p[:, :, c, o] * V[:, :, c] ) AT^T

with ``U_p = G w_p G^T`` the phase's sub-kernel and ``V = BT d BT^T`` its input tile, read
from the phase's window of the grid's padded input.  The four phases share each thread's
channels-last copy of the input and its scratch; their per-point products (tiles by channels,
16-128 rows) are narrow for OpenBLAS (80-105 GFLOP/s a core), so they run in register blocks
(:func:`.algorithms.register_block.matmul`, 115-160).  A thread takes the two column phases
of one row phase and writes their outputs, interleaved, straight into the output's rows: no
buffer of phase outputs, no placing pass (which took 0.15-0.25 ms of DCGAN's 2.4 ms middle
layers).

F(4, 2) uses the points 0, 1, -1, 2 and infinity: between F(2, 3)'s four and F(4, 3)'s six,
so the ``"high"`` precision policy allows it (``"highest"`` does not).
"""

import math
import threading

import numpy as np
from numba import njit

from .algorithms import register_block
from .algorithms.base import COPY_BYTES_PER_SECOND
from .algorithms.weight_cache import WEIGHT_CACHE
from .algorithms.winograd import (TRANSFORM_SECONDS_PER_VALUE, input_transform, output_transform, to_channels_last,
                                  transform_coefficients, transform_weight)
from .config import get_num_threads, precision_allows
from .parallel import run_pieces, split, threads_for

M = 4  # output tile side: F(4, 2)
N = M + 1  # input tile side, transform points a side
# The register blocks' multiply-adds on one core (measured 115-150 GFLOP/s on these GEMMs; 140 in
# place on DCGAN's 128 -> 64 layer, 2 threads.  At 125, with each thread's copy counted whole,
# auto put that layer on the stacked convolution, 2.63 ms against 2.17 this way).
MATMUL_FLOPS_PER_SECOND = 140e9
# A thread's stream of U, every element once per block of tiles: from L3 at 13-20 GB/s (512 and
# 256 channels in, one core; a block of 8 tiles takes as long for it as for its GEMMs' work).
U_BYTES_PER_SECOND = 20e9
# Tiles per block of a thread: its V and two column phases' M within about this many bytes.
BLOCK_BYTES = 2 * 2**20


def why_unsupported(geom, reached, grid, precision):
    """None where the ``reached`` phases, stacked on ``grid`` (:func:`npconv.transpose.phase_plan`'s;
    None where they do not stack), can run here, else why not."""
    if precision is not None and not precision_allows(precision, "high"):
        return f"the precision policy {precision!r} allows no Winograd"
    if grid is None or geom.rank != 2 or geom.stride != (2, 2):
        return "it needs a 2-d stride-2 layer whose phases stack on one grid"
    if len(reached) != 4:
        return f"it needs taps in all four phases, got {len(reached)}"
    if any(len(range(k)[g.taps]) != 2 or g.dilation != 1 for k, g in zip(geom.kernel, grid)):
        return "it needs 2x2 sub-kernels at dilation 1"
    if any(g.crop != slice(0, size) for g, size in zip(grid, geom.in_size)):
        return "it needs the whole input (no cropping padding)"
    if geom.out_per_group * geom.dtype.itemsize % register_block.VECTOR_BYTES:
        return f"it needs whole vectors of output channels per group, got {geom.out_per_group}"
    return None


def _tiles(counts):
    return tuple(-(-c // M) for c in counts)


def _block(geom, tiles):
    """Tiles per block: V and two phases' M within BLOCK_BYTES."""
    per_tile = N * N * (geom.in_channels + 2 * geom.out_channels) * geom.dtype.itemsize
    return max(8, min(tiles, BLOCK_BYTES // per_tile))


def estimated_seconds(geom, counts):
    """GEMMs at MATMUL_FLOPS_PER_SECOND a core and the transforms per value (four phases' input
    tiles, every output's), shared by the threads; each thread's channels-last copy of the
    input (:func:`run`) and its stream of U (half of it per block of tiles) at
    U_BYTES_PER_SECOND."""
    tiles = geom.batch * math.prod(_tiles(counts))
    threads = get_num_threads()
    gemm_flops = 2 * 4 * N * N * tiles * geom.in_per_group * geom.out_channels
    transformed = 4 * tiles * N * N * (geom.in_channels + geom.out_channels)
    copy = 2 * geom.batch * geom.in_channels * math.prod(geom.in_size) * geom.dtype.itemsize / COPY_BYTES_PER_SECOND
    spans = _spans(threads)
    per_span = -(-tiles // spans)
    blocks = -(-per_span // _block(geom, per_span))  # per piece
    u_bytes = 4 * N * N * geom.in_per_group * geom.out_channels * geom.dtype.itemsize
    streamed = -(-2 * spans // threads) * blocks * u_bytes / 2
    shared = gemm_flops / MATMUL_FLOPS_PER_SECOND + transformed * TRANSFORM_SECONDS_PER_VALUE
    return shared / threads + copy + streamed / U_BYTES_PER_SECOND


def _spans(threads):
    """Spans of tiles per row phase: the threads take a row phase and a span each."""
    return max(1, threads // 2)


def _phase_major(u):
    """U (n^2, G, Cg, 4 Og) as (4, n^2 G, Cg, Og), each phase's products contiguous: as column
    blocks of U its rows lay 4 Og apart, and at 512 or 256 channels such rows share a few cache
    sets (the layer ran 1.6x slower on one core)."""
    points, groups, cg, outputs = u.shape
    return np.ascontiguousarray(u.reshape(points, groups, cg, 4, outputs // 4).transpose(3, 0, 1, 2, 4)).reshape(
        4, points * groups, cg, outputs // 4)


def workspace_bytes(geom, counts):
    """Every thread's padded input (about the input) and block of V and of two phases' M, and
    the transformed sub-kernels."""
    tiles_h, tiles_w = _tiles(counts)
    item = geom.dtype.itemsize
    padded = geom.batch * (tiles_h * M + 3) * (tiles_w * M + 3) * geom.in_channels * item
    block = _block(geom, geom.batch * tiles_h * tiles_w)
    blocks = get_num_threads() * block * N * N * (geom.in_channels + 2 * geom.out_channels) * item
    return get_num_threads() * padded + blocks + 4 * N * N * geom.in_per_group * geom.out_channels * item


def run(x, kernel, geom, grid, starts, offsets, counts):
    """The transposed convolution's output (N, C_out, *out_size), without its bias.

    x: (N, C_in, H, W) C-contiguous; kernel: the stacked sub-kernels (G*4*Og, Cg, 2, 2),
    :func:`npconv.transpose._sub_kernels`'; grid: the phases' stacked grid; starts (4, 2): each
    phase's window on it; offsets (4, 2): each phase's output offsets (row, column), every
    pair of 0 and 1 once; counts: the phases' largest output sizes.

    A thread takes both column phases of one row phase for a span of tiles: it streams half
    of U (each thread all of U, with the threads sharing out the tiles: DCGAN's 256 -> 128 at
    batch 8 has 16 tiles a thread, and ran 10% slower), and writes its tile rows' outputs
    straight into their rows of ``out``, the two column phases interleaved
    (:func:`.algorithms.winograd.output_transform`).  Each thread makes its own channels-last
    copy of the input, once, as its first piece starts: the helper then reads its tiles from
    its own cache rather than from the copy the calling thread made (and it is called before
    the copy, not after).  On DCGAN's 128 -> 64 layer the input transforms took 0.32 ms a
    thread rather than 0.41, and the layer 2.08-2.14 ms rather than 2.19-2.23, timed
    alternately in one process (1-2% apart in separate runs).
    """
    groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
    at, bt, _ = transform_coefficients(M, 2, geom.dtype)
    u = WEIGHT_CACHE.get(kernel, ("phase_winograd", groups), lambda: _phase_major(transform_weight(kernel, groups, M)))
    tiles_h, tiles_w = _tiles(counts)
    top, left = (g.pad[0] for g in grid)
    rows = max(top + geom.in_size[0], int(starts[:, 0].max()) + tiles_h * M + 1)
    cols = max(left + geom.in_size[1], int(starts[:, 1].max()) + tiles_w * M + 1)
    out = np.empty(geom.out_shape, dtype=geom.dtype)
    where = {(row, column): phase for phase, (row, column) in enumerate(offsets.tolist())}
    by_row = [[where[row, column] for column in (0, 1)] for row in (0, 1)]  # each row phase's two column phases
    tiles = geom.batch * tiles_h * tiles_w
    block = _block(geom, tiles)
    seconds = estimated_seconds(geom, counts)
    copies = threading.local()  # each thread's

    def padded_input():
        """The grid's padded input (N, Hp, Wp, C_in), the calling thread's copy."""
        if not hasattr(copies, "xp"):
            copies.xp = np.empty((geom.batch, rows, cols, geom.in_channels), dtype=geom.dtype)
            _zero_bordered_copy(x, copies.xp, top, left)
        return copies.xp

    def work(piece):
        (first, stop), row = piece
        size = -(-(stop - first) // -(-(stop - first) // block))  # equal blocks of at most ``block`` tiles
        _row_phase(padded_input(), bt, at, u, out, np.array(by_row[row]), starts, groups, first, stop, size, tiles_h,
                   tiles_w, row)

    spans = split(tiles, _spans(threads_for(seconds)))
    run_pieces(work, [(span, row) for row in (0, 1) for span in spans], seconds=seconds)
    return out


@njit(cache=True, nogil=True)
def _zero_bordered_copy(x, xp, top, left):
    """x (N, C, H, W) into xp (N, Hp, Wp, C) at ``(top, left)``, zeros around it: zeroed here, not
    by np.zeros, which fills it holding the GIL the other threads wait for."""
    xp[:] = 0
    to_channels_last(x, xp, 0, top, left, 0, x.shape[0] * x.shape[2])


@njit(cache=True, nogil=True)
def _row_phase(xp, bt, at, u, out, phases, starts, groups, first, stop, size, tiles_h, tiles_w, row):
    """Tiles ``first .. stop`` of row phase ``row`` (its column phases ``phases``) into out, in
    blocks of ``size`` tiles: per block, each column phase's input transform (its window of the
    padded input xp from ``starts[phase]``) and products with ``u[phase]``, then both phases'
    output transform, interleaved.  One compiled call a piece: as ten calls from Python a
    block, their dispatch took 0.1 ms of DCGAN 128 -> 64's 1.8 ms pieces."""
    cg, og = u.shape[2], u.shape[3]
    v = np.empty(N * N * groups * size * cg, dtype=xp.dtype)
    mm = np.empty(2 * N * N * groups * size * og, dtype=xp.dtype)
    for t0 in range(first, stop, size):
        count = min(size, stop - t0)
        v_block = v[: N * N * groups * count * cg].reshape(N * N, groups, count, cg)  # (n^2, G, T, Cg)
        m_block = mm[: 2 * N * N * groups * count * og].reshape(2, N * N * groups, count, og)  # (2, n^2 G, T, Og)
        for column in range(2):
            phase = phases[column]
            input_transform(xp, bt, v_block, t0, count, 0, tiles_h, tiles_w, M, starts[phase, 0], starts[phase, 1])
            register_block.matmul(v_block.reshape(N * N * groups, count, cg), u[phase], 0, m_block[column])
        output_transform(m_block.reshape(2, N * N, groups, count, og), at, out, 0, t0, tiles_h, tiles_w, 0, 2, row)
