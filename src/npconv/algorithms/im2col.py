"""``im2col``: unroll input patches into a column matrix, then one batched GEMM on BLAS.

The column matrix holds, for every (channel, kernel offset) row and every image, the input
value each output position sees through that offset::

    cols[c * K + k, n, p] = x_pad[n, c, p * stride + k * dilation]       K = prod(kernel)

so that, group by group, ``out[:, g] = weight[g] (Og, Cg*K) @ cols[g] (Cg*K, N*P)``: the
images sit side by side in one GEMM, which keeps it efficient where an image has few
output positions (a 7x7 output is a 49-column GEMM on its own).  The full
matrix is ``C_in * K`` times the output's spatial size (81x the output for a 9x9 kernel),
so it is built in chunks -- several whole images, or a range of output positions of one
image -- that fit the workspace cap (:func:`npconv.set_workspace_limit`).  Zero padding is
never materialised: the Numba kernels write zeros where a patch leaves the input.  They
copy output row by output row, or for short rows (7 to 20 wide) gather every value
through a table of input offsets, which does not pay ~20 ns a row (:func:`fill_kernel`).

Ranks 1 and 2 run as rank 3 with leading size-1 dims.

Threads: the chunks are shared out among the cores (:mod:`npconv.parallel`); each thread
fills its own column buffer with a single-threaded Numba kernel and multiplies it with
single-threaded BLAS.  A parallel fill alternating with multi-threaded GEMMs made the two
thread pools fight (a flat ~8 ms per call, see PERFORMANCE.md).
"""

import functools
import math

import numpy as np
from numba import njit, uint64

from ..config import get_num_threads, get_workspace_limit
from ..parallel import run_pieces, split, threads_for
from . import vector_copy
from .base import COPY_BYTES_PER_SECOND, Algorithm, as_3d, gemm_seconds, scratch_limit

# Chunks of about this size stay in the L3 cache between the fill and the GEMM: measured
# 10-40% faster than chunks of 64 MiB or whole column matrices.  The cap bounds it above.
CHUNK_BYTES = 8 * 2**20
# The fill kernel on one core: per value written, and per output row it walks (measured on
# an earlier fill; the present one runs at about 0.21 ns a value and 4.2 ns a row here, but with
# those constants the models moved six of the suite's choices to im2col, ResNet-50's stem
# among them, which runs 1.4-1.6x faster on ``grouped``: the other models' errors lean on these).
FILL_SECONDS_PER_VALUE = 0.5e-9
FILL_SECONDS_PER_ROW = 20e-9
# Output rows shorter than this are gathered instead (gather_columns), per value on one core:
# measured 4x faster than walking rows 7 wide, 1.6x at 14, 1.2x at 20, 5-10% slower at 32.
# The gather took 0.5-0.7 ns a value alone on one core (a 7x7/2 kernel on 128 channels: 0.87
# ms for 1.2 M values); 1.0, as with both threads filling, put auto's choice on 1,684 random
# geometries (benchmarks/auto_choice.py's kind) 1.046 -> 1.031x behind the fastest, with no
# choice on the suite changed (0.5 ran im2col where the direct kernel was up to 2x faster).
GATHER_BELOW_WIDTH = 24
GATHER_SECONDS_PER_VALUE = 1.0e-9


