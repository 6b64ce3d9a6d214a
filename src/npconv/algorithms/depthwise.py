"""``depthwise`` and ``grouped``: direct convolution for groups with few channels each.

Output channel ``o`` of group ``g = o // Og`` reads the group's ``Cg`` input channels::

    out[n, o, p] = sum_{c < Cg, k} w[o, c, k] * x_pad[n, g * Cg + c, p * stride + k * dilation]

Depthwise (groups == C_in, ``Cg = 1``, any channel multiplier ``Og``) is the common case.
Numba kernels run over ranges of the independent (image, output channel) planes, the
ranges shared out among the cores (:mod:`npconv.parallel`).  Ranks 1 and 2 run as rank 3
with leading size-1 dims.

Stride 1 (:func:`flat_kernel`): each input plane is copied into a zero-bordered plane
``(Dp, Hp, Wp)``, which makes every kernel offset ``k`` one shift of the flattened plane::

    acc[q] = sum_k w[k] * xp_flat[q + offset(k)]       offset(k) = (kd*dd*Hp + kh*dh)*Wp + kw*dw

for ``q = (od*Hp + oh)*Wp + ow``, so the inner loops run over the whole plane, not over
output rows (7 values wide in MobileNet's last stages), and vectorise; the ``Wp - Wo``
columns of each row computed for nothing are then dropped.  The weight gradient is the
same shifts as dot products.  Other strides (:func:`grouped_kernel`) add a scaled input
row to an output row per kernel offset, zero padding never materialised.
"""

import numpy as np
from numba import njit, uint64

from ..config import get_num_threads
from ..parallel import run_pieces, split
from .base import Algorithm, as_3d

# Multiply-adds per second the kernels reach on this machine's 2 cores (measured, roughly):
# the flat kernel on planes of any size, the row kernel with output rows of at least
# FULL_SPEED_WIDTH values (shorter rows proportionally slower).
MACS_PER_SECOND = 10e9
FULL_SPEED_WIDTH = 32


