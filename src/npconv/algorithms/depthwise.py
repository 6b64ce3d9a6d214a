"""``depthwise`` and ``grouped``: direct convolution for groups with few channels each.

Output channel ``o`` of group ``g = o // Og`` reads the group's ``Cg`` input channels::

    out[n, o, p] = sum_{c < Cg, k} w[o, c, k] * x_pad[n, g * Cg + c, p * stride + k * dilation]

Depthwise (groups == C_in, ``Cg = 1``, any channel multiplier ``Og``) is the common case.
Numba kernels run over ranges of the independent (image, output channel) planes, the
ranges shared out among the cores (:mod:`npconv.parallel`).  Ranks 1 and 2 run as rank 3
with leading size-1 dims.

Flat planes.  Each input plane is copied, zero-bordered, into its ``s_d * s_h * s_w``
stride phases, phase ``(a, b, e)`` holding ``x_pad[s_d*i + a, s_h*j + b, s_w*l + e]`` at
``(i, j, l)`` of a ``(Dq, Hq, Wq)`` plane.  A kernel offset ``r = k*d`` per dim reads phase
``r mod s`` shifted by ``r // s``, so with outputs laid out as ``q = (od*Hq + oh)*Wq + ow``
every offset is one shift of one flattened phase::

    acc[q] = sum_k w[k] * xq_flat[q + offset(k)]    offset(k) = phase(k)*Dq*Hq*Wq + (rd//sd*Hq + rh//sh)*Wq + rw//sw

The sums run over whole planes, not over output rows (7 values wide in MobileNet's last
stages), at unit stride whatever the convolution's stride, in runs of positions held in
vector registers through every input plane and offset of the group (:mod:`.register_block`);
the ``Wq - Wo`` columns of each row computed for nothing are then dropped.  Small planes of
several images go one after another in each phase (as if stacked along D), so that one run
covers several of them.  The weight gradient is the same shifts as dot products with the
output gradient laid out like ``acc``; the input gradient, the adjoint, reads that output
gradient through the negated shifts into the phases and copies them back
(:func:`flat_input_gradient_kernel`).  Planes move as 64-byte vectors (:mod:`.vector_copy`).
At stride 1 neighbouring rows and images share one zero border (:func:`_phase_shape`), fewer
values computed for nothing.
"""

import functools
import math

import numpy as np
from numba import njit, uint64

from ..config import get_num_threads
from ..parallel import run_pieces, split, threads_for
from . import depthwise_same, register_block, vector_copy
from .base import Algorithm, as_3d
from .im2col import weight_gradient as im2col_weight_gradient
from .pointwise import Pointwise

# The forward kernel's cost on this machine's 2 cores (fitted to ResNeXt's grouped layers and
# MobileNetV2's stride-2 depthwise ones, roughly): multiply-adds of blocks of 4 or 8 outputs
# (:mod:`.register_block`, 60-80 G/s a core), the positions laid out in the phases counted, so
# the columns computed for nothing too; blocks of 2 and of 1 output run at BLOCK_SPEED of that;
# moving each plane into its phases or out of ``acc``, per plane and per value (about memory
# speed: ResNeXt's stride-2 layers spend a third of their time there).  140 G/s rather than
# 120 put auto's choice on 1,684 random geometries 1.031 -> 1.025x behind the fastest (with
# im2col's gather at 1 ns a value), no choice on the suite changed.
MACS_PER_SECOND = 140e9
BLOCK_SPEED = {8: 1.0, 4: 1.0, 2: 0.85, 1: 0.45}
SECONDS_PER_PLANE = 10e-9
SECONDS_PER_PLANE_VALUE = 0.3e-9
# Output channels of one group the forward kernel computes together, sharing the move of the
# group's input planes into their phases (ResNeXt's 4 to 32 outputs per group: its 32-output
# layers at batch 8 ran 1.3-1.4x faster in one block than in two of 16).
OUTPUT_BLOCK = 32
# Images the kernels lay one after another in their phases, so that a unit's runs cover about
# this many positions: each unit and run has its set-up, and a 7x7 output's last run is mostly
# columns computed for nothing (12 images of 7x7 planes, 3 of 14x14; 28x28 planes go one at a time).
STACK_VALUES = 800
# The forward kernel sums a block's outputs over about this many bytes of ``acc`` at a time,
# whole rows of the phases, and moves them out while they are in L2: summed whole, a 112x112
# plane's 32 outputs (1.65 MB) were in L3 by the time they moved out.  ResNet-50's stem on one
# core took 1.91-1.92 ms at batch 1 and 16.5 at batch 8 that way, 1.72-1.73 and 13.9-14.8 in
# rows of 256 KB, 1.59-1.62 and 12.4 with no move at all (a timing hack).  The rows move out
# row by row, each row's outputs together (plane by plane: 1.83-1.84 and 15.6-15.8), their
# images and planes counted on from row to row: found by dividing, per row, the grouped group
# of ``npconv bench`` measured 1.04 instead of 1.18.
ACC_BYTES = 256 * 2**10


