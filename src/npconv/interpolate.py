"""Resizing by interpolation, as ``torch.nn.functional.interpolate``.

Every mode is separable: each spatial dim in turn is resampled by taking, for every
output index, a few input indices along that dim and their weights (one for nearest, two
for linear, four for cubic).  Indices and weights follow PyTorch's CPU kernels
(``aten/src/ATen/native/UpSample.h``) to the float: per dim, with ``scale`` the given
``scale_factor`` or else ``out / in``,

- ``nearest``: ``min(floor(i * (1 / scale)), in - 1)``;
- ``nearest-exact``: ``min(floor(max((i + 0.5) * (1 / scale) - 0.5, 0) + 0.5), in - 1)``;

  both rounded as PyTorch's kernels round them (:func:`_nearest_indices`), which decides
  the indices where a position falls on a whole number: its generic kernel computes in the
  compute dtype (float32 for float16) with the multiply-add fused, its 2-d kernel for outputs
  with ``OH + OW <= 128`` in float32, returning ``i`` itself when ``out == in`` and ``i // 2``
  when ``out == 2 * in`` whatever the scale;
- ``linear``, ``bilinear``, ``trilinear`` and ``bicubic`` sample at
  ``src = (i + 0.5) / scale - 0.5`` (clamped at 0 for linear), or with ``align_corners``
  at ``src = i * (in - 1) / (out - 1)``; linear weighs the two neighbours, bicubic four
  (Keys' cubic convolution, ``A = -0.75``, indices clamped to the edge).  Linear copies
  a dim whose size does not change.

Output size per dim: ``size``, or ``floor(in * scale_factor)``.

:func:`interpolate_backward` is the adjoint: the same taps, scatter-added back.
"""

import math
import numbers

import numpy as np

from .dtypes import as_array, result_dtypes
from .geometry import int_tuple
from .parallel import single_threaded_blas

NEAREST = ("nearest", "nearest-exact")
# The interpolating modes and the spatial rank each needs (None: any).
INTERPOLATING = {"linear": 1, "bilinear": 2, "bicubic": 2, "trilinear": 3}
MODES = (*NEAREST, *INTERPOLATING)
CUBIC_A = -0.75


