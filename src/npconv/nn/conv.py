"""Convolution layers: Conv1d/2d/3d, ConvTranspose1d/2d/3d and the MobileNet block
DepthwiseSeparableConv2d, with PyTorch's constructors, attributes, state-dict keys and init.

Forward runs :func:`npconv.conv` / :func:`npconv.conv_transpose` (``algo="auto"``); backward
runs :func:`npconv.conv_backward` / :func:`npconv.conv_transpose_backward` on the saved input.
"""

import numpy as np

from ..backward import conv_backward, conv_transpose_backward
from ..conv import conv
from ..geometry import PADDING_MODES, conv_transpose_geometry, int_tuple
from ..transpose import conv_transpose
from .init import default_bound, fan_in_and_out, uniform
from .module import Module, Parameter

_CONV_DOC = """{rank}-d convolution, as ``torch.nn.Conv{rank}d``: input ``(N, C_in, {dims})``.

    ``weight`` is ``(out_channels, in_channels / groups, *kernel_size)``, ``bias``
    ``(out_channels,)``; both start uniform on ``+-1/sqrt(fan_in)``, ``fan_in = in_channels /
    groups * prod(kernel_size)``, as PyTorch.  ``padding`` is an int, one int per dim,
    ``"valid"`` (0) or ``"same"`` (output size = input size, any odd extra pad at the end;
    stride 1 only); ``padding_mode`` is ``"zeros"``, ``"reflect"``, ``"replicate"`` or
    ``"circular"``.  Output size per spatial dim::

        out = floor((in + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1
"""

_CONV_TRANSPOSE_DOC = """{rank}-d transposed convolution, as ``torch.nn.ConvTranspose{rank}d``: input
    ``(N, C_in, {dims})``.

    ``weight`` is ``(in_channels, out_channels / groups, *kernel_size)``, ``bias``
    ``(out_channels,)``; both start uniform on ``+-1/sqrt(fan_in)`` with PyTorch's ``fan_in =
    out_channels / groups * prod(kernel_size)`` (``weight.shape[1] * prod(kernel_size)``).
    ``padding`` is an int or one int per dim; only ``padding_mode="zeros"``.  Output size per
    spatial dim::

        out = (in - 1) * stride - 2 * padding + dilation * (kernel_size - 1) + output_padding + 1

    ``forward(x, output_size=None)``: ``output_size`` (one size per spatial dim, or the full
    ``(N, C_out, *spatial)``) sets ``output_padding`` instead, as PyTorch: it must lie in
    ``[m, m + stride - 1]``, ``m`` being the size with ``output_padding = 0``.
"""

_DIMS = {1: "L", 2: "H, W", 3: "D, H, W"}


class _ConvNd(Module):
    """What every N-d (transposed) convolution shares: the checks of PyTorch's ``_ConvNd``,
    done once at construction, the attributes, the parameters and their init."""

    rank = None  # spatial dims, set by each layer
    transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                 padding_mode, output_padding=0):
        super().__init__()
        op, rank = type(self).__name__, self.rank
        (in_channels,) = int_tuple(op, "in_channels", in_channels, 1, 1)
        (out_channels,) = int_tuple(op, "out_channels", out_channels, 1, 1)
        (groups,) = int_tuple(op, "groups", groups, 1, 1)
        for name, channels in (("in_channels", in_channels), ("out_channels", out_channels)):
            if channels % groups:
                raise ValueError(f"{op}: {name}={channels} is not divisible by groups={groups}")
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size = int_tuple(op, "kernel_size", kernel_size, rank, 1)
        self.stride = int_tuple(op, "stride", stride, rank, 1)
        self.dilation = int_tuple(op, "dilation", dilation, rank, 1)
        self.output_padding = int_tuple(op, "output_padding", output_padding, rank, 0)
        for p, s, d in zip(self.output_padding, self.stride, self.dilation):
            if p >= max(s, d):
                raise ValueError(f"{op}: output_padding={self.output_padding} must be smaller than "
                                 f"stride={self.stride} or dilation={self.dilation} in every dim")
        if isinstance(padding, str):
            allowed = () if self.transposed else ("same", "valid")
            if padding not in allowed:
                strings = f" or one of {', '.join(map(repr, allowed))}" if allowed else ""
                raise ValueError(f"{op}: padding must be an int or one int per spatial dim{strings}, got {padding!r}")
            if padding == "same" and self.stride != (1,) * rank:
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions, "
                                 f"got stride={self.stride}")
            self.padding = padding
        else:
            self.padding = int_tuple(op, "padding", padding, rank, 0)
        modes = ("zeros",) if self.transposed else PADDING_MODES
        if padding_mode not in modes:
            raise ValueError(f"{op}: padding_mode must be one of {', '.join(map(repr, modes))}, got {padding_mode!r}")
        self.padding_mode = padding_mode
        shape = (in_channels, out_channels // groups) if self.transposed else (out_channels, in_channels // groups)
        shape += self.kernel_size
        bound = default_bound(fan_in_and_out(shape)[0])  # PyTorch's fan_in: shape[1] * prod(kernel)
        self.weight = Parameter(uniform(shape, bound))
        self.bias = Parameter(uniform((out_channels,), bound)) if bias else None

    def _bias(self):
        return None if self.bias is None else self.bias.data

    def _accumulate(self, grad_input, grad_weight, grad_bias):
        """Add the parameter gradients; return the input gradient."""
        self.weight.accumulate(grad_weight)
        if self.bias is not None:
            self.bias.accumulate(grad_bias)
        return grad_input

    def _needs(self):
        return ("input", "weight", "bias") if self.bias is not None else ("input", "weight")

    def extra_repr(self):
        text = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding!r}")
        for name, default in (("dilation", (1,) * self.rank), ("output_padding", (0,) * self.rank), ("groups", 1),
                              ("padding_mode", "zeros")):
            if getattr(self, name) != default:
                text += f", {name}={getattr(self, name)!r}"
        return text + ("" if self.bias is not None else ", bias=False")


