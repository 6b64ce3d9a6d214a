"""Explicit padding of the spatial dims with PyTorch's padding modes.

As in ``torch.nn.Conv*d``, a non-zero padding mode is an explicit pad followed by an
unpadded convolution, so only this module knows about the modes.
"""

import numpy as np

_NUMPY_MODE = {"zeros": "constant", "reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def pad_spatial(x, pairs, mode):
    """Pad the spatial dims of ``x`` (N, C, *spatial) by ``(lo, hi)`` pairs; returns a new array."""
    return np.pad(x, ((0, 0), (0, 0), *pairs), mode=_NUMPY_MODE[mode])


def pad_spatial_backward(grad, pairs, mode):
    """The adjoint of :func:`pad_spatial`: ``grad`` (N, C, *padded) folded back to (N, C, *spatial).

    ``pad_spatial`` copies input position ``source[j]`` to padded position ``j``, so its adjoint
    keeps the interior and scatter-adds each border value onto the position it was copied
    from (for ``"zeros"`` the border is dropped).  Returns a new array.
    """
    for axis, (lo, hi) in enumerate(pairs, start=2):
        size = grad.shape[axis] - lo - hi
        moved = np.moveaxis(grad, axis, 0)  # (padded, N, C, ...), a view
        folded = moved[lo:lo + size].copy()  # (size, N, C, ...)
        if mode != "zeros":
            source = np.pad(np.arange(size), (lo, hi), mode=_NUMPY_MODE[mode])  # padded position -> input position
            for j in (*range(lo), *range(lo + size, lo + size + hi)):
                folded[source[j]] += moved[j]
        grad = np.moveaxis(folded, 0, axis)  # (N, C, ..., size, ...)
    return np.ascontiguousarray(grad)
