"""The layer base class: parameters, buffers, children, state dicts and the backward contract.

A :class:`Module` works like ``torch.nn.Module`` without autograd.  ``module(x)`` runs
:meth:`Module.forward`, which keeps what its backward needs on the module (the latest call
only; layers name it ``self._saved``).  ``module.backward(grad_output)`` then returns the
gradient with respect to that call's input and adds the gradients of the module's own parameters to their ``.grad``
(``+=``, as PyTorch accumulates; :meth:`Module.zero_grad` clears them).  A module applied
twice before its backward therefore gives the gradient of the second call only: to share
weights, use two modules and add their gradients.
"""

import collections

import numpy as np

DEFAULT_DTYPE = np.float32


class Parameter:
    """A trainable array: ``data`` (a NumPy array, updated in place) and ``grad`` (None or
    an array of the same shape, accumulated by backward passes)."""

    __slots__ = ("data", "grad")

    def __init__(self, data, dtype=None):
        self.data = np.array(data, dtype=dtype or DEFAULT_DTYPE, order="C")
        self.grad = None

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    def accumulate(self, grad):
        """Add ``grad`` (the parameter's shape) to ``.grad``."""
        grad = np.asarray(grad)
        if grad.shape != self.data.shape:
            raise ValueError(f"Parameter.accumulate: gradient shape {grad.shape} "
                             f"does not match the parameter's shape {self.data.shape}")
        if self.grad is None:
            self.grad = grad.astype(self.data.dtype, copy=True)
        else:
            self.grad += grad

    def __repr__(self):
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer, container and model (see the module docstring)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_buffers", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    # -- attributes: parameters, buffers and children are registered by assignment --------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call Module.__init__() before assigning {name!r}")
        if isinstance(value, Parameter):
            table = self._parameters
        elif isinstance(value, Module):
            table = self._modules
        elif name in self._buffers:
            self._buffers[name] = np.asarray(value)
            return
        else:
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
            object.__setattr__(self, name, value)
            return
        for entries in (self._parameters, self._buffers, self._modules):
            entries.pop(name, None)
        self.__dict__.pop(name, None)
        table[name] = value

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            entries = self.__dict__.get(table, {})
            if name in entries:
                return entries[name]
        if name == "_saved":  # what forward keeps for backward (every layer's convention)
            raise RuntimeError(f"{type(self).__name__}.backward: called before forward, nothing to differentiate")
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def register_buffer(self, name, array):
        """Register a non-trainable array (kept in the state dict, e.g. BatchNorm's running
        statistics)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = np.asarray(array)

    # -- running ------------------------------------------------------------------------------
    def forward(self, *inputs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def backward(self, grad_output):
        raise NotImplementedError(f"{type(self).__name__} does not define backward")

    def __call__(self, *inputs, **kwargs):
        return self.forward(*inputs, **kwargs)

    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode on this module and its children."""
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        """Clear every parameter's gradient (to None, as PyTorch's ``set_to_none=True``)."""
        for p in self.parameters():
            p.grad = None

    def to(self, dtype):
        """Cast the parameters and floating-point buffers to ``dtype``, in place; returns self."""
        for module in self.modules():
            for p in module._parameters.values():
                p.data = p.data.astype(dtype)
                p.grad = None if p.grad is None else p.grad.astype(dtype)
            for name, b in module._buffers.items():
                if np.issubdtype(b.dtype, np.floating):
                    module._buffers[name] = b.astype(dtype)
        return self

    # -- walking the tree ------------------------------------------------------------------
    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_modules(self, prefix=""):
        """``(name, module)`` for this module (name ``prefix``) and every descendant, depth first."""
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        return (m for _, m in self.named_modules())

    def _named(self, table, prefix):
        """``(dotted name, entry)`` of every module's ``table`` (``_parameters`` or ``_buffers``)."""
        for path, module in self.named_modules(prefix):
            for name, entry in getattr(module, table).items():
                yield (f"{path}.{name}" if path else name), entry

    def named_parameters(self, prefix=""):
        return self._named("_parameters", prefix)

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def named_buffers(self, prefix=""):
        return self._named("_buffers", prefix)

    # -- state dicts ---------------------------------------------------------------------------
    def state_dict(self):
        """Every parameter and buffer by its dotted name, in PyTorch's order and with its key
        names (each module's parameters, then its buffers, then its children's).  The values
        are the live arrays, as PyTorch's are the live tensors: copy them to keep a snapshot."""
        state = collections.OrderedDict()
        for path, module in self.named_modules():
            dot = f"{path}." if path else ""
            for name, p in module._parameters.items():
                state[dot + name] = p.data
            for name, b in module._buffers.items():
                state[dot + name] = b
        return state

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays (NumPy arrays, or anything ``numpy.asarray`` takes) into the parameters
        and buffers of the same names, cast to their dtypes.

        With ``strict=True`` (the default, as PyTorch), missing or unexpected keys raise
        ValueError naming them all; a wrongly shaped entry always does.  Nothing is changed
        unless every entry is accepted.  Returns ``(missing_keys, unexpected_keys)``.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        values = {k: np.asarray(state_dict[k]) for k in own if k in state_dict}
        wrong = [f"{k}: expected {own[k].shape}, got {v.shape}" for k, v in values.items()
                 if v.shape != own[k].shape]
        problems = []
        if strict and missing:
            problems.append(f"missing keys {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected}")
        if wrong:
            problems.append(f"wrong shapes ({'; '.join(wrong)})")
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + ", ".join(problems))
        for k, v in values.items():
            np.copyto(own[k], v, casting="unsafe")
        return IncompatibleKeys(missing, unexpected)

    # -- printing ------------------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not self._modules:
            return head + ")"
        lines = [head]
        for name, child in self._modules.items():
            child_lines = repr(child).splitlines()
            lines.append(f"  ({name}): " + child_lines[0])
            lines.extend("  " + line for line in child_lines[1:])
        return "\n".join(lines) + "\n)"
