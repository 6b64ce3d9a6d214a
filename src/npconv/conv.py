"""The public convolution: one N-d entry point and thin rank-checking wrappers."""

import numpy as np

from .algorithms import select
from .algorithms.weight_cache import planning_for
from .dtypes import conv_arrays
from .geometry import conv_geometry
from .padding import pad_spatial

_DOC_ARGS = """
    Args:
        x: input, ``(N, C_in, *spatial)``.
        weight: ``(C_out, C_in / groups, *kernel)``; its rank sets the convolution's rank.
        bias: ``(C_out,)`` or None.
        stride, dilation: an int or one per spatial dim, positive.
        padding: an int; one int per dim; one ``(lo, hi)`` pair per dim; ``"valid"``;
            ``"same"`` (output ``ceil(in / stride)``, any odd extra pad at the end, as ONNX
            SAME_UPPER and TensorFlow); ``"same_lower"`` (the extra pad at the start).
        groups: splits channels into ``groups`` independent convolutions
            (``groups == C_in`` is depthwise).
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``, as in
            ``torch.nn.Conv*d`` (reflect pads must be smaller than the input, circular pads
            at most its size).
        algo: ``"auto"`` or a name from :func:`npconv.algorithms`.

    Output size per spatial dim, with ``(lo, hi)`` the padding::

        out = floor((in + lo + hi - dilation * (kernel - 1) - 1) / stride) + 1

    dtypes: float16, float32, float64; mixed inputs promote as ``np.result_type`` does; float16
    is computed in float32.  Returns a new array; the inputs are never modified.

    Raises:
        TypeError: a non-float input or a non-int hyper-parameter.
        ValueError: inconsistent shapes or hyper-parameters; an unknown ``algo``.
        UnsupportedAlgorithmError: the named ``algo`` cannot compute this geometry.
"""


def conv(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """N-d convolution (cross-correlation, as in PyTorch) of ``x`` with ``weight``.
    """
    return _conv("conv", None, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv1d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """1-d convolution: ``x`` (N, C_in, L), ``weight`` (C_out, C_in / groups, k).
    """
    return _conv("conv1d", 1, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv2d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """2-d convolution: ``x`` (N, C_in, H, W), ``weight`` (C_out, C_in / groups, kh, kw).
    """
    return _conv("conv2d", 2, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


def conv3d(x, weight, bias=None, *, stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", algo="auto"):
    """3-d convolution: ``x`` (N, C_in, D, H, W), ``weight`` (C_out, C_in / groups, kd, kh, kw).
    """
    return _conv("conv3d", 3, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo)


for _f in (conv, conv1d, conv2d, conv3d):
    _f.__doc__ += _DOC_ARGS


def prepare(op, rank, x, weight, bias, stride, padding, dilation, groups, padding_mode):
    """Validate a convolution's arguments; return the arrays ready for an algorithm and the geometry.

    Returns ``(x, weight, bias, geom, result_dtype, mode_pad)``: ``x`` padded by ``padding_mode``
    when not zeros (by the ``(lo, hi)`` pairs ``mode_pad``, None for zeros), and all three cast to
    the compute dtype and made C-contiguous (copies only where needed).
    """
    x, weight, bias, compute, result = conv_arrays(op, rank, x, weight, bias, "(C_out, C_in/groups, *kernel)")
    geom, mode_pad = conv_geometry(
        op, x.shape, weight.shape, None if bias is None else bias.shape,
        stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=padding_mode, dtype=compute,
    )
    if mode_pad is not None:
        x = pad_spatial(x, mode_pad, padding_mode)
    x = np.ascontiguousarray(x, dtype=compute)
    weight = np.ascontiguousarray(weight, dtype=compute)
    bias = None if bias is None else bias.astype(compute, copy=False)
    return x, weight, bias, geom, result, mode_pad


def _conv(op, rank, x, weight, bias, stride, padding, dilation, groups, padding_mode, algo):
    x, weight, bias, geom, result, _ = prepare(op, rank, x, weight, bias, stride, padding, dilation, groups,
                                               padding_mode)
    out = np.empty(geom.out_shape, dtype=geom.dtype)
    with planning_for(weight):  # a frozen weight's transforms cost no check
        algorithm = select(op, geom, algo, trial=(lambda alg: alg.run(x, weight, geom, out)) if out.size else None)
    if out.size:
        algorithm.run(x, weight, geom, out)
    if bias is not None:
        out += bias.reshape(-1, *(1,) * geom.rank)  # (C_out, 1, ...) broadcast over N and space
    return out.astype(result, copy=False)
