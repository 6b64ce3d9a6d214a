"""``depthwise``: groups == C_in (each input channel convolved with its own filters).

Output channel ``o`` reads input channel ``o // m`` (``m = C_out / C_in``, the channel
multiplier) through its own kernel::

    out[n, o, p] = sum_k w[o, 0, k] * x_pad[n, o // m, p * stride + k * dilation]

A Numba kernel, parallel over the independent (image, output channel) planes; for each
kernel offset it adds a scaled input row to an output row, an inner loop that vectorises
at stride 1.  Zero padding is never materialised.  Ranks 1 and 2 run as rank 3 with
leading size-1 dims.  No BLAS is involved, so this kernel owns the cores.
"""

from numba import njit, prange, uint64

from .base import Algorithm, as_3d

# Multiply-adds per second the kernel reaches on this machine's 2 cores (measured, roughly).
MACS_PER_SECOND = 8e9


@njit(parallel=True, cache=True)
def depthwise_kernel(x, w, out, stride, dilation, pad):
    """out (N, C_out, OD, OH, OW) = depthwise conv of x (N, C, D, H, W) with w (C_out, KD, KH, KW)."""
    batch, channels, in_d, in_h, in_w = x.shape
    out_channels, kd_n, kh_n, kw_n = w.shape
    out_d, out_h, out_w = out.shape[2], out.shape[3], out.shape[4]
    sd, sh, sw = stride[0], stride[1], stride[2]
    dd, dh, dw = dilation[0], dilation[1], dilation[2]
    pd, ph, pw = pad[0], pad[1], pad[2]
    multiplier = out_channels // channels
    src, dst = x.ravel(), out.ravel()
    for plane in prange(batch * out_channels):
        n, o = plane // out_channels, plane % out_channels
        in_base = (n * channels + o // multiplier) * in_d * in_h * in_w
        out_base = plane * out_d * out_h * out_w
        for i in range(out_d * out_h * out_w):
            dst[uint64(out_base + i)] = 0
        for kd in range(kd_n):
            for kh in range(kh_n):
                for kw in range(kw_n):
                    weight = w[o, kd, kh, kw]
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
    name = "depthwise"

    def why_unsupported(self, geom):
        if geom.groups != geom.in_channels:
            return f"it needs groups == in_channels, got groups={geom.groups}, in_channels={geom.in_channels}"
        if geom.rank > 3:
            return f"it handles 1 to 3 spatial dims, got {geom.rank}"
        return None

    def workspace_bytes(self, geom):
        return 0

    def estimated_seconds(self, geom):
        return geom.macs / MACS_PER_SECOND

    def run(self, x, weight, geom, out):
        pad = 3 - geom.rank
        depthwise_kernel(
            x.reshape(geom.batch, geom.in_channels, *(1,) * pad, *geom.in_size),  # (N, C, D, H, W)
            weight.reshape(geom.out_channels, *(1,) * pad, *geom.kernel),  # (C_out, KD, KH, KW)
            out.reshape(geom.batch, geom.out_channels, *(1,) * pad, *geom.out_size),  # (N, C_out, OD, OH, OW)
            as_3d(geom.stride, 1), as_3d(geom.dilation, 1), as_3d([lo for lo, _ in geom.padding], 0),
        )
