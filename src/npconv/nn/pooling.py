"""2-d pooling: MaxPool2d and AvgPool2d (sliding windows), AdaptiveAvgPool2d (a fixed output size).

Inputs are ``(N, C, H, W)`` or unbatched ``(C, H, W)``.  MaxPool2d runs a Numba kernel (the
window scan decides which element gets the gradient), planes split across threads;
AvgPool2d loops over the ``kh * kw`` kernel offsets (few), each step one strided view of the
padded input holding that offset's value for every ``(n, c, oh, ow)`` at once, and its
backward adds into the same views.  The window count per axis is PyTorch's::

    out = floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1

with ``ceil`` in place of ``floor`` when ``ceil_mode=True``, less one if the last window
would then start in the right padding (it must start inside the input or the left padding).
"""

import numpy as np
from numba import njit

from ..config import get_num_threads
from ..dtypes import in_compute_dtype
from ..parallel import run_pieces, split
from .module import Module


def _pair(value):
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _batched(name, x):
    """``x`` as ``(N, C, H, W)``: an unbatched ``(C, H, W)`` input gets ``N = 1``."""
    x = np.asarray(x)
    if x.ndim not in (3, 4) or 0 in x.shape[-3:]:
        raise ValueError(f"{name}: expected a (C, H, W) or (N, C, H, W) input with non-empty "
                         f"C, H and W, got shape {x.shape}")
    return x.reshape((1,) * (4 - x.ndim) + x.shape)  # (N, C, H, W)