class _Conv(_ConvNd):
    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1, bias=True,
                 padding_mode="zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode)

    def _hyper(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups,
                    padding_mode=self.padding_mode)

    def forward(self, x):
        self._saved = x
        return conv(x, self.weight.data, self._bias(), **self._hyper())

    def backward(self, grad_output):
        grads = conv_backward(grad_output, self._saved, self.weight.data, bias=self.bias is not None,
                              needs=self._needs(), **self._hyper())
        return self._accumulate(*grads)


class _ConvTranspose(_ConvNd):
    transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, output_padding=0, groups=1,
                 bias=True, dilation=1, padding_mode="zeros"):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias, padding_mode,
                         output_padding)

    def _hyper(self, output_padding):
        return dict(stride=self.stride, padding=self.padding, output_padding=output_padding, groups=self.groups,
                    dilation=self.dilation)

    def forward(self, x, output_size=None):
        output_padding = self.output_padding
        if output_size is not None:  # PyTorch's rule (self.output_padding ignored), checked with this layer's name
            output_padding = conv_transpose_geometry(
                type(self).__name__, np.shape(x), self.weight.shape, None, **self._hyper(0), output_size=output_size,
                dtype=self.weight.dtype).output_padding
        self._saved = (x, output_padding)
        return conv_transpose(x, self.weight.data, self._bias(), **self._hyper(output_padding))

    def backward(self, grad_output):
        x, output_padding = self._saved
        grads = conv_transpose_backward(grad_output, x, self.weight.data, bias=self.bias is not None,
                                        needs=self._needs(), **self._hyper(output_padding))
        return self._accumulate(*grads)


class Conv1d(_Conv):
    rank = 1


class Conv2d(_Conv):
    rank = 2


class Conv3d(_Conv):
    rank = 3


class ConvTranspose1d(_ConvTranspose):
    rank = 1


class ConvTranspose2d(_ConvTranspose):
    rank = 2


class ConvTranspose3d(_ConvTranspose):
    rank = 3


for _cls in (Conv1d, Conv2d, Conv3d):
    _cls.__doc__ = _CONV_DOC.format(rank=_cls.rank, dims=_DIMS[_cls.rank])
for _cls in (ConvTranspose1d, ConvTranspose2d, ConvTranspose3d):
    _cls.__doc__ = _CONV_TRANSPOSE_DOC.format(rank=_cls.rank, dims=_DIMS[_cls.rank])


class DepthwiseSeparableConv2d(Module):
    """The MobileNet block without its norms and activations: children ``depthwise``
    (``Conv2d(in_channels, in_channels, kernel_size, groups=in_channels)``, carrying stride,
    padding, dilation and padding_mode) then ``pointwise`` (a 1x1 ``Conv2d(in_channels,
    out_channels)``), both with or without bias.  Its cost is about ``1/out_channels +
    1/prod(kernel_size)`` of a standard ``Conv2d``'s.  Output size: the depthwise conv's.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 padding_mode="zeros"):
        super().__init__()
        self.depthwise = Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                dilation=dilation, groups=in_channels, bias=bias, padding_mode=padding_mode)
        self.pointwise = Conv2d(in_channels, out_channels, 1, bias=bias)

    def forward(self, x):
        return self.pointwise(self.depthwise(x))

    def backward(self, grad_output):
        return self.depthwise.backward(self.pointwise.backward(grad_output))
