"""``direct``: the naive reference convolution, any rank.

It sums, over every kernel offset, the strided window of the zero-padded input times
that offset's weight slice, accumulating in float64:

    out[n, g*Og + o, p] = sum_{c, k} x_pad[n, g*Cg + c, p * stride + k * dilation] * w[g*Og + o, c, k]

Tests use it as a second oracle beside PyTorch.
"""

import itertools

import numpy as np

from ..algorithms.base import Algorithm
from ..padding import pad_spatial


def conv_direct(x, weight, geom):
    """The convolution of ``x`` with ``weight`` as float64, shape ``geom.out_shape``."""
    groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
    x_pad = pad_spatial(x.astype(np.float64), geom.padding, "zeros")
    x_groups = x_pad.reshape(geom.batch, groups, cg, *x_pad.shape[2:])  # (N, G, Cg, *padded)
    w_groups = weight.astype(np.float64).reshape(groups, og, cg, *geom.kernel)  # (G, Og, Cg, *kernel)
    acc = np.zeros((geom.batch, groups, og, *geom.out_size))  # (N, G, Og, *out)
    for offset in itertools.product(*(range(k) for k in geom.kernel)):
        window = tuple(
            slice(k * d, k * d + (o - 1) * s + 1, s)
            for k, d, s, o in zip(offset, geom.dilation, geom.stride, geom.out_size)
        )
        patch = x_groups[(slice(None),) * 3 + window]  # (N, G, Cg, *out)
        acc += np.einsum("ngc...,goc->ngo...", patch, w_groups[(slice(None),) * 3 + offset])
    return acc.reshape(geom.out_shape)  # (N, C_out, *out)


class Direct(Algorithm):
    name = "direct"
    reference = True

    def workspace_bytes(self, geom):
        padded = np.prod([i + lo + hi for i, (lo, hi) in zip(geom.in_size, geom.padding)])
        return 8 * (geom.batch * geom.in_channels * int(padded) + 2 * int(np.prod(geom.out_shape)))

    def estimated_seconds(self, geom):
        return geom.flops / 1e9

    def run(self, x, weight, geom, out):
        out[...] = conv_direct(x, weight, geom)
