"""Backward passes of :func:`npconv.conv` and :func:`npconv.conv_transpose`, written as convolutions.

The input gradient.  A convolution is linear in its input, and :func:`npconv.conv_transpose`
is its adjoint (derived in :mod:`npconv.transpose`): the input gradient of a convolution is
the transposed convolution of the output gradient with the same weight, and the input
gradient of a transposed convolution is the convolution of the output gradient.  Both run
on the fast paths of the forward ops.  Where ``algo="auto"`` runs a convolution's forward on
the depthwise/grouped direct kernel, its input gradient is that kernel's own adjoint
(:func:`npconv.algorithms.depthwise.input_gradient`): one pass over the output gradient,
where a strided transposed convolution would run one small convolution per phase -- up to 64
input channels per group (:func:`npconv.algorithms.depthwise.runs_own_backward`).

The weight gradient.  With ``xp`` the zero-padded input (one spatial dim, groups left out)::

    z[n, o, q] = sum_{c, t} xp[n, c, q*s + t*d] * w[o, c, t]
    dL/dw[o, c, t] = sum_{n, q} g[n, o, q] * xp[n, c, t*d + q*s]

which is a convolution of ``xp`` read as ``(C, N, *in)`` (batch and channels swapped) with
``g`` read as ``(O, N, *out)`` as its kernel, at stride ``d`` and dilation ``s`` (the roles of
stride and dilation swap): its output ``(C, O, *k')`` is the weight gradient, transposed,
once cropped to the kernel size (``k' >= k``, the forward's unread tail adding a few more).
Groups become the groups of that convolution: the batch of group ``G`` is stacked into
channels ``G*N .. G*N + N - 1``.  It is :func:`_correlate`, run by :func:`npconv.conv`
(so on its fast algorithms, under the workspace cap).  For ranks 1-3 and ``algo="auto"``,
:func:`conv_backward` instead takes the backward pass of the algorithm ``auto`` runs the
forward with (``Algorithm.weight_gradient``) where its cost model finds it no dearer than
im2col's: Winograd's for 3x3 stride-1 layers with many tiles (the GEMMs over tiles of its
transform domain), pointwise's for 1x1 kernels (GEMMs on the input in place), the direct
kernel's for depthwise and grouped ones; otherwise im2col's
(:func:`npconv.algorithms.im2col.weight_gradient`: the same bounded column chunks as the
forward, multiplied by the output gradient) -- all far faster than the large-kernel
convolution.  A transposed convolution scatters
``x[n, c, i]`` to ``i*s + t*d - lo``, so its weight gradient is the same correlation with
the roles of input and output gradient swapped.
"""

import dataclasses

import numpy as np

from .algorithms import REGISTRY, select
from .algorithms.depthwise import input_gradient as depthwise_input_gradient
from .algorithms.depthwise import runs_own_backward
from .conv import conv, prepare
from .dtypes import as_array, result_dtypes
from .geometry import conv_transpose_geometry
from .padding import pad_spatial_backward
from .transpose import conv_transpose

NEEDS = ("input", "weight", "bias")

_DOC_RETURNS = """
    ``needs`` names the gradients to compute (a sequence, or one name), any of ``"input"``,
    ``"weight"``, ``"bias"``; the others, and ``grad_bias`` when ``bias=False``, are returned as None without any work.
    ``bias`` says whether the forward had a bias (a bool, not the array).

    Returns ``(grad_input, grad_weight, grad_bias)`` with the shapes of the forward's input,
    weight and bias, in the dtype the forward's inputs and ``grad_output`` promote to.  The
    inputs are never modified.

    Raises:
        TypeError: as the forward, ``grad_output`` included.
        ValueError: as the forward, and for a ``grad_output`` whose shape is not the forward's
            output shape, or an unknown entry in ``needs``.
"""


# The direct kernels, whose input gradient conv_backward takes when auto runs the forward with one.
_DIRECT_KERNELS = ("depthwise", "grouped")


