"""``implicit``: im2col's GEMM without its column matrix, summed in register blocks straight from
a channels-last copy of the input (an "implicit GEMM").

For a 1-d or 2-d convolution with one group, with ``xp`` the zero-padded input channels last::

    out[n, o, y, x] = sum_{t < T, c < C} w[o, c, t] * xp[n, y*sh + ky(t)*dh, x*sw + kx(t)*dw, c]

(``t`` over the ``T = KH*KW`` kernel offsets).  A block of 8 output positions by up to 3
vectors of output channels (48 float32) keeps its sums in registers through all ``T*C``
steps, kernel offset by offset, channel by channel within one (:func:`.register_block.block`,
gathered): each step loads 3 vectors of weights and broadcasts the 8 positions' input value
into 24 fused multiply-adds.  The positions' offsets in ``xp`` come from a table, so a block
runs on across rows and images and only a unit's last block computes outputs for nothing.
im2col writes ``C*T`` values per output position (2.25x the input at 3x3/2) and OpenBLAS
packs them again; here the only copy is the input's, channels last, about its size.  On
ResNet-50's 3x3/2 layers the blocks alone ran at 140-165 GFLOP/s a core, im2col's GEMM at
about 122 before its fill.

Layout and work.  The weights are packed per chunk of output channels (at most 3 vectors,
C_out's vectors split evenly: 128 channels as 32 + 48 + 48), ``[t][c][o]`` within a chunk,
zeros past C_out, and cached (:mod:`.weight_cache`).  A unit is a band of one image's output
rows, or several small images, and a group of chunks: its thread copies the unit's input rows
channels last into its own buffer (zero borders; one vector more per position where C's bytes
are a multiple of 1024, or the 8 positions, ``stride * C`` apart, share a few cache sets:
ResNet-50's 512-channel layer ran 1.35x faster), then per chunk computes every output in
blocks and moves the sums, row by row and transposed (:func:`.vector_copy.transpose`), into
the output's planes.  Units hold at least MIN_UNIT_POSITIONS outputs where they can, so that a
unit's pass over its weights is worth their reading, and bands keep a unit's input rows within
SLAB_BYTES; where there are still fewer than 2 units a thread, the chunks are shared out too.
"""

import functools
import math

import numpy as np
from numba import njit

from ..config import get_num_threads
from ..parallel import run_pieces, split, threads_for
from . import register_block, vector_copy
from .base import COPY_BYTES_PER_SECOND, Algorithm
from .weight_cache import WEIGHT_CACHE, check_seconds, planned_frozen
from .winograd import to_channels_last

POSITIONS = 8  # output positions of a block
CHUNK_VECTORS = register_block.vectors(POSITIONS)  # vectors of output channels of a full chunk
# A unit's outputs at least: it reads every weight of its chunks once, 2 / positions bytes per
# FLOP (64 positions: 4.5 GB/s at 145 GFLOP/s, well within what L3 gives a core).
MIN_UNIT_POSITIONS = 64
# A unit's input rows at most, where bands can cut them: they stay in L2 (2 MB a core here)
# beside a chunk's weights while every chunk passes (ResNet-50's 128-channel 3x3/2 layer at
# batch 8 ran 8% faster in bands of 14 output rows, 0.9 MB, than in whole images, 1.7 MB).
SLAB_BYTES = 2**20
# The blocks' multiply-adds on one core, chunks of 3 vectors (the blocks alone: 70-84 G/s on
# ResNet-50's 3x3/2 layers, 3 to 512 input channels); narrower chunks at CHUNK_SPEED of that
# (measured 0.85-0.9 and 0.56-0.58).
MACS_PER_SECOND = 75e9
CHUNK_SPEED = {3: 1.0, 2: 0.9, 1: 0.58}
# A call's set-up beyond the other direct kernels': the weight cache's lookup, the unit tables,
# the buffers (a 1x4x4x4 input took 33 us, 21 on ``grouped``; 200 random geometries
# (benchmarks/auto_choice.py) chose it for small layers where ``grouped`` ran 1.2-3x faster).
CALL_SECONDS = 15e-6

_BLOCK = register_block.block(POSITIONS, gathered=True)


def _channel_depth(channels, itemsize):
    """A position's stride in the buffer, in values: C, or one vector more where C's bytes are a
    multiple of 1024 (a block's positions, ``stride * C`` apart, would share a few cache sets)."""
    return channels + (register_block.lanes(itemsize) if channels * itemsize % 1024 == 0 else 0)


