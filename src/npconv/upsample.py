"""Resize-convolution: interpolation followed by a convolution, in one call.

Odena, Dumoulin & Olah, "Deconvolution and Checkerboard Artifacts" (Distill, 2016):
upsampling by a transposed convolution with a kernel size not divisible by its stride
gives the output's phases uneven numbers of taps, a checkerboard; resizing first (nearest
or bilinear) and then convolving at stride 1 treats every output position alike.
"""

from .conv import _conv
from .dtypes import as_array
from .interpolate import resize


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
    resized = resize(op, x, None, scale_factor, mode, align_corners)
    return _conv(op, None, resized, weight, bias, stride, padding, dilation, groups, padding_mode, algo)
