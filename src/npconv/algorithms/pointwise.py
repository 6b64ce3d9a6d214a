"""``pointwise``: a 1x1 convolution as a batched GEMM, with no column matrix.

With a 1x1 kernel each output position sees one input position, so per image and group::

    out[n, g] (Og, P) = weight[g] (Og, Cg) @ x[n, g, :, ::stride] (Cg, P)

At stride 1 the input is used in place; at larger strides the subsampled images are
copied, a chunk of images at a time, under the workspace cap.  Any rank, dilation and
group count; no padding (a padded 1x1 border is just zeros, left to ``im2col``).
"""

import functools
import math

import numpy as np

from ..config import get_num_threads
from ..parallel import run_pieces, split, threads_for
from .base import COPY_BYTES_PER_SECOND, Algorithm, gemm_seconds, scratch_limit

# Images with fewer output positions than STACK_BELOW, in layers with at least STACK_CHANNELS
# input and output channels per group, are multiplied side by side (see _multiply); with
# fewer channels the copies cost what the wider GEMM saves (measured on MobileNetV2's 7x7s).
STACK_BELOW = 64
STACK_CHANNELS = 256
STACK_IMAGES = 8


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
        """The subsampled chunk at strides > 1, plus each thread's stacked images and their products."""
        positions, item = math.prod(geom.out_size), geom.dtype.itemsize
        stacked = 0
        if stacks(geom):
            stacked = get_num_threads() * STACK_IMAGES * positions * (geom.in_channels + geom.out_channels)
        if all(s == 1 for s in geom.stride):
            return stacked * item
        return (self._images_per_chunk(geom) * geom.in_channels * positions + stacked) * item

    def estimated_seconds(self, geom):
        """The GEMMs, as wide as the images side by side where :func:`stacks` (a thread's share
        of them, at most STACK_IMAGES), and at strides > 1 the subsampled input's copy."""
        positions = math.prod(geom.out_size)
        side_by_side = min(STACK_IMAGES, -(-geom.batch // get_num_threads())) if stacks(geom) else 1
        copy = any(s != 1 for s in geom.stride) and geom.batch * geom.in_channels * positions
        return (gemm_seconds(geom.flops, geom.out_per_group, side_by_side * positions, geom.in_per_group)
                + copy * geom.dtype.itemsize / COPY_BYTES_PER_SECOND)

    def _chunks(self, x, geom, seconds, split_outputs=False):
        """``(n0, src, pieces)`` per chunk of images: ``src`` (nb, G, Cg, P) the chunk's subsampled
        input (a view at stride 1), ``pieces`` (images, outputs, positions) slices splitting it
        among the threads: images where there are enough, else positions, or with
        ``split_outputs`` the output channels of each group where they outnumber a thread's
        share of the positions (the threads then read a share of the weight each, and each GEMM
        keeps every column: ResNet-50's 128 -> 512 on 28x28 at batch 1 ran 1.23x faster than
        with its 784 positions split); one piece for work modelled at ``seconds`` below the
        split threshold."""
        positions, threads = math.prod(geom.out_size), threads_for(seconds)
        sub = x[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in geom.stride)]  # (N, C, *out)
        images = geom.batch if sub.flags.c_contiguous else self._images_per_chunk(geom)
        every = slice(None)
        for n0 in range(0, geom.batch, images):
            chunk = np.ascontiguousarray(sub[n0 : n0 + images])
            src = chunk.reshape(len(chunk), geom.groups, geom.in_per_group, positions)  # (nb, G, Cg, P)
            if len(chunk) >= threads:
                pieces = [(slice(a, b), every, every) for a, b in split(len(chunk), threads)]
            elif split_outputs and geom.out_per_group * threads >= positions:
                pieces = [(every, slice(a, b), every) for a, b in split(geom.out_per_group, threads)]
            else:
                pieces = [(every, every, slice(a, b)) for a, b in split(positions, threads)]
            yield n0, src, pieces

    def run(self, x, weight, geom, out):
        w_groups = weight.reshape(geom.groups, geom.out_per_group, geom.in_per_group)  # (G, Og, Cg)
        out_groups = out.reshape(geom.batch, geom.groups, geom.out_per_group, -1)  # (N, G, Og, P)
        seconds, stack = _plan(geom, get_num_threads())
        for n0, src, pieces in self._chunks(x, geom, seconds, split_outputs=True):
            dst = out_groups[n0 : n0 + len(src)]  # (nb, G, Og, P)
            run_pieces(lambda piece: _multiply(w_groups, src, dst, piece, stack), pieces, seconds=seconds)

    def weight_gradient(self, x, grad, geom):
        """The weight gradient (C_out, Cg, 1, ...): pointwise's backward, summed per thread::

            grad_w[g] (Og, Cg) = grad[:, g] (Og, N*P) @ x[:, g, :, ::stride]^T (N*P, Cg)

        with up to STACK_IMAGES images side by side (copied) in each GEMM.
        """
        grad_groups = grad.reshape(geom.batch, geom.groups, geom.out_per_group, -1)  # (N, G, Og, P)
        partial = np.zeros((get_num_threads(), geom.groups, geom.out_per_group, geom.in_per_group), geom.dtype)
        seconds, _ = _plan(geom, get_num_threads())
        for n0, src, pieces in self._chunks(x, geom, seconds):
            dy = grad_groups[n0 : n0 + len(src)]  # (nb, G, Og, P)

            def work(indexed):
                # One GEMM per group over images side by side, not an (Og, Cg) product per
                # image summed afterwards (8 MB an image for 2048 -> 512 channels).
                index, (images, _, positions) = indexed
                for part in _parts(images, len(src)):
                    g, _, _ = _side_by_side(dy[part, :, :, positions])  # (G, Og, nb*P')
                    x_part, _, _ = _side_by_side(src[part, :, :, positions])  # (G, Cg, nb*P')
                    partial[index] += np.matmul(g, x_part.swapaxes(1, 2))  # (G, Og, Cg)

            run_pieces(work, list(enumerate(pieces)), seconds=seconds)
        return partial.sum(axis=0).reshape(geom.out_channels, geom.in_per_group, *geom.kernel)


@functools.lru_cache(maxsize=1024)
def _plan(geom, threads):
    """``(modelled seconds, stacks(geom))`` on ``threads`` (the current count), per geometry:
    a small call's Python is a fifth of its time."""
    return Pointwise().estimated_seconds(geom), stacks(geom)


def stacks(geom):
    """Whether :func:`_multiply` puts images side by side for ``geom``."""
    return (math.prod(geom.out_size) < STACK_BELOW
            and min(geom.in_per_group, geom.out_per_group) >= STACK_CHANNELS and geom.batch > 1)


def _multiply(w_groups, src, dst, piece, stack):
    """``dst[piece] = w_groups @ src[piece]`` per image and group, for the piece's (images,
    output channels, positions); with ``stack``, up to STACK_IMAGES images side by side in one
    GEMM per group (GEMMs 49 columns wide ran at 150 GFLOP/s, against torch's 270, on
    ResNet-50's 7x7 layers)."""
    images, outputs, positions = piece
    w = w_groups[:, outputs]  # (G, Og', Cg)
    if not stack:
        np.matmul(w, src[images, :, :, positions], out=dst[images, :, outputs, positions])
        return
    for part in _parts(images, len(src)):
        stacked, nb, pc = _side_by_side(src[part, :, :, positions])  # (G, Cg, nb*P')
        products = np.matmul(w, stacked).reshape(*w.shape[:2], nb, pc)  # (G, Og', nb, P')
        dst[part, :, outputs, positions] = products.transpose(2, 0, 1, 3)


def _parts(images, count):
    """The images of ``images`` (a slice of ``range(count)``) in slices of STACK_IMAGES."""
    start, stop, _ = images.indices(count)
    return [slice(n0, min(n0 + STACK_IMAGES, stop)) for n0 in range(start, stop, STACK_IMAGES)]


def _side_by_side(block):
    """``(stacked, nb, P')``: ``block`` (nb, G, C, P') as (G, C, nb*P'), a copy unless nb == 1."""
    nb, groups, channels, pc = block.shape
    return block.transpose(1, 2, 0, 3).reshape(groups, channels, nb * pc), nb, pc
