"""Batch normalisation: BatchNorm1d and BatchNorm2d, one base for both.

Per channel ``c`` (axis 1), over every other axis::

    y = (x - mean) / sqrt(var + eps) * weight + bias

In training mode ``mean`` and ``var`` are the batch's (``var`` biased) and, with
``track_running_stats=True``, update the running statistics as PyTorch does::

    running = (1 - momentum) * running + momentum * batch_statistic

with the unbiased variance for ``running_var``; ``momentum=None`` takes the cumulative
average (``momentum = 1 / num_batches_tracked``).  In evaluation mode the running statistics
normalise, unless ``track_running_stats=False`` keeps none, when the batch's are used again.
"""

import numpy as np

from ..dtypes import in_compute_dtype
from .module import DEFAULT_DTYPE, Module, Parameter


class _BatchNorm(Module):
    """The layer for any input rank; subclasses name the ranks they accept."""

    ranks = ()  # input ranks accepted
    expected = ""  # how the error message describes them

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True, *,
                 bias=True):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features)) if affine else None
        self.bias = Parameter(np.zeros(num_features)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, DEFAULT_DTYPE))
            self.register_buffer("running_var", np.ones(num_features, DEFAULT_DTYPE))
            self.register_buffer("num_batches_tracked", np.array(0, np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def _layout(self, x):
        """Reduction axes (all but the channels) and the shape that broadcasts a per-channel
        vector against ``x``: ``(1, C)``, ``(1, C, 1)`` or ``(1, C, 1, 1)``."""
        return (0,) + tuple(range(2, x.ndim)), (1, -1) + (1,) * (x.ndim - 2)

    def forward(self, x):
        x = np.asarray(x)
        dtype, x = x.dtype, in_compute_dtype(x)
        name = type(self).__name__
        if x.ndim not in self.ranks:
            raise ValueError(f"{name}: expected {self.expected} input, got {x.ndim}-d input of shape {x.shape}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{name}: expected {self.num_features} channels (axis 1), got input of shape {x.shape}")
        axes, channel = self._layout(x)
        batch_stats = self.training or self.running_mean is None
        if batch_stats:
            count = x.size // self.num_features
            if self.training and count == 1:
                raise ValueError(f"{name}: expected more than 1 value per channel when training, "
                                 f"got input of shape {x.shape}")
            mean, var = x.mean(axis=axes), x.var(axis=axes)
            if self.training and self.track_running_stats:
                self.num_batches_tracked += 1
                factor = 1 / self.num_batches_tracked if self.momentum is None else self.momentum
                for running, batch in ((self.running_mean, mean), (self.running_var, var * count / (count - 1))):
                    running *= 1 - factor
                    running += factor * batch
        else:
            mean, var = self.running_mean, self.running_var
        invstd = 1 / np.sqrt(var + self.eps)  # (C,)
        if batch_stats:
            x_hat = (x - mean.reshape(channel)) * invstd.reshape(channel)
            self._saved = (x_hat, None, invstd, True)
            y = x_hat if self.weight is None else x_hat * self.weight.data.reshape(channel)
            y = y if self.bias is None else y + self.bias.data.reshape(channel)
            return y.astype(dtype, copy=False)
        # fixed statistics: one affine map per channel, two passes over x instead of four
        # (BatchNorm took 2/3 of MobileNetV2's forward at batch 8); backward recomputes x_hat
        scale = invstd if self.weight is None else invstd * self.weight.data
        shift = -mean * scale if self.bias is None else self.bias.data - mean * scale
        self._saved = (x, mean.copy(), invstd, False)
        y = x * scale.reshape(channel)
        y += shift.reshape(channel).astype(y.dtype, copy=False)
        return y.astype(dtype, copy=False)

    def backward(self, grad_output):
        x_hat, mean, invstd, batch_stats = self._saved  # x itself, and the mean, with fixed statistics
        grad = np.asarray(grad_output)
        dtype, grad = grad.dtype, in_compute_dtype(grad)
        axes, channel = self._layout(grad)
        if not batch_stats:
            x_hat = (x_hat - mean.reshape(channel)) * invstd.reshape(channel)
        if self.bias is not None:
            self.bias.accumulate(grad.sum(axis=axes))
        if self.weight is not None:
            self.weight.accumulate((grad * x_hat).sum(axis=axes))
            grad = grad * self.weight.data.reshape(channel)  # gradient w.r.t. x_hat
        if batch_stats:  # x_hat = (x - mean(x)) * invstd(x): remove the statistics' share
            grad = grad - grad.mean(axis=axes, keepdims=True) - x_hat * (grad * x_hat).mean(axis=axes, keepdims=True)
        return (grad * invstd.reshape(channel)).astype(dtype, copy=False)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"bias={self.bias is not None}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of ``(N, C)`` or ``(N, C, L)`` input (see the module docstring)."""

    ranks = (2, 3)
    expected = "2-d (N, C) or 3-d (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of ``(N, C, H, W)`` input (see the module docstring)."""

    ranks = (4,)
    expected = "4-d (N, C, H, W)"
