"""Transposed convolution: the adjoint of :func:`npconv.conv`, one N-d entry point and thin wrappers.

The adjoint.  A convolution with stride ``s``, dilation ``d`` and low padding ``lo`` is
linear in its input (one spatial dim shown, groups left out)::

    z[n, o, q] = sum_{c, t} x[n, c, q*s + t*d - lo] * w[o, c, t]

so, for any ``y`` of ``z``'s shape,

    <conv(x, w), y> = sum_{n, o, q, c, t} x[n, c, q*s + t*d - lo] * w[o, c, t] * y[n, o, q]
                    = sum_{n, c, p} x[n, c, p] * sum_{o, q, t : q*s + t*d = p + lo} y[n, o, q] * w[o, c, t]

and the inner sum is the adjoint (the input gradient of the convolution)::

    conv_transpose(y, w)[n, c, p] = sum_{o, q, t : q*s + t*d = p + lo} y[n, o, q] * w[o, c, t]

with ``w`` read as ``(C_in, C_out, *kernel)`` of the transposed op -- PyTorch's layout.
Each input value ``y[q]`` is scattered to ``q*s + t*d - lo``.  As a convolution (JAX's
``conv_transpose``): insert ``s - 1`` zeros between input values (``lhs_dilation = s``),
pad by ``d*(k-1) - lo`` and correlate with the flipped kernel, in/out channels swapped per
group.  Most of those products are with inserted zeros, so nothing here builds that input.

Sub-pixel decomposition (the main path).  Output position ``p`` sits at ``P = p + lo`` of
the full (uncropped) output; group the outputs by their phase ``p mod s``.  Within one
phase the taps that reach it, and the input they read, follow a stride-1 pattern, so the
phase's outputs are a stride-1 convolution of the input with a sub-kernel (derived in
:func:`_phases_1d`), run by :func:`npconv.conv` with whatever algorithm ``auto`` picks for
it (im2col, pointwise for the 1x1 sub-kernels of a 2x2/2 layer, Winograd for 3x3 ones ...).
Phases that no tap reaches (kernel smaller than the stride) are just the bias.  Dilation
needs no separate path: with ``g = gcd(s, d)``, only phases divisible by ``g`` are
reached, through every ``(s/g)``-th tap at dilation ``d/g``.

Stacked phases.  Where the reached phases' sub-kernels are all the same size (every phase
of a kernel divisible by the stride: DCGAN's 4x4/2 has four 2x2 ones, U-Net's 2x2/2 four
1x1 ones), they differ only in their padding, so one stride-1 convolution on a grid that
covers them all computes every phase at once: its output channels are the phases'
sub-kernels side by side (per group), and each phase's outputs are a shifted window of it
(:func:`stacked_grid`).  The phases then share one pass over the input -- one im2col, one
Winograd input transform -- and their GEMMs are one, ``s^d`` times wider.  A 4x4/2 layer
on an 8x8 input computes a 9x9 grid for its four 8x8 phases.  A Numba kernel then writes the
output row by row, each row's column phases in turn (:func:`place_phases`).

col2im + GEMM (:mod:`npconv.col2im`, ranks 1 to 3): one GEMM multiplies every input value
by every tap, then the products are added into the output.  It multiplies no padding
zeros at all, which wins where the sub-pixel convolutions would be mostly padding (a 4x4
output from a 1x1 input) or their GEMMs small (DCGAN's 4x4/2 layers on 4x4 to 32x32
images, where im2col runs one small GEMM per image and phase).  ``algo="auto"`` picks the
cheaper path by the cost models (the conv algorithms' and :func:`npconv.col2im.col2im_seconds`).
"""

import functools
import itertools
import math
from dataclasses import dataclass

import numpy as np
from numba import njit, uint64

from .algorithms import REGISTRY, select, vector_copy
from .algorithms.base import COPY_BYTES_PER_SECOND
from .algorithms.weight_cache import WEIGHT_CACHE, check_seconds
from .col2im import col2im_seconds, conv_transpose_col2im
from .col2im import why_unsupported as why_col2im_unsupported
from .config import get_num_threads, get_precision, get_workspace_limit
from .conv import conv
from .dtypes import conv_arrays
from .errors import UnsupportedAlgorithmError
from .geometry import ConvGeometry, conv_transpose_geometry
from .parallel import run_pieces, split, threads_for
from . import phase_winograd

