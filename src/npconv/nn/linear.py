"""Linear, Flatten, Dropout and Identity, with PyTorch's constructors and state-dict keys."""

import numbers

import numpy as np

from ..algorithms.base import gemm_seconds
from ..geometry import int_tuple
from ..parallel import run_pieces, split, threads_for
from .init import default_bound, generator, uniform
from .module import Module, Parameter


class Linear(Module):
    """``y = x @ weight.T + bias`` over the last dim, as ``torch.nn.Linear``: input ``(*, in_features)``,
    output ``(*, out_features)``.  ``weight`` ``(out_features, in_features)`` and ``bias``
    ``(out_features,)`` start uniform on ``+-1/sqrt(in_features)``, as PyTorch."""

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        (self.in_features,) = int_tuple("Linear", "in_features", in_features, 1, 0)
        (self.out_features,) = int_tuple("Linear", "out_features", out_features, 1, 0)
        bound = default_bound(self.in_features)
        self.weight = Parameter(uniform((self.out_features, self.in_features), bound))
        self.bias = Parameter(uniform((self.out_features,), bound)) if bias else None

    def forward(self, x):
        x = np.asarray(x)
        if x.ndim < 1 or x.shape[-1] != self.in_features:
            raise ValueError(f"Linear: input must be (*, in_features={self.in_features}), got shape {x.shape}")
        self._saved = x
        y = matmul(x.reshape(-1, self.in_features), self.weight.data.T)  # (prod(*), out_features)
        y = y.reshape(*x.shape[:-1], self.out_features)  # (*, out_features)
        return y if self.bias is None else y + self.bias.data

    def backward(self, grad_output):
        x = self._saved
        grad = np.asarray(grad_output)
        rows = grad.reshape(-1, self.out_features)  # (prod(*), out_features)
        self.weight.accumulate(matmul(rows.T, x.reshape(-1, self.in_features)))  # (out, prod(*)) @ (prod(*), in)
        if self.bias is not None:
            self.bias.accumulate(rows.sum(axis=0))
        return matmul(rows, self.weight.data).reshape(*grad.shape[:-1], self.in_features)  # (*, in_features)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def matmul(a, b):
    """``a (m, k) @ b (k, n)``, the columns of ``b`` shared out among the threads with BLAS
    single-threaded in each (:func:`npconv.parallel.run_pieces`), so no BLAS threads are left
    spinning after a large layer."""
    (m, k), n = a.shape, b.shape[1]
    out = np.empty((m, n), dtype=np.result_type(a, b))
    seconds = gemm_seconds(2 * m * n * k, m, n, k)

    def work(span):
        np.matmul(a, b[:, span[0] : span[1]], out=out[:, span[0] : span[1]])

    run_pieces(work, split(n, threads_for(seconds)), seconds=seconds)
    return out


class Flatten(Module):
    """Merges dims ``start_dim .. end_dim`` (negative counts from the end) into one, as
    ``torch.nn.Flatten``: ``(N, C, H, W)`` becomes ``(N, C*H*W)`` by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        x = np.asarray(x)
        ndim = max(x.ndim, 1)
        start, end = (d + ndim if d < 0 else d for d in (self.start_dim, self.end_dim))
        if not (0 <= start < ndim and 0 <= end < ndim) or start > end:
            raise ValueError(f"Flatten: start_dim={self.start_dim} and end_dim={self.end_dim} must lie in "
                             f"[-{ndim}, {ndim - 1}] with start_dim not after end_dim, for input shape {x.shape}")
        self._saved = x.shape
        return x.reshape(*x.shape[:start], -1, *x.shape[end + 1:])  # (..., prod(shape[start:end+1]), ...)

    def backward(self, grad_output):
        return np.reshape(grad_output, self._saved)  # back to the input's shape

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Dropout(Module):
    """Inverted dropout, as ``torch.nn.Dropout``: in training each element is zeroed with
    probability ``p`` and the rest scaled by ``1/(1 - p)``; in eval mode the identity.  The
    mask is drawn from :func:`npconv.nn.manual_seed`'s generator and kept for backward, which
    applies it to the gradient.  ``inplace`` is accepted for PyTorch's signature; the input
    is never modified."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"Dropout: probability p must be a number, got {p!r}")
        if not 0 <= p <= 1:
            raise ValueError(f"Dropout: probability p must be between 0 and 1, got {p}")
        self.p, self.inplace = float(p), inplace

    def forward(self, x):
        x = np.asarray(x)
        if not self.training or self.p == 0:
            self._saved = None
            return x
        scale = 1.0 / (1.0 - self.p) if self.p < 1 else 0.0
        self._saved = (generator().random(x.shape) >= self.p) * np.asarray(scale, dtype=x.dtype)  # 0 or scale
        return x * self._saved

    def backward(self, grad_output):
        mask = self._saved
        return grad_output if mask is None else grad_output * mask

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Identity(Module):
    """Returns its input, as ``torch.nn.Identity`` (whose arguments it accepts and ignores)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x

    def backward(self, grad_output):
        return grad_output
