"""Transposed convolution by GEMM + col2im: every input value times every tap, added into place.

Per group and chunk of images and output channels, one GEMM gives each input position's
contribution through each kernel tap::

    cols (nb*P, K*oc) = x[images, group]^T (nb*P, Cg) @ weight[group, :, taps, channels] (Cg, K*oc)

(``P`` input positions, ``K = prod(kernel)`` taps).  A Numba kernel then gathers, for each
output position, the ``cols[b, i, t, :]`` of the ``(input, tap)`` pairs with
``i * stride + t * dilation - lo`` equal to it -- one block of an output row at a time,
channels last in a buffer that stays in L1, so the sums are vector adds even for 4x4
images -- and transposes the block into the output's rows with the bias.  No product
involves a padding zero or an inserted zero; products landing in the crop are wasted.

Output channels go inner in ``cols`` (the weight transposed once per call) unless the
weight is about as large as the columns (DCGAN's 512-channel layer on 4x4 images): then
the weight is used as it is, taps inner, and the gather's adds stride over the taps.

Chunks stay within the workspace cap and are shared out among the cores, each with
single-threaded BLAS (:mod:`npconv.parallel`); distinct chunks write distinct output
planes, so they never race.  Ranks 1 to 3 (run as rank 3).
"""

import math

import numpy as np
from numba import njit, uint64

from .algorithms.base import as_3d, gemm_seconds
from .config import get_num_threads, get_workspace_limit
from .parallel import run_pieces, split

# One core (measured): the gather per column value added (contiguous adds; strided ones
# cost about STRIDED_ADD_FACTOR times more), per loop of ``oc`` adds, per output value
# transposed; a transposing copy (the weight, the stacked input) per value.
GATHER_SECONDS_PER_VALUE = 0.1e-9
STRIDED_ADD_FACTOR = 2
GATHER_SECONDS_PER_LOOP = 5e-9
GATHER_SECONDS_PER_OUTPUT = 0.6e-9
TRANSPOSE_SECONDS_PER_VALUE = 1e-9
# Memory traffic, all cores together, that the chunks' caching does not absorb: the output,
# and the input read once per chunk of output channels -- what makes large images slow (measured).
MEMORY_BYTES_PER_SECOND = 10e9
# The gather's buffer of one output row's block, channels last: 16 KiB of float32, in L1.
BLOCK_VALUES = 4096
# Taps inner (the weight as it is, strided adds) when weight values x this x threads exceed
# the column values: the weight's transpose on one thread then costs more than the strided
# adds on all of them (measured on DCGAN's layers).
TAPS_LAST_RATIO = 2.0
# Images with fewer input positions are stacked into one GEMM; others run one GEMM each,
# on the input in place (192 columns run at 0.9 of full speed, see algorithms.base).
STACK_BELOW = 192
# Chunks of about this size stay in cache between the GEMM and the gather.
CHUNK_BYTES = 8 * 2**20


def contributions(in_size, kernel, stride, dilation, lo, out_size):
    """Which ``(tap, input)`` pairs reach each output index of one spatial dim, in CSR form.

    Returns ``(starts, taps, inputs)``: output ``q`` gets ``taps[e]``, ``inputs[e]`` for ``e``
    in ``starts[q] : starts[q + 1]``, i.e. every ``i * stride + t * dilation = q + lo``.
    """
    offset = np.arange(out_size)[:, None] + lo - np.arange(kernel)[None, :] * dilation  # (out, k): i * stride
    reach = (offset % stride == 0) & (offset >= 0) & (offset < in_size * stride)  # (out, k)
    starts = np.concatenate([[0], np.cumsum(reach.sum(axis=1))])
    taps = np.broadcast_to(np.arange(kernel), reach.shape)[reach]  # row-major: by output, then tap
    return starts, taps, offset[reach] // stride