def _phase_shape(geom):
    """``(Dq, Hq, Wq)``: one stride phase of the bordered plane, ``out + d*(k - 1) // s`` per dim
    -- or at stride 1, where the output still fits, ``in + max(lo, hi)``: one border between
    neighbouring rows (and images) serves as the bottom of one and the top of the next, since a
    read past a row's end lands in the next row's leading zeros (:func:`_buffer_size`).  On
    ResNeXt's 7x7 planes at batch 8 that is 21% fewer values to compute, 12% on 14x14."""
    sizes = zip(geom.in_size, geom.out_size, geom.kernel, geom.stride, geom.dilation, geom.padding)
    return as_3d([i + max(lo, hi) if s == 1 and min(lo, hi) <= d * (k - 1) else o + d * (k - 1) // s
                  for i, o, k, s, d, (lo, hi) in sizes], 1)


@njit(cache=True, nogil=True)
def _buffer_size(stride, phase, images, offsets, last_output):
    """Values of a buffer of ``images`` planes' stride phases, one after another in each phase,
    that the reads of the last image's outputs (``q < last_output``, through ``offsets``)
    stay inside: with shared borders (:func:`_phase_shape`) they run past the phases' end."""
    stacked = stride[0] * stride[1] * stride[2] * images * phase[0] * phase[1] * phase[2]
    return max(stacked, (images - 1) * phase[0] * phase[1] * phase[2] + last_output + offsets.max())