@njit(cache=True, nogil=True)
def grouped_kernel(x, w, out, groups, stride, dilation, pad, first, last):
    """Planes ``first .. last`` (of N * C_out) of out (N, C_out, OD, OH, OW), the grouped conv of
    x (N, C, D, H, W) with w (C_out, Cg, KD, KH, KW)."""
    batch, channels, in_d, in_h, in_w = x.shape
    out_channels, cg, kd_n, kh_n, kw_n = w.shape
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    sd, sh, sw = stride[0], stride[1], stride[2]
    dd, dh, dw = dilation[0], dilation[1], dilation[2]
    pd, ph, pw = pad[0], pad[1], pad[2]
    out_per_group = out_channels // groups
    src, dst = x.ravel(), out.ravel()
    for plane in range(first, last):
        n, o = plane // out_channels, plane % out_channels
        out_base = plane * out_d * out_h * out_w
        for i in range(out_d * out_h * out_w):
            dst[uint64(out_base + i)] = 0
        for c in range(cg):
            in_base = (n * channels + (o // out_per_group) * cg + c) * in_d * in_h * in_w
            for kd in range(kd_n):
                for kh in range(kh_n):
                    for kw in range(kw_n):
                        weight = w[o, c, kd, kh, kw]
                        shift_w = kw * dw - pw
                        # output columns ow with 0 <= ow * sw + shift_w < in_w read inside the input
                        lo = min(max(0, -(shift_w // sw)), out_w)
                        hi = max(lo, min(out_w, (in_w - 1 - shift_w) // sw + 1))
                        for od in range(out_d):
                            i_d = od * sd + kd * dd - pd
                            if i_d < 0 or i_d >= in_d:
                                continue
                            for oh in range(out_h):
                                i_h = oh * sh + kh * dh - ph
                                if i_h < 0 or i_h >= in_h:
                                    continue
                                row_out = uint64(out_base + (od * out_h + oh) * out_w)
                                row_in = uint64(in_base + (i_d * in_h + i_h) * in_w + shift_w)
                                for ow in range(lo, hi):
                                    dst[row_out + uint64(ow)] += weight * src[row_in + uint64(ow * sw)]


def _bordered_shape(out_size, kernel, dilation):
    """``(Dp, Hp, Wp)``: a stride-1 plane with its zero borders, ``out + d*(k - 1)`` per dim."""
    return tuple(o + d * (k - 1) for o, k, d in zip(out_size, kernel, dilation))


@njit(cache=True, nogil=True)
def _tap_offsets(kernel, dilation, bordered):
    """Each kernel offset's shift in the flattened bordered plane, (kd, kh, kw) order."""
    hp, wp = bordered[1], bordered[2]
    offsets = np.empty(kernel[0] * kernel[1] * kernel[2], dtype=np.int64)
    for t in range(offsets.size):
        kd, kh, kw = t // (kernel[1] * kernel[2]), (t // kernel[2]) % kernel[1], t % kernel[2]
        offsets[t] = (kd * dilation[0] * hp + kh * dilation[1]) * wp + kw * dilation[2]
    return offsets


@njit(cache=True, nogil=True)
def _shifted(xp, offset, length):
    """The flattened bordered plane shifted by ``offset``, as a view of ``length`` values.

    The kernels index views with their loop counter: indexing ``xp[q + offset]`` with a
    signed sum stops the loops from vectorising (7x slower, for Numba's negative-index check).
    """
    return xp[offset : offset + length]


@njit(cache=True, nogil=True, inline="always")
def _load_plane(x, n, c, xp, pad, bordered):
    """Copy x[n, c] (D, H, W) into the interior of the flattened bordered plane ``xp``."""
    hp, wp = bordered[1], bordered[2]
    for d in range(x.shape[2]):
        for h in range(x.shape[3]):
            _copy(x[n, c, d, h], _shifted(xp, ((d + pad[0]) * hp + h + pad[1]) * wp + pad[2], x.shape[4]))


@njit(cache=True, nogil=True, inline="always")
def _copy(src, dst):
    """dst[:] = src[:] as a loop: a slice assignment costs ~50 ns a call, a row of 7 values far less."""
    for i in range(src.size):
        dst[i] = src[i]


@njit(cache=True, nogil=True)
def flat_kernel(x, w, out, groups, dilation, pad, bordered, first, last):
    """Planes ``first .. last`` (of N * C_out) of out (N, C_out, OD, OH, OW), the stride-1 grouped
    conv of x (N, C, D, H, W) with w (C_out, Cg, KD, KH, KW); ``bordered`` from :func:`_bordered_shape`."""
    channels = x.shape[1]
    out_channels, cg = w.shape[0], w.shape[1]
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    hp, wp = bordered[1], bordered[2]
    offsets = _tap_offsets(w.shape[2:], dilation, bordered)
    taps = offsets.size
    weights = w.reshape(out_channels, cg, taps)
    length = ((out_d - 1) * hp + out_h - 1) * wp + out_w  # flat index of the last output, plus 1
    xp = np.zeros(bordered[0] * hp * wp, dtype=x.dtype)
    acc = np.empty(length, dtype=x.dtype)
    loaded = -1
    for plane in range(first, last):
        n, o = plane // out_channels, plane % out_channels
        acc[:] = 0
        for c in range(cg):
            channel = (o // (out_channels // groups)) * cg + c
            if n * channels + channel != loaded:  # channel multipliers reuse the plane
                _load_plane(x, n, channel, xp, pad, bordered)
                loaded = n * channels + channel
            t = 0
            while t + 3 <= taps:  # three offsets per pass over acc
                x0 = _shifted(xp, offsets[t], length)
                x1 = _shifted(xp, offsets[t + 1], length)
                x2 = _shifted(xp, offsets[t + 2], length)
                w0, w1, w2 = weights[o, c, t], weights[o, c, t + 1], weights[o, c, t + 2]
                for q in range(length):
                    acc[q] += w0 * x0[q] + w1 * x1[q] + w2 * x2[q]
                t += 3
            for t in range(t, taps):
                x0, w0 = _shifted(xp, offsets[t], length), weights[o, c, t]
                for q in range(length):
                    acc[q] += w0 * x0[q]
        for od in range(out_d):
            for oh in range(out_h):
                _copy(_shifted(acc, (od * hp + oh) * wp, out_w), out[n, o, od, oh])


@njit(cache=True, nogil=True, fastmath=True)
def flat_weight_gradient_kernel(x, grad, gw, groups, dilation, pad, bordered, first, last):
    """Output channels ``first .. last`` of gw (C_out, Cg, KD, KH, KW), the weight gradient of
    :func:`flat_kernel`: per offset, the dot product of the output gradient laid out like
    ``acc`` (zeros in the dropped columns) with the shifted bordered input plane."""
    batch, channels = x.shape[0], x.shape[1]
    out_channels, cg = gw.shape[0], gw.shape[1]
    out_d, out_h, out_w = grad.shape[2], grad.shape[3], grad.shape[4]
    hp, wp = bordered[1], bordered[2]
    offsets = _tap_offsets(gw.shape[2:], dilation, bordered)
    taps = offsets.size
    length = ((out_d - 1) * hp + out_h - 1) * wp + out_w
    xp = np.zeros(bordered[0] * hp * wp, dtype=x.dtype)
    gp = np.zeros(length, dtype=x.dtype)
    sums = np.empty((cg, taps), dtype=gw.dtype)
    for o in range(first, last):
        sums[:] = 0
        for n in range(batch):
            for od in range(out_d):
                for oh in range(out_h):
                    _copy(grad[n, o, od, oh], _shifted(gp, (od * hp + oh) * wp, out_w))
            for c in range(cg):
                _load_plane(x, n, (o // (out_channels // groups)) * cg + c, xp, pad, bordered)
                t = 0
                while t + 3 <= taps:  # three offsets per pass over gp; views as in flat_kernel
                    x0 = _shifted(xp, offsets[t], length)
                    x1 = _shifted(xp, offsets[t + 1], length)
                    x2 = _shifted(xp, offsets[t + 2], length)
                    s0 = s1 = s2 = 0.0
                    for q in range(length):
                        s0 += gp[q] * x0[q]
                        s1 += gp[q] * x1[q]
                        s2 += gp[q] * x2[q]
                    sums[c, t] += s0
                    sums[c, t + 1] += s1
                    sums[c, t + 2] += s2
                    t += 3
                for t in range(t, taps):
                    x0, s0 = _shifted(xp, offsets[t], length), 0.0
                    for q in range(length):
                        s0 += gp[q] * x0[q]
                    sums[c, t] += s0
        gw[o] = sums.reshape(gw.shape[1:])


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

    def workspace_bytes(self, geom):
        return 0

    def estimated_seconds(self, geom):
        width = FULL_SPEED_WIDTH if all(s == 1 for s in geom.stride) else geom.out_size[-1]
        return geom.macs / (MACS_PER_SECOND * min(1.0, width / FULL_SPEED_WIDTH))

    def run(self, x, weight, geom, out):
        pad = 3 - geom.rank
        arrays = (
            x.reshape(geom.batch, geom.in_channels, *(1,) * pad, *geom.in_size),  # (N, C, D, H, W)
            weight.reshape(geom.out_channels, geom.in_per_group, *(1,) * pad, *geom.kernel),  # (C_out, Cg, KD, KH, KW)
            out.reshape(geom.batch, geom.out_channels, *(1,) * pad, *geom.out_size),  # (N, C_out, OD, OH, OW)
        )
        kernel, params = _kernel(geom, flat_kernel, grouped_kernel)
        planes = split(geom.batch * geom.out_channels, get_num_threads())
        run_pieces(lambda span: kernel(*arrays, *params, *span), planes)


def _kernel(geom, flat, strided):
    """``(kernel, geometry arguments)``: the flat kernel at stride 1, else the row kernel."""
    dilation, pad = as_3d(geom.dilation, 1), as_3d([lo for lo, _ in geom.padding], 0)
    if all(s == 1 for s in geom.stride):
        return flat, (geom.groups, dilation, pad, as_3d(_bordered_shape(geom.out_size, geom.kernel, geom.dilation), 1))
    return strided, (geom.groups, as_3d(geom.stride, 1), dilation, pad)


class GroupedDirect(Depthwise):
    """``grouped``: the same kernel for any group count with few channels per group
    (ResNeXt's 32 groups of 4), where per-group GEMMs are too small for BLAS."""

    name = "grouped"
    MAX_IN_PER_GROUP = 64

    def why_unsupported(self, geom):
        if geom.groups == 1:
            return "it needs groups > 1, got groups=1"
        if geom.in_per_group > self.MAX_IN_PER_GROUP:
            return f"it takes at most {self.MAX_IN_PER_GROUP} input channels per group, got {geom.in_per_group}"
        return self._why_not_rank(geom)


@njit(cache=True, nogil=True, fastmath=True)
def grouped_weight_gradient_kernel(x, grad, gw, groups, stride, dilation, pad, first, last):
    """Output channels ``first .. last`` of gw (C_out, Cg, KD, KH, KW), the weight gradient::

        gw[o, c, k] = sum_{n, p} grad[n, o, p] * x_pad[n, g(o) * Cg + c, p * stride + k * dilation]

    x (N, C, D, H, W), grad (N, C_out, OD, OH, OW).  Each output-gradient row is read once and
    dotted with the input rows every (channel, kernel offset) pairs it with (fastmath lets the
    dot products vectorise, reassociating their sums).
    """
    batch, channels, in_d, in_h, in_w = x.shape
    out_channels, cg, kd_n, kh_n, kw_n = gw.shape
    out_d, out_h, out_w = grad.shape[2], grad.shape[3], grad.shape[4]
    sd, sh, sw = stride[0], stride[1], stride[2]
    dd, dh, dw = dilation[0], dilation[1], dilation[2]
    pd, ph, pw = pad[0], pad[1], pad[2]
    out_per_group = out_channels // groups
    src, dy = x.ravel(), grad.ravel()
    acc = np.empty((cg, kd_n, kh_n, kw_n), dtype=gw.dtype)
    for o in range(first, last):
        acc[...] = 0
        for n in range(batch):
            for line in range(out_d * out_h):
                od, oh = line // out_h, line % out_h
                row_grad = ((n * out_channels + o) * out_d * out_h + line) * out_w
                for c in range(cg):
                    in_base = (n * channels + (o // out_per_group) * cg + c) * in_d * in_h * in_w
                    for kd in range(kd_n):
                        i_d = od * sd + kd * dd - pd
                        if i_d < 0 or i_d >= in_d:
                            continue
                        for kh in range(kh_n):
                            i_h = oh * sh + kh * dh - ph
                            if i_h < 0 or i_h >= in_h:
                                continue
                            row_in = in_base + (i_d * in_h + i_h) * in_w
                            for kw in range(kw_n):
                                shift_w = kw * dw - pw
                                lo = min(max(0, -(shift_w // sw)), out_w)
                                hi = max(lo, min(out_w, (in_w - 1 - shift_w) // sw + 1))
                                total = 0.0
                                for ow in range(lo, hi):
                                    total += dy[uint64(row_grad + ow)] * src[uint64(row_in + ow * sw + shift_w)]
                                acc[c, kd, kh, kw] += total
        gw[o] = acc


def weight_gradient(x, grad, geom):
    """The weight gradient (C_out, Cg, *kernel) of a depthwise or grouped ``geom``: the
    backward of the forward's kernel, output channels shared out among the threads."""
    pad = 3 - geom.rank
    gw = np.empty((geom.out_channels, geom.in_per_group, *(1,) * pad, *geom.kernel), dtype=geom.dtype)
    arrays = (
        x.reshape(geom.batch, geom.in_channels, *(1,) * pad, *geom.in_size),  # (N, C, D, H, W)
        grad.reshape(geom.batch, geom.out_channels, *(1,) * pad, *geom.out_size),  # (N, C_out, OD, OH, OW)
        gw,  # (C_out, Cg, KD, KH, KW)
    )
    kernel, params = _kernel(geom, flat_weight_gradient_kernel, grouped_weight_gradient_kernel)
    run_pieces(lambda span: kernel(*arrays, *params, *span), split(geom.out_channels, get_num_threads()))
    return gw.reshape(geom.out_channels, geom.in_per_group, *geom.kernel)
