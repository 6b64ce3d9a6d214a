"""One description of a convolution's geometry, and the checks that build it.

Public functions turn their keyword arguments into a :class:`ConvGeometry` through
:func:`conv_geometry`; every algorithm receives only that.  Padding modes other than
``"zeros"`` are applied by the caller as an explicit pad, so the geometry an algorithm
sees always pads with zeros.
"""

import functools
import math
import operator
from dataclasses import dataclass

import numpy as np

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")

# conv_geometry's answers, by its arguments: emptied when full.
GEOMETRY_CACHE_SIZE = 4096
_GEOMETRIES = {}


class _Shapes:
    """What a forward and a transposed convolution's geometry derive alike from their fields."""

    @property
    def rank(self):
        return len(self.kernel)

    @property
    def in_per_group(self):
        return self.in_channels // self.groups

    @property
    def out_per_group(self):
        return self.out_channels // self.groups

    @property
    def out_shape(self):
        return (self.batch, self.out_channels, *self.out_size)


@dataclass(frozen=True)
class ConvGeometry(_Shapes):
    """Shapes and hyper-parameters of one convolution, all normalised to tuples.

    ``padding`` is the zero padding ``(lo, hi)`` of each spatial dim.  Output size per dim::

        out = floor((in + lo + hi - dilation * (kernel - 1) - 1) / stride) + 1
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_size: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    padding: tuple
    dtype: np.dtype

    @functools.cached_property  # read several times a call; the frozen fields never change
    def out_size(self):
        return tuple(
            (i + lo + hi - d * (k - 1) - 1) // s + 1
            for i, k, s, d, (lo, hi) in zip(self.in_size, self.kernel, self.stride, self.dilation, self.padding)
        )

    @property
    def macs(self):
        """Multiply-accumulates of a direct convolution (padding zeros included)."""
        return self.batch * self.out_channels * math.prod(self.out_size) * self.in_per_group * math.prod(self.kernel)

    @property
    def flops(self):
        """FLOPs counted as 2 x multiply-accumulates of a direct convolution."""
        return 2 * self.macs


def int_tuple(op, name, value, rank, minimum):
    """An int or a sequence of ``rank`` ints, each ``>= minimum``, as a tuple."""
    values = value if isinstance(value, (tuple, list)) else (value,) * rank
    if len(values) != rank:
        raise ValueError(f"{op}: {name} needs one value per spatial dim ({rank}), got {tuple(values)}")
    result = tuple(_as_int(op, name, v) for v in values)
    if any(v < minimum for v in result):
        rule = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{op}: {name} must be {rule}, got {value!r}")
    return result


def _as_int(op, name, value):
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{op}: {name} must be an int, got bool {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {name} must be an int or a tuple of ints, got {value!r}") from None


def padding_pairs(op, padding, rank, in_size, kernel, stride, dilation):
    """Normalise a padding spec into one ``(lo, hi)`` pair per spatial dim.

    Accepted: an int; one int per dim; one ``(lo, hi)`` pair per dim; ``"valid"``;
    ``"same"`` (output ``ceil(in / stride)``, an odd extra pad at the end, as ONNX
    SAME_UPPER); ``"same_lower"`` (the extra pad at the start).
    """
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * rank
        if padding in ("same", "same_lower"):
            pairs = []
            for i, k, s, d in zip(in_size, kernel, stride, dilation):
                total = max((-(-i // s) - 1) * s + d * (k - 1) + 1 - i, 0)
                small, large = total // 2, total - total // 2
                pairs.append((small, large) if padding == "same" else (large, small))
            return tuple(pairs)
        raise ValueError(
            f"{op}: padding must be an int, a tuple, 'valid', 'same' or 'same_lower', got {padding!r}"
        )
    if isinstance(padding, (tuple, list)) and any(isinstance(p, (tuple, list)) for p in padding):
        if len(padding) != rank or not all(isinstance(p, (tuple, list)) and len(p) == 2 for p in padding):
            raise ValueError(
                f"{op}: padding as pairs needs one (lo, hi) pair per spatial dim ({rank}), got {padding!r}"
            )
        flat = int_tuple(op, "padding", [v for pair in padding for v in pair], 2 * rank, 0)
        return tuple(zip(flat[0::2], flat[1::2]))
    sym = int_tuple(op, "padding", padding, rank, 0)
    return tuple((p, p) for p in sym)


def _check_ranks(op, x_shape, w_shape, weight_layout):
    """The spatial rank shared by input and weight (``weight_layout`` names the weight's axes),
    after checking both ranks and that no size is zero."""
    if len(w_shape) < 3:
        raise ValueError(f"{op}: weight must be {weight_layout} with at least 3 dims, got shape {w_shape}")
    rank = len(w_shape) - 2
    if len(x_shape) != rank + 2:
        raise ValueError(
            f"{op}: input must be (N, C_in, *spatial) with {rank + 2} dims to match the {len(w_shape)}-d weight, "
            f"got shape {x_shape}"
        )
    if min(w_shape) < 1:
        raise ValueError(f"{op}: weight has a zero-size dim, shape {w_shape}")
    if min(x_shape[1:]) < 1:
        raise ValueError(f"{op}: input has a zero-size channel or spatial dim, shape {x_shape}")
    return rank


def conv_geometry(op, x_shape, w_shape, b_shape, *, stride, padding, dilation, groups, padding_mode, dtype):
    """Check a convolution's arguments; return ``(geometry, mode_pad)``.

    ``mode_pad`` holds the ``(lo, hi)`` pairs the caller pads explicitly with
    ``padding_mode``; it is ``None`` for ``"zeros"``, whose pad lives in the geometry.

    Arguments seen before are answered from a cache (the checks took 10 us of a small call's
    40): keyed by their ``repr``, which tells apart values that compare equal but are not
    all valid (``1``, ``1.0`` and ``True``).  Errors are never cached.
    """
    key = (op, tuple(x_shape), tuple(w_shape), None if b_shape is None else tuple(b_shape),
           repr((stride, padding, dilation, groups, padding_mode)), np.dtype(dtype))
    checked = _GEOMETRIES.get(key)
    if checked is None:
        checked = _conv_geometry(op, x_shape, w_shape, b_shape, stride=stride, padding=padding, dilation=dilation,
                                 groups=groups, padding_mode=padding_mode, dtype=dtype)
        if len(_GEOMETRIES) >= GEOMETRY_CACHE_SIZE:
            _GEOMETRIES.clear()
        _GEOMETRIES[key] = checked
    return checked


def _conv_geometry(op, x_shape, w_shape, b_shape, *, stride, padding, dilation, groups, padding_mode, dtype):
    """:func:`conv_geometry`'s checks and result, uncached."""
    rank = _check_ranks(op, x_shape, w_shape, "(C_out, C_in/groups, *kernel)")
    (groups,) = int_tuple(op, "groups", groups, 1, 1)
    out_channels, in_per_group, kernel = w_shape[0], w_shape[1], tuple(w_shape[2:])
    batch, in_channels, in_size = x_shape[0], x_shape[1], tuple(x_shape[2:])
    if in_channels % groups:
        raise ValueError(f"{op}: in_channels={in_channels} is not divisible by groups={groups}")
    if out_channels % groups:
        raise ValueError(f"{op}: out_channels={out_channels} is not divisible by groups={groups}")
    if in_channels != in_per_group * groups:
        raise ValueError(
            f"{op}: input has {in_channels} channels but weight {w_shape} with groups={groups} expects "
            f"weight.shape[1] * groups = {in_per_group * groups}"
        )
    if b_shape is not None and tuple(b_shape) != (out_channels,):
        raise ValueError(f"{op}: bias must have shape ({out_channels},) = (out_channels,), got {tuple(b_shape)}")
    stride = int_tuple(op, "stride", stride, rank, 1)
    dilation = int_tuple(op, "dilation", dilation, rank, 1)
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"{op}: padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, got {padding_mode!r}")
    pairs = padding_pairs(op, padding, rank, in_size, kernel, stride, dilation)
    for dim, (i, k, d, (lo, hi)) in enumerate(zip(in_size, kernel, dilation, pairs)):
        span = d * (k - 1) + 1
        if span > i + lo + hi:
            raise ValueError(
                f"{op}: kernel extent dilation*(kernel-1)+1 = {span} is larger than the padded input "
                f"{i}+{lo}+{hi} = {i + lo + hi} in spatial dim {dim}"
            )
        if padding_mode == "reflect" and max(lo, hi) >= i:
            raise ValueError(
                f"{op}: reflect padding must be smaller than the input size, got padding ({lo}, {hi}) "
                f"for size {i} in spatial dim {dim}"
            )
        if padding_mode == "circular" and max(lo, hi) > i:
            raise ValueError(
                f"{op}: circular padding must not exceed the input size, got padding ({lo}, {hi}) "
                f"for size {i} in spatial dim {dim}"
            )
    mode_pad = None
    if padding_mode != "zeros":
        mode_pad, pairs = pairs, ((0, 0),) * rank
        in_size = tuple(i + lo + hi for i, (lo, hi) in zip(in_size, mode_pad))
    geometry = ConvGeometry(
        batch=batch, in_channels=in_channels, out_channels=out_channels, groups=groups,
        in_size=in_size, kernel=kernel, stride=stride, dilation=dilation, padding=pairs, dtype=np.dtype(dtype),
    )
    return geometry, mode_pad