@functools.lru_cache(maxsize=1024)
def _chunks(out_channels, itemsize):
    """(K, 2) int64: each chunk's first output channel and its vectors, the vectors of C_out
    (rounded up) split as evenly as possible into chunks of at most CHUNK_VECTORS."""
    step = register_block.lanes(itemsize)
    total = -(-out_channels // step)
    count = -(-total // CHUNK_VECTORS)
    sizes = [total * (i + 1) // count - total * i // count for i in range(count)]
    starts = np.cumsum([0] + sizes[:-1]) * step
    chunks = np.array(list(zip(starts, sizes)), dtype=np.int64)
    chunks.flags.writeable = False
    return chunks


def _pack(weight, chunks, step):
    """The weights (C_out, C, *kernel) per chunk, ``[t][c][o]``, zeros past C_out, one flat array:
    chunk ``k`` from ``chunks[k, 0] * C * T`` on."""
    out_channels, channels = weight.shape[:2]
    taps = math.prod(weight.shape[2:])
    padded = np.zeros((int(chunks[:, 1].sum()) * step, channels, taps), dtype=weight.dtype)
    padded[:out_channels] = weight.reshape(out_channels, channels, taps)  # (C_out', C, T)
    packed = np.empty(padded.size, dtype=weight.dtype)
    for first, vecs in chunks:
        width = vecs * step
        packed[first * channels * taps : (first + width) * channels * taps].reshape(taps, channels, width)[...] = (
            padded[first : first + width].transpose(2, 1, 0))  # (T, C, width)
    return packed


@functools.lru_cache(maxsize=1024)
def _plan(geom, threads):
    """``(images, bands, groups)``: images per unit, bands of output rows per image (one where a
    unit holds several images) and groups of chunks; units are ``ceil(N / images) * bands *
    groups``.  Images enough for MIN_UNIT_POSITIONS outputs; bands enough that a unit's input
    rows take at most SLAB_BYTES, and for 2 units a thread where each keeps MIN_UNIT_POSITIONS;
    then chunk groups for the rest."""
    out_h, out_w = _out_hw(geom)
    per_image = out_h * out_w
    images = max(1, min(geom.batch, -(-MIN_UNIT_POSITIONS // per_image)))
    stacks, bands = max(1, -(-geom.batch // images)), 1
    if images == 1:
        most = max(1, min(out_h, per_image // MIN_UNIT_POSITIONS))
        while bands < most and (math.prod(_slab_shape(geom, 1, bands)) * geom.dtype.itemsize > SLAB_BYTES
                                or stacks * bands < 2 * threads):
            bands += 1
        bands = -(-out_h // -(-out_h // bands))  # none empty: 7 rows in 5 bands of 2 are 4 bands
    chunks = len(_chunks(geom.out_channels, geom.dtype.itemsize))
    groups = min(chunks, -(-2 * threads // (stacks * bands))) if threads > 1 else 1
    return images, bands, groups


def _slab_shape(geom, images, bands):
    """A unit's input rows (images, rows, width_p, depth): a band's rows, padded wide and deep."""
    kernel, stride, dilation, _, width_p, depth = _params(geom)
    band_rows = -(-_out_hw(geom)[0] // bands)
    return images, (band_rows - 1) * stride[0] + (kernel[0] - 1) * dilation[0] + 1, width_p, depth


def _block_positions(geom, images, bands):
    """A unit's outputs at most, in whole blocks."""
    out_h, out_w = _out_hw(geom)
    return -(-images * -(-out_h // bands) * out_w // POSITIONS) * POSITIONS


def _out_hw(geom):
    return (1, *geom.out_size) if geom.rank == 1 else geom.out_size


def _as_2d(values, fill):
    return np.array((fill, *values) if len(values) == 1 else values, dtype=np.int64)


@njit(cache=True, nogil=True)
def kernel(x, packed, chunks, group_starts, out, kernel_hw, stride, dilation, pad, width_p, depth, images, bands,
           slab, positions, sums, first, last):
    """Units ``first .. last`` of out (N, C_out, OH, OW), the convolution of x (N, C, H, W);
    ``packed``, ``chunks`` from :func:`_pack` and :func:`_chunks`; chunk group ``g`` is chunks
    ``group_starts[g] .. group_starts[g + 1]``.  Unit ``(stack, band, group)``: the input rows
    of the band of ``images`` images go channels last into a buffer ``width_p`` positions
    wide, ``depth`` values apart; then, chunk by chunk, its outputs in blocks of POSITIONS
    (their input offsets in a table, one after another across rows and images, the last
    block's tail repeating the last), moved transposed into ``out`` row by row.  The thread's
    buffers: ``slab`` (images, rows, width_p, depth), zeroed here, ``positions`` and ``sums``
    as :func:`_buffers` makes them."""
    batch, channels, height = x.shape[0], x.shape[1], x.shape[2]
    out_channels, out_h, out_w = out.shape[1], out.shape[2], out.shape[3]
    kh, kw = kernel_hw[0], kernel_hw[1]
    sh, sw = stride[0], stride[1]
    taps, step = kh * kw, register_block.lanes(x.itemsize)
    band_rows, slab_rows, most = -(-out_h // bands), slab.shape[1], positions.size
    flat, image_values, row_values = slab.ravel(), slab_rows * width_p * depth, width_p * depth
    flat[:] = 0  # here, not by np.zeros: NumPy fills it holding the GIL, which the other threads wait for
    x_taps, w_taps = np.empty(taps, dtype=np.int64), np.empty(taps, dtype=np.int64)
    for t in range(taps):
        x_taps[t] = (t // kw) * dilation[0] * row_values + (t % kw) * dilation[1] * depth
    groups, plane, out_flat = group_starts.size - 1, out_h * out_w, out.ravel()
    for unit in range(first, last):
        stack, band, group = unit // (bands * groups), (unit // groups) % bands, unit % groups
        n0, oy0 = stack * images, band * band_rows
        nb, rows = min(images, batch - n0), min(band_rows, out_h - oy0)
        if nb <= 0 or rows <= 0:  # past the last image or row (a plan's bands need not fill the last)
            continue
        top = pad[0] - oy0 * sh  # input row h is slab row top + h
        for b in range(nb):
            for r in range(slab_rows):  # rows of zero padding (a unit before may have left data there)
                if not 0 <= r - top < height:
                    flat[b * image_values + r * row_values : b * image_values + (r + 1) * row_values] = 0
            to_channels_last(x, slab[b : b + 1], n0 + b, top, pad[1], max(0, -top), min(height, slab_rows - top))
        count = nb * rows * out_w
        for line in range(nb * rows):  # (image, row, column) in turn, then the last repeated
            start = (line // rows) * image_values + (line % rows) * sh * row_values
            for ox in range(out_w):
                positions[line * out_w + ox] = start + ox * sw * depth
        positions[count:] = positions[count - 1]
        for k in range(group_starts[group], group_starts[group + 1]):
            c0, vecs = chunks[k, 0], chunks[k, 1]
            width = vecs * step
            for t in range(taps):
                w_taps[t] = t * channels * width
            for p in range(0, count, POSITIONS):
                _BLOCK(vecs, packed, c0 * channels * taps, width, w_taps, channels, flat, positions, p, 1,
                       x_taps, sums, p * width, width)
            for line in range(nb * rows):  # an output row of the chunk's channels
                b, oy = line // rows, oy0 + line % rows
                target = (((n0 + b) * out_channels + c0) * out_h + oy) * out_w
                for w0 in range(0, out_w, step):
                    for j0 in range(0, min(width, out_channels - c0), step):
                        vector_copy.transpose(out_flat, target + j0 * plane + w0, plane, sums,
                                              (line * out_w + w0) * width + j0, width, min(step, out_w - w0),
                                              min(step, out_channels - c0 - j0))


class ImplicitGemm(Algorithm):
    """``implicit``: 1-d and 2-d convolutions of one group (module docstring)."""

    name = "implicit"

    def why_unsupported(self, geom):
        if geom.rank > 2:
            return f"it handles 1 or 2 spatial dims, got {geom.rank}"
        if geom.groups != 1:
            return f"it needs groups == 1, got {geom.groups}"
        return None

    def workspace_bytes(self, geom):
        """Per busy thread, a unit's input rows channels last and its sums for one chunk; the
        packed weights (about the weight)."""
        return _workspace(geom, get_num_threads())

    def why_not_auto(self, geom):
        """Its buffers are whole units, not chunks."""
        return self.beyond_workspace(geom, "its buffers")

    def estimated_seconds(self, geom):
        return _seconds(geom, get_num_threads(), planned_frozen())

    def run(self, x, weight, geom, out):
        step = register_block.lanes(geom.dtype.itemsize)
        chunks = _chunks(geom.out_channels, geom.dtype.itemsize)
        packed = WEIGHT_CACHE.get(weight, (self.name,), lambda: _pack(weight, chunks, step))
        seconds = self.estimated_seconds(geom)
        threads = threads_for(seconds)
        images, bands, groups = _plan(geom, threads)
        params = _params(geom)
        lead = (1,) * (2 - geom.rank)
        x4 = x.reshape(geom.batch, geom.in_channels, *lead, *geom.in_size)  # (N, C, H, W)
        out4 = out.reshape(geom.batch, geom.out_channels, *lead, *geom.out_size)  # (N, C_out, OH, OW)
        group_starts = _group_starts(geom.out_channels, geom.dtype.itemsize, groups)
        units = -(-geom.batch // images) * bands * groups

        def work(span):
            kernel(x4, packed, chunks, group_starts, out4, *params, images, bands, *_buffers(geom, images, bands),
                   *span)

        run_pieces(work, split(units, threads), seconds=seconds)


@functools.lru_cache(maxsize=1024)
def _params(geom):
    """The kernel's geometry arguments: kernel, stride, dilation, low padding (each (H, W)), the
    buffer's width in positions and its depth in values."""
    kernel, stride, dilation = _as_2d(geom.kernel, 1), _as_2d(geom.stride, 1), _as_2d(geom.dilation, 1)
    pad = _as_2d([lo for lo, _ in geom.padding], 0)
    in_w = geom.in_size[-1]
    width_p = max(pad[1] + in_w, (_out_hw(geom)[1] - 1) * stride[1] + (kernel[1] - 1) * dilation[1] + 1)
    return kernel, stride, dilation, pad, int(width_p), _channel_depth(geom.in_channels, geom.dtype.itemsize)


@functools.lru_cache(maxsize=1024)
def _group_starts(out_channels, itemsize, groups):
    """``groups + 1`` indices cutting :func:`_chunks` into groups of about equal vectors."""
    chunks = _chunks(out_channels, itemsize)
    ends = np.cumsum(chunks[:, 1])
    cuts = [int(np.abs(ends - ends[-1] * g / groups).argmin()) + 1 for g in range(1, groups)]  # the nearest
    starts = np.array([0, *cuts, len(chunks)], dtype=np.int64)
    starts.flags.writeable = False
    return starts


def _buffers(geom, images, bands):
    """A thread's buffers: a unit's input rows (:func:`_slab_shape`, zeroed by :func:`kernel`);
    its outputs' input offsets, whole blocks of them; their sums for one chunk (position, channel)."""
    outputs = _block_positions(geom, images, bands)
    return (np.empty(_slab_shape(geom, images, bands), dtype=geom.dtype), np.empty(outputs, dtype=np.int64),
            np.empty(outputs * CHUNK_VECTORS * register_block.lanes(geom.dtype.itemsize), dtype=geom.dtype))


def _unit_bytes(geom, images, bands):
    """Bytes of one thread's :func:`_buffers`."""
    item, outputs = geom.dtype.itemsize, _block_positions(geom, images, bands)
    values = math.prod(_slab_shape(geom, images, bands)) + outputs * CHUNK_VECTORS * register_block.lanes(item)
    return values * item + 8 * outputs  # the positions' offsets: int64


def _workspace(geom, threads):
    images, bands, groups = _plan(geom, threads)
    busy = min(threads, -(-geom.batch // images) * bands * groups)
    step = register_block.lanes(geom.dtype.itemsize)
    packed = int(_chunks(geom.out_channels, geom.dtype.itemsize)[:, 1].sum()) * step * geom.in_channels * math.prod(
        geom.kernel)
    return int(busy * _unit_bytes(geom, images, bands) + packed * geom.dtype.itemsize)


@functools.lru_cache(maxsize=1024)
def _seconds(geom, threads, frozen):
    """The blocks' multiply-adds (every unit's outputs in whole blocks, chunks by CHUNK_SPEED),
    every unit's copy of its input rows (read and written) and the output's move (read and
    written), over the busiest thread's share of the units; and before them, on one thread,
    the check of the packed weights against the weight (:mod:`.weight_cache`: it reads the
    weight and its snapshot, 0.75 ms for ResNet-50's 512-channel 3x3 kernels, half the time
    torch takes for their layer at batch 1; nothing for a frozen weight) and CALL_SECONDS."""
    images, bands, groups = _plan(geom, threads)
    stacks = -(-geom.batch // images)
    step = register_block.lanes(geom.dtype.itemsize)
    per_unit = _block_positions(geom, images, bands)
    chunks = _chunks(geom.out_channels, geom.dtype.itemsize)
    chunk_time = sum(vecs * step / CHUNK_SPEED[int(vecs)] for vecs in chunks[:, 1])
    macs = stacks * bands * per_unit * geom.in_channels * math.prod(geom.kernel) * chunk_time / MACS_PER_SECOND
    units = stacks * bands * groups
    copies = (2 * units * math.prod(_slab_shape(geom, images, bands)) + 2 * math.prod(geom.out_shape)) * (
        geom.dtype.itemsize)
    share = -(-units // threads) / max(1, units)  # the busiest thread's
    weight_bytes = geom.out_channels * geom.in_channels * math.prod(geom.kernel) * geom.dtype.itemsize
    check = 0.0 if frozen else check_seconds(weight_bytes)
    return (macs + copies / COPY_BYTES_PER_SECOND) * share + check + CALL_SECONDS
