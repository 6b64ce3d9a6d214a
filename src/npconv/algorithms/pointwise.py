"""``pointwise``: a 1x1 convolution as a batched GEMM, with no column matrix.

With a 1x1 kernel each output position sees one input position, so per image and group::

    out[n, g] (Og, P) = weight[g] (Og, Cg) @ x[n, g, :, ::stride] (Cg, P)

At stride 1 the input is used in place; at larger strides the subsampled images are
copied, a chunk of images at a time, under the workspace cap.  Any rank, dilation and
group count; no padding (a padded 1x1 border is just zeros, left to ``im2col``).
"""

import math

import numpy as np

from ..config import get_num_threads
from ..parallel import run_pieces, split
from .base import COPY_BYTES_PER_SECOND, Algorithm, gemm_seconds, scratch_limit


class Pointwise(Algorithm):
    name = "pointwise"

    def why_unsupported(self, geom):
        if any(k != 1 for k in geom.kernel):
            return f"it needs a 1x1 kernel, got kernel {geom.kernel}"
        if any(pair != (0, 0) for pair in geom.padding):
            return f"it takes no padding, got {geom.padding}"
        return None

    def _images_per_chunk(self, geom):
        image_bytes = geom.in_channels * math.prod(geom.out_size) * geom.dtype.itemsize
        return max(1, min(geom.batch, scratch_limit(geom) // image_bytes))

    def workspace_bytes(self, geom):
        if all(s == 1 for s in geom.stride):
            return 0
        return self._images_per_chunk(geom) * geom.in_channels * math.prod(geom.out_size) * geom.dtype.itemsize

    def estimated_seconds(self, geom):
        copy = self.workspace_bytes(geom) and geom.batch * geom.in_channels * math.prod(geom.out_size)
        return (gemm_seconds(geom.flops, geom.out_per_group, math.prod(geom.out_size), geom.in_per_group)
                + copy * geom.dtype.itemsize / COPY_BYTES_PER_SECOND)

    def _chunks(self, x, geom):
        """``(n0, src, pieces)`` per chunk of images: ``src`` (nb, G, Cg, P) the chunk's subsampled
        input (a view at stride 1), ``pieces`` index pairs splitting it among the threads."""
        positions, threads = math.prod(geom.out_size), get_num_threads()
        sub = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in geom.stride)]  # (N, C, *out)
        images = geom.batch if sub.flags.c_contiguous else self._images_per_chunk(geom)
        for n0 in range(0, geom.batch, images):
            chunk = np.ascontiguousarray(sub[n0 : n0 + images])
            src = chunk.reshape(len(chunk), geom.groups, geom.in_per_group, positions)  # (nb, G, Cg, P)
            if len(chunk) >= threads:  # the threads take images, else ranges of positions
                pieces = [(slice(a, b), slice(None)) for a, b in split(len(chunk), threads)]
            else:
                pieces = [(slice(None), slice(a, b)) for a, b in split(positions, threads)]
            yield n0, src, pieces

    def run(self, x, weight, geom, out):
        w_groups = weight.reshape(geom.groups, geom.out_per_group, geom.in_per_group)  # (G, Og, Cg)
        out_groups = out.reshape(geom.batch, geom.groups, geom.out_per_group, -1)  # (N, G, Og, P)
        seconds = self.estimated_seconds(geom)
        for n0, src, pieces in self._chunks(x, geom):
            dst = out_groups[n0 : n0 + len(src)]  # (nb, G, Og, P)
            run_pieces(lambda piece: np.matmul(w_groups, src[piece[0], :, :, piece[1]],
                                               out=dst[piece[0], :, :, piece[1]]), pieces, seconds=seconds)

    def weight_gradient(self, x, grad, geom):
        """The weight gradient (C_out, Cg, 1, ...): pointwise's backward, summed per thread::

            grad_w[g] (Og, Cg) = sum_n grad[n, g] (Og, P) @ x[n, g, :, ::stride]^T (P, Cg)
        """
        grad_groups = grad.reshape(geom.batch, geom.groups, geom.out_per_group, -1)  # (N, G, Og, P)
        partial = np.zeros((get_num_threads(), geom.groups, geom.out_per_group, geom.in_per_group), geom.dtype)
        seconds = self.estimated_seconds(geom)
        for n0, src, pieces in self._chunks(x, geom):
            dy = grad_groups[n0 : n0 + len(src)]  # (nb, G, Og, P)

            def work(indexed):
                index, (images, positions) = indexed
                products = np.matmul(dy[images, :, :, positions],  # (nb', G, Og, P')
                                     src[images, :, :, positions].swapaxes(2, 3))  # (nb', G, P', Cg)
                partial[index] += products.sum(axis=0)

            run_pieces(work, list(enumerate(pieces)), seconds=seconds)
        return partial.sum(axis=0).reshape(geom.out_channels, geom.in_per_group, *geom.kernel)
