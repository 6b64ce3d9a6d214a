"""The direct kernel's path for depthwise convolutions that keep the input's size.

With stride 1 and ``lo + hi == d * (k - 1)`` per dim (``"same"`` padding, MobileNet's 3x3s),
output and input planes have one shape, so output ``q`` of a flattened plane reads input
``q + offset(t)`` through kernel offset ``t``, where ``offset(t)`` is the flat index of the
per-dim shift ``r = k * d - lo``::

    out[n, o, q] = sum_t w[o, t] * x[n, o // M, q + offset(t)]   where mask[t, q]

``mask[t, q]`` says that the shifted position lies inside the plane (``0 <= pos + r < size``
per dim); elsewhere the tap reads zero padding.  The loops run over whole planes with the
taps as masked loads, so nothing is copied: the phase path (:mod:`.depthwise`) moves every
plane in and out of a bordered buffer, which cost 100-250 ns a plane on MobileNetV2's 14x14
and 7x7 planes, as much as the arithmetic.  The masked loads never read outside the plane,
so a non-finite input stays in its own plane.

The input gradient (multiplier 1) is the same kernel through the negated offsets: input
``i`` gathers the output gradient at ``i - offset(t)`` where that lies in the plane.  The
weight gradient is the same masked reads as dot products with the output gradient.
"""

import functools
import math

import numpy as np
from numba import njit, uint64

from ..parallel import run_pieces, split, threads_for

# One thread's time per output value and kernel offset, and per plane a pass goes over: fitted
# to MobileNetV2's 3x3 layers, 7x7 to 112x112 planes at batch 1 and 8 (0.050-0.10 ns per
# offset and value measured, the most on 7x7 planes).
SECONDS_PER_TAP = 0.052e-9
SECONDS_PER_PLANE_PASS = 21e-9


def applies(geom):
    """Whether ``geom`` takes this path: depthwise (one input channel per group), stride 1 and
    the output the input's size, rank 1 to 3."""
    return (geom.in_per_group == 1 and geom.rank <= 3 and all(s == 1 for s in geom.stride)
            and tuple(geom.out_size) == tuple(geom.in_size))


@functools.lru_cache(maxsize=32)  # an entry holds a byte per kernel offset and plane value
def taps(geom, adjoint=False):
    """``(order, offsets, masks, full)``: the kernel offsets as the kernel takes them (indices
    into the C-order ``(*kernel)``), each one's shift in the flattened plane, int64 (T,), and
    where it stays inside the plane, bool (T, plane).  ``full`` when the first stays inside
    everywhere (an offset of 0, put first where there is one).  With ``adjoint``, the input
    gradient's: the shifts negated."""
    sign = -1 if adjoint else 1
    shifts = [[sign * (k * d - lo) for k in range(size)]
              for size, d, (lo, _) in zip(geom.kernel, geom.dilation, geom.padding)]
    strides = [math.prod(geom.in_size[i + 1:]) for i in range(geom.rank)]  # a plane's flat strides
    grid = np.indices(geom.in_size)  # (rank, *in_size): each position's coordinates
    offsets, masks = [], []
    for shift in np.ndindex(geom.kernel):
        r = [shifts[dim][k] for dim, k in enumerate(shift)]
        offsets.append(sum(ri * si for ri, si in zip(r, strides)))
        inside = np.ones(geom.in_size, dtype=bool)
        for dim, ri in enumerate(r):
            inside &= (grid[dim] + ri >= 0) & (grid[dim] + ri < geom.in_size[dim])
        masks.append(inside.reshape(-1))  # (plane,)
    order = sorted(range(len(offsets)), key=lambda t: offsets[t] != 0)  # offset 0 first, the rest kept in order
    masks = np.stack(masks)[order]
    return np.array(order), np.array(offsets, dtype=np.int64)[order], masks, bool(masks[0].all())


