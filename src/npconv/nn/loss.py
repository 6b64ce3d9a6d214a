"""Losses: :class:`CrossEntropyLoss` and :class:`MSELoss`, each with its backward.

A loss is a :class:`~npconv.nn.module.Module` called as ``loss = criterion(input, target)``;
it returns the loss (a NumPy scalar for ``reduction='mean'`` or ``'sum'``, an array of the
per-element losses for ``'none'``).  ``criterion.backward(grad_output=1.0)`` then returns the
gradient with respect to that call's ``input`` (the target gets none).
"""

import numpy as np

from .module import DEFAULT_DTYPE, Module

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    """The reductions shared by every loss: ``'mean'`` divides the sum of the per-element
    losses by a denominator the loss defines, ``'sum'`` sums them, ``'none'`` keeps them."""

    def __init__(self, reduction):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction
        self._saved = None

    def _reduce(self, losses, total):
        """The per-element ``losses`` reduced; ``total`` is the mean's denominator."""
        if self.reduction == "none":
            return losses
        summed = losses.sum(dtype=losses.dtype)
        if self.reduction == "sum":
            return summed
        with np.errstate(divide="ignore", invalid="ignore"):
            return summed / losses.dtype.type(total)   # 0/0 = nan, as PyTorch

    def _upstream(self, grad_output, shape, total, dtype):
        """``grad_output`` (the gradient of the reduced loss) as the gradient of each
        per-element loss, broadcast to the per-element shape ``shape``."""
        name = type(self).__name__
        grad = np.asarray(grad_output, dtype=dtype)
        if self.reduction == "none":
            if grad.shape != shape:
                raise ValueError(f"{name}.backward: grad_output must have the loss's shape {shape} "
                                 f"(reduction='none'), got {grad.shape}")
            return grad
        if grad.shape != ():
            raise ValueError(f"{name}.backward: grad_output must be a scalar (reduction={self.reduction!r}), "
                             f"got shape {grad.shape}")
        if self.reduction == "mean":
            # Nothing counted (every target ignored): the loss is nan, its gradient zero (PyTorch).
            grad = grad / dtype.type(total) if total else np.zeros_like(grad)
        return np.broadcast_to(grad, shape)

    def _saved_or_raise(self):
        if self._saved is None:
            raise RuntimeError(f"{type(self).__name__}.backward called before forward")
        return self._saved

    def extra_repr(self):
        return f"reduction={self.reduction!r}"


def _float_input(name, x):
    x = np.asarray(x)
    if not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{name}: input must be a floating-point array, got dtype {x.dtype}")
    return x


