"""Resize-convolution: interpolation followed by a convolution, in one call.

Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts" (Distill, 2016):
upsampling by a transposed convolution with a kernel size not divisible by its stride
gives the output's phases uneven numbers of taps, a checkerboard; resizing first (nearest
or bilinear) and then convolving at stride 1 treats every output position alike.

Nearest resizing by whole factors is itself a transposed convolution.  Repeating each value
``r`` times and correlating with a ``k``-tap ``w`` (padding ``lo``, ``hi``) is, per dim::

    y[q] = sum_t w[t] * x[(q + t - lo) // r]  =  conv_transpose(x, v, stride=r, padding=(k-1-lo, k-1-hi))[q]
    v[tau] = sum_{j < r} flip(w)[tau - j]        (k + r - 1 taps: the flipped kernel box-filtered)

(write ``q + t - lo = r*i + j``; each ``(i, j)`` reaches ``q = r*i + tau - (k - 1 - lo)``
through ``tau = j - t + k - 1``).  So :func:`upsample_conv` runs nearest x2 + 3x3 as a
4x4/2 transposed convolution, whose four phases are 2x2 convolutions of the input
(:mod:`npconv.transpose`): 16 multiplications per 2x2 output block instead of 36, and no
resized copy of the input.
"""

import numpy as np

from .algorithms.weight_cache import WEIGHT_CACHE
from .conv import _conv
from .dtypes import as_array, conv_arrays
from .geometry import conv_geometry
from .interpolate import nearest_repeats, resize
from .transpose import _conv_transpose


def upsample_conv(x, weight, bias=None, *, scale_factor=2, mode="nearest", align_corners=None, stride=1,
                  padding="same", dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """``conv(interpolate(x, scale_factor=scale_factor, mode=mode, align_corners=align_corners), weight, bias, ...)``.

    Args:
        x: input, ``(N, C_in, *spatial)``.
        weight: ``(C_out, C_in / groups, *kernel)``, as for :func:`npconv.conv`.
        bias: ``(C_out,)`` or None.
        scale_factor, mode, align_corners: the resize, as :func:`npconv.interpolate`.
        stride, padding, dilation, groups, padding_mode, algo: the convolution, as
            :func:`npconv.conv`; ``padding="same"`` keeps the resized size.

    Output size per spatial dim, with ``up = floor(in * scale_factor)`` and ``(lo, hi)``
    the convolution's padding (``"same"``: ``out = ceil(up / stride)``)::

        out = floor((up + lo + hi - dilation * (kernel - 1) - 1) / stride) + 1

    Returns a new array; the inputs are never modified.

    Raises:
        TypeError, ValueError: as :func:`npconv.interpolate` and :func:`npconv.conv`, the
            message naming ``upsample_conv``.
    """
    op = "upsample_conv"
    x, weight = as_array(op, "input", x), as_array(op, "weight", weight)
    if x.ndim != weight.ndim:
        raise ValueError(
            f"{op}: input must be (N, C_in, *spatial) with {weight.ndim} dims to match the {weight.ndim}-d weight, "
            f"got shape {x.shape}"
        )
    repeats = nearest_repeats(op, x, scale_factor, mode, align_corners)
    if repeats is not None and algo == "auto":
        out = _repeats_transposed(op, x, weight, bias, repeats, stride, padding, dilation, groups, padding_mode)
        if out is not None:
            return out
    resized = resize(op, x, None, scale_factor, mode, align_corners)
    return _conv(op, None, resized, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def _repeats_transposed(op, x, weight, bias, repeats, stride, padding, dilation, groups, padding_mode):
    """The convolution of ``x`` repeated ``repeats`` times per dim, as the transposed convolution
    of the module's docstring -- or None where that does not apply: a stride or dilation other
    than 1, a padding mode other than zeros, or padding beyond ``k - 1`` (the conv's arguments
    are checked here, as :func:`npconv.conv` checks them)."""
    x, weight, bias, compute, result = conv_arrays(op, None, x, weight, bias, "(C_out, C_in/groups, *kernel)")
    resized = (*x.shape[:2], *(i * r for i, r in zip(x.shape[2:], repeats)))
    geom, mode_pad = conv_geometry(op, resized, weight.shape, None if bias is None else bias.shape, stride=stride,
                                   padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode,
                                   dtype=compute)
    if (mode_pad is not None or any(s != 1 for s in geom.stride) or any(d != 1 for d in geom.dilation)
            or any(max(pair) > k - 1 for pair, k in zip(geom.padding, geom.kernel))):
        return None
    weight = np.ascontiguousarray(weight, dtype=compute)
    box = WEIGHT_CACHE.get(weight, ("upsample_conv", repeats, geom.groups),
                           lambda: _box_filtered(weight, repeats, geom))  # (C_in, Og, *(kernel + repeats - 1))
    crop = tuple((k - 1 - lo, k - 1 - hi) for (lo, hi), k in zip(geom.padding, geom.kernel))
    out = _conv_transpose(op, None, x.astype(compute, copy=False), box, bias, repeats, crop, 0, geom.groups, 1, None,
                          "auto")
    return out.astype(result, copy=False)


def _box_filtered(weight, repeats, geom):
    """The transposed convolution's weight (C_in, C_out / groups, *(kernel + repeats - 1)): the
    flipped kernel summed over ``repeats`` shifts per dim, input and output channels swapped
    within each group.  The taps go first for the sums, so each adds whole channel blocks
    (with the taps last, NumPy's loops ran 3-6x slower over the 3 or 4 values of a kernel row)."""
    rank, g, og, cg = geom.rank, geom.groups, geom.out_per_group, geom.in_per_group
    spatial = tuple(range(2, 2 + rank))
    # (C_out, Cg, *kernel) flipped -> (G, Og, Cg, *kernel) -> (*kernel, G, Cg, Og), a copy
    taps = np.ascontiguousarray(np.moveaxis(np.flip(weight, spatial).reshape(g, og, cg, *geom.kernel), (0, 2, 1),
                                            (rank, rank + 1, rank + 2)))
    box = np.zeros((*(k + r - 1 for k, r in zip(geom.kernel, repeats)), g, cg, og), dtype=weight.dtype)
    for shift in np.ndindex(*repeats):
        box[tuple(slice(j, j + k) for j, k in zip(shift, geom.kernel))] += taps
    # (*taps, G, Cg, Og) -> (*taps, C_in, Og) -> (C_in, Og, *taps), a copy
    return np.ascontiguousarray(np.moveaxis(box.reshape(*box.shape[:rank], geom.in_channels, og), (rank, rank + 1),
                                            (0, 1)))
