"""The interface every convolution algorithm implements, and the shared cost-model pieces."""

import math

import numpy as np

from ..config import get_workspace_limit
from ..errors import UnsupportedAlgorithmError

# Machine constants of the cost models, measured on this 2-core machine (AVX-512) with both
# cores busy (see PERFORMANCE.md and benchmarks/): they rank algorithms, nothing more.
# Large float32 GEMMs: `npconv bench` measures an sgemm peak of 315-377 GFLOP/s here (180e9,
# from the first machine, ranked col2im behind the sub-pixel path on DCGAN layers where it
# ran 10-15% faster; auto's choices over the conv suite did not change).
GEMM_FLOPS_PER_SECOND = 300e9
COPY_BYTES_PER_SECOND = 20e9  # streaming writes of a kernel that fills a buffer
# A GEMM whose smallest dim is d runs at d / (d + this) of full speed.  OpenBLAS on one core of
# this VM: 16 and 32 rows at 74 and 111 GFLOP/s (32 groups of im2col GEMMs), 49 columns at 104
# (ResNet-50's 512-channel 3x3/2 layer at batch 1: 256 x 4608 x 49), 196 at 131-143, 392 and
# more at 150-153.  The rule it replaced, full speed from 48 on and in proportion below, made
# im2col's model of those 49-column GEMMs 40-75% optimistic; with this one auto's choices on
# 200 random geometries (benchmarks/auto_choice.py) came 1.029x behind the fastest rather than
# 1.034 (seed 0; seed 1: 1.038 rather than 1.044).
GEMM_HALF_SPEED_DIM = 22


# Scratch memory an algorithm may plan for, below the workspace limit: about the output's
# size, but never less than this.
MIN_SCRATCH_BYTES = 4 * 2**20


def scratch_limit(geom):
    """Bytes of scratch an algorithm plans its chunks for: within the workspace limit and, above
    MIN_SCRATCH_BYTES, within the output's size, so a call needs about 2x its output at most."""
    out_bytes = math.prod(geom.out_shape) * geom.dtype.itemsize
    return min(get_workspace_limit(), max(MIN_SCRATCH_BYTES, out_bytes))


def gemm_seconds(flops, m, n, k):
    """Time of ``flops`` spent in (m x k) @ (k x n) GEMMs: the smallest dim slows them
    (GEMM_HALF_SPEED_DIM)."""
    smallest = min(m, n, k)
    return flops * (smallest + GEMM_HALF_SPEED_DIM) / (GEMM_FLOPS_PER_SECOND * smallest)


def as_3d(values, fill):
    """Per-dim ``values`` of a rank-1..3 geometry as an int64 3-vector, led by ``fill``.

    Numba kernels written for 3 spatial dims run ranks 1 and 2 with leading size-1 dims.
    """
    return np.array((fill,) * (3 - len(values)) + tuple(values), dtype=np.int64)


class Algorithm:
    """One way of computing a convolution.

    Subclasses set ``name`` and implement :meth:`why_unsupported`, :meth:`workspace_bytes`,
    :meth:`estimated_seconds` (the cost model ``auto`` ranks by) and :meth:`run`; those with
    a backward of their own define ``weight_gradient(x, grad, geom)`` (None otherwise), which
    :func:`npconv.conv_backward` takes when ``auto`` runs the forward with them and
    :meth:`weight_gradient_seconds` finds it no dearer than im2col's.
    ``reference`` algorithms are exact but slow; ``auto`` picks them only when nothing
    else supports the geometry.  ``accuracy`` is the loosest precision policy an algorithm
    needs (:func:`npconv.set_precision`): ``"highest"`` for methods exact up to rounding.
    """

    name = None
    reference = False
    accuracy = "highest"
    weight_gradient = None

    def why_unsupported(self, geom):
        """``None`` when this algorithm can compute ``geom``; otherwise the reason, in words."""
        return None

    def workspace_bytes(self, geom):
        """Scratch bytes :meth:`run` allocates for ``geom`` (beyond input, weight and output)."""
        raise NotImplementedError

    def why_not_auto(self, geom):
        """Why ``auto`` passes over this algorithm for ``geom`` though it supports it, or None: by
        default never (algorithms that chunk their scratch keep within the workspace limit)."""
        return None

    def beyond_workspace(self, geom, what):
        """For :meth:`why_not_auto` of an algorithm whose scratch cannot be chunked: why ``auto``
        passes it over where ``what`` (its buffers, named) need more than the workspace limit,
        else None.  Named, it still runs."""
        need, limit = self.workspace_bytes(geom), get_workspace_limit()
        if need > limit:
            return f"{what} need {need} bytes of scratch, above the workspace limit of {limit}"
        return None

    def estimated_seconds(self, geom):
        """A rough run time for ``geom`` on this machine; only its ranking matters."""
        raise NotImplementedError

    def weight_gradient_seconds(self, geom):
        """A rough run time of ``weight_gradient`` for ``geom``: by default the forward's."""
        return self.estimated_seconds(geom)

    def run(self, x, weight, geom, out):
        """Write the bias-free convolution of ``x`` with ``weight`` into every element of ``out``.

        ``x`` (N, C_in, *in_size) and ``weight`` (C_out, C_in/groups, *kernel) are C-contiguous
        arrays of ``geom.dtype``; ``out`` is a C-contiguous (N, C_out, *out_size) array of it.
        """
        raise NotImplementedError

    def check(self, geom):
        """Raise :class:`UnsupportedAlgorithmError` unless this algorithm supports ``geom``."""
        reason = self.why_unsupported(geom)
        if reason is not None:
            raise UnsupportedAlgorithmError(f"algorithm {self.name!r} cannot compute this convolution: {reason}")