@njit(cache=True, nogil=True)
def gather_columns(cols, taps_last, out, n0, c0, bias, kernel, in_size, reach_d, reach_h, reach_w):
    """``out[n0 + b, c0 + c, q] = bias[c] + sum of cols[b, i, t, c]`` over the ``(t, i)`` reaching ``q``.

    cols: (nb, D*H*W, K, oc) C-contiguous, or (nb, D*H*W, oc, K) if ``taps_last``; out:
    (N, C, OD, OH, OW); each ``reach_*`` is one dim's :func:`contributions`.  A block of one
    output row at a time, channels last in a buffer that stays in L1 (the sums are vector
    adds of ``oc`` values, contiguous unless ``taps_last``), then transposed into the
    output's rows.  Flat unsigned indexing, as in im2col's fill, keeps the loops vectorisable.
    """
    nb, _, kvol, oc = cols.shape
    if taps_last:
        oc, kvol = kvol, oc
    tap_stride, channel_stride = (1, uint64(kvol)) if taps_last else (oc, uint64(1))
    channels, out_d, out_h, out_w = out.shape[1], out.shape[2], out.shape[3], out.shape[4]
    in_h, in_w = in_size[1], in_size[2]
    kh_n, kw_n = kernel[1], kernel[2]
    starts_d, taps_d, inputs_d = reach_d
    starts_h, taps_h, inputs_h = reach_h
    starts_w, taps_w, inputs_w = reach_w
    plane = out_d * out_h * out_w
    src, dst = cols.ravel(), out.ravel()
    width = max(1, min(out_w, BLOCK_VALUES // oc))
    block = np.empty(width * oc, dtype=cols.dtype)  # (width, oc)
    for job in range(nb * out_d * out_h):
        b, o_d, o_h = job // (out_d * out_h), (job // out_h) % out_d, job % out_h
        first = ((n0 + b) * channels + c0) * plane + (o_d * out_h + o_h) * out_w  # out's (b, c0, o_d, o_h, 0)
        for w0 in range(0, out_w, width):
            w1 = min(w0 + width, out_w)
            for j in range(w1 - w0):
                for c in range(uint64(oc)):
                    block[uint64(j * oc) + c] = bias[c]
            for e_d in range(starts_d[o_d], starts_d[o_d + 1]):
                for e_h in range(starts_h[o_h], starts_h[o_h + 1]):
                    t_dh = (taps_d[e_d] * kh_n + taps_h[e_h]) * kw_n
                    i_dh = ((b * in_size[0] + inputs_d[e_d]) * in_h + inputs_h[e_h]) * in_w
                    for o_w in range(w0, w1):
                        target = uint64((o_w - w0) * oc)
                        for e_w in range(starts_w[o_w], starts_w[o_w + 1]):
                            source = uint64((i_dh + inputs_w[e_w]) * kvol * oc + (t_dh + taps_w[e_w]) * tap_stride)
                            for c in range(uint64(oc)):
                                block[target + c] += src[source + c * channel_stride]
            for c in range(oc):
                line = uint64(first + c * plane)
                for o_w in range(w0, w1):
                    dst[line + uint64(o_w)] = block[uint64((o_w - w0) * oc + c)]


def chunking(geom, limit, threads):
    """``(images, channels)`` per chunk: scratch of at most ``limit / threads`` and ``CHUNK_BYTES``
    (whenever one channel's columns fit), and at least ``threads`` chunks where the work allows.

    Several images, each with a whole group of channels, when one image's columns fit;
    otherwise one image and a range of its channels.
    """
    positions, kvol, item = math.prod(geom.in_size), math.prod(geom.kernel), geom.dtype.itemsize
    per_channel = kvol * positions * item  # columns of one image and output channel
    per_image = positions * geom.in_per_group * item + geom.out_per_group * per_channel  # + its input copy
    budget = min(limit // threads, CHUNK_BYTES)
    og = geom.out_per_group
    if per_image <= budget:
        images, channels = max(1, min(-(-geom.batch // threads), budget // per_image)), og
    else:
        images, channels = 1, max(1, min(og, budget // per_channel))
    chunks = -(-max(geom.batch, 1) // images) * geom.groups * -(-og // channels)
    if chunks < threads:  # split the channels further
        splits = -(-threads // chunks)
        channels = max(1, -(-channels // splits))
    return images, channels


def workspace_bytes(geom):
    """Scratch of :func:`conv_transpose_col2im`: per busy thread one chunk's products (and, for
    small images, its stacked input copy), plus the weight transposed for channels-inner adds."""
    threads = get_num_threads()
    images, channels = chunking(geom, get_workspace_limit(), threads)
    positions, kvol, item = math.prod(geom.in_size), math.prod(geom.kernel), geom.dtype.itemsize
    stacked_input = geom.in_per_group if positions < STACK_BELOW else 0
    chunk = images * positions * (channels * kvol + stacked_input) * item
    chunks = -(-max(geom.batch, 1) // images) * geom.groups * -(-geom.out_per_group // channels)
    weight = 0 if weight_outweighs_columns(geom) else geom.in_channels * geom.out_per_group * kvol * item
    return min(threads, chunks) * chunk + weight


def why_unsupported(geom):
    """``None`` when this path can compute ``geom``; otherwise the reason, in words."""
    return f"it handles 1 to 3 spatial dims, got {geom.rank}" if geom.rank > 3 else None


def weight_outweighs_columns(geom):
    """Whether to multiply by the weight as it is, taps inner (the gather's adds then stride over taps).

    Otherwise output channels go inner, for vector adds, at the cost of transposing the
    weight on one thread: worth it unless the weight is about as large as the columns
    (see TAPS_LAST_RATIO).
    """
    weight_values = geom.in_channels * geom.out_per_group * math.prod(geom.kernel)
    column_values = geom.batch * geom.out_channels * math.prod(geom.kernel) * math.prod(geom.in_size)
    return weight_values * TAPS_LAST_RATIO * get_num_threads() > column_values


def col2im_seconds(geom):
    """Cost model: the GEMMs at their shape; the gather, the input stacking and the weight's
    transpose; the memory traffic."""
    threads = get_num_threads()
    images, channels = chunking(geom, get_workspace_limit(), threads)
    kvol, positions = math.prod(geom.kernel), math.prod(geom.in_size)
    channel_chunks = geom.groups * -(-geom.out_per_group // channels)
    stacked = positions < STACK_BELOW
    taps_last = weight_outweighs_columns(geom)
    columns = geom.batch * geom.out_channels * kvol * positions
    per_thread = (columns * GATHER_SECONDS_PER_VALUE * (STRIDED_ADD_FACTOR if taps_last else 1)
                  + columns // min(channels, geom.out_per_group) * GATHER_SECONDS_PER_LOOP
                  + math.prod(geom.out_shape) * GATHER_SECONDS_PER_OUTPUT
                  + stacked * geom.batch * geom.in_channels * positions * TRANSPOSE_SECONDS_PER_VALUE)
    weight_transpose = (not taps_last) * geom.in_channels * geom.out_per_group * kvol * TRANSPOSE_SECONDS_PER_VALUE
    traffic = math.prod(geom.out_shape) + channel_chunks * geom.batch * geom.in_per_group * positions
    return (gemm_seconds(2 * geom.macs, (images if stacked else 1) * positions, channels * kvol, geom.in_per_group)
            + per_thread / threads + weight_transpose + traffic * geom.dtype.itemsize / MEMORY_BYTES_PER_SECOND)


def conv_transpose_col2im(x, weight, bias, geom):
    """The transposed convolution of ``x`` (N, C_in, *in) with ``weight`` (C_in, Og, *kernel), plus bias.

    Both C-contiguous arrays of ``geom.dtype``; returns a new (N, C_out, *out) array.
    """
    groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
    kvol, positions = math.prod(geom.kernel), math.prod(geom.in_size)
    out = np.empty(geom.out_shape, dtype=geom.dtype)
    out3 = out.reshape(geom.batch, geom.out_channels, *as_3d(geom.out_size, 1))  # (N, C_out, OD, OH, OW)
    x_groups = x.reshape(geom.batch, groups, cg, positions)  # (N, G, Cg, P)
    taps_last = weight_outweighs_columns(geom)
    if taps_last:
        w_cols = weight.reshape(groups, cg, og * kvol)  # (G, Cg, Og*K), a view
    else:
        w_cols = weight.reshape(groups, cg, og, kvol).swapaxes(2, 3).reshape(groups, cg, kvol * og)  # (G, Cg, K*Og)
    bias = np.zeros(geom.out_channels, dtype=geom.dtype) if bias is None else bias
    reach = [
        contributions(i, k, s, d, lo, o)
        for i, k, s, d, lo, o in zip(as_3d(geom.in_size, 1), as_3d(geom.kernel, 1), as_3d(geom.stride, 1),
                                     as_3d(geom.dilation, 1), as_3d([lo for lo, _ in geom.padding], 0),
                                     as_3d(geom.out_size, 1))
    ]
    kernel3, in3 = as_3d(geom.kernel, 1), as_3d(geom.in_size, 1)
    threads = get_num_threads()
    images, channels = chunking(geom, get_workspace_limit(), threads)
    chunks = [(n0, g, o0)
              for n0 in range(0, geom.batch, images) for g in range(groups) for o0 in range(0, og, channels)]

    def work(span):
        for n0, g, o0 in chunks[span[0] : span[1]]:
            nb, oc = min(images, geom.batch - n0), min(channels, og - o0)
            inputs = x_groups[n0 : n0 + nb, g].swapaxes(1, 2)  # (nb, P, Cg), transposed views
            if positions < STACK_BELOW:  # one taller GEMM: the images copied side by side
                inputs = inputs.reshape(nb * positions, cg)  # (nb*P, Cg)
            if taps_last:
                taps = w_cols[g, :, o0 * kvol : (o0 + oc) * kvol]  # (Cg, oc*K), a view
            else:
                taps = w_cols[g].reshape(cg, kvol, og)[:, :, o0 : o0 + oc].reshape(cg, kvol * oc)  # (Cg, K*oc)
            cols = inputs @ taps  # (nb, P, K*oc) or (nb*P, K*oc); oc*K if taps_last
            c0 = g * og + o0
            gather_columns(cols.reshape(nb, positions, *((oc, kvol) if taps_last else (kvol, oc))), taps_last,
                           out3, n0, c0, bias[c0 : c0 + oc], kernel3, in3, *reach)

    run_pieces(work, split(len(chunks), threads))
    return out