def _out_size(size, kernel, stride, padding, dilation, ceil_mode):
    """PyTorch's ``pooling_output_shape`` (see the module docstring)."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)
    out = span // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


class _WindowPool2d(Module):
    """What MaxPool2d and AvgPool2d share: validation and the output size."""

    def __init__(self, kernel_size, stride, padding, dilation, ceil_mode):
        super().__init__()
        stride = kernel_size if stride is None else stride
        name = type(self).__name__
        for label, given, low in (("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                  ("padding", padding, 0), ("dilation", dilation, 1)):
            pair = _pair(given)
            if len(pair) != 2 or not all(isinstance(v, (int, np.integer)) and v >= low for v in pair):
                raise ValueError(f"{name}: {label} must be an int or a pair of ints >= {low}, "
                                 f"got {label}={given}")
        self._k, self._s, self._p, self._d = (_pair(v) for v in (kernel_size, stride, padding, dilation))
        if any(p > k // 2 for p, k in zip(self._p, self._k)):
            raise ValueError(f"{name}: padding should be at most half of kernel_size, "
                             f"got padding={padding}, kernel_size={kernel_size}")
        self.kernel_size, self.stride, self.padding, self.ceil_mode = kernel_size, stride, padding, ceil_mode

    def _output_size(self, x4):
        """``(Ho, Wo)`` for an ``(N, C, H, W)`` input."""
        out = tuple(_out_size(size, k, s, p, d, self.ceil_mode)
                    for size, k, s, p, d in zip(x4.shape[2:], self._k, self._s, self._p, self._d))
        if min(out) < 1:
            raise ValueError(f"{type(self).__name__}: input size {x4.shape[2:]} gives output size "
                             f"{out}, which is too small (kernel_size={self.kernel_size}, "
                             f"stride={self.stride}, padding={self.padding})")
        return out

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


@njit(cache=True, nogil=True)
def _max_pool_kernel(x, out, where, kernel, stride, padding, dilation, start, stop):
    """Planes ``start:stop`` of ``x`` (P, H, W): each window's maximum into ``out`` (P, Ho, Wo)
    and its flat index ``h * W + w`` into ``where``.  PyTorch's scan: the window's first
    element inside the input, then any later one that is greater or NaN."""
    height, width = x.shape[1], x.shape[2]
    for plane in range(start, stop):
        for oh in range(out.shape[1]):
            for ow in range(out.shape[2]):
                found = -1
                best = x[plane, 0, 0]
                for i in range(kernel[0]):
                    h = oh * stride[0] - padding[0] + i * dilation[0]
                    if h < 0 or h >= height:
                        continue
                    for j in range(kernel[1]):
                        w = ow * stride[1] - padding[1] + j * dilation[1]
                        if w < 0 or w >= width:
                            continue
                        value = x[plane, h, w]
                        if found < 0 or value > best or value != value:
                            best, found = value, h * width + w
                out[plane, oh, ow] = best
                where[plane, oh, ow] = found


@njit(cache=True, nogil=True)
def _max_pool_backward_kernel(grad_output, where, grad, start, stop):
    """Adjoint of :func:`_max_pool_kernel` on planes ``start:stop``: each output's gradient
    added to the input element it took, in ``grad`` (P, H * W)."""
    for plane in range(start, stop):
        for o in range(where.shape[1]):
            grad[plane, where[plane, o]] += grad_output[plane, o]


class MaxPool2d(_WindowPool2d):
    """Maximum over each ``kernel_size`` window (dilated by ``dilation``; padding never wins);
    output size as in the module docstring.

    Ties go to the first maximum in the window's row-major scan and NaN wins, as in PyTorch;
    the backward routes each output's gradient to that element.  With ``return_indices=True``
    the forward returns ``(output, indices)``, indices flat over each input plane ``H * W``.
    """

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size, stride, padding, dilation, ceil_mode)
        self.dilation, self.return_indices = dilation, return_indices

    def forward(self, x):
        x = np.asarray(x)
        x4 = _batched("MaxPool2d", x)
        n, c, h, w = x4.shape
        planes = np.ascontiguousarray(in_compute_dtype(x4)).reshape(n * c, h, w)  # (P, H, W), P = N * C
        out = np.empty((n * c,) + self._output_size(x4), planes.dtype)  # (P, Ho, Wo)
        where = np.empty(out.shape, np.int64)
        geometry = tuple(np.array(v, np.int64) for v in (self._k, self._s, self._p, self._d))
        run_pieces(lambda span: _max_pool_kernel(planes, out, where, *geometry, *span),
                   split(n * c, get_num_threads()))
        self._saved = (where, x.shape)
        shape = x.shape[:-2] + out.shape[1:]  # (N, C, Ho, Wo) or (C, Ho, Wo)
        out = out.astype(x.dtype, copy=False).reshape(shape)
        return (out, where.reshape(shape)) if self.return_indices else out

    def backward(self, grad_output):
        where, shape = self._saved
        planes = where.shape[0]
        grad_output = np.asarray(grad_output)
        dtype = grad_output.dtype
        grad_output = np.ascontiguousarray(in_compute_dtype(grad_output)).reshape(planes, -1)  # (P, Ho * Wo)
        grad = np.zeros((planes, shape[-2] * shape[-1]), grad_output.dtype)  # (P, H * W)
        run_pieces(lambda span: _max_pool_backward_kernel(grad_output, where.reshape(planes, -1), grad, *span),
                   split(planes, get_num_threads()))
        return grad.astype(dtype, copy=False).reshape(shape)

    def extra_repr(self):
        return f"{super().extra_repr()}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"


class AvgPool2d(_WindowPool2d):
    """Mean over each ``kernel_size`` window, with implicit zero padding; output size as in
    the module docstring (``dilation = 1``).

    Each window's sum is divided by ``divisor_override`` if given, else by its size clipped
    to the padded input (``count_include_pad=True``; a ``ceil_mode`` overhang past the right
    padding is not counted) or to the input itself (``count_include_pad=False``), as PyTorch.
    """

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__(kernel_size, stride, padding, 1, ceil_mode)
        if divisor_override is not None and not (isinstance(divisor_override, (int, np.integer))
                                                 and divisor_override > 0):
            raise ValueError(f"AvgPool2d: divisor_override must be None or a positive int, "
                             f"got {divisor_override!r}")
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def _windows(self, out):
        """For each kernel offset ``(i, j)``, the index of the strided view of the padded input
        that it reads for every output position ``(oh, ow)``."""
        (kh, kw), (sh, sw), (ho, wo) = self._k, self._s, out
        return [(Ellipsis, slice(i, i + (ho - 1) * sh + 1, sh), slice(j, j + (wo - 1) * sw + 1, sw))
                for i in range(kh) for j in range(kw)]

    def _divisor(self, size, out, dtype):
        """``(Ho, Wo)``: what each window's sum is divided by (a product of one count per axis)."""
        if self.divisor_override is not None:
            return np.full(out, self.divisor_override, dtype)
        counts = []
        for n, o, k, s, p in zip(size, out, self._k, self._s, self._p):
            start = np.arange(o) * s - p
            end = np.minimum(start + k, n + p)
            if not self.count_include_pad:
                start, end = np.maximum(start, 0), np.minimum(end, n)
            counts.append(end - start)
        return np.outer(*counts).astype(dtype)

    def forward(self, x):
        x = np.asarray(x)
        x4 = _batched("AvgPool2d", x)
        out = self._output_size(x4)
        pads = [(p, max(0, (o - 1) * s + k - n - p))
                for n, o, k, s, p in zip(x4.shape[2:], out, self._k, self._s, self._p)]
        padded = np.pad(x4, [(0, 0), (0, 0)] + pads)  # (N, C, H + pads, W + pads), zeros
        total = np.zeros(padded.shape[:2] + out, padded.dtype)  # (N, C, Ho, Wo)
        for window in self._windows(out):
            total += padded[window]
        divisor = self._divisor(x4.shape[2:], out, x4.dtype)
        self._saved = (x.shape, padded.shape, pads, divisor)
        return (total / divisor).reshape(x.shape[:-2] + out)

    def backward(self, grad_output):
        shape, padded_shape, ((ph, _), (pw, _)), divisor = self._saved
        share = np.asarray(grad_output).reshape(padded_shape[:2] + divisor.shape) / divisor  # (N, C, Ho, Wo)
        grad = np.zeros(padded_shape, share.dtype)
        for window in self._windows(divisor.shape):
            grad[window] += share
        return grad[:, :, ph:ph + shape[-2], pw:pw + shape[-1]].reshape(shape)


