"""Elementwise activations: ReLU, ReLU6, LeakyReLU, Sigmoid, Tanh.

Each one is a pair of formulas: ``_forward(x) -> y`` and ``_derivative(x, y) -> dy/dx``,
written next to each other; :class:`_Elementwise` keeps ``x`` and ``y`` for the backward.
The derivative at a kink is PyTorch's (0 at ``x = 0`` for ReLU, at ``x = 0`` and ``x = 6``
for ReLU6).  ``inplace`` is accepted for PyTorch's signatures and ignored: the caller's array
is never modified.
"""

import numpy as np

from .module import Module


class _Elementwise(Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        x = np.asarray(x)
        y = self._forward(x)
        self._saved = (x, y)
        return y

    def backward(self, grad_output):
        return grad_output * self._derivative(*self._saved)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_Elementwise):
    """``max(x, 0)``."""

    def _forward(self, x):
        return np.maximum(x, 0)

    def _derivative(self, x, y):
        return (x > 0).astype(x.dtype)


class ReLU6(_Elementwise):
    """``min(max(x, 0), 6)``."""

    def _forward(self, x):
        return np.clip(x, x.dtype.type(0), x.dtype.type(6))  # bounds of x's dtype: 5x faster than ints

    def _derivative(self, x, y):
        return ((x > 0) & (x < 6)).astype(x.dtype)


class LeakyReLU(_Elementwise):
    """``x`` for ``x > 0``, else ``negative_slope * x``."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__(inplace)
        self.negative_slope = negative_slope

    def _forward(self, x):
        return np.where(x > 0, x, x * np.asarray(self.negative_slope, x.dtype))

    def _derivative(self, x, y):
        return np.where(x > 0, 1, self.negative_slope).astype(x.dtype)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class Sigmoid(_Elementwise):
    """``1 / (1 + exp(-x))``, evaluated without overflow for large ``|x|``."""

    def __init__(self):
        super().__init__()

    def _forward(self, x):
        e = np.exp(-np.abs(x))  # in (0, 1]: never overflows
        return np.where(x >= 0, 1, e) / (1 + e)

    def _derivative(self, x, y):
        return y * (1 - y)


class Tanh(_Elementwise):
    """``tanh(x)``."""

    def __init__(self):
        super().__init__()

    def _forward(self, x):
        return np.tanh(x)

    def _derivative(self, x, y):
        return 1 - y * y
