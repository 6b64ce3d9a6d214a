"""Explicit padding of the spatial dims with PyTorch's padding modes.

As in ``torch.nn.Conv*d``, a non-zero padding mode is an explicit pad followed by an
unpadded convolution, so only this module knows about the modes.
"""

import numpy as np

_NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_spatial(x, pairs, mode):
    """Pad the spatial dims of ``x`` (N, C, *spatial) by ``(lo, hi)`` pairs; returns a new array."""
    return np.pad(x, ((0, 0), (0, 0), *pairs), mode=_NUMPY_MODE[mode])