def conv_backward(grad_output, x, weight, *, bias=True, stride=1, padding=0, dilation=1, groups=1,
                  padding_mode="zeros", algo="auto", needs=NEEDS):
    """Gradients of :func:`npconv.conv` (same keyword arguments) with respect to its input, weight and bias.

    ``grad_input`` is ``conv_transpose(grad_output, weight)`` with the geometry's zero padding
    as cropping, folded back through ``padding_mode``'s explicit pad
    (:func:`npconv.padding.pad_spatial_backward`); ``grad_weight`` a correlation of the padded
    input with ``grad_output`` run by :func:`npconv.conv`; ``grad_bias`` the sum over batch and
    space.  ``algo`` is passed to both convolutions (``"auto"`` lets each pick; a named
    algorithm raises UnsupportedAlgorithmError where it cannot run one of them).
    """
    op = "conv_backward"
    needs = _check_needs(op, needs)
    xp, w, _, geom, _, mode_pad = prepare(op, None, x, weight, None, stride, padding, dilation, groups, padding_mode)
    grad = as_array(op, "grad_output", grad_output)
    compute, result = result_dtypes(op, input=as_array(op, "input", x), weight=as_array(op, "weight", weight),
                                    grad_output=grad)
    grad = _check_grad_output(op, grad, geom.out_shape, compute)
    grad_input = grad_weight = None
    geom = dataclasses.replace(geom, dtype=np.dtype(compute))
    forward = select(op, geom, "auto") if algo == "auto" and geom.rank <= 3 else None  # whose backward to reuse
    if "input" in needs and forward is not None and forward.name in _DIRECT_KERNELS and runs_own_backward(geom):
        # the direct kernel's own backward: its adjoint, which reads the output gradient once
        grad_input = depthwise_input_gradient(grad, np.ascontiguousarray(w, dtype=compute), geom)
    elif "input" in needs:
        # conv_transpose's output size (o - 1)*s - lo - hi + d*(k - 1) + output_padding + 1 must be the
        # (mode-padded) input size i.  The forward's o = floor((i + lo + hi - d*(k - 1) - 1) / s) + 1 leaves
        # the remainder output_padding = i + lo + hi - d*(k - 1) - 1 - (o - 1)*s in [0, s): the tail no
        # output reads, whose gradient is zero.
        output_padding = tuple(
            i + lo + hi - d * (k - 1) - 1 - (o - 1) * s
            for i, k, s, d, (lo, hi), o in zip(geom.in_size, geom.kernel, geom.stride, geom.dilation, geom.padding,
                                               geom.out_size)
        )
        grad_input = conv_transpose(grad, w.astype(compute, copy=False), stride=geom.stride,
                                    padding=geom.padding, output_padding=output_padding, groups=geom.groups,
                                    dilation=geom.dilation, algo=algo)
    if grad_input is not None:
        if mode_pad is not None:
            grad_input = pad_spatial_backward(grad_input, mode_pad, padding_mode)
        grad_input = grad_input.astype(result, copy=False)
    if "weight" in needs:
        if forward is not None:  # auto's forward algorithm's own backward, or im2col's
            owners = [alg for alg in (forward, REGISTRY["im2col"]) if alg.weight_gradient]
            backward = min(owners, key=lambda alg: alg.weight_gradient_seconds(geom)).weight_gradient
            grad_weight = backward(np.ascontiguousarray(xp, dtype=compute), grad, geom)
        else:
            grad_weight = _correlate(xp.astype(compute, copy=False), grad, geom.stride, geom.dilation, geom.padding,
                                     geom.groups, geom.kernel, algo)
        grad_weight = grad_weight.astype(result, copy=False)
    return grad_input, grad_weight, _grad_bias(grad, bias, needs, result)