@dataclass(frozen=True)
class ConvTransposeGeometry(_Shapes):
    """Shapes and hyper-parameters of one transposed convolution, all normalised to tuples.

    ``in_channels`` is the input's (and ``weight.shape[0]``), ``out_channels`` is
    ``weight.shape[1] * groups``; ``padding`` holds the ``(lo, hi)`` pairs cropped from the
    full output.  Output size per dim::

        out = (in - 1) * stride - lo - hi + dilation * (kernel - 1) + output_padding + 1
    """

    batch: int
    in_channels: int
    out_channels: int
    groups: int
    in_size: tuple
    kernel: tuple
    stride: tuple
    dilation: tuple
    padding: tuple
    output_padding: tuple
    dtype: np.dtype

    @property
    def out_size(self):
        return tuple(
            (i - 1) * s - lo - hi + d * (k - 1) + p + 1
            for i, k, s, d, (lo, hi), p in zip(
                self.in_size, self.kernel, self.stride, self.dilation, self.padding, self.output_padding
            )
        )

    @property
    def macs(self):
        """Multiply-accumulates of every input value with every kernel tap (cropped ones included)."""
        return self.batch * self.in_channels * self.out_per_group * math.prod(self.kernel) * math.prod(self.in_size)


def conv_transpose_geometry(op, x_shape, w_shape, b_shape, *, stride, padding, output_padding, groups, dilation,
                            output_size, dtype):
    """Check a transposed convolution's arguments; return its :class:`ConvTransposeGeometry`.

    ``output_size`` (``None``, an int, ``rank`` ints or ``(N, C_out, *spatial)``) sets
    ``output_padding`` as in PyTorch: it must lie in ``[min, min + stride - 1]``, ``min``
    being the size with ``output_padding = 0``.
    """
    rank = _check_ranks(op, x_shape, w_shape, "(C_in, C_out/groups, *kernel)")
    (groups,) = int_tuple(op, "groups", groups, 1, 1)
    batch, in_channels, in_size = x_shape[0], x_shape[1], tuple(x_shape[2:])
    kernel = tuple(w_shape[2:])
    if in_channels != w_shape[0]:
        raise ValueError(
            f"{op}: input has {in_channels} channels but weight {w_shape} expects weight.shape[0] = {w_shape[0]}"
        )
    if in_channels % groups:
        raise ValueError(f"{op}: in_channels={in_channels} is not divisible by groups={groups}")
    out_channels = w_shape[1] * groups
    if b_shape is not None and tuple(b_shape) != (out_channels,):
        raise ValueError(
            f"{op}: bias must have shape ({out_channels},) = (weight.shape[1] * groups,), got {tuple(b_shape)}"
        )
    stride = int_tuple(op, "stride", stride, rank, 1)
    dilation = int_tuple(op, "dilation", dilation, rank, 1)
    if isinstance(padding, str):
        raise ValueError(
            f"{op}: padding must be an int, one int per spatial dim or one (lo, hi) pair per spatial dim, "
            f"got {padding!r}"
        )
    pairs = padding_pairs(op, padding, rank, in_size, kernel, stride, dilation)
    smallest = tuple(
        (i - 1) * s - lo - hi + d * (k - 1) + 1
        for i, k, s, d, (lo, hi) in zip(in_size, kernel, stride, dilation, pairs)
    )
    output_padding = int_tuple(op, "output_padding", output_padding, rank, 0)
    if output_size is not None:
        if any(output_padding):
            raise ValueError(
                f"{op}: give output_size or output_padding, not both, got output_padding={output_padding}"
            )
        output_padding = _output_padding_for(op, output_size, smallest, stride, in_size, (batch, out_channels))
    for dim, (p, s, d) in enumerate(zip(output_padding, stride, dilation)):
        if p >= max(s, d):
            raise ValueError(
                f"{op}: output_padding={p} must be smaller than stride={s} or dilation={d}, in spatial dim {dim}"
            )
    for dim, (low, p) in enumerate(zip(smallest, output_padding)):
        if low + p < 1:
            i, k, s, d, (lo, hi) = in_size[dim], kernel[dim], stride[dim], dilation[dim], pairs[dim]
            raise ValueError(
                f"{op}: output size (in - 1) * stride - lo - hi + dilation * (kernel - 1) + output_padding + 1 = "
                f"({i} - 1) * {s} - {lo} - {hi} + {d} * ({k} - 1) + {p} + 1 = {low + p} is not positive "
                f"in spatial dim {dim}"
            )
    return ConvTransposeGeometry(
        batch=batch, in_channels=in_channels, out_channels=out_channels, groups=groups, in_size=in_size,
        kernel=kernel, stride=stride, dilation=dilation, padding=pairs, output_padding=output_padding,
        dtype=np.dtype(dtype),
    )


def _output_padding_for(op, output_size, smallest, stride, in_size, leading):
    """The output_padding that gives ``output_size`` (PyTorch's rule), or a ValueError naming the valid range."""
    rank = len(smallest)
    if isinstance(output_size, (tuple, list)) and len(output_size) == rank + 2:
        given = int_tuple(op, "output_size", output_size, rank + 2, 0)
        if given[:2] != leading:
            raise ValueError(
                f"{op}: output_size with {rank + 2} values must start with (N, C_out) = {leading}, got {given}"
            )
        output_size = given[2:]
    size = int_tuple(op, "output_size", output_size, rank, 0)
    largest = tuple(low + s - 1 for low, s in zip(smallest, stride))
    if any(not low <= o <= high for o, low, high in zip(size, smallest, largest)):
        raise ValueError(
            f"{op}: requested an output size of {size}, but valid sizes range from {smallest} to {largest} "
            f"(for an input of {in_size})"
        )
    return tuple(o - low for o, low in zip(size, smallest))