@njit(cache=True, nogil=True)
def _tap_offsets(kernel, stride, dilation, phase):
    """Each kernel offset's shift in the flattened phases, (kd, kh, kw) order."""
    hq, wq = phase[1], phase[2]
    offsets = np.empty(kernel[0] * kernel[1] * kernel[2], dtype=np.int64)
    for t in range(offsets.size):
        rd = t // (kernel[1] * kernel[2]) * dilation[0]
        rh = (t // kernel[2]) % kernel[1] * dilation[1]
        rw = t % kernel[2] * dilation[2]
        which = ((rd % stride[0]) * stride[1] + rh % stride[1]) * stride[2] + rw % stride[2]
        offsets[t] = which * phase[0] * hq * wq + ((rd // stride[0]) * hq + rh // stride[1]) * wq + rw // stride[2]
    return offsets


@njit(cache=True, nogil=True)
def _row_copies(in_shape, stride, pad, phase, images=1):
    """What moving any plane into its stride phases copies, computed once per call (a 7x7
    plane's copy took 100 ns with this worked out per plane, 27 without): ``(singles, pairs)``
    from :func:`_pairs` of, per input row held by a phase, ``(offset in the plane, offset in
    the phases, values)``, the values read at the stride, an input row's column phases one
    after another.  Positions in the padding are never touched, so they keep their zeros.
    With ``images`` planes one after another in each phase, the first one's."""
    sd, sh, sw = stride[0], stride[1], stride[2]
    dq, hq, wq = phase[0], phase[1], phase[2]
    in_d, in_h, in_w = in_shape[0], in_shape[1], in_shape[2]
    firsts = np.empty(sw, dtype=np.int64)  # per column phase aw: columns l with 0 <= sw*l + aw - pad < in_w
    counts = np.empty(sw, dtype=np.int64)
    for aw in range(sw):
        firsts[aw] = max(0, -((aw - pad[2]) // sw))
        counts[aw] = max(0, min(wq, (in_w - 1 - aw + pad[2]) // sw + 1) - firsts[aw])
    copies = np.empty((sd * sh * sw * dq * hq, 3), dtype=np.int64)
    rows = 0
    for row_phase in range(sd * sh):
        ad, ah = row_phase // sh, row_phase % sh
        for i in range(dq):
            d = sd * i + ad - pad[0]
            for j in range(hq if 0 <= d < in_d else 0):
                h = sh * j + ah - pad[1]
                for aw in range(sw if 0 <= h < in_h else 0):
                    if counts[aw] > 0:
                        which = row_phase * sw + aw
                        copies[rows, 0] = (d * in_h + h) * in_w + sw * firsts[aw] + aw - pad[2]
                        copies[rows, 1] = ((which * images * dq + i) * hq + j) * wq + firsts[aw]
                        copies[rows, 2] = counts[aw]
                        rows += 1
    return _pairs(copies[:rows], sw)


@njit(cache=True, nogil=True)
def _pairs(copies, sw):
    """``(singles, pairs)``: at stride 2, an input row's two column phases as one pair ``(offset
    of the row's first value, offset of its even values in the phases, of its odd values,
    values of each)``, the rest as :func:`_row_copies`'s rows.  A stride-2 copy does not
    vectorise, a pair is dealt by vector shuffles (:func:`.vector_copy.deal`): the copy into
    the phases took 60% of a 3x3/2 depthwise layer's time on 56x56 planes, 1.8x less as a loop
    over value pairs; dealt, even 7-value rows go faster (MobileNetV2's 576-channel 14x14/2
    depthwise layer at batch 8 25% faster than with them copied at the stride)."""
    singles = np.empty((copies.shape[0], 3), dtype=np.int64)
    pairs = np.empty((copies.shape[0] // 2, 4), dtype=np.int64)
    kept = paired = r = 0
    while r < copies.shape[0]:
        if sw == 2 and r + 1 < copies.shape[0] and abs(copies[r + 1, 0] - copies[r, 0]) == 1:
            lo, hi = (r, r + 1) if copies[r + 1, 0] > copies[r, 0] else (r + 1, r)  # lo's values come first
            both = min(copies[lo, 2], copies[hi, 2])
            pairs[paired, 0], pairs[paired, 1], pairs[paired, 2], pairs[paired, 3] = (
                copies[lo, 0], copies[lo, 1], copies[hi, 1], both)
            paired += 1
            for e in (lo, hi):  # a phase's values past the pair's
                if copies[e, 2] > both:
                    singles[kept, 0], singles[kept, 1] = copies[e, 0] + 2 * both, copies[e, 1] + both
                    singles[kept, 2] = copies[e, 2] - both
                    kept += 1
            r += 2
        else:
            singles[kept, 0], singles[kept, 1], singles[kept, 2] = copies[r, 0], copies[r, 1], copies[r, 2]
            kept += 1
            r += 1
    return singles[:kept], pairs[:paired]


@njit(cache=True, nogil=True, inline="always")
def _move_plane(flat, base, xq, copies, sw, into_phases):
    """Copy the plane at ``base`` of the flattened ``flat`` into its stride phases ``xq``, or
    with ``into_phases=False`` the phases back into it, by :func:`_row_copies`'s ``copies``
    (its pairs of rows, then its single rows).  Flat unsigned indices: a view per row cost
    more than a 7x7 plane's arithmetic."""
    singles, pairs = copies
    for r in range(pairs.shape[0] if sw == 2 else 0):  # with the stride test: 4% faster on 14x14/2 (no pairs)
        src, even, odd = uint64(base + pairs[r, 0]), uint64(pairs[r, 1]), uint64(pairs[r, 2])
        if into_phases:
            vector_copy.deal(xq, pairs[r, 1], xq, pairs[r, 2], flat, base + pairs[r, 0], pairs[r, 3])
        else:
            for l in range(pairs[r, 3]):
                a, b = xq[even + uint64(l)], xq[odd + uint64(l)]
                flat[src + uint64(2 * l)] = a
                flat[src + uint64(2 * l + 1)] = b
    for r in range(singles.shape[0]):
        src, dst = uint64(base + singles[r, 0]), uint64(singles[r, 1])
        if sw == 1 and into_phases:
            vector_copy.copy(xq, singles[r, 1], flat, base + singles[r, 0], singles[r, 2])
        elif sw == 1:
            vector_copy.copy(flat, base + singles[r, 0], xq, singles[r, 1], singles[r, 2])
        elif into_phases:
            for l in range(singles[r, 2]):
                xq[dst + uint64(l)] = flat[src + uint64(sw * l)]
        else:
            for l in range(singles[r, 2]):
                flat[src + uint64(sw * l)] = xq[dst + uint64(l)]


@njit(cache=True, nogil=True, inline="always")
def _move_output(flat, base, buf, offset, out_size, hq, wq):
    """Copy the output(-gradient) plane at ``base`` of the flattened ``flat`` (``out_size``
    (OD, OH, OW)) into ``buf`` laid out like ``acc`` from ``offset`` on -- row ``(od, oh)`` at
    ``offset + (od*Hq + oh)*Wq`` --, rows as vectors (:mod:`.vector_copy`).  (The forward's
    sums go the other way a row at a time, :func:`_move_row`.)"""
    out_d, out_h, out_w = out_size[0], out_size[1], out_size[2]
    for line in range(out_d * out_h):
        vector_copy.copy(buf, offset + ((line // out_h) * hq + line % out_h) * wq, flat, base + line * out_w, out_w)


@njit(cache=True, nogil=True)
def _acc_rows(block, wq, positions, itemsize):
    """Rows of the phases (``wq`` positions each) the forward kernel sums ``block`` outputs
    over at a time: about :data:`ACC_BYTES` of sums, at least one row, at most the rows of
    the ``positions`` it sums in all."""
    return min(max(1, ACC_BYTES // (block * wq * itemsize)), -(-positions // wq))


@njit(cache=True, nogil=True, inline="always")
def _move_row(flat, dst, acc, src, count, fresh):
    """``flat[dst : dst + count] = acc[src : src + count]``, as vectors, or value by value where
    ``fresh``: a masked load waits for the stores it overlaps to retire, where a scalar load takes
    its value from the store (MobileNetV2's 576 -> 576 3x3/2 depthwise layer at batch 8 ran
    1.3x slower with vectors, one output summed at a time)."""
    if fresh:
        for l in range(count):
            flat[uint64(dst + l)] = acc[uint64(src + l)]
    else:
        vector_copy.copy(flat, dst, acc, src, count)


@njit(cache=True, nogil=True)
def flat_kernel(x, w, out, groups, stride, dilation, pad, phase, images, block_size, first, last):
    """Units ``first .. last`` of out (N, C_out, OD, OH, OW), the grouped conv of x (N, C, D, H, W)
    with w (C_out, Cg, KD, KH, KW); ``phase`` from :func:`_phase_shape`.  A unit is a block of
    up to ``block_size`` output channels of one group for up to ``images`` images: the group's
    input planes are moved into their phases once for the whole block, the images' one after
    another (a phase ``images`` times as deep, :data:`STACK_VALUES`), and the block's outputs
    are summed 8, 4, 2 or 1 at a time over runs of positions in registers
    (:mod:`.register_block`), the last run of each block only as many vectors as it needs, a
    few rows of the phases at a time (:func:`_acc_rows`) whose outputs then move out."""
    out_channels, cg = w.shape[0], w.shape[1]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    out_per_group = out_channels // groups
    blocks = -(-out_per_group // block_size)
    hq, wq = phase[1], phase[2]
    image = phase[0] * hq * wq  # an image's share of each phase
    stacked = np.array((images * phase[0], hq, wq))  # the phases with the images one after another
    offsets = _tap_offsets(w.shape[2:], stride, dilation, stacked)
    weights, taps = w.reshape(w.size), offsets.size  # weight (o, c, t) at (o*cg + c)*taps + t
    last_output = ((out_d - 1) * hq + out_h - 1) * wq + out_w  # flat index of an image's last output, plus 1
    lanes = register_block.lanes(x.itemsize)  # a run's last vector ends less than this past the last output
    most = min(block_size, out_per_group)  # outputs of a block
    rows = _acc_rows(most, wq, (images - 1) * image + last_output, x.itemsize)  # summed at a time
    row = rows * wq + lanes  # acc's row: an output's sums over those rows
    plane = _buffer_size(stride, phase, images, offsets, last_output) + lanes
    xp = np.zeros(cg * plane, dtype=x.dtype)  # the group's input planes, in their phases
    acc = np.empty(most * row, dtype=x.dtype)
    copies, flat, size = _row_copies(x.shape[2:], stride, pad, phase, images), x.reshape(x.size), x[0, 0].size
    out_flat, out_plane = out.reshape(out.size), out[0, 0].size
    for unit in range(first, last):
        stack, g, block = unit // (groups * blocks), (unit // blocks) % groups, unit % blocks
        n0, o0 = stack * images, g * out_per_group + block * block_size
        nb, count = min(images, x.shape[0] - n0), min(block_size, (g + 1) * out_per_group - o0)
        length = (nb - 1) * image + last_output
        for c in range(cg):
            for b in range(nb):  # image b's part of each phase starts b * image in
                _move_plane(flat, ((n0 + b) * x.shape[1] + g * cg + c) * size, xp[c * plane + b * image :], copies,
                            stride[2], True)
        for start in range(0, length, rows * wq):
            stop = min(start + rows * wq, length)
            register_block.sum_runs(count, stop - start, xp[start:], plane, offsets, cg, weights, o0 * cg * taps,
                                    cg * taps, taps, acc, row)
            top = start // wq  # the chunk's rows of the phases, across the images: row r at r*wq
            b, od, oh = top // (phase[0] * hq), (top // hq) % phase[0], top % hq  # row top's
            for r in range(top, -(-stop // wq)):  # (b, od, oh) counted on, not divided out per row
                if oh < out_h and od < out_d:  # a row of outputs, not of the phases' padding
                    for j in range(count):
                        _move_row(out_flat, (((n0 + b) * out_channels + o0 + j) * out_d + od) * out_h * out_w
                                  + oh * out_w, acc, j * row + r * wq - start, out_w, count == 1)
                oh += 1
                if oh == hq:
                    oh, od = 0, od + 1
                    if od == phase[0]:
                        od, b = 0, b + 1


@njit(cache=True, nogil=True)
def flat_input_gradient_kernel(grad, w, gx, groups, stride, dilation, pad, phase, first, last):
    """Units ``first .. last`` of gx (N, C, D, H, W): the input gradient of :func:`flat_kernel`, its
    adjoint.  ``out[q] = sum_t w[t] * xq[q + offset(t)]`` gives ``gxq[r] = sum_t w[t] * g[r - offset(t)]``:
    a unit, up to OUTPUT_BLOCK input channels of one group and image, lays the group's output
    gradients out like ``acc`` behind a zero border as long as the largest offset, sums them
    through every offset into its channels' stride phases in registers (:mod:`.register_block`,
    the sums over the group's outputs), and copies the phases back into place (their borders
    dropped)."""
    out_channels, channels, cg = grad.shape[1], gx.shape[1], w.shape[1]
    out_per_group = out_channels // groups
    blocks = -(-cg // OUTPUT_BLOCK)
    hq, wq = phase[1], phase[2]
    offsets = _tap_offsets(w.shape[2:], stride, dilation, phase)
    weights, taps, reach = w.reshape(w.size), offsets.size, offsets.max()
    starts = reach - offsets  # gp[reach + q] holds g[q]
    lanes = register_block.lanes(gx.itemsize)
    total = stride[0] * stride[1] * stride[2] * phase[0] * hq * wq  # the phases' positions
    row = total + lanes
    gplane = reach + row  # an output gradient behind its border; a run's last vector reads zeros past it
    gp = np.zeros(out_per_group * gplane, dtype=gx.dtype)
    acc = np.empty(min(OUTPUT_BLOCK, cg) * row, dtype=gx.dtype)
    copies, flat, size = _row_copies(gx.shape[2:], stride, pad, phase), gx.reshape(gx.size), gx[0, 0].size
    grad_flat, grad_plane = grad.reshape(grad.size), grad[0, 0].size
    for unit in range(first, last):
        n, g, block = unit // (groups * blocks), (unit // blocks) % groups, unit % blocks
        c0 = block * OUTPUT_BLOCK
        count = min(OUTPUT_BLOCK, cg - c0)
        for o in range(out_per_group):
            _move_output(grad_flat, (n * out_channels + g * out_per_group + o) * grad_plane, gp, o * gplane + reach,
                         grad.shape[2:], hq, wq)
        first_weight = (g * out_per_group * cg + c0) * taps  # w[g*Og, c0, 0]; input channel j at + j*taps
        register_block.sum_runs(count, total, gp, gplane, starts, out_per_group, weights, first_weight, taps,
                                cg * taps, acc, row)
        for j in range(count):
            _move_plane(flat, (n * channels + g * cg + c0 + j) * size, acc[j * row :], copies, stride[2], False)


@njit(cache=True, nogil=True)
def flat_weight_gradient_kernel(x, grad, gw, groups, stride, dilation, pad, phase, images, first, last):
    """Units ``first .. last`` of gw (C_out, Cg, KD, KH, KW), the weight gradient of
    :func:`flat_kernel`: per offset, the dot product of the output gradient laid out like
    ``acc`` (zeros in the dropped columns) with the shifted input phases.  A unit is a block of
    up to OUTPUT_BLOCK output channels of one group: per stack of ``images`` images (one after
    another in each phase, as the forward lays them), the group's input planes are moved into
    their phases and the block's output gradients laid out once, then every pair of them meets
    (each input plane of each image was moved once per output, in dot products of one image,
    before: 14x slower than torch on ResNeXt's 7x7 layer at batch 8), the sums of three outputs
    and up to nine offsets in registers (:func:`.register_block.dots`)."""
    batch, channels = x.shape[0], x.shape[1]
    out_channels, cg = gw.shape[0], gw.shape[1]
    out_per_group = out_channels // groups
    blocks = -(-out_per_group // OUTPUT_BLOCK)
    out_d, out_h, out_w = grad.shape[2], grad.shape[3], grad.shape[4]
    hq, wq = phase[1], phase[2]
    image = phase[0] * hq * wq  # an image's share of each phase
    offsets = _tap_offsets(gw.shape[2:], stride, dilation, np.array((images * phase[0], hq, wq)))
    taps = offsets.size
    last_output = ((out_d - 1) * hq + out_h - 1) * wq + out_w
    plane = _buffer_size(stride, phase, images, offsets, last_output)
    span = (images - 1) * image + last_output  # a stack's positions
    xp = np.zeros(cg * plane, dtype=x.dtype)  # the group's input planes, in their phases
    gp = np.zeros(min(OUTPUT_BLOCK, out_per_group) * span, dtype=x.dtype)  # the block's gradients
    sums = np.empty((min(OUTPUT_BLOCK, out_per_group), cg, taps), dtype=gw.dtype)
    sums_flat = sums.reshape(sums.size)
    copies, flat, size = _row_copies(x.shape[2:], stride, pad, phase, images), x.reshape(x.size), x[0, 0].size
    grad_flat, grad_plane = grad.reshape(grad.size), grad[0, 0].size
    for unit in range(first, last):
        g, o0 = unit // blocks, (unit // blocks) * out_per_group + unit % blocks * OUTPUT_BLOCK
        count = min(OUTPUT_BLOCK, (g + 1) * out_per_group - o0)
        sums[:] = 0
        for n0 in range(0, batch, images):
            nb = min(images, batch - n0)  # a smaller last stack reads the stack before's images past its own,
            length = (nb - 1) * image + last_output
            for c in range(cg):
                for b in range(nb):
                    _move_plane(flat, ((n0 + b) * channels + g * cg + c) * size, xp[c * plane + b * image :], copies,
                                stride[2], True)
            for j in range(count):
                for b in range(nb):
                    _move_output(grad_flat, ((n0 + b) * out_channels + o0 + j) * grad_plane, gp[j * span :],
                                 b * image, grad.shape[2:], hq, wq)
            # times the zeros of its dropped columns (a non-finite product there: see weight_gradient)
            for j in range(0, count, 3):  # three outputs' gradients at a time meet each input plane
                ob = min(3, count - j)
                for c in range(cg):
                    for t in range(0, taps, register_block.TAP_BLOCK):
                        register_block.run_dots(ob, min(register_block.TAP_BLOCK, taps - t), gp, j * span, span, xp,
                                                c * plane, offsets, t, length, sums_flat, (j * cg + c) * taps + t,
                                                cg * taps)
        for j in range(count):
            gw[o0 + j] = sums[j].reshape(gw.shape[1:])


class Depthwise(Algorithm):
    """``depthwise``: groups == C_in."""

    name = "depthwise"

    def why_unsupported(self, geom):
        if geom.groups != geom.in_channels:
            return f"it needs groups == in_channels, got groups={geom.groups}, in_channels={geom.in_channels}"
        return self._why_not_rank(geom)

    @staticmethod
    def _why_not_rank(geom):
        if geom.rank > 3:
            return f"it handles 1 to 3 spatial dims, got {geom.rank}"
        return None

    def why_not_auto(self, geom):
        """Its buffers are whole planes, not chunks."""
        return self.beyond_workspace(geom, "its planes")

    def workspace_bytes(self, geom):
        """Per busy thread, the largest of its kernels' buffers (the weight gradient's are the
        forward's for one image): the forward's group of input planes in their stride phases,
        for a stack of images, and block of outputs laid out as ``acc`` (a bound: it holds
        :func:`_acc_rows` rows of them at a time); the input gradient's
        group of output gradients, each behind a border up to a plane long, and block of input
        channels in their phases.  On :mod:`.depthwise_same`'s path, its offsets and masks (kept
        per geometry)."""
        if depthwise_same.applies(geom):
            return sum(table.nbytes for table in depthwise_same.taps(geom)[:3])
        phases = math.prod(geom.stride) * math.prod(_phase_shape(geom))  # a plane in its stride phases
        forward = (geom.in_per_group + min(_output_block(geom), geom.out_per_group)) * _images(geom) * phases
        adjoint = (2 * geom.out_per_group + min(OUTPUT_BLOCK, geom.in_per_group)) * phases
        threads = min(get_num_threads(), _units(geom))
        return int(threads * max(forward, adjoint) * geom.dtype.itemsize)

    def estimated_seconds(self, geom):
        return _seconds(geom)

    def run(self, x, weight, geom, out):
        if depthwise_same.applies(geom):
            depthwise_same.run(x, weight, out, geom, get_num_threads())
            return
        inp, w, outp = _shapes_3d(geom)
        _run(flat_kernel, (x.reshape(inp), weight.reshape(w), out.reshape(outp)), geom, _units(geom),
             (_images(geom), _output_block(geom)))

    def weight_gradient(self, x, grad, geom):
        """The direct kernel's backward: :func:`weight_gradient`."""
        return weight_gradient(x, grad, geom)


def _shapes_3d(geom):
    """The input (N, C, D, H, W), weight (C_out, Cg, KD, KH, KW) and output (N, C_out, OD, OH, OW)
    shapes the kernels take, ranks 1 and 2 led by size-1 dims."""
    lead = (1,) * (3 - geom.rank)
    return ((geom.batch, geom.in_channels, *lead, *geom.in_size),
            (geom.out_channels, geom.in_per_group, *lead, *geom.kernel),
            (geom.batch, geom.out_channels, *lead, *geom.out_size))


@functools.lru_cache(maxsize=1024)
def _images(geom):
    """Images the forward kernel stacks in its phases: their planes together about STACK_VALUES
    (remembered per geometry: worked out per call, it cost a 0.1 ms call 6 us)."""
    return max(1, min(geom.batch, STACK_VALUES // math.prod(_phase_shape(geom))))


def _output_block(geom):
    """Output channels of one group a forward unit computes: OUTPUT_BLOCK, or with more than
    GroupedDirect.MAX_IN_PER_GROUP input channels per group, a thread's share (each unit moves
    every input plane of its group: ResNet-50's 512-channel 3x3/2 layer at batch 1 ran 1.28 ms
    in blocks of 256, 1.39 in blocks of 128, 1.46 in blocks of 32; its 256-channel one 1.16 in
    128s)."""
    if geom.in_per_group <= GroupedDirect.MAX_IN_PER_GROUP:
        return OUTPUT_BLOCK
    return max(OUTPUT_BLOCK, -(-geom.out_per_group // get_num_threads()))


def runs_own_backward(geom):
    """Whether the direct kernel's own backward -- its adjoint :func:`input_gradient` and its
    :func:`weight_gradient` -- serves ``geom``: up to GroupedDirect.MAX_IN_PER_GROUP input
    channels per group.  Beyond, where the forward runs in wide blocks (:func:`_output_block`),
    the two, still in blocks of OUTPUT_BLOCK, ran 3.3x and 1.6-2x slower than conv_transpose
    and im2col's weight gradient on ResNet-50's 256- and 512-channel 3x3/2 layers at batch 1."""
    return geom.in_per_group <= GroupedDirect.MAX_IN_PER_GROUP


def _planes_bytes(geom):
    """Bytes of a group's input planes for a stack of images, in their stride phases."""
    return (geom.in_per_group * _images(geom) * math.prod(geom.stride) * math.prod(_phase_shape(geom))
            * geom.dtype.itemsize)


def _units(geom):
    """The forward kernel's units: per stack of images, group and block of output channels."""
    return -(-geom.batch // _images(geom)) * geom.groups * -(-geom.out_per_group // _output_block(geom))


def _seconds(geom):
    """The forward kernel's cost model: the multiply-adds of each block of outputs over the
    positions of the phases (:data:`BLOCK_SPEED`), and the planes it moves (each unit's input
    planes, each output plane), shared by the threads; :mod:`.depthwise_same`'s where it applies."""
    if depthwise_same.applies(geom):
        return depthwise_same.seconds(geom, get_num_threads())

    def moves(planes, size):
        return planes * (SECONDS_PER_PLANE + math.prod(size) * SECONDS_PER_PLANE_VALUE)

    block = _output_block(geom)
    blocks = 0.0  # a group's outputs, each block's weighted by its speed
    for first in range(0, geom.out_per_group, block):
        left = min(block, geom.out_per_group - first)
        while left:
            ob = register_block.fit(left)
            blocks, left = blocks + ob / BLOCK_SPEED[ob], left - ob
    per_output = geom.batch * math.prod(_phase_shape(geom)) * geom.in_per_group * math.prod(geom.kernel)
    inputs = geom.batch * geom.groups * -(-geom.out_per_group // block) * geom.in_per_group
    copies = moves(inputs, geom.in_size) + moves(geom.batch * geom.out_channels, geom.out_size)
    return geom.groups * blocks * per_output / MACS_PER_SECOND + copies / get_num_threads()


def _run(kernel, arrays, geom, count, extra=()):
    """``kernel(*arrays, groups, stride, dilation, pad, phase, *extra, first, last)`` over ``count``
    units, planes or channels, shared out among the threads -- in one call when the work stays
    on the calling thread (:func:`npconv.parallel.run_pieces`)."""
    params, seconds = _plan(geom, get_num_threads())
    run_pieces(lambda span: kernel(*arrays, *params, *extra, *span), split(count, threads_for(seconds)),
               seconds=seconds)


@functools.lru_cache(maxsize=1024)
def _plan(geom, threads):
    """The kernels' parameters after ``first, last``, and the cost model's seconds on ``threads``
    (the current count), per geometry: worked out per call, they took a third of a small
    call's Python time."""
    params = (geom.groups, as_3d(geom.stride, 1), as_3d(geom.dilation, 1), as_3d([lo for lo, _ in geom.padding], 0),
              _phase_shape(geom))
    return params, _seconds(geom)


class GroupedDirect(Depthwise):
    """``grouped``: the same kernel for any group count with few input channels per group --
    ResNeXt's 32 groups of 4, where per-group GEMMs are too small for BLAS, or one group of an
    image's 3 colours, where im2col's columns are as long as the output and its GEMMs' sums 27
    or 147 long (ResNet-50's 7x7/2 stem 1.4x faster than im2col) -- and groups of many input
    channels whose planes stay in L2, in units of a thread's share of the outputs
    (:func:`_output_block`: ResNet-50's 512-channel 3x3/2 layer at batch 1 1.2x faster than
    im2col)."""

    name = "grouped"
    MAX_IN_PER_GROUP = 64
    # With more input channels per group, a stack's input planes in their stride phases at most
    # this: they stay in L2 while every output passes (ResNet-50's 512-channel 3x3/2 layer at
    # batch 1, 0.56 MB, ran 1.2x faster than on im2col; at batch 8, 4.5 MB, 2.3x slower); and at
    # least MAX_IN_PER_GROUP outputs a group, over which a unit's move of them is spread (a
    # transposed 96 -> 3 3x3/2 layer's phases, 96 in and 3 out, ran its sub-pixel path 1.5x
    # slower than col2im on this kernel).
    MAX_PLANES_BYTES = 2**20

    def why_unsupported(self, geom):
        if geom.in_per_group > self.MAX_IN_PER_GROUP and (geom.out_per_group < self.MAX_IN_PER_GROUP
                                                          or _planes_bytes(geom) > self.MAX_PLANES_BYTES):
            return (f"it takes at most {self.MAX_IN_PER_GROUP} input channels per group, or more with at least "
                    f"{self.MAX_IN_PER_GROUP} outputs per group whose planes (a stack of images', in their stride "
                    f"phases) fit in {self.MAX_PLANES_BYTES} bytes; got {geom.in_per_group} in, "
                    f"{geom.out_per_group} out, {_planes_bytes(geom)} bytes")
        return self._why_not_rank(geom)

    def weight_gradient_seconds(self, geom):
        """The forward's, where its own backward serves (:func:`runs_own_backward`); else never
        below im2col's."""
        return super().weight_gradient_seconds(geom) if runs_own_backward(geom) else math.inf

    def why_not_auto(self, geom):
        """Besides its planes' scratch (:meth:`Depthwise.why_not_auto`): a 1x1 kernel without
        padding on two or more input channels per group, which ``pointwise`` runs as GEMMs on the
        input in place.  On 213 random such geometries (``benchmarks/auto_choice.py``'s) pointwise
        was faster in 193, 1.36x on geometric mean, but the cost models ranked this kernel first
        in 88: at these small sizes both run on one thread, and pointwise's model of its narrow
        GEMMs is the more pessimistic.  (With one input channel per group -- depthwise -- this
        kernel is the faster.)"""
        if geom.in_per_group > 1 and Pointwise().why_unsupported(geom) is None:
            return "pointwise runs 1x1 kernels of several input channels per group as GEMMs on the input in place"
        return super().why_not_auto(geom)


def weight_gradient(x, grad, geom):
    """The weight gradient (C_out, Cg, *kernel) of a depthwise or grouped ``geom``: the
    backward of the forward's kernel (:mod:`.depthwise_same`'s where that applies), output
    channels shared out among the threads.

    Where it comes out not finite, im2col's instead: the kernels' dot products multiply the
    output gradient's zeros in the dropped columns by the input there, and the same-size
    path skips the padding's zeros, so with an infinity in the input or gradient they give
    NaN where torch's products give a finite value, or the reverse; im2col multiplies what
    torch multiplies.  Where some output reads padding only, an infinity of the gradient
    there meets nothing but skipped zeros, so a gradient that is not finite (its sum tells)
    also goes to im2col."""
    if depthwise_same.applies(geom):
        gw = depthwise_same.weight_gradient(x, grad, geom, get_num_threads())
    else:
        inp, w, outp = _shapes_3d(geom)
        gw = np.empty(w, dtype=geom.dtype)
        _run(flat_weight_gradient_kernel, (x.reshape(inp), grad.reshape(outp), gw), geom,
             geom.groups * -(-geom.out_per_group // OUTPUT_BLOCK), (_images(geom),))
        gw = gw.reshape(geom.out_channels, geom.in_per_group, *geom.kernel)
    if np.isfinite(gw).all() and (not _reads_only_padding(geom) or np.isfinite(grad.sum())):
        return gw
    return im2col_weight_gradient(x, grad, geom)


@functools.lru_cache(maxsize=1024)
def _reads_only_padding(geom):
    """Whether some output's kernel offsets all fall in the padding: in some dim, output
    ``o`` reads ``o*s - lo + k*d`` for every ``k``, and none of them is inside the input."""
    sizes = zip(geom.in_size, geom.out_size, geom.kernel, geom.stride, geom.dilation, geom.padding)
    return any(not any(0 <= o * s - lo + k * d < i for k in range(kernel))
               for i, out, kernel, s, d, (lo, _) in sizes for o in range(out))


def input_gradient(grad, weight, geom):
    """The input gradient (N, C_in, *in_size) of a depthwise or grouped ``geom`` (zero padding
    cropped): the adjoint of the forward's kernel, input planes shared out among the threads.

    ``grad`` (N, C_out, *out_size) and ``weight`` are C-contiguous arrays of ``geom.dtype``.
    """
    if depthwise_same.applies(geom) and geom.out_per_group == 1:
        gx = np.empty((geom.batch, geom.in_channels, *geom.in_size), dtype=geom.dtype)
        depthwise_same.run(grad, weight, gx, geom, get_num_threads(), adjoint=True)
        return gx
    inp, w, outp = _shapes_3d(geom)
    gx = np.zeros(inp, dtype=geom.dtype)
    _run(flat_input_gradient_kernel, (grad.reshape(outp), weight.reshape(w), gx), geom,
         geom.batch * geom.groups * -(-geom.in_per_group // OUTPUT_BLOCK))
    return gx.reshape(geom.batch, geom.in_channels, *geom.in_size)