def conv_transpose_backward(grad_output, x, weight, *, bias=True, stride=1, padding=0, output_padding=0, groups=1,
                            dilation=1, needs=NEEDS):
    """Gradients of :func:`npconv.conv_transpose` (same keyword arguments) with respect to its input, weight
    and bias.

    ``grad_input`` is ``conv(grad_output, weight)`` with the same stride, dilation, padding
    and groups (its adjoint), cropped to the input size where ``output_padding`` reaches past
    a stride; ``grad_weight`` the correlation of ``grad_output`` with the input (that of
    :func:`conv_backward` with the roles swapped); ``grad_bias`` the sum over batch and space.
    """
    op = "conv_transpose_backward"
    needs = _check_needs(op, needs)
    x, weight = as_array(op, "input", x), as_array(op, "weight", weight)
    grad = as_array(op, "grad_output", grad_output)
    compute, result = result_dtypes(op, input=x, weight=weight, grad_output=grad)
    geom = conv_transpose_geometry(op, x.shape, weight.shape, None, stride=stride, padding=padding,
                                   output_padding=output_padding, groups=groups, dilation=dilation, output_size=None,
                                   dtype=compute)
    grad = _check_grad_output(op, grad, geom.out_shape, compute)
    grad_input = grad_weight = None
    if "input" in needs:
        full = conv(grad, weight.astype(compute, copy=False), stride=geom.stride, padding=geom.padding,
                    dilation=geom.dilation, groups=geom.groups)
        # (N, C_in, *size) with size = in + floor(output_padding / stride): crop to the input
        grad_input = full[(slice(None), slice(None), *(slice(i) for i in geom.in_size))].astype(result)
    if "weight" in needs:
        grad_weight = _correlate(grad, x.astype(compute, copy=False), geom.stride, geom.dilation, geom.padding,
                                 geom.groups, geom.kernel, "auto").astype(result, copy=False)
    return grad_input, grad_weight, _grad_bias(grad, bias, needs, result)


for _f in (conv_backward, conv_transpose_backward):
    _f.__doc__ += _DOC_RETURNS


def _check_needs(op, needs):
    """``needs`` as a set, each entry one of :data:`NEEDS`."""
    needs = {needs} if isinstance(needs, str) else set(needs)
    unknown = sorted(needs - set(NEEDS))
    if unknown:
        raise ValueError(f"{op}: needs may hold {', '.join(map(repr, NEEDS))}, got unknown {unknown}")
    return needs


def _check_grad_output(op, grad, out_shape, compute):
    """``grad`` checked against the forward's output shape, cast to the compute dtype, C-contiguous."""
    if grad.shape != tuple(out_shape):
        raise ValueError(f"{op}: grad_output has shape {grad.shape} but the forward's output is {tuple(out_shape)}")
    return np.ascontiguousarray(grad, dtype=compute)


def _grad_bias(grad, bias, needs, result):
    """The bias gradient (C_out,): ``grad`` summed over batch and space; None when not needed."""
    if not bias or "bias" not in needs:
        return None
    return grad.sum(axis=(0, *range(2, grad.ndim))).astype(result, copy=False)


def _correlate(inp, grad, stride, dilation, padding, groups, kernel, algo):
    """``r[o, c, t] = sum_{n, q} grad[n, o, q] * inp_padded[n, g(o)*Cg + c, q*stride + t*dilation]``, (O, Cg, *kernel).

    ``inp`` (N, G*Cg, *in) is zero-padded by the ``(lo, hi)`` pairs ``padding``; ``grad`` is
    (N, G*Og, *out); ``g(o)`` is output channel ``o``'s group.  One :func:`npconv.conv` (module
    docstring).
    """
    batch, rank = inp.shape[0], len(kernel)
    cg, og = inp.shape[1] // groups, grad.shape[1] // groups
    if batch == 0:
        return np.zeros((groups * og, cg, *kernel), dtype=inp.dtype)
    lhs = (inp.reshape(batch, groups, cg, *inp.shape[2:])  # (N, G, Cg, *in)
           .swapaxes(0, 2)  # (Cg, G, N, *in)
           .reshape(cg, groups * batch, *inp.shape[2:]))  # (Cg, G*N, *in), a copy
    rhs = (grad.reshape(batch, groups, og, *grad.shape[2:])  # (N, G, Og, *out)
           .transpose(1, 2, 0, *range(3, 3 + rank))  # (G, Og, N, *out)
           .reshape(groups * og, batch, *grad.shape[2:]))  # (G*Og, N, *out), a copy
    full = conv(lhs, rhs, stride=dilation, padding=padding, dilation=stride, groups=groups, algo=algo)  # (Cg, O, *k')
    cropped = full[(slice(None), slice(None), *(slice(k) for k in kernel))]  # (Cg, O, *kernel)
    return np.ascontiguousarray(cropped.swapaxes(0, 1))  # (O, Cg, *kernel)
