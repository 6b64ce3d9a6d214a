"""Upsample, as ``torch.nn.Upsample``: :func:`npconv.interpolate` and its backward."""

import math

import numpy as np

from ..interpolate import interpolate_backward, resize
from .module import Module


class Upsample(Module):
    """Resizes ``(N, C, *spatial)`` to ``size`` or by ``scale_factor`` with ``mode`` (``"nearest"``,
    ``"nearest-exact"``, ``"linear"``, ``"bilinear"``, ``"bicubic"``, ``"trilinear"``), as
    ``torch.nn.Upsample`` (see :func:`npconv.interpolate`).  Output size per spatial dim:
    ``size``, or ``floor(in * scale_factor)``.  With ``recompute_scale_factor=True`` the
    sampling uses the scale ``out / in`` of that size instead of ``scale_factor``, as PyTorch.
    Arguments are checked at the first forward, as PyTorch's."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None, recompute_scale_factor=None):
        super().__init__()
        if recompute_scale_factor and size is not None:
            raise ValueError(
                f"Upsample: recompute_scale_factor is not meaningful with an explicit size, got size={size}")
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor

    def _arguments(self, shape):
        """``interpolate``'s keyword arguments for an input of ``shape``."""
        size, scale_factor = self.size, self.scale_factor
        if self.recompute_scale_factor and scale_factor is not None:
            rank = len(shape) - 2
            scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * rank
            if len(scales) != rank:
                raise ValueError(f"Upsample: scale_factor needs one value per spatial dim ({rank}), got {scale_factor}")
            size, scale_factor = tuple(math.floor(i * s) for i, s in zip(shape[2:], scales)), None
        return dict(size=size, scale_factor=scale_factor, mode=self.mode, align_corners=self.align_corners)

    def forward(self, x):
        self._saved = shape = np.shape(x)
        return resize("Upsample", x, **self._arguments(shape))

    def backward(self, grad_output):
        return interpolate_backward(grad_output, self._saved, **self._arguments(self._saved))

    def extra_repr(self):
        given = f"size={self.size!r}" if self.size is not None else f"scale_factor={self.scale_factor!r}"
        return f"{given}, mode={self.mode!r}"