class CrossEntropyLoss(_Loss):
    """Cross-entropy of logits ``input`` against class indices or class probabilities, as
    ``torch.nn.CrossEntropyLoss``.

    ``input``: logits ``(N, C)``, ``(N, C, d1, ..., dk)`` or unbatched ``(C,)``.
    ``target``: integer class indices of shape ``(N,)``, ``(N, d1, ..., dk)`` or ``()``; or
    floating-point class probabilities of the input's shape.

    With ``log_p = log_softmax(input)`` over the class dimension and ``w`` the class
    ``weight`` (ones by default), each position ``n`` has the loss
    ``-sum_c q[n, c] * log_p[n, c]`` against the target distribution ``q``:

    - class indices: ``q[n, c] = w[c] * ((1 - s) * [c == y_n] + s / C)`` with
      ``s = label_smoothing``, and ``q[n] = 0`` where ``y_n == ignore_index``;
      ``'mean'`` divides by ``sum(w[y_n])`` over the positions not ignored.
    - probabilities ``t``: ``q[n, c] = w[c] * ((1 - s) * t[n, c] + s / C)``;
      ``'mean'`` divides by the number of positions ``N * d1 * ... * dk``
      (``ignore_index`` does not apply).

    The gradient with respect to the logits is ``p[n, c] * sum_c' q[n, c'] - q[n, c]``
    (``p = softmax(input)``), scaled by the reduction.
    """

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be between 0.0 and 1.0, got {label_smoothing}")
        if weight is None:
            self.weight = None
        else:
            weight = np.array(weight, dtype=DEFAULT_DTYPE)
            if weight.ndim != 1:
                raise ValueError(f"CrossEntropyLoss: weight must be 1-d (one entry per class), got shape {weight.shape}")
            self.register_buffer("weight", weight)   # a buffer, as in PyTorch's state dict
        self.ignore_index = int(ignore_index)
        self.label_smoothing = float(label_smoothing)

    def forward(self, input, target):
        x = _float_input("CrossEntropyLoss", input)
        target = np.asarray(target)
        if x.ndim == 0:
            raise ValueError("CrossEntropyLoss: input must have a class dimension, got a scalar")
        unbatched = x.ndim == 1
        if unbatched:
            x, target = x[None], target[None]   # (1, C), target (1,) or (1, C)
        classes = x.shape[1]
        positions_shape = x.shape[:1] + x.shape[2:]                     # (N, d1, ..., dk)
        logits = np.moveaxis(x, 1, -1).reshape(-1, classes)             # (M, C), M = N * d1 * ... * dk
        w = np.ones(classes, x.dtype) if self.weight is None else self.weight.astype(x.dtype)
        if w.shape != (classes,):
            raise ValueError(f"CrossEntropyLoss: weight has {w.shape[0]} entries for {classes} classes")
        smoothing = self.label_smoothing

        if np.issubdtype(target.dtype, np.floating) and target.shape == x.shape:
            probs = np.moveaxis(target, 1, -1).reshape(-1, classes).astype(x.dtype)   # (M, C)
            q = w * ((1 - smoothing) * probs + smoothing / classes)
            total = logits.shape[0]
        elif np.issubdtype(target.dtype, np.integer):
            if target.shape != positions_shape:
                raise ValueError(f"CrossEntropyLoss: target of class indices must have shape {positions_shape} "
                                 f"for input {x.shape}, got {target.shape}")
            labels = target.reshape(-1).astype(np.int64)                 # (M,)
            kept = labels != self.ignore_index
            bad = labels[kept & ((labels < 0) | (labels >= classes))]
            if bad.size:
                raise ValueError(f"CrossEntropyLoss: target class {bad[0]} is out of range for {classes} classes")
            labels = np.where(kept, labels, 0)
            q = np.zeros_like(logits)
            q[np.arange(labels.size), labels] = 1 - smoothing
            q += smoothing / classes
            q *= w * kept[:, None]
            total = float(w[labels][kept].sum(dtype=np.float64))
        else:
            raise TypeError(f"CrossEntropyLoss: target must hold integer class indices of shape {positions_shape} "
                            f"or floating-point probabilities of shape {x.shape}, "
                            f"got dtype {target.dtype} and shape {target.shape}")

        # Stable log-softmax: shift by the row maximum before exponentiating.
        shifted = logits - logits.max(axis=1, keepdims=True)              # (M, C)
        exp = np.exp(shifted)
        sum_exp = exp.sum(axis=1, keepdims=True)                           # (M, 1)
        log_p = shifted - np.log(sum_exp)
        losses = -(q * log_p).sum(axis=1)                                  # (M,)
        losses_shape = () if unbatched else positions_shape
        self._saved = (exp / sum_exp, q, total, np.shape(input), losses_shape)
        return self._reduce(losses.reshape(losses_shape), total)

    def backward(self, grad_output=1.0):
        p, q, total, input_shape, losses_shape = self._saved_or_raise()
        upstream = self._upstream(grad_output, losses_shape, total, p.dtype).reshape(-1, 1)   # (M, 1)
        grad = (p * q.sum(axis=1, keepdims=True) - q) * upstream                              # (M, C)
        if len(input_shape) == 1:
            return grad.reshape(input_shape)
        moved = input_shape[:1] + input_shape[2:] + input_shape[1:2]       # (N, d1, ..., dk, C)
        return np.moveaxis(grad.reshape(moved), -1, 1)

    def extra_repr(self):
        return (f"ignore_index={self.ignore_index}, reduction={self.reduction!r}, "
                f"label_smoothing={self.label_smoothing}")


class MSELoss(_Loss):
    """Mean squared error ``(input - target) ** 2`` per element, as ``torch.nn.MSELoss``
    (``input`` and ``target`` of the same shape; ``'mean'`` divides by the element count).
    The gradient with respect to ``input`` is ``2 * (input - target)``, scaled by the reduction."""

    def __init__(self, reduction="mean"):
        super().__init__(reduction)

    def forward(self, input, target):
        x = _float_input("MSELoss", input)
        target = np.asarray(target)
        if target.shape != x.shape:
            raise ValueError(f"MSELoss: target shape {target.shape} must equal input shape {x.shape}")
        diff = x - target.astype(x.dtype)
        self._saved = diff
        return self._reduce(diff * diff, diff.size)

    def backward(self, grad_output=1.0):
        diff = self._saved_or_raise()
        return 2 * diff * self._upstream(grad_output, diff.shape, diff.size, diff.dtype)