def _bins(size, out):
    """``(out, size)`` matrix whose row ``i`` averages ``input[floor(i * size / out) :
    ceil((i + 1) * size / out)]``, PyTorch's adaptive pooling bins."""
    i = np.arange(out)[:, None]
    start, end = i * size // out, -(-(i + 1) * size // out)
    inside = (np.arange(size) >= start) & (np.arange(size) < end)
    return inside / (end - start)


class AdaptiveAvgPool2d(Module):
    """Mean over PyTorch's adaptive bins, giving an ``output_size`` output: an int, or a pair
    whose ``None`` entries keep the input's size.  Output row ``i`` of ``Ho`` averages input
    rows ``floor(i * H / Ho)`` to ``ceil((i + 1) * H / Ho) - 1`` (columns likewise), so bins
    overlap when ``Ho`` does not divide ``H``.  Forward and backward are each two small
    matrix products, one per axis."""

    def __init__(self, output_size):
        super().__init__()
        pair = _pair(output_size)
        if len(pair) != 2 or not all(v is None or isinstance(v, (int, np.integer)) and v >= 1
                                     for v in pair):
            raise ValueError(f"AdaptiveAvgPool2d: output_size must be a positive int, None or a "
                             f"pair of those, got {output_size!r}")
        self.output_size = output_size

    def forward(self, x):
        x = np.asarray(x)
        x4 = _batched("AdaptiveAvgPool2d", x)
        rows, cols = (_bins(size, size if o is None else o).astype(x4.dtype)
                      for size, o in zip(x4.shape[2:], _pair(self.output_size)))
        self._saved = (x.shape, rows, cols)
        y = np.einsum("ih,nchw,jw->ncij", rows, x4, cols, optimize=True)  # (N, C, Ho, Wo)
        return y.reshape(y.shape[4 - x.ndim:])

    def backward(self, grad_output):
        shape, rows, cols = self._saved
        grad = np.asarray(grad_output)
        grad = grad.reshape((-1,) + grad.shape[-3:])  # (N, C, Ho, Wo)
        return np.einsum("ih,ncij,jw->nchw", rows, grad, cols, optimize=True).reshape(shape)

    def extra_repr(self):
        return f"output_size={self.output_size}"
