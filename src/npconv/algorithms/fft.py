"""``fft``: correlation as a product of spectra, tile by tile (overlap-save), on ``numpy.fft``.

Output size per spatial dim (see :class:`~npconv.geometry.ConvGeometry`)::

    out = floor((in + lo + hi - dilation * (kernel - 1) - 1) / stride) + 1

Method.  Dilate the kernel with zeros between its taps (``span = dilation * (kernel - 1) + 1``
per dim).  On a tile of ``T >= span`` points per dim of the zero-padded input, the stride-1
correlation equals the circular one wherever the kernel does not wrap, so by the
convolution theorem::

    y[q] = sum_j w_dil[j] x_tile[q + j] = irfftn(rfftn(x_tile) * conj(rfftn(w_dil)))[q],   q <= T - span

(the conjugate makes it a correlation, as PyTorch computes).  Overlap-save: tiles start
every ``u * stride`` points of the padded input and each gives ``u = (T - span) // stride + 1``
outputs per dim.  Per frequency ``f`` the sum over input channels is one complex GEMM per
group, with a chunk's tiles as rows::

    Y[f, g] (M, Og) = X[f, g] (M, Cg) @ W[f, g] (Cg, Og)        M = images x tiles in the chunk

Spectra are frequency-major, ``(*tile spectrum, M, channels)``: the transforms run over the
leading axes and the GEMMs read and write the spectra in place.  ``T`` is the cheapest of a
few 5-smooth sizes under the cost model: small tiles redo their ``span - 1`` overlap, large
ones make a larger kernel spectrum (``C_out * Cg`` kernels of ``T`` points, transformed on
every call).  One tile covering the whole padded input is plain FFT convolution.

Stride ``s`` is the stride-1 correlation, subsampled: the transforms and GEMMs do
``prod(s)`` (``s^d`` for equal strides) times the work the needed outputs take.

Memory: the scratch (a chunk's padded input window, its tiles, both spectra, the kernel
spectrum) is chunked over images and blocks of tiles, and the kernel spectrum over output
channels, to stay within :func:`.base.scratch_limit` (the workspace limit, and about the
output's size) wherever a plan can (tiles of
one span, one output channel).  Output-channel blocks smaller than a group transform the
group's input once per block.

Accuracy: a transform's rounding error is relative to the largest values it transforms, so
an output much smaller than its neighbours keeps less relative precision than with a
direct method: about ``eps * max|x| * sum|w[o]|`` absolute (measured up to 2.3x that).
Work is in the geometry's dtype (complex64 for float32), which is why npconv needs numpy >=
2.0: older numpy transforms only in float64 and cannot write into preallocated arrays.  Any rank.

Threads: the chunks are shared out among the cores (:mod:`npconv.parallel`), or all run on
one thread when the cost model finds handing them out not worth it; each thread transforms
with numpy's single-threaded FFTs (they release the GIL) and multiplies with
single-threaded BLAS, in its own buffers.
"""

import functools
import itertools
import math
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..config import get_num_threads
from ..parallel import run_pieces, split
from .base import Algorithm, scratch_limit

# Cost-model constants, per thread, measured on this machine (numpy 2.4's pocketfft,
# OpenBLAS), by real dtype.  A transform of P points costs per point about
# FFT_PASS_SECONDS per axis (one pass over the data each) plus FFT_LOG2_SECONDS * log2(P)
# (the butterflies): least-squares fit to tiles of 8..1024 points per dim, ranks 1-3,
# within 25% (float32) and 40% (float64).
FFT_PASS_SECONDS = {np.dtype(np.float32): 1.09e-9, np.dtype(np.float64): 0.84e-9}
FFT_LOG2_SECONDS = {np.dtype(np.float32): 0.12e-9, np.dtype(np.float64): 0.45e-9}
# Complex GEMMs (8 flops per complex multiply-add; single-threaded BLAS) and the bytes of
# their operands, which dominate when the tiles or channels are few.
COMPLEX_GEMM_FLOPS_PER_SECOND = {np.dtype(np.float32): 100e9, np.dtype(np.float64): 50e9}
GEMM_BYTES_PER_SECOND = 10e9
# Fewer input channels per group than this run at about the rate of this many (3 channels:
# 12 GFLOP/s measured).
GEMM_MIN_DEPTH = 16
# Transposing copies: input values into tiles, and kept outputs out of them (per byte);
# setting one kernel tap into the dilated kernel; zeroing and conjugating kernel points.
GATHER_SECONDS_PER_BYTE = 0.5e-9
SCATTER_SECONDS_PER_BYTE = 0.75e-9
TAP_SECONDS = 4.5e-9
KERNEL_POINT_SECONDS = 0.5e-9
# numpy's fixed costs of one BLAS call and of one chunk's dozen calls; handing work to the
# threads (:func:`npconv.parallel.run_pieces`: 0.1 ms empty, more in practice).
GEMM_CALL_SECONDS = 0.3e-6
CHUNK_SECONDS = 60e-6
PARALLEL_SECONDS = 300e-6