PATHS = ("col2im", "subpixel")

_DOC_ARGS = """
    Args:
        x: input, ``(N, C_in, *spatial)``.
        weight: ``(C_in, C_out / groups, *kernel)``, as in PyTorch; its rank sets the rank.
        bias: ``(C_out,)`` or None.
        stride, dilation: an int or one per spatial dim, positive.
        padding: an int; one int per dim; one ``(lo, hi)`` pair per dim (asymmetric, as
            ONNX ``pads``): how much is cropped from each end of the full output.
        output_padding: an int or one per dim, added at the high end; each smaller than
            its dim's stride or dilation.
        groups: splits channels into ``groups`` independent transposed convolutions.
        output_size: ``None``; an int; one int per dim; or ``(N, C_out, *spatial)``.  Sets
            ``output_padding`` as PyTorch does: each size within ``[min, min + stride - 1]``,
            ``min`` being the size with ``output_padding = 0``.
        algo: ``"auto"`` (the cheaper of the two paths by the cost models); ``"subpixel"``
            (phase convolutions with conv's ``auto``); ``"col2im"``; or a name from
            :func:`npconv.algorithms` (phase convolutions with that algorithm).

    Output size per spatial dim, with ``(lo, hi)`` the padding::

        out = (in - 1) * stride - lo - hi + dilation * (kernel - 1) + output_padding + 1

    It is the adjoint of ``conv`` with the same weight, stride, dilation, padding and
    groups: ``<conv(x, w), y> == <x, conv_transpose(y, w)>`` when the shapes match.
    dtypes as for ``conv``.  Returns a new array; the inputs are never modified.

    Raises:
        TypeError: a non-float input or a non-int hyper-parameter.
        ValueError: inconsistent shapes or hyper-parameters; an ``output_size`` out of
            range (the message names the range); an unknown ``algo``.
        UnsupportedAlgorithmError: ``col2im`` for more than 3 spatial dims, or a named
            conv algorithm that cannot compute a phase.
"""


def conv_transpose(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                   output_size=None, algo="auto"):
    """N-d transposed convolution (the adjoint of :func:`npconv.conv`), as PyTorch's ``conv_transpose``.
    """
    return _conv_transpose("conv_transpose", None, x, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, algo)


def conv_transpose1d(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, algo="auto"):
    """1-d transposed convolution: ``x`` (N, C_in, L), ``weight`` (C_in, C_out / groups, k).
    """
    return _conv_transpose("conv_transpose1d", 1, x, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, algo)


def conv_transpose2d(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, algo="auto"):
    """2-d transposed convolution: ``x`` (N, C_in, H, W), ``weight`` (C_in, C_out / groups, kh, kw).
    """
    return _conv_transpose("conv_transpose2d", 2, x, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, algo)


def conv_transpose3d(x, weight, bias=None, *, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
                     output_size=None, algo="auto"):
    """3-d transposed convolution: ``x`` (N, C_in, D, H, W), ``weight`` (C_in, C_out / groups, kd, kh, kw).
    """
    return _conv_transpose("conv_transpose3d", 3, x, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, algo)


for _f in (conv_transpose, conv_transpose1d, conv_transpose2d, conv_transpose3d):
    _f.__doc__ += _DOC_ARGS