# How a pass over the planes starts each output's sum: from zero, from the first offset read
# unmasked (an offset that stays inside the plane everywhere, put first by :func:`taps`: 3x3
# layers 10% faster), or from the sum so far (the passes after the first).
FROM_ZERO, FROM_FULL_TAP, FROM_OUT = 0, 1, 2


@njit(cache=True, nogil=True, inline="always")
def _planes_start(first, out_channels, multiplier):
    """Counters ``(o, c, j, n)`` of plane ``first``: its output channel, that channel's input
    channel and which of the input's ``multiplier`` outputs it is, its image."""
    o = first % out_channels
    return o, o // multiplier, o % multiplier, first // out_channels


@njit(cache=True, nogil=True, inline="always")
def _planes_next(o, c, j, n, out_channels, multiplier):
    """The counters of the next plane: two divisions per plane took a 7x7 plane 30% longer."""
    o, j = o + 1, j + 1
    if j == multiplier:
        c, j = c + 1, 0
    if o == out_channels:
        o, c, j, n = 0, 0, 0, n + 1
    return o, c, j, n


@njit(cache=True, nogil=True, inline="always")
def _sum_start(x, out, s0, dst, q, w0, zero, start):
    """Output ``q``'s sum before its pass's offsets (the first one's read included when
    ``start`` is FROM_FULL_TAP)."""
    if start == FROM_OUT:
        return out[uint64(dst + q)]
    if start == FROM_FULL_TAP:
        return w0 * x[uint64(s0 + q)]
    return zero


@njit(cache=True, nogil=True, inline="always")
def _nine_starts(src, offsets, t):
    """The flat starts of offsets ``t .. t + 8`` in the plane starting at ``src``."""
    return (src + offsets[t], src + offsets[t + 1], src + offsets[t + 2], src + offsets[t + 3], src + offsets[t + 4],
            src + offsets[t + 5], src + offsets[t + 6], src + offsets[t + 7], src + offsets[t + 8])