def interpolate(x, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Resize ``x`` (N, C, *spatial) to ``size`` or by ``scale_factor``, as ``torch.nn.functional.interpolate``.

    Args:
        x: input, ``(N, C, *spatial)``.
        size: an int or one int per spatial dim, positive.  Give it or ``scale_factor``.
        scale_factor: a positive number or one per spatial dim.  As in PyTorch (with
            ``recompute_scale_factor`` left unset), it sets the output size and is also
            the scale the sampling positions use.
        mode: ``"nearest"`` (PyTorch's legacy nearest), ``"nearest-exact"`` (any spatial
            rank), ``"linear"`` (1-d), ``"bilinear"`` (2-d), ``"bicubic"`` (2-d),
            ``"trilinear"`` (3-d).
        align_corners: for the interpolating modes only: sample so that the corner pixels'
            centres line up (True) or their edges (False, the default).

    Output size per spatial dim: ``size``, or ``floor(in * scale_factor)``.

    dtypes: float16, float32, float64 (float16 is computed in float32).  Returns a new
    array; the input is never modified.

    Raises:
        TypeError: a non-float input, a non-int size, a non-number scale_factor or a
            non-bool align_corners.
        ValueError: both or neither of size and scale_factor; a non-positive size or
            scale; an unknown mode, or one for another rank; align_corners with a
            nearest mode.
    """
    return resize("interpolate", x, size, scale_factor, mode, align_corners)


def resize(op, x, size, scale_factor, mode, align_corners):
    """:func:`interpolate`, with errors naming ``op``."""
    x = as_array(op, "input", x)
    compute, result = result_dtypes(op, input=x)
    _, taps = _plan(op, x.shape, size, scale_factor, mode, align_corners, compute)
    y = x.astype(compute, copy=False)
    for axis, (indices, weights) in enumerate(taps, start=2):
        y = _resample(y, axis, indices, weights)
    return y.astype(result, copy=False)


def nearest_repeats(op, x, scale_factor, mode, align_corners):
    """Check a resize of ``x`` by ``scale_factor`` as :func:`resize` does; return, per spatial
    dim, the whole number of times it repeats each input value -- or None where it does not
    (an interpolating mode, or a scale whose nearest indices are not ``j // r``)."""
    compute, _ = result_dtypes(op, input=x)
    out_size, taps = _plan(op, x.shape, None, scale_factor, mode, align_corners, compute)
    repeats = tuple(o // i for i, o in zip(x.shape[2:], out_size))
    if mode not in NEAREST or any(o != r * i or not np.array_equal(indices[:, 0], np.arange(o) // r)
                                  for i, o, r, (indices, _) in zip(x.shape[2:], out_size, repeats, taps)):
        return None
    return repeats


def interpolate_backward(grad_output, input_shape, *, size=None, scale_factor=None, mode="nearest",
                         align_corners=None):
    """The gradient of :func:`interpolate` (same keyword arguments) with respect to its input of ``input_shape``.

    Interpolation is linear and separable: along each dim output ``j`` is
    ``sum_t x[indices[j, t]] * weights[j, t]``, so its adjoint scatter-adds ``weights[j, t] * g[j]``
    onto ``indices[j, t]`` (for the nearest modes, a sum of the outputs that copied each input),
    dim by dim (the maps of different dims commute).  Returns an array of ``input_shape`` in
    ``grad_output``'s dtype; ``grad_output`` is never modified.

    Raises:
        TypeError, ValueError: as :func:`interpolate` (``input_shape`` in place of the input),
            and for a ``grad_output`` whose shape is not the forward's output shape.
    """
    op = "interpolate_backward"
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"{op}: input_shape must be a tuple of ints, got {input_shape!r}")
    input_shape = int_tuple(op, "input_shape", input_shape, len(input_shape), 0)
    grad = as_array(op, "grad_output", grad_output)
    compute, result = result_dtypes(op, grad_output=grad)
    out_size, taps = _plan(op, input_shape, size, scale_factor, mode, align_corners, compute)
    if grad.shape != (*input_shape[:2], *out_size):
        raise ValueError(
            f"{op}: grad_output has shape {grad.shape} but the forward's output is {(*input_shape[:2], *out_size)}"
        )
    y = grad.astype(compute, copy=False)
    for axis, (i, (indices, weights)) in enumerate(zip(input_shape[2:], taps), start=2):
        y = _resample_backward(y, axis, i, indices, weights)
    return y.astype(result, copy=False)


def _plan(op, shape, size, scale_factor, mode, align_corners, compute):
    """Check an interpolation of an input of ``shape``; return ``(out_size, taps)``, taps one
    ``(indices, weights)`` pair per spatial dim."""
    if len(shape) < 3:
        raise ValueError(f"{op}: input must be (N, C, *spatial) with at least 3 dims, got shape {tuple(shape)}")
    if min(shape[1:]) < 1:
        raise ValueError(f"{op}: input has a zero-size channel or spatial dim, shape {tuple(shape)}")
    rank = len(shape) - 2
    if mode not in MODES:
        raise ValueError(f"{op}: mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if INTERPOLATING.get(mode, rank) != rank:
        dims = ("L", "H, W", "D, H, W")[INTERPOLATING[mode] - 1]
        raise ValueError(
            f"{op}: mode {mode!r} is for {INTERPOLATING[mode]}-d input (N, C, {dims}), got shape {tuple(shape)}"
        )
    if mode in NEAREST and align_corners is not None:
        raise ValueError(
            f"{op}: align_corners can only be set with the interpolating modes "
            f"{', '.join(INTERPOLATING)}, got mode={mode!r} with align_corners={align_corners!r}"
        )
    if align_corners is not None and not isinstance(align_corners, (bool, np.bool_)):
        raise TypeError(f"{op}: align_corners must be a bool or None, got {align_corners!r}")
    in_size = tuple(shape[2:])
    out_size, scales = _output_size(op, in_size, size, scale_factor)
    # PyTorch's 2-d nearest kernel, for small outputs or channels-last input (C > 3 and 1x1 planes, here)
    small_2d = rank == 2 and (sum(out_size) <= 128 or (shape[1] > 3 and math.prod(in_size) == 1))
    taps = [_taps(mode, i, o, scale, bool(align_corners), compute, small_2d)
            for i, o, scale in zip(in_size, out_size, scales)]
    return out_size, taps


def _output_size(op, in_size, size, scale_factor):
    """``(out_size, scales)``: the output size and, per dim, the given scale factor or None."""
    rank = len(in_size)
    if (size is None) == (scale_factor is None):
        raise ValueError(f"{op}: give exactly one of size and scale_factor, got size={size!r}, "
                         f"scale_factor={scale_factor!r}")
    if size is not None:
        return int_tuple(op, "size", size, rank, 1), (None,) * rank
    scales = _scale_tuple(op, scale_factor, rank)
    out_size = tuple(math.floor(i * s) for i, s in zip(in_size, scales))
    for dim, (i, s, o) in enumerate(zip(in_size, scales, out_size)):
        if o < 1:
            raise ValueError(
                f"{op}: output size floor(in * scale_factor) = floor({i} * {s}) = {o} is not positive "
                f"in spatial dim {dim}"
            )
    return out_size, scales


def _scale_tuple(op, value, rank):
    """A positive finite number or a sequence of ``rank`` of them, as a tuple of floats."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value,) * rank
    if len(values) != rank:
        raise ValueError(f"{op}: scale_factor needs one value per spatial dim ({rank}), got {values}")
    for v in values:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"{op}: scale_factor must be a number or a tuple of numbers, got {v!r}")
        if not (math.isfinite(v) and v > 0):
            raise ValueError(f"{op}: scale_factor must be positive and finite, got {value!r}")
    return tuple(float(v) for v in values)


def _taps(mode, in_size, out_size, scale, align_corners, dtype, small_2d):
    """``(indices, weights)`` of one dim, (out, taps) each: output ``j`` is
    ``sum_t x[indices[j, t]] * weights[j, t]``."""
    j = np.arange(out_size)
    if mode in NEAREST:
        index = _nearest_indices(mode, in_size, out_size, scale, dtype, small_2d)
        return index[:, None], np.ones((out_size, 1), dtype=dtype)
    if mode != "bicubic" and out_size == in_size:
        return j[:, None], np.ones((out_size, 1), dtype=dtype)
    # Sampling positions in the compute dtype (PyTorch's opmath type), as area_pixel_compute_source_index.
    if align_corners:
        ratio = dtype.type(in_size - 1) / dtype.type(out_size - 1) if out_size > 1 else dtype.type(0)
        position = ratio * j.astype(dtype)
    else:
        ratio = dtype.type(1.0 / scale) if scale else dtype.type(in_size) / dtype.type(out_size)
        position = ratio * (j.astype(dtype) + dtype.type(0.5)) - dtype.type(0.5)
    if mode != "bicubic":
        position = np.maximum(position, dtype.type(0))
    first = np.minimum(np.floor(position).astype(np.int64), in_size - 1)
    t = np.clip(position - first, 0, 1).astype(dtype)  # (out,)
    if mode == "bicubic":
        index = np.clip(first[:, None] + np.arange(-1, 3), 0, in_size - 1)  # (out, 4)
        return index, _cubic_weights(t)
    index = np.stack([first, first + (first < in_size - 1)], axis=1)  # (out, 2)
    return index, np.stack([1 - t, t], axis=1)


def _nearest_indices(mode, in_size, out_size, scale, dtype, small_2d):
    """The input index each output index copies, rounded as PyTorch rounds it.

    ``small_2d``, PyTorch's 2-d kernel for small or channels-last outputs: ``1 / scale`` in
    float32, ``j * ratio`` in float32 (nearest) or ``(j + 0.5) * ratio`` in float64
    (nearest-exact).  Otherwise its generic kernel: ``ratio`` and ``j * ratio`` in ``dtype``
    (nearest); ``(j + 0.5) * ratio - 0.5`` as one fused multiply-add in ``dtype``, then
    ``+ 0.5`` in float64 (nearest-exact).  Either way the position is rounded to float32
    before the floor (C's ``floorf``).  Exact fused results: float32 products and their sums
    with 0.5 are exact in float64 wherever the result is not negative (clamped to 0 anyway);
    float64 ones are computed on integers, ``ratio = num / den``.
    """
    j = np.arange(out_size)
    if small_2d:
        if mode == "nearest" and out_size in (in_size, 2 * in_size):
            return j * in_size // out_size
        ratio = np.float32(1.0 / scale) if scale else np.float32(in_size) / np.float32(out_size)
        position = j.astype(np.float32) * ratio if mode == "nearest" else (j + 0.5) * np.float64(ratio)
    else:
        ratio = dtype.type(1.0 / scale) if scale else dtype.type(in_size) / dtype.type(out_size)
        if mode == "nearest":
            position = ratio * j.astype(dtype)
        elif dtype == np.float32:
            position = np.maximum((np.float64(ratio) * (j + 0.5) - 0.5).astype(np.float32), 0) + 0.5
        else:
            num, den = float(ratio).as_integer_ratio()
            position = np.maximum([(num * (2 * k + 1) - den) / (2 * den) for k in range(out_size)], 0) + 0.5
    return np.minimum(np.floor(position.astype(np.float32)).astype(np.int64), in_size - 1)


def _cubic_weights(t):
    """Keys' cubic convolution weights of the 4 neighbours at fraction ``t``, (out, 4)."""
    a = t.dtype.type(CUBIC_A)

    def near(s):  # |s| <= 1
        return ((a + 2) * s - (a + 3)) * s * s + 1

    def far(s):  # 1 < |s| < 2
        return ((a * s - 5 * a) * s + 8 * a) * s - 4 * a

    one = t.dtype.type(1)
    return np.stack([far(t + one), near(t), near(one - t), far(2 * one - t)], axis=1)


def _resample(y, axis, indices, weights):
    """``y`` resampled along ``axis``: ``sum_t y[..., indices[:, t], ...] * weights[:, t]``."""
    shape = (-1,) + (1,) * (y.ndim - axis - 1)  # weights broadcast along the later axes
    out = np.take(y, indices[:, 0], axis=axis)
    if weights.shape[1] == 1:
        return out
    out *= weights[:, 0].reshape(shape)
    for t in range(1, weights.shape[1]):
        out += np.take(y, indices[:, t], axis=axis) * weights[:, t].reshape(shape)
    return out


def _resample_backward(g, axis, in_size, indices, weights):
    """The adjoint of :func:`_resample`: ``g`` (..., out, ...) to (..., in_size, ...) along ``axis``,
    through the dense (in, out) matrix of the dim's taps (one BLAS product)."""
    matrix = np.zeros((in_size, indices.shape[0]), dtype=g.dtype)  # (in, out)
    np.add.at(matrix, (indices, np.arange(indices.shape[0])[:, None]), weights)  # repeated taps add up
    moved = np.moveaxis(g, axis, -1)  # (..., out), a view
    with single_threaded_blas():  # no BLAS threads left spinning (npconv.parallel)
        return np.moveaxis(moved @ matrix.T, -1, axis)  # (..., in) back to (..., in, ...)