@njit(cache=True, nogil=True)
def fill_columns(x, cols, n0, p0, kernel, stride, dilation, pad, out_size):
    """Write output positions ``p0 .. p0 + cols.shape[2]`` of images ``n0 ..`` into ``cols``.

    x: (N, C, D, H, W) and cols: (C * KD*KH*KW, nb, pc), both C-contiguous; the 3-vectors
    give each spatial dim.  Indexing is flat and unsigned: Numba's negative-index handling
    on signed indices stops the copy loops from vectorising (3x slower).
    """
    rows, nb, pc = cols.shape
    channels, in_d, in_h, in_w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    kd_n, kh_n, kw_n = kernel[0], kernel[1], kernel[2]
    sd, sh, sw = stride[0], stride[1], stride[2]
    dd, dh, dw = dilation[0], dilation[1], dilation[2]
    pd, ph, pw = pad[0], pad[1], pad[2]
    out_h, out_w = out_size[1], out_size[2]
    kvol = kd_n * kh_n * kw_n
    src, dst = x.ravel(), cols.ravel()
    line0, column0 = p0 // out_w, p0 % out_w  # the chunk's first output row (od, oh), its first column
    lines = (p0 + pc - 1) // out_w + 1 - line0
    for job in range(rows * nb):
        row, b = job // nb, job % nb
        c, k = row // kvol, row % kvol
        kd, kh, kw = k // (kh_n * kw_n), (k // kw_n) % kh_n, k % kw_n
        plane = ((n0 + b) * channels + c) * in_d  # index of (image, channel) in x's (N*C*D) planes
        shift_w = kw * dw - pw
        # output columns ow with 0 <= ow * sw + shift_w < in_w read inside the input
        first = min(max(0, -(shift_w // sw)), out_w)
        last = max(first, min(out_w, (in_w - 1 - shift_w) // sw + 1))
        base = (row * nb + b) * pc - column0  # dst index of the line's column 0 (ow0 + base >= 0)
        oh = line0 % out_h
        i_d, i_h = (line0 // out_h) * sd + kd * dd - pd, oh * sh + kh * dh - ph
        for line in range(lines):
            ow0, ow1 = column0 if line == 0 else 0, min(column0 + pc - line * out_w, out_w)
            lo, hi = ow1, ow1  # the columns [lo, hi) of [ow0, ow1) that read inside the input
            if 0 <= i_d < in_d and 0 <= i_h < in_h:
                lo = min(max(ow0, first), ow1)
                hi = max(min(ow1, last), lo)
            for ow in range(ow0, lo):
                dst[uint64(base + ow)] = 0
            start = ((plane + i_d) * in_h + i_h) * in_w + lo * sw + shift_w
            if sw == 1:
                vector_copy.copy(dst, base + lo, src, start, hi - lo)
            elif sw == 2:
                vector_copy.evens(dst, base + lo, src, start, hi - lo)
            else:
                for j in range(hi - lo):
                    dst[uint64(base + lo + j)] = src[uint64(start + j * sw)]
            for ow in range(hi, ow1):
                dst[uint64(base + ow)] = 0
            base += out_w
            oh, i_h = oh + 1, i_h + sh  # the next output row
            if oh == out_h:
                oh, i_d, i_h = 0, i_d + sd, kh * dh - ph


@njit(cache=True, nogil=True)
def gather_columns(x, cols, n0, p0, kernel, stride, dilation, pad, out_size):
    """:func:`fill_columns` as a gather, for short output rows.

    First a table: for kernel offset ``k`` and chunk position ``j``, the offset in an input
    plane (D*H*W) that ``cols[c * K + k, :, j]`` reads, or -1 for padding; then each column
    row is gathered through it.  Walking rows costs ~20 ns each, so rows 7 wide cost
    2 ns a value and the gather 0.5.  The table holds ``K * pc`` int32s, a ``C_in * nb``-th
    of the columns.
    """
    rows, nb, pc = cols.shape
    channels, in_d, in_h, in_w = x.shape[1], x.shape[2], x.shape[3], x.shape[4]
    kh_n, kw_n = kernel[1], kernel[2]
    out_h, out_w = out_size[1], out_size[2]
    kvol, size = kernel[0] * kh_n * kw_n, in_d * in_h * in_w
    table = np.empty((kvol, pc), dtype=np.int32)
    for k in range(kvol):
        kd, kh, kw = k // (kh_n * kw_n), (k // kw_n) % kh_n, k % kw_n
        line = p0 // out_w
        od, oh, ow = line // out_h, line % out_h, p0 % out_w
        for j in range(pc):
            i_d = od * stride[0] + kd * dilation[0] - pad[0]
            i_h = oh * stride[1] + kh * dilation[1] - pad[1]
            i_w = ow * stride[2] + kw * dilation[2] - pad[2]
            inside = 0 <= i_d < in_d and 0 <= i_h < in_h and 0 <= i_w < in_w
            table[k, j] = (i_d * in_h + i_h) * in_w + i_w if inside else -1
            ow += 1
            if ow == out_w:  # next output row
                ow, oh = 0, oh + 1
                if oh == out_h:
                    oh, od = 0, od + 1
    src, dst = x.ravel(), cols.ravel()
    for row in range(rows):
        index = table[row % kvol]
        for b in range(nb):
            plane, line = ((n0 + b) * channels + row // kvol) * size, (row * nb + b) * pc
            for j in range(pc):
                i = index[j]
                dst[line + j] = src[plane + max(i, 0)] if i >= 0 else 0


def fill_kernel(geom):
    """The kernel that fills ``geom``'s columns: :func:`gather_columns` for output rows shorter
    than GATHER_BELOW_WIDTH (and input planes its int32 table can index), else
    :func:`fill_columns`."""
    if geom.out_size[-1] < GATHER_BELOW_WIDTH and math.prod(geom.in_size) < 2**31:
        return gather_columns
    return fill_columns


def fill_seconds(geom):
    """The fill's time on one core for ``geom``'s whole column matrix."""
    positions, rows = math.prod(geom.out_size), geom.batch * geom.in_channels * math.prod(geom.kernel)
    if fill_kernel(geom) is gather_columns:
        return rows * positions * GATHER_SECONDS_PER_VALUE
    return rows * (positions * FILL_SECONDS_PER_VALUE + positions // geom.out_size[-1] * FILL_SECONDS_PER_ROW)


def position_bytes(geom):
    """Scratch bytes of one output position of one image in a chunk: its column (``C_in * K``
    values) and, where the columns are gathered, its ``K`` int32s of the gather's table
    (counted per image, though a chunk's images share them)."""
    kvol = math.prod(geom.kernel)
    table = 4 * kvol if fill_kernel(geom) is gather_columns else 0
    return geom.in_channels * kvol * geom.dtype.itemsize + table


def chunking(geom, limit, threads=1, split_outputs=False):
    """``(images, positions, threads)``: the chunk, and how many threads fill chunks at once.

    The threads' chunks together stay within ``limit`` bytes whenever one column
    (:func:`position_bytes`) fits it, using fewer threads if need be; each chunk is at most
    ``CHUNK_BYTES``.  A chunk holds whole images when one fits, else part of one; with
    fewer images than threads an image's positions are split so every thread has work --
    or, with ``split_outputs`` where :func:`splits_outputs`, the image is one chunk whose
    output channels the threads share.  A chunk of several images also counts its GEMM's
    output (:func:`chunk_bytes`).  The chunk's size is picked so that the threads' shares
    come out about equal (:func:`_even`): the largest chunk that fit, then what was left, gave
    one thread 655 of an image's 729 positions and the other 74 (a 5x5/2 layer at batch 1, no
    faster on two threads than on one), or 6 of 8 images and the other 2.
    """
    column_bytes = position_bytes(geom)
    positions = math.prod(geom.out_size)
    if split_outputs and splits_outputs(geom, limit, threads):
        return 1, positions, threads
    threads = max(1, min(threads, limit // column_bytes))
    limit = min(limit // threads, CHUNK_BYTES)
    if column_bytes * positions > limit:
        most = max(1, min(positions, limit // column_bytes))
        return 1, _even(positions, most, threads if geom.batch == 1 else 1), threads
    if geom.batch < threads:
        return 1, -(-positions // threads), threads
    image_bytes = (column_bytes + geom.out_channels * geom.dtype.itemsize) * positions
    return _even(geom.batch, max(1, min(-(-geom.batch // threads), limit // image_bytes)), threads), positions, threads


@functools.lru_cache(maxsize=1024)
def _even(total, most, parts):
    """A chunk size of at most ``most`` for ``total`` (the last chunk smaller) whose chunks,
    shared out by :func:`npconv.parallel.split` into ``parts`` runs, load the busiest part
    least: tried, the sizes that give each part the fewest chunks that fit, or up to 3 more
    (8 images on 3 threads: 1 a chunk, not 2); of the best, the largest."""
    chunks_of_most = -(-total // most)
    fewest = -(-chunks_of_most // parts)  # per part

    def busiest(size):
        chunks = -(-total // size)
        return max(min(total, stop * size) - start * size for start, stop in split(chunks, parts))

    sizes = {-(-total // (per_part * parts)) for per_part in range(fewest, fewest + 4)}
    return min(sorted(sizes, reverse=True), key=busiest)


def splits_outputs(geom, limit, threads):
    """Whether the forward's threads share out one image's output channels rather than its
    positions: each fills and multiplies whole groups where there are enough, else the
    columns are filled once, on one thread, and each multiplies a share of every group's.

    Only for a batch of one image, its columns within ``limit`` and
    ``CHUNK_BYTES``, where the cost models find it faster: where splitting the positions
    leaves the GEMMs narrow.  ResNet-50's 3x3 layers on 7x7 outputs at batch 1: GEMMs of
    512 outputs by 49 positions ran 1.4x faster on each core than 1024 by 25, while the fill
    on one thread cost more than it saved at 14x14 (GEMMs as fast either way).
    """
    positions, outputs, depth = math.prod(geom.out_size), geom.out_per_group, geom.in_per_group * math.prod(geom.kernel)
    if threads < 2 or geom.batch != 1 or position_bytes(geom) * positions > min(limit, CHUNK_BYTES):
        return False
    fill = fill_seconds(geom)
    by_positions = (gemm_seconds(geom.flops, outputs, -(-positions // threads), depth) + fill) / threads
    if geom.groups >= threads:
        by_outputs = (gemm_seconds(geom.flops, outputs, positions, depth) + fill) / threads
    else:
        by_outputs = gemm_seconds(geom.flops, -(-outputs // threads), positions, depth) / threads + fill
    return by_outputs < by_positions


@functools.lru_cache(maxsize=1024)
def _seconds(geom, threads, workspace_limit):
    """im2col's cost model on ``threads`` under ``workspace_limit`` (remembered per geometry and
    settings: its chunking took 8 us of a 40 us call): the GEMMs, plus on all threads the fill
    (:func:`fill_seconds`) and, where a chunk holds several images, the copy of their GEMM's
    output into place, read and written.  With few input channels and many outputs that copy
    costs as much as the GEMM: 3 -> 256 channels, 3x3/2 on 64x64 at batch 8, took 1.5 ms on
    im2col, modelled at 0.8 without it, against 0.9 on the direct kernel."""
    positions = math.prod(geom.out_size)
    images = chunking(geom, scratch_limit(geom), threads, split_outputs=True)[0]
    staged = 2 * math.prod(geom.out_shape) * geom.dtype.itemsize / COPY_BYTES_PER_SECOND if images > 1 else 0.0
    return (gemm_seconds(geom.flops, geom.out_per_group, positions, geom.in_per_group * math.prod(geom.kernel))
            + (fill_seconds(geom) + staged) / threads)


def chunk_bytes(geom, images, positions):
    """Scratch bytes of one chunk: its columns (:func:`position_bytes`), and for several images
    the GEMM's output (images side by side), which is then copied into place."""
    staged = geom.out_channels * geom.dtype.itemsize if images > 1 else 0
    return images * positions * (position_bytes(geom) + staged)


class Im2col(Algorithm):
    name = "im2col"

    def why_unsupported(self, geom):
        if geom.rank > 3:
            return f"it handles 1 to 3 spatial dims, got {geom.rank}"
        return None

    def workspace_bytes(self, geom):
        images, positions, threads = chunking(geom, scratch_limit(geom), threads_for(self.estimated_seconds(geom)),
                                              split_outputs=True)
        chunks = -(-geom.batch // images) * -(-math.prod(geom.out_size) // positions)
        return min(threads, chunks) * chunk_bytes(geom, images, positions)

    def estimated_seconds(self, geom):
        return _seconds(geom, get_num_threads(), get_workspace_limit())

    def run(self, x, weight, geom, out):
        """Chunks shared out among the threads; each fills its column buffer and multiplies it."""
        groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
        kvol, positions = math.prod(geom.kernel), math.prod(geom.out_size)
        rows = geom.in_channels * kvol
        seconds = self.estimated_seconds(geom)
        images, chunk, threads = chunking(geom, scratch_limit(geom), threads_for(seconds), split_outputs=True)
        x3 = x.reshape(geom.batch, geom.in_channels, *(1,) * (3 - geom.rank), *geom.in_size)  # (N, C, D, H, W)
        w_groups = weight.reshape(groups, og, cg * kvol)  # (G, Og, Cg*K)
        out_groups = out.reshape(geom.batch, groups, og, positions)  # (N, G, Og, P)
        params = (
            as_3d(geom.kernel, 1), as_3d(geom.stride, 1), as_3d(geom.dilation, 1),
            as_3d([lo for lo, _ in geom.padding], 0), as_3d(geom.out_size, 1),
        )
        chunks = [(n0, p0) for n0 in range(0, geom.batch, images) for p0 in range(0, positions, chunk)]
        fill = fill_kernel(geom)
        if len(chunks) == 1 and threads > 1:  # one image, its output channels shared out: splits_outputs
            cols = np.empty((rows, 1, positions), dtype=geom.dtype)  # (C*K, 1, P)
            cols_groups = cols.reshape(groups, cg * kvol, positions)  # (G, Cg*K, P)
            if groups >= threads:  # each thread fills and multiplies its groups
                def multiply(span):
                    c0, c1 = span[0] * cg, span[1] * cg
                    fill(x3[:, c0:c1], cols[c0 * kvol : c1 * kvol], 0, 0, *params)  # (1, C', ...), contiguous
                    np.matmul(w_groups[span[0] : span[1]], cols_groups[span[0] : span[1]],
                              out=out_groups[0, span[0] : span[1]])  # (G', Og, P)
                run_pieces(multiply, split(groups, threads), seconds=seconds)
            else:  # filled once, then each thread multiplies a share of every group's outputs
                fill(x3, cols, 0, 0, *params)
                run_pieces(lambda span: np.matmul(w_groups[:, span[0] : span[1]], cols_groups,
                                                  out=out_groups[0, :, span[0] : span[1]]),  # (G, Og', P)
                           split(og, threads), seconds=seconds)
            return

        def work(span):
            buffer = np.empty(images * rows * chunk, dtype=geom.dtype)
            for n0, p0 in chunks[span[0] : span[1]]:
                nb, pc = min(images, geom.batch - n0), min(chunk, positions - p0)
                cols = buffer[: rows * nb * pc].reshape(rows, nb, pc)  # (C*K, nb, pc)
                fill(x3, cols, n0, p0, *params)
                cols = cols.reshape(groups, cg * kvol, nb * pc)  # (G, Cg*K, nb*pc)
                if nb == 1:  # straight into the output
                    np.matmul(w_groups, cols, out=out_groups[n0, :, :, p0 : p0 + pc])  # (G, Og, pc)
                else:  # whole images side by side: (G, Og, nb*P) -> (nb, G, Og, P)
                    products = np.matmul(w_groups, cols).reshape(groups, og, nb, pc)
                    out_groups[n0 : n0 + nb] = products.transpose(2, 0, 1, 3)

        run_pieces(work, split(len(chunks), threads), seconds=seconds)

    def weight_gradient(self, x, grad, geom):
        """im2col's backward: :func:`weight_gradient`."""
        return weight_gradient(x, grad, geom)


def weight_gradient(x, grad, geom):
    """The weight gradient (C_out, Cg, *kernel) of the convolution ``geom``: im2col's backward.

    With the same column matrix as the forward, per image and group::

        grad_w[g] (Og, Cg*K) += grad[n, g] (Og, P) @ cols[n, g]^T (P, Cg*K)

    ``x`` (N, C_in, *in_size) and ``grad`` (N, C_out, *out_size) are C-contiguous arrays of
    ``geom.dtype``.  Chunked and shared out among the threads like :meth:`Im2col.run`, but
    under the workspace cap rather than the forward output's size, each thread summing into
    its own accumulator.
    """
    groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
    kvol, positions = math.prod(geom.kernel), math.prod(geom.out_size)
    rows = geom.in_channels * kvol
    # Chunks up to the workspace cap, not the forward's output size: each GEMM sums over as
    # many positions as fit CHUNK_BYTES (2 images of 7x7, 98 positions, had them memory-bound).
    images, chunk, threads = chunking(geom, get_workspace_limit(), get_num_threads())
    x3 = x.reshape(geom.batch, geom.in_channels, *(1,) * (3 - geom.rank), *geom.in_size)  # (N, C, D, H, W)
    grad_groups = grad.reshape(geom.batch, groups, og, positions)  # (N, G, Og, P)
    params = (
        as_3d(geom.kernel, 1), as_3d(geom.stride, 1), as_3d(geom.dilation, 1),
        as_3d([lo for lo, _ in geom.padding], 0), as_3d(geom.out_size, 1),
    )
    chunks = [(n0, p0) for n0 in range(0, geom.batch, images) for p0 in range(0, positions, chunk)]
    if not chunks:  # no images or no output positions: nothing to sum
        return np.zeros((geom.out_channels, cg, *geom.kernel), dtype=geom.dtype)
    spans = split(len(chunks), threads)
    fill = fill_kernel(geom)
    partial = np.empty((len(spans), groups, og, cg * kvol), dtype=geom.dtype)  # one accumulator per thread

    def work(piece):
        index, (first, last) = piece
        buffer = np.empty(images * rows * chunk, dtype=geom.dtype)
        for n0, p0 in chunks[first:last]:
            nb, pc = min(images, geom.batch - n0), min(chunk, positions - p0)
            cols = buffer[: rows * nb * pc].reshape(rows, nb, pc)  # (C*K, nb, pc)
            fill(x3, cols, n0, p0, *params)
            # (nb, G, Og, pc) -> (G, Og, nb*pc), a view for one image, else a copy in the output's chunk_bytes
            g = grad_groups[n0 : n0 + nb, :, :, p0 : p0 + pc].transpose(1, 2, 0, 3).reshape(groups, og, nb * pc)
            cols_t = cols.reshape(groups, cg * kvol, nb * pc).swapaxes(1, 2)  # (G, nb*pc, Cg*K)
            if (n0, p0) == chunks[first]:  # the thread's first chunk: straight into its accumulator
                np.matmul(g, cols_t, out=partial[index])  # (G, Og, Cg*K)
            else:
                partial[index] += np.matmul(g, cols_t)

    run_pieces(work, list(enumerate(spans)), seconds=Im2col().estimated_seconds(geom))
    return partial.sum(axis=0).reshape(geom.out_channels, cg, *geom.kernel)  # (C_out, Cg, *kernel)