# Tile sizes tried: each dim takes the smallest 5-smooth size at least the target and its
# kernel span, but no more than one tile for the whole dim.  Target 1 (tiles of one span)
# is for tight workspace caps.
TILE_TARGETS = (1, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)

# norm="ortho" both ways gives the default norms' product once the kernel spectrum is scaled
# by sqrt(points).  It is also numpy 2.4's fast path: with the default norm the forward
# transform passes its scale 1 as a Python int, which selects the float64 loop for float32
# data (4x slower, measured); "ortho" passes a float32 scale.
NORM = "ortho"


def fast_size(n):
    """The smallest 5-smooth integer ``>= n``: pocketfft's fastest lengths."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def _largest(fits, high):
    """The largest ``k`` in ``1 .. high`` with ``fits(k)`` (true up to some ``k``), else 1."""
    low = 1
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _spans(geom):
    return tuple(d * (k - 1) + 1 for k, d in zip(geom.kernel, geom.dilation))


class Tiling(NamedTuple):
    """Tiles of ``tile`` points per dim, giving ``per_tile`` outputs each; ``count`` cover the output."""

    tile: tuple
    per_tile: tuple
    count: tuple
    steps: tuple  # padded-input points between tile starts

    @property
    def points(self):
        return math.prod(self.tile)

    @property
    def spectrum(self):
        return self.tile[:-1] + (self.tile[-1] // 2 + 1,)

    @property
    def frequencies(self):
        return math.prod(self.spectrum)


def tiling(geom, tile):
    per_tile = tuple((t - span) // s + 1 for t, span, s in zip(tile, _spans(geom), geom.stride))
    count = tuple(-(-o // u) for o, u in zip(geom.out_size, per_tile))
    return Tiling(tile, per_tile, count, tuple(u * s for u, s in zip(per_tile, geom.stride)))


def _chunk_elements(geom, tiles, cin, cout, images, block):
    """Values ``(real, window, complex)`` of one thread's buffers for a chunk of ``images x block`` tiles."""
    m = images * math.prod(block)
    in_window = images * cin * math.prod((b - 1) * step + t for b, step, t in zip(block, tiles.steps, tiles.tile))
    out_window = images * cout * math.prod(b * u for b, u in zip(block, tiles.per_tile))
    return tiles.points * m * max(cin, cout), max(in_window, out_window), tiles.frequencies * m * (cin + cout)


def _workspace(geom, tiles, groups, outs, images, block, threads):
    """Scratch bytes: the kernel spectrum, and the dilated kernel or ``threads`` chunks' buffers."""
    cin, cout = groups * geom.in_per_group, groups * outs
    real, window, spectra = _chunk_elements(geom, tiles, cin, cout, images, block)
    kernel = tiles.points * cin * outs
    chunk = real + window + 2 * spectra
    return geom.dtype.itemsize * (2 * tiles.frequencies * cin * outs + max(kernel, threads * chunk))


class Plan(NamedTuple):
    """How :meth:`FFT.run` cuts up a geometry."""

    tiles: Tiling
    groups: int  # groups per output-channel block
    outs: int  # output channels per group in a block (out_per_group unless groups == 1)
    images: int  # images per chunk
    block: tuple  # tiles per dim per chunk
    threads: int
    workspace: int
    seconds: float