def _conv_transpose(op, rank, x, weight, bias, stride, padding, output_padding, groups, dilation, output_size, algo):
    x, weight, bias, compute, result = conv_arrays(op, rank, x, weight, bias, "(C_in, C_out/groups, *kernel)")
    geom = conv_transpose_geometry(
        op, x.shape, weight.shape, None if bias is None else bias.shape, stride=stride, padding=padding,
        output_padding=output_padding, groups=groups, dilation=dilation, output_size=output_size, dtype=compute,
    )
    if algo not in ("auto", *PATHS, *REGISTRY):
        raise ValueError(
            f"{op}: unknown algo {algo!r}; choose 'auto', 'subpixel', 'col2im' or one of "
            f"{', '.join(map(repr, REGISTRY))}"
        )
    x = np.ascontiguousarray(x, dtype=compute)
    weight = np.ascontiguousarray(weight, dtype=compute)
    bias = None if bias is None else bias.astype(compute, copy=False)
    if algo == "col2im" and why_col2im_unsupported(geom):
        raise UnsupportedAlgorithmError(
            f"{op}: algorithm 'col2im' cannot compute this transposed convolution: {why_col2im_unsupported(geom)}"
        )
    if algo == "col2im" or (algo == "auto" and auto_path(geom) == "col2im"):
        out = conv_transpose_col2im(x, weight, bias, geom)
    else:
        out = _subpixel(x, weight, bias, geom, "auto" if algo == "subpixel" else algo)
    return out.astype(result, copy=False)


@dataclass(frozen=True)
class _Phase1d:
    """One output phase of one spatial dim: outputs ``offset::stride``, as a stride-1 convolution.

    ``taps`` slices the kernel (the sub-kernel, before its flip); ``crop`` slices the input;
    ``pad`` is the sub-convolution's ``(lo, hi)`` padding.  ``taps`` is None when no tap
    reaches the phase, or none with an input value: its outputs are the bias alone.
    """

    offset: int
    count: int
    taps: slice | None
    dilation: int
    crop: slice
    pad: tuple


