"""``depthwise`` and ``grouped``: direct convolution for groups with few channels each.

Output channel ``o`` of group ``g = o // Og`` reads the group's ``Cg`` input channels::

    out[n, o, p] = sum_{c < Cg, k} w[o, c, k] * x_pad[n, g * Cg + c, p * stride + k * dilation]

Depthwise (groups == C_in, ``Cg = 1``, any channel multiplier ``Og``) is the common case.
One Numba kernel over a range of the independent (image, output channel) planes, the
ranges shared out among the cores (:mod:`npconv.parallel`); for each input channel and
kernel offset it adds a scaled input row to an output row, an inner loop that vectorises
at stride 1.  Zero padding is never materialised.  Ranks 1 and 2 run as rank 3 with
leading size-1 dims.
"""

import numpy as np
from numba import njit, uint64

from ..config import get_num_threads
from ..parallel import run_pieces, split
from .base import Algorithm, as_3d

# Multiply-adds per second the kernel reaches on this machine's 2 cores with output rows of
# at least FULL_SPEED_WIDTH values (measured, roughly); shorter rows are proportionally slower.
MACS_PER_SECOND = 8e9
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
        return geom.macs / (MACS_PER_SECOND * min(1.0, geom.out_size[-1] / FULL_SPEED_WIDTH))

    def run(self, x, weight, geom, out):
        pad = 3 - geom.rank
        args = (
            x.reshape(geom.batch, geom.in_channels, *(1,) * pad, *geom.in_size),  # (N, C, D, H, W)
            weight.reshape(geom.out_channels, geom.in_per_group, *(1,) * pad, *geom.kernel),  # (C_out, Cg, KD, KH, KW)
            out.reshape(geom.batch, geom.out_channels, *(1,) * pad, *geom.out_size),  # (N, C_out, OD, OH, OW)
            geom.groups, as_3d(geom.stride, 1), as_3d(geom.dilation, 1), as_3d([lo for lo, _ in geom.padding], 0),
        )
        run_pieces(lambda span: grouped_kernel(*args, *span),
                   split(geom.batch * geom.out_channels, get_num_threads()))


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
    backward of :func:`grouped_kernel`, output channels shared out among the threads."""
    pad = 3 - geom.rank
    gw = np.empty((geom.out_channels, geom.in_per_group, *(1,) * pad, *geom.kernel), dtype=geom.dtype)
    args = (
        x.reshape(geom.batch, geom.in_channels, *(1,) * pad, *geom.in_size),  # (N, C, D, H, W)
        grad.reshape(geom.batch, geom.out_channels, *(1,) * pad, *geom.out_size),  # (N, C_out, OD, OH, OW)
        gw,  # (C_out, Cg, KD, KH, KW)
        geom.groups, as_3d(geom.stride, 1), as_3d(geom.dilation, 1), as_3d([lo for lo, _ in geom.padding], 0),
    )
    run_pieces(lambda span: grouped_weight_gradient_kernel(*args, *span), split(geom.out_channels, get_num_threads()))
    return gw.reshape(geom.out_channels, geom.in_per_group, *geom.kernel)