def _seconds(geom, tiles, groups, outs, images, block, chunks):
    """The cost model's time on one thread: transforms, GEMMs, copies, and numpy's per-call costs."""
    dtype, cg, cout = geom.dtype, geom.in_per_group, geom.out_channels
    passes = -(-geom.out_per_group // outs)  # times each input channel is transformed
    all_tiles = max(geom.batch, 1) * math.prod(tiles.count)
    kernel_points = tiles.points * cg * cout
    points = tiles.points * all_tiles * (geom.in_channels * passes + cout) + kernel_points
    m = images * math.prod(block)
    blocks = -(-geom.groups // groups) * passes
    operands = tiles.frequencies * (m * (groups * cg + groups * outs) + groups * cg * outs)  # per chunk and block
    return (
        points * (geom.rank * FFT_PASS_SECONDS[dtype] + math.log2(tiles.points) * FFT_LOG2_SECONDS[dtype])
        + 8 * tiles.frequencies * all_tiles * max(cg, GEMM_MIN_DEPTH) * cout / COMPLEX_GEMM_FLOPS_PER_SECOND[dtype]
        + blocks * chunks * operands * 2 * dtype.itemsize / GEMM_BYTES_PER_SECOND
        + tiles.points * all_tiles * geom.in_channels * passes * dtype.itemsize * GATHER_SECONDS_PER_BYTE
        + math.prod(tiles.per_tile) * all_tiles * cout * dtype.itemsize * SCATTER_SECONDS_PER_BYTE
        + math.prod(geom.kernel) * cg * cout * TAP_SECONDS + kernel_points * KERNEL_POINT_SECONDS
        + blocks * chunks * (tiles.frequencies * groups * GEMM_CALL_SECONDS + CHUNK_SECONDS)
    )


def _plan_for_tile(geom, limit, threads, tile):
    tiles = tiling(geom, tile)
    rank, cg, og, n_groups = geom.rank, geom.in_per_group, geom.out_per_group, geom.groups
    ones = (1,) * rank

    # Output-channel block: the largest whose kernel spectrum takes at most half the cap
    # while one tile still fits; from 1..Og channels of one group up to all groups.
    def channels(k):
        return (1, k) if k <= og else (k - og + 1, og)

    def block_fits(k):
        groups, outs = channels(k)
        return (2 * tiles.frequencies * groups * cg * outs * geom.dtype.itemsize <= limit // 2
                and _workspace(geom, tiles, groups, outs, 1, ones, 1) <= limit)

    groups, outs = channels(_largest(block_fits, og + n_groups - 1))

    # Chunk: as many threads as fit, each with about its share of the tiles; whole images
    # when one fits, else blocks of one image's tiles cut from the first dim on.
    def fits(images, block, k):
        return _workspace(geom, tiles, groups, outs, images, block, k) <= limit

    threads = _largest(lambda k: fits(1, ones, k), threads)
    batch, per_image = max(geom.batch, 1), math.prod(tiles.count)
    share = -(-batch * per_image // threads)
    images, block = 1, tiles.count
    if per_image <= share and fits(1, block, threads):
        images = _largest(lambda n: n * per_image <= share and fits(n, block, threads), batch)
    for dim in range(rank):

        def ok(b, dim=dim):
            cut = block[:dim] + (b,) + block[dim + 1:]
            return math.prod(cut) * images <= share and fits(images, cut, threads)

        if ok(block[dim]):
            break
        block = block[:dim] + (_largest(ok, tiles.count[dim]),) + block[dim + 1:]
    chunks = -(-batch // images) * math.prod(-(-t // b) for t, b in zip(tiles.count, block))
    threads = min(threads, chunks)

    seconds = _seconds(geom, tiles, groups, outs, images, block, chunks) / threads
    if threads > 1:  # two parallel phases per output-channel block
        seconds += 2 * -(-n_groups // groups) * -(-og // outs) * PARALLEL_SECONDS
    workspace = _workspace(geom, tiles, groups, outs, images, block, threads)
    return Plan(tiles, groups, outs, images, block, threads, workspace, seconds)


@functools.lru_cache(maxsize=256)
def plan(geom, limit, threads):
    """The cheapest :class:`Plan` on 1 or up to ``threads`` threads within ``limit`` bytes of
    scratch, else the smallest.
    """
    spans = _spans(geom)
    whole = tuple(fast_size((o - 1) * s + span) for o, s, span in zip(geom.out_size, geom.stride, spans))
    tiles = {tuple(min(fast_size(max(target, span)), w) for span, w in zip(spans, whole))
             for target in TILE_TARGETS + (max(whole),)}
    plans = [_plan_for_tile(geom, limit, k, tile) for tile in sorted(tiles) for k in sorted({1, threads})]
    return min(plans, key=lambda p: (p.workspace > limit, p.seconds if p.workspace <= limit else p.workspace))


def kernel_spectrum(weight, geom, tiles, threads):
    """``conj(rfftn(w_dil))`` of a block of whole groups or part of one: (*Tf, gb, Cg, ob).

    ``weight`` is the block, ``(gb, ob, Cg, *kernel)``.  Taps are scaled by ``sqrt(points)``
    (see NORM) and set every dilation-th point.
    """
    groups, outs, cg = weight.shape[:3]
    rank = geom.rank
    kernel = np.zeros((*tiles.tile, groups, cg, outs), dtype=geom.dtype)  # (*T, gb, Cg, ob)
    taps = kernel[tuple(slice(0, span, d) for span, d in zip(_spans(geom), geom.dilation))]  # (*k, gb, Cg, ob)
    np.multiply(weight.transpose(*range(3, 3 + rank), 0, 2, 1), math.sqrt(tiles.points), out=taps)
    spectrum = np.empty((*tiles.spectrum, groups, cg, outs), dtype=np.result_type(geom.dtype, np.complex64))
    flat_in = kernel.reshape(*tiles.tile, -1)  # (*T, gb*Cg*ob)
    flat_out = spectrum.reshape(*tiles.spectrum, -1)  # (*Tf, gb*Cg*ob)

    def work(piece):
        lo, hi = piece
        np.fft.rfftn(flat_in[..., lo:hi], axes=tuple(range(rank)), out=flat_out[..., lo:hi], norm=NORM)
        np.conjugate(flat_out[..., lo:hi], out=flat_out[..., lo:hi])

    run_pieces(work, split(flat_in.shape[-1], threads))
    return spectrum


class FFT(Algorithm):
    name = "fft"
    accuracy = "high"

    def workspace_bytes(self, geom):
        return plan(geom, scratch_limit(geom), get_num_threads()).workspace

    def estimated_seconds(self, geom):
        return plan(geom, scratch_limit(geom), get_num_threads()).seconds

    def run(self, x, weight, geom, out):
        """Output-channel block by block: the kernel spectrum, then the chunks shared out among the threads."""
        p = plan(geom, scratch_limit(geom), get_num_threads())
        cg, og = geom.in_per_group, geom.out_per_group
        chunks = list(itertools.product(
            range(0, geom.batch, p.images),
            itertools.product(*(range(0, t, b) for t, b in zip(p.tiles.count, p.block))),
        ))
        for g0, o0 in itertools.product(range(0, geom.groups, p.groups), range(0, og, p.outs)):
            groups, outs = min(p.groups, geom.groups - g0), min(p.outs, og - o0)
            c0, oc0 = g0 * cg, g0 * og + o0  # the block's first input and output channel
            w_block = weight[oc0 : oc0 + groups * outs].reshape(groups, outs, cg, *geom.kernel)  # (gb, ob, Cg, *k)
            self._block(x[:, c0 : c0 + groups * cg], w_block, geom, p, chunks, out[:, oc0 : oc0 + groups * outs])

    @staticmethod
    def _block(x, w_block, geom, p, chunks, out):
        """One output-channel block: ``x`` (N, gb*Cg, *in) and ``out`` (N, gb*ob, *out) are its channels."""
        tiles, rank = p.tiles, geom.rank
        groups, outs, cg = w_block.shape[:3]
        cin, cout = groups * cg, groups * outs
        axes = tuple(range(rank))
        w_hat = kernel_spectrum(w_block, geom, tiles, p.threads)
        w_hat = w_hat.reshape(tiles.frequencies, groups, cg, outs)  # (F, gb, Cg, ob)

        def work(piece):
            real, window, spectra = _chunk_elements(geom, tiles, cin, cout, p.images, p.block)
            real_buf, window_buf = np.empty(real, geom.dtype), np.empty(window, geom.dtype)
            spectra_buf = np.empty(spectra, w_hat.dtype)
            for n0, first in chunks[piece[0] : piece[1]]:
                images = min(p.images, geom.batch - n0)
                block = tuple(min(b, t - i) for b, t, i in zip(p.block, tiles.count, first))
                m, f = images * math.prod(block), tiles.frequencies
                tile_values = real_buf[: tiles.points * m * cin]
                tile_values = tile_values.reshape(*tiles.tile, images, *block, cin)  # (*T, nb, *block, Cb)
                gather(x[n0 : n0 + images], geom, tiles, first, block, window_buf, tile_values)
                x_hat = spectra_buf[: f * m * cin].reshape(*tiles.spectrum, m, cin)  # (*Tf, M, Cb)
                np.fft.rfftn(tile_values.reshape(*tiles.tile, m, cin), axes=axes, out=x_hat, norm=NORM)  # (*T, M, Cb)
                y_hat = spectra_buf[f * m * cin : f * m * (cin + cout)]
                y_hat = y_hat.reshape(*tiles.spectrum, m, cout)  # (*Tf, M, Ob)
                np.matmul(
                    x_hat.reshape(f, m, groups, cg).transpose(0, 2, 1, 3),  # (F, gb, M, Cg)
                    w_hat,  # (F, gb, Cg, ob)
                    out=y_hat.reshape(f, m, groups, outs).transpose(0, 2, 1, 3),  # (F, gb, M, ob)
                )
                for axis in axes[:-1]:
                    np.fft.ifft(y_hat, axis=axis, out=y_hat, norm=NORM)
                y = real_buf[: tiles.points * m * cout].reshape(*tiles.tile, m, cout)  # (*T, M, Ob)
                np.fft.irfft(y_hat, n=tiles.tile[-1], axis=rank - 1, out=y, norm=NORM)
                y = y.reshape(*tiles.tile, images, *block, cout)  # (*T, nb, *block, Ob)
                scatter(y, geom, tiles, first, window_buf, out[n0 : n0 + images])

        run_pieces(work, split(len(chunks), p.threads))


def gather(x, geom, tiles, first, block, window_buf, tile_values):
    """Copy the tiles ``first .. first + block`` of images ``x`` (nb, Cb, *in) into ``tile_values``.

    ``tile_values`` is (*T, nb, *block, Cb).  The tiles are cut from the chunk's padded input
    window, built in ``window_buf``, zero where it leaves the input.
    """
    images, cin, rank = x.shape[0], x.shape[1], geom.rank
    start = tuple(i * step - lo for i, step, (lo, _) in zip(first, tiles.steps, geom.padding))  # in input coordinates
    extent = tuple((b - 1) * step + t for b, step, t in zip(block, tiles.steps, tiles.tile))
    window = window_buf[: images * cin * math.prod(extent)].reshape(images, cin, *extent)  # (nb, Cb, *extent)
    inside = [(min(max(a, 0), size), min(max(a + e, 0), size)) for a, e, size in zip(start, extent, geom.in_size)]
    if any((lo, hi) != (a, a + e) for (lo, hi), a, e in zip(inside, start, extent)):
        window[...] = 0
    window[(Ellipsis,) + tuple(slice(lo - a, hi - a) for (lo, hi), a in zip(inside, start))] = (
        x[(Ellipsis,) + tuple(slice(lo, hi) for lo, hi in inside)]
    )
    cut = sliding_window_view(window, tiles.tile, axis=tuple(range(2, 2 + rank)))  # (nb, Cb, *extent-T+1, *T)
    cut = cut[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in tiles.steps)]  # (nb, Cb, *block, *T)
    np.copyto(tile_values, cut.transpose(*range(2 + rank, 2 + 2 * rank), 0, *range(2, 2 + rank), 1))


def scatter(y, geom, tiles, first, window_buf, out):
    """Write the outputs of tiles ``first ..`` from ``y`` (*T, nb, *block, Ob) into ``out`` (nb, Ob, *out).

    A tile's outputs are every stride-th of its first ``(u - 1) * stride + 1`` points; they are
    interleaved in ``window_buf`` as (nb, Ob, block_1, u_1, block_2, u_2, ...), then cropped.
    """
    rank = geom.rank
    images, block, cout = y.shape[rank], y.shape[rank + 1 : 2 * rank + 1], y.shape[-1]
    kept = y[tuple(slice(0, (u - 1) * s + 1, s) for u, s in zip(tiles.per_tile, geom.stride))]  # (*u, nb, *block, Ob)
    grid = window_buf[: images * cout * math.prod(b * u for b, u in zip(block, tiles.per_tile))]
    grid = grid.reshape(images, cout, *(n for bu in zip(block, tiles.per_tile) for n in bu))  # (nb, Ob, b1, u1, ...)
    pairs = (a for i in range(rank) for a in (rank + 1 + i, i))  # kept's (block_i, u_i) axes
    np.copyto(grid, kept.transpose(rank, 2 * rank + 1, *pairs))
    grid = grid.reshape(images, cout, *(b * u for b, u in zip(block, tiles.per_tile)))  # (nb, Ob, *block*u)
    region = tuple(slice(i * u, min((i + b) * u, o))
                   for i, b, u, o in zip(first, block, tiles.per_tile, geom.out_size))
    out[(Ellipsis,) + region] = grid[(Ellipsis,) + tuple(slice(0, r.stop - r.start) for r in region)]