def _phases_1d(in_size, kernel, stride, dilation, lo, out_size):
    """The phases of one spatial dim (those with at least one output).

    Output ``p`` is full position ``P = p + lo = i*s + t*d`` (input ``i``, tap ``t``).  For
    the phase of outputs ``p = rho + s*u`` let ``r = (rho + lo) mod s`` and
    ``m0 = (rho + lo) div s``, so ``P = r + s*(m0 + u)``.  A tap reaches it iff
    ``t*d = r (mod s)``: with ``g = gcd(s, d)`` that needs ``g | r``, and then the taps are
    ``t = t0 + (s/g)*j`` (``t0 < s/g`` the smallest solution), ``j < kr``.  Then
    ``i = m0 + u - c - j*(d/g)`` with ``c = (t0*d - r) / s >= 0``; reversing ``j`` (the
    flip, ``v[j'] = w[t0 + (s/g)*(kr-1-j')]``)::

        y[rho + s*u] = sum_{j'} x[u + j'*(d/g) - pad_lo] * v[j'],
        pad_lo = c + (kr-1)*(d/g) - m0

    a stride-1 correlation with dilation ``d/g``; ``pad_hi`` makes its output ``count``
    long.  A negative pad crops the input instead.
    """
    g = math.gcd(stride, dilation)
    step, sub_dilation = stride // g, dilation // g
    phases = []
    for offset in range(min(stride, out_size)):
        count = len(range(offset, out_size, stride))
        r, m0 = (offset + lo) % stride, (offset + lo) // stride
        t0 = (r // g) * pow(sub_dilation, -1, step) % step
        kr = len(range(t0, kernel, step))
        if r % g or kr == 0:
            phases.append(_Phase1d(offset, count, None, sub_dilation, slice(0), (0, 0)))
            continue
        pad_lo = (t0 * dilation - r) // stride + (kr - 1) * sub_dilation - m0
        pad_hi = count - in_size - pad_lo + (kr - 1) * sub_dilation
        crop = slice(max(0, -pad_lo), min(in_size, in_size + pad_hi))
        taps = slice(t0, None, step) if crop.stop > crop.start else None
        phases.append(_Phase1d(offset, count, taps, sub_dilation, crop, (max(pad_lo, 0), max(pad_hi, 0))))
    return phases


def phase_grid(geom):
    """Every combination of the spatial dims' phases, as tuples of :class:`_Phase1d`."""
    per_dim = [
        _phases_1d(i, k, s, d, lo, o)
        for i, k, s, d, (lo, _), o in zip(geom.in_size, geom.kernel, geom.stride, geom.dilation, geom.padding,
                                          geom.out_size)
    ]
    return list(itertools.product(*per_dim))


def phase_geometry(geom, phase, stacked=1):
    """The stride-1 :class:`ConvGeometry` of one reached phase (or of ``stacked`` phases on a
    grid from :func:`stacked_grid`)."""
    return ConvGeometry(
        batch=geom.batch, in_channels=geom.in_channels, out_channels=geom.out_channels * stacked, groups=geom.groups,
        in_size=tuple(len(range(geom.in_size[dim])[p.crop]) for dim, p in enumerate(phase)),
        kernel=tuple(len(range(k)[p.taps]) for k, p in zip(geom.kernel, phase)),
        stride=(1,) * geom.rank, dilation=tuple(p.dilation for p in phase), padding=tuple(p.pad for p in phase),
        dtype=geom.dtype,
    )


def is_reached(phase):
    """Whether some tap reaches this phase (else its outputs are just the bias)."""
    return all(p.taps is not None for p in phase)


def stacked_grid(geom, reached):
    """One stride-1 grid on which every reached phase is a window, as a tuple of :class:`_Phase1d`
    (``taps`` only gives the sub-kernel's size) -- or None where there is one phase, or their
    sub-kernels differ in size or dilation.

    Per dim, phase ``p`` reads the input padded by ``lo_p`` (negative: cropped) for its
    ``count_p`` outputs; the grid pads by ``lo = max lo_p``, so phase ``p``'s output ``u`` is
    the grid's ``u + lo - lo_p``, and is as long as the last of those windows needs.
    """
    if len(reached) < 2:
        return None
    grid = []
    for dim, (size, kernel) in enumerate(zip(geom.in_size, geom.kernel)):
        ones = [phase[dim] for phase in reached]
        shapes = {(len(range(kernel)[p.taps]), p.dilation) for p in ones}
        if len(shapes) > 1:
            return None
        (taps, dilation), = shapes
        lows = [_low(p) for p in ones]
        lo = max(lows)
        count = max(lo - low + p.count for low, p in zip(lows, ones))
        hi = count - size - lo + (taps - 1) * dilation
        crop = slice(max(0, -lo), min(size, size + hi))
        grid.append(_Phase1d(0, count, slice(0, taps), dilation, crop, (max(lo, 0), max(hi, 0))))
    return tuple(grid)


@functools.lru_cache(maxsize=1024)
def phase_plan(geom):
    """``(phases, reached, grid)``: :func:`phase_grid`, the phases some tap reaches and their
    :func:`stacked_grid`, as tuples, remembered per geometry (a small call spent 40 us of its
    Python time working them out)."""
    phases = tuple(phase_grid(geom))
    reached = tuple(phase for phase in phases if is_reached(phase))
    return phases, reached, stacked_grid(geom, reached)


def _low(phase_1d):
    """The low padding of a phase's (or grid's) convolution before cropping: negative where it crops."""
    return phase_1d.pad[0] - phase_1d.crop.start


def subpixel_geometries(geom):
    """The stride-1 geometries the sub-pixel path runs: the stacked phases' one, or each reached
    phase's."""
    _, reached, grid = phase_plan(geom)
    if grid is not None:
        return [phase_geometry(geom, grid, len(reached))]
    return [phase_geometry(geom, phase) for phase in reached]


def subpixel_seconds(geom):
    """The cost models' time for the sub-pixel convolutions (or the phases by Winograd F(4, 2),
    :func:`phasewise`), plus checking the cached sub-kernels (reading the weight and its
    snapshot) and placing the phases' outputs (:func:`_place`; the phases by Winograd write
    theirs in place)."""
    if phasewise(geom):
        convs, placing = phase_winograd.estimated_seconds(geom, largest_counts(phase_plan(geom)[1])), 0.0
    else:
        convs = sum(select("conv_transpose", g, "auto").estimated_seconds(g) for g in subpixel_geometries(geom))
        placing = any(s > 1 for s in geom.stride) * placing_seconds(geom)
    weight_bytes = geom.in_channels * geom.out_per_group * math.prod(geom.kernel) * geom.dtype.itemsize
    return convs + check_seconds(weight_bytes) + placing / threads_for(placing)


def placing_seconds(geom):
    """:func:`place_phases` on one thread: every output read from its phase and written (U-Net's
    last up-convolution, 37.5 MB out: 3.6 ms on one thread, 1.8 on two)."""
    return 2 * math.prod(geom.out_shape) * geom.dtype.itemsize / COPY_BYTES_PER_SECOND


def auto_path(geom):
    """The path ``algo="auto"`` takes for ``geom``: ``"col2im"`` where it supports ``geom`` and
    the cost models find it cheaper, else ``"subpixel"``."""
    return _auto_path(geom, get_num_threads(), get_workspace_limit(), get_precision())


@functools.lru_cache(maxsize=1024)
def _auto_path(geom, threads, workspace_limit, precision):
    """:func:`auto_path`, remembered per geometry and the settings the cost models read (0.15 ms each)."""
    if why_col2im_unsupported(geom) is None and col2im_seconds(geom) < subpixel_seconds(geom):
        return "col2im"
    return "subpixel"


def _subpixel(x, weight, bias, geom, algo):
    """The sub-pixel path: each phase's outputs from one stride-1 :func:`npconv.conv`, or all of
    them from one on their :func:`stacked_grid`, placed by :func:`place_phases` -- or, where
    :func:`phasewise`, by :mod:`npconv.phase_winograd`, which writes them in place."""
    phases, reached, grid = phase_plan(geom)
    if all(s == 1 for s in geom.stride) and reached:  # one phase: the whole output
        return _phase_conv(x, _sub_kernels(weight, geom, reached)[0], bias, geom, phases[0], algo)
    if algo == "auto" and phasewise(geom):  # every phase reached, each on its own tiles
        offsets = np.array([[p.offset for p in phase] for phase in reached], dtype=np.int64)
        out = phase_winograd.run(x, _sub_kernels(weight, geom, reached, stacked=True), geom, grid,
                                 _window_starts(grid, reached), offsets, largest_counts(reached))
        if bias is not None:
            out += bias.reshape(-1, *(1,) * geom.rank)
        return out
    out = np.empty(geom.out_shape, dtype=geom.dtype)
    fill = np.zeros(geom.out_channels, dtype=geom.dtype) if bias is None else bias
    which = np.full(math.prod(geom.stride), SKIP, dtype=np.int64)  # per phase offset, as a flat index
    which[[_offset_index(phase, geom) for phase in phases if not is_reached(phase)]] = BIAS
    if grid is not None:
        which[[_offset_index(phase, geom) for phase in reached]] = np.arange(len(reached))
        stacked = _stacked_phases(x, weight, bias, geom, reached, grid, algo)  # (N, G*P*Og, *grid counts)
        _place(stacked, out, which, _window_starts(grid, reached), len(reached), fill, geom)
        return out
    kernels = iter(_sub_kernels(weight, geom, reached))
    origin = np.zeros((1, geom.rank), dtype=np.int64)
    if (which == BIAS).any():  # the phases no tap reaches: their bias (no source read)
        _place(out, out, which, origin, 1, fill, geom)
    for phase in reached:  # one phase at a time, from its own convolution's (N, C_out, *counts)
        which[:] = SKIP
        which[_offset_index(phase, geom)] = 0
        _place(_phase_conv(x, next(kernels), bias, geom, phase, algo), out, which, origin, 1, fill, geom)
    return out


def _window_starts(grid, reached):
    """(P, rank): where each reached phase's outputs start on the stacked grid."""
    return np.array([[_low(g) - _low(p) for g, p in zip(grid, phase)] for phase in reached], dtype=np.int64)


def largest_counts(reached):
    """The reached phases' largest output count per dim."""
    return tuple(max(phase[dim].count for phase in reached) for dim in range(len(reached[0])))


def phasewise(geom):
    """Whether ``auto`` runs ``geom``'s stacked phases per phase by Winograd F(4, 2)
    (:mod:`npconv.phase_winograd`): where that applies and its cost model finds it cheaper
    than the stacked convolution's ``auto`` choice."""
    return _phasewise(geom, get_num_threads(), get_workspace_limit(), get_precision())


@functools.lru_cache(maxsize=1024)
def _phasewise(geom, threads, workspace_limit, precision):
    """:func:`phasewise`, remembered per geometry and the settings the cost models read."""
    _, reached, grid = phase_plan(geom)
    if phase_winograd.why_unsupported(geom, reached, grid, precision) is not None:
        return False
    stacked = phase_geometry(geom, grid, len(reached))
    return (phase_winograd.estimated_seconds(geom, largest_counts(reached))
            < select("conv_transpose", stacked, "auto").estimated_seconds(stacked))


def _offset_index(phase, geom):
    """A phase's offsets (one per dim, each below its stride) as one flat index, last dim fastest."""
    return int(np.ravel_multi_index(tuple(p.offset for p in phase), geom.stride))


def _place(source, out, which, starts, phases, fill, geom):
    """:func:`place_phases` on all of ``out``'s planes, shared out among the threads."""
    seconds, stride = placing_seconds(geom), np.array(geom.stride, dtype=np.int64)
    run_pieces(lambda span: place_phases(source, out, which, starts, stride, geom.groups, phases, fill, *span),
               split(geom.batch * geom.out_channels, threads_for(seconds)), seconds=seconds)


# place_phases's marks for a phase that is not in its source: its outputs are the bias, or
# another call's.
BIAS = -1
SKIP = -2


@njit(cache=True, nogil=True)
def place_phases(source, out, which, starts, stride, groups, phases, fill, first, last):
    """Planes ``first .. last`` (of N * C_out) of ``out`` (N, C_out, *out_size), each output from
    its phase's window of ``source``::

        out[n, c, q] = source[n, (g*P + p)*Og + o, q // stride + starts[p]]    p = which[q mod stride]

    ``c = g*Og + o``; ``source`` (N, G*P*Og, *grid), each group's outputs phase by phase
    (``P = phases``: the stacked phases, or 1 for one phase's own output); ``which`` indexed by
    the mixed radix of the phase offsets ``q mod stride``, ``BIAS`` where the output is
    ``fill[c]``, ``SKIP`` where it is left alone; ``starts`` (P, rank).  Each output row is
    written in one pass, its column phases in turn, so its cache lines are written once:
    NumPy's strided copies, one per phase, took half of U-Net's last up-convolution (13 of 26
    ms), 3x this kernel on one thread.  A row of two column phases, both from the source, is
    woven in vectors (:func:`.vector_copy.weave`).
    """
    rank = out.ndim - 2
    channels, og = out.shape[1], out.shape[1] // groups
    width, step = out.shape[-1], stride[rank - 1]
    rows, grid_plane = 1, source.shape[-1]
    for dim in range(rank - 1):
        rows *= out.shape[2 + dim]  # output rows of a plane: all dims but the last
        grid_plane *= source.shape[2 + dim]
    # Per output row, once for all planes: its leading dims' phase offsets as one flat index
    # (times the last dim's stride) and, per phase, where its values start in a source plane.
    leads = np.empty(rows, dtype=np.int64)
    reads = np.zeros((rows, phases), dtype=np.int64)
    for row in range(rows):
        rest, lead, radix, extent = row, 0, 1, source.shape[-1]  # extent: source values per step of dim
        for dim in range(rank - 2, -1, -1):  # the row's index per leading dim, last first
            index = rest % out.shape[2 + dim]
            rest //= out.shape[2 + dim]
            lead += (index % stride[dim]) * radix
            radix *= stride[dim]
            for p in range(phases):
                reads[row, p] += (index // stride[dim] + starts[p, dim]) * extent
            extent *= source.shape[2 + dim]
        leads[row] = lead * step
        for p in range(phases):
            reads[row, p] += starts[p, rank - 1]
    dst, src = out.ravel(), source.ravel()
    for unit in range(first, last):
        n, c = unit // channels, unit % channels
        g, o = c // og, c % og
        plane0 = (n * source.shape[1] + g * phases * og + o) * grid_plane  # phase 0's plane of (n, g, o)
        for row in range(rows):
            line = (unit * rows + row) * width
            if step == 2 and width >= 2 and which[leads[row]] >= 0 and which[leads[row] + 1] >= 0:
                even, odd = which[leads[row]], which[leads[row] + 1]  # both column phases from the source
                vector_copy.weave(dst, line, src, plane0 + even * og * grid_plane + reads[row, even],
                                  src, plane0 + odd * og * grid_plane + reads[row, odd], width)
                continue
            for column in range(min(step, width)):
                p = which[leads[row] + column]
                count = (width - column + step - 1) // step
                if p == BIAS:
                    for u in range(count):
                        dst[uint64(line + column + step * u)] = fill[c]
                elif p != SKIP:
                    start = plane0 + p * og * grid_plane + reads[row, p]
                    for u in range(count):
                        dst[uint64(line + column + step * u)] = src[uint64(start + u)]


def _stacked_phases(x, weight, bias, geom, reached, grid, algo):
    """All reached phases on their grid, (N, G*P*Og, *grid counts): one convolution whose output
    channels are each group's ``Og`` outputs phase by phase."""
    count, groups, og = len(reached), geom.groups, geom.out_per_group
    kernel = _sub_kernels(weight, geom, reached, stacked=True)  # (G*P*Og, Cg, *taps)
    # (C_out,) -> (G, 1, Og) -> (G, P, Og) -> (G*P*Og,): each phase's block gets the bias
    tiled = None if bias is None else np.broadcast_to(bias.reshape(groups, 1, og), (groups, count, og)).ravel()
    return _phase_conv(x, kernel, tiled, geom, grid, algo)  # (N, G*P*Og, *counts)


def _phase_conv(x, sub_kernel, bias, geom, phase, algo):
    """One reached phase's outputs, (N, C_out, *counts): the cropped input with its sub-kernel."""
    return conv(
        x[(slice(None), slice(None), *(p.crop for p in phase))], sub_kernel, bias,
        padding=tuple(p.pad for p in phase), dilation=tuple(p.dilation for p in phase), groups=geom.groups,
        algo=algo,
    )


def _sub_kernels(weight, geom, reached, stacked=False):
    """Each reached phase's convolution kernel (C_out, Cg, *taps): its taps, flipped, in/out
    channels swapped within each group.  Made in one buffer, cached for this weight.  With
    ``stacked`` (the kernels all one size), one kernel (G*P*Og, Cg, *taps): each group's
    outputs phase by phase.
    """
    if not reached:
        return []
    groups, cg, og = geom.groups, geom.in_per_group, geom.out_per_group
    shapes = [(geom.out_channels, cg, *(len(range(k)[p.taps]) for k, p in zip(geom.kernel, phase)))
              for phase in reached]

    def make():
        conv_weight = (
            weight.reshape(groups, cg, og, *geom.kernel)  # (G, Cg, Og, *kernel)
            .swapaxes(1, 2)  # (G, Og, Cg, *kernel)
            .reshape(geom.out_channels, cg, *geom.kernel)  # (C_out, Cg, *kernel), a copy
        )
        spatial = tuple(range(2, 2 + geom.rank))
        subs = [np.flip(conv_weight[(slice(None), slice(None), *(p.taps for p in phase))], spatial) for phase in reached]
        if stacked:  # P x (C_out, Cg, *taps) -> (G, P, Og, Cg, *taps)
            return np.stack([sub.reshape(groups, og, *sub.shape[1:]) for sub in subs], axis=1).ravel()
        return np.concatenate([sub.ravel() for sub in subs])

    key = ("conv_transpose:subpixel", groups, stacked,
           tuple((p.taps.start, p.taps.step) for phase in reached for p in phase))
    flat = WEIGHT_CACHE.get(weight, key, make)
    if stacked:
        return flat.reshape(len(reached) * geom.out_channels, *shapes[0][1:])
    ends = np.cumsum([math.prod(shape) for shape in shapes])
    return [part.reshape(shape) for part, shape in zip(np.split(flat, ends[:-1]), shapes)]