@njit(cache=True, nogil=True, inline="always")
def _nine_pass(x, w, out, offsets, masks, multiplier, first, last, t, start):
    """Offsets ``t .. t + 8`` added to the planes ``first .. last`` of out, each sum started as
    ``start`` says (a literal at each call, so each call's loop is compiled for it)."""
    out_channels, size = w.shape[0], masks.shape[1]
    zero = np.zeros(1, dtype=out.dtype)[0]
    m0, m1, m2, m3, m4, m5, m6, m7, m8 = (masks[t], masks[t + 1], masks[t + 2], masks[t + 3], masks[t + 4],
                                          masks[t + 5], masks[t + 6], masks[t + 7], masks[t + 8])
    o, c, j, n = _planes_start(first, out_channels, multiplier)
    for p in range(first, last):
        src, dst = (n * (out_channels // multiplier) + c) * size, p * size
        s0, s1, s2, s3, s4, s5, s6, s7, s8 = _nine_starts(src, offsets, t)
        w0, w1, w2, w3, w4 = w[o, t], w[o, t + 1], w[o, t + 2], w[o, t + 3], w[o, t + 4]
        w5, w6, w7, w8 = w[o, t + 5], w[o, t + 6], w[o, t + 7], w[o, t + 8]
        for q in range(size):
            acc = _sum_start(x, out, s0, dst, q, w0, zero, start)
            if start != FROM_FULL_TAP and m0[q]:
                acc += w0 * x[uint64(s0 + q)]
            if m1[q]:
                acc += w1 * x[uint64(s1 + q)]
            if m2[q]:
                acc += w2 * x[uint64(s2 + q)]
            if m3[q]:
                acc += w3 * x[uint64(s3 + q)]
            if m4[q]:
                acc += w4 * x[uint64(s4 + q)]
            if m5[q]:
                acc += w5 * x[uint64(s5 + q)]
            if m6[q]:
                acc += w6 * x[uint64(s6 + q)]
            if m7[q]:
                acc += w7 * x[uint64(s7 + q)]
            if m8[q]:
                acc += w8 * x[uint64(s8 + q)]
            out[uint64(dst + q)] = acc
        o, c, j, n = _planes_next(o, c, j, n, out_channels, multiplier)


@njit(cache=True, nogil=True, inline="always")
def _one_pass(x, w, out, offsets, masks, multiplier, first, last, t, start):
    """:func:`_nine_pass` for offset ``t`` alone."""
    out_channels, size = w.shape[0], masks.shape[1]
    zero = np.zeros(1, dtype=out.dtype)[0]
    m0 = masks[t]
    o, c, j, n = _planes_start(first, out_channels, multiplier)
    for p in range(first, last):
        src, dst = (n * (out_channels // multiplier) + c) * size, p * size
        s0, w0 = src + offsets[t], w[o, t]
        for q in range(size):
            acc = _sum_start(x, out, s0, dst, q, w0, zero, start)
            if start != FROM_FULL_TAP and m0[q]:
                acc += w0 * x[uint64(s0 + q)]
            out[uint64(dst + q)] = acc
        o, c, j, n = _planes_next(o, c, j, n, out_channels, multiplier)


@njit(cache=True, nogil=True, fastmath={"contract"})
def masked_taps_kernel(x, w, out, offsets, masks, multiplier, full, first, last):
    """Planes ``first .. last`` of the flattened out (N * C_out planes of ``masks.shape[1]``
    values): out plane ``n * C_out + o`` sums ``w[o, t] * x`` over the offsets of input plane
    ``n * C_in + o // multiplier`` where the masks allow, nine offsets per pass over the
    planes (a 3x3 kernel's), then one; with ``full``, offset 0 is read unmasked.  x and out
    flat, w (C_out, T) in :func:`taps`'s order.  Flat unsigned indices: a signed index stops
    the loops from vectorising."""
    t = 0
    while t + 9 <= offsets.size:
        if t > 0:
            _nine_pass(x, w, out, offsets, masks, multiplier, first, last, t, FROM_OUT)
        elif full:
            _nine_pass(x, w, out, offsets, masks, multiplier, first, last, t, FROM_FULL_TAP)
        else:
            _nine_pass(x, w, out, offsets, masks, multiplier, first, last, t, FROM_ZERO)
        t += 9
    for t in range(t, offsets.size):
        if t > 0:
            _one_pass(x, w, out, offsets, masks, multiplier, first, last, t, FROM_OUT)
        elif full:
            _one_pass(x, w, out, offsets, masks, multiplier, first, last, t, FROM_FULL_TAP)
        else:
            _one_pass(x, w, out, offsets, masks, multiplier, first, last, t, FROM_ZERO)


@njit(cache=True, nogil=True, fastmath=True)
def masked_taps_weight_gradient_kernel(x, g, gw, offsets, masks, multiplier, first, last):
    """Output channels ``first .. last`` of gw (C_out, T), the weight gradient of
    :func:`masked_taps_kernel` in its offsets' order: per offset, the dot product of the output
    gradient's planes (g flat, ``(N, C_out, *size)``) with the input planes read through it,
    nine offsets per pass over the planes, then one."""
    out_channels, size, count = gw.shape[0], masks.shape[1], offsets.size
    in_channels, batch = out_channels // multiplier, g.size // (out_channels * size)
    zero = np.zeros(1, dtype=gw.dtype)[0]
    for o in range(first, last):
        for t in range(count):
            gw[o, t] = 0
    t = 0
    while t + 9 <= count:  # the passes outside the planes, as the forward's
        m0, m1, m2, m3, m4, m5, m6, m7, m8 = (masks[t], masks[t + 1], masks[t + 2], masks[t + 3], masks[t + 4],
                                              masks[t + 5], masks[t + 6], masks[t + 7], masks[t + 8])
        for o in range(first, last):
            for n in range(batch):
                src, dst = (n * in_channels + o // multiplier) * size, (n * out_channels + o) * size
                s0, s1, s2, s3, s4, s5, s6, s7, s8 = _nine_starts(src, offsets, t)
                d0 = d1 = d2 = d3 = d4 = d5 = d6 = d7 = d8 = zero
                for q in range(size):
                    v = g[uint64(dst + q)]
                    if m0[q]:
                        d0 += v * x[uint64(s0 + q)]
                    if m1[q]:
                        d1 += v * x[uint64(s1 + q)]
                    if m2[q]:
                        d2 += v * x[uint64(s2 + q)]
                    if m3[q]:
                        d3 += v * x[uint64(s3 + q)]
                    if m4[q]:
                        d4 += v * x[uint64(s4 + q)]
                    if m5[q]:
                        d5 += v * x[uint64(s5 + q)]
                    if m6[q]:
                        d6 += v * x[uint64(s6 + q)]
                    if m7[q]:
                        d7 += v * x[uint64(s7 + q)]
                    if m8[q]:
                        d8 += v * x[uint64(s8 + q)]
                gw[o, t] += d0
                gw[o, t + 1] += d1
                gw[o, t + 2] += d2
                gw[o, t + 3] += d3
                gw[o, t + 4] += d4
                gw[o, t + 5] += d5
                gw[o, t + 6] += d6
                gw[o, t + 7] += d7
                gw[o, t + 8] += d8
        t += 9
    for t in range(t, count):
        m0 = masks[t]
        for o in range(first, last):
            for n in range(batch):
                src, dst = (n * in_channels + o // multiplier) * size, (n * out_channels + o) * size
                s0, d0 = src + offsets[t], zero
                for q in range(size):
                    if m0[q]:
                        d0 += g[uint64(dst + q)] * x[uint64(s0 + q)]
                gw[o, t] += d0


def seconds(geom, threads):
    """The kernel's cost model: every output value's offsets and each pass over each plane
    (one per nine offsets or fewer), shared by ``threads``."""
    taps = math.prod(geom.kernel)
    passes = taps // 9 + taps % 9
    planes = geom.batch * geom.out_channels
    return (math.prod(geom.out_shape) * taps * SECONDS_PER_TAP + planes * passes * SECONDS_PER_PLANE_PASS) / threads


def run(x, w, out, geom, threads, adjoint=False):
    """``masked_taps_kernel`` over out's planes (``(N, C_out, *size)``; the input gradient's
    ``(N, C_in, *size)`` with ``adjoint``), shared out among the threads.  x, w (C_out, 1,
    *kernel) and out C-contiguous arrays of one dtype."""
    order, offsets, masks, full = taps(geom, adjoint)
    multiplier = 1 if adjoint else geom.out_per_group
    planes = out.shape[0] * out.shape[1]
    cost = seconds(geom, threads)
    ordered_w = np.ascontiguousarray(w.reshape(w.shape[0], -1)[:, order])  # (C_out, T) in the kernel's order
    run_pieces(lambda span: masked_taps_kernel(x.reshape(-1), ordered_w, out.reshape(-1), offsets, masks, multiplier,
                                               full, *span),
               split(planes, threads_for(cost)), seconds=cost)


def weight_gradient(x, grad, geom, threads):
    """The weight gradient (C_out, 1, *kernel) of ``geom`` from x (N, C_in, *size) and grad
    (N, C_out, *size), C-contiguous arrays of one dtype: output channels shared out among the
    threads, :func:`masked_taps_weight_gradient_kernel`'s offsets put back in C order."""
    order, offsets, masks, _ = taps(geom)
    ordered = np.empty((geom.out_channels, offsets.size), dtype=geom.dtype)  # (C_out, T) in the kernel's order
    cost = seconds(geom, threads)
    run_pieces(lambda span: masked_taps_weight_gradient_kernel(x.reshape(-1), grad.reshape(-1), ordered, offsets, masks,
                                                               geom.out_per_group, *span),
               split(geom.out_channels, threads_for(cost)), seconds=cost)
    gw = np.empty_like(ordered)
    gw[:, order] = ordered
    return gw.reshape(geom.out_channels, 1, *geom.kernel)
