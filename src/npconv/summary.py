"""``npconv.summary``: a model's layers, their output shapes, parameters and cost, like torchinfo.

One forward pass on zeros, in evaluation mode, records every leaf module (one without
children) each time it runs.  Multiply-accumulates per call:

- convolutions (``Conv1d/2d/3d``): ``N * C_out * prod(out) * C_in/groups * prod(kernel)``;
- transposed convolutions: ``N * C_in * prod(in) * C_out/groups * prod(kernel)`` (every
  input value times every tap);
- ``Linear``: output elements x ``in_features``;
- every other layer: 0 (normalisation, activations, pooling and additions are not counted,
  as in the published figures).

Convolution layers also get the algorithm ``auto`` picks and its workspace, from
:func:`npconv.explain` under the current workspace limit and precision policy.
"""

from dataclasses import dataclass

import numpy as np

from .explain import _bytes, _dims, _si, explain
from .geometry import int_tuple


@dataclass(frozen=True)
class LayerRow:
    """One call of a leaf module.  ``params`` counts the module's own parameters on its first
    call only (0 on later calls of the same module); ``algorithm`` and ``workspace_bytes``
    are None for layers that are not convolutions."""

    name: str
    type: str
    output_shape: tuple
    params: int
    macs: int
    algorithm: str | None
    workspace_bytes: int | None


@dataclass(frozen=True)
class Summary:
    """What :func:`summary` records; ``str()`` prints the table and the totals."""

    input_shape: tuple
    dtype: np.dtype
    rows: tuple
    total_params: int
    trainable_params: int
    total_macs: int

    @property
    def total_flops(self):
        """2 x :attr:`total_macs`."""
        return 2 * self.total_macs

    def __str__(self):
        header = ("Layer (type)", "Output shape", "Params", "MACs", "Algorithm", "Workspace")
        cells = [
            (f"{r.name} ({r.type})", _dims(r.output_shape), f"{r.params:,}", f"{r.macs:,}", r.algorithm or "",
             "" if r.algorithm is None else _bytes(r.workspace_bytes))
            for r in self.rows
        ]
        widths = [max(len(row[i]) for row in (header, *cells)) for i in range(len(header))]
        right = (False, False, True, True, False, True)

        def line(row):
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(row, widths, right)).rstrip()

        rule = "=" * len(line(tuple("x" * w for w in widths)))
        largest = max((r for r in self.rows if r.workspace_bytes), key=lambda r: r.workspace_bytes, default=None)
        lines = [rule, line(header), rule, *map(line, cells), rule,
                 f"Input: {_dims(self.input_shape)} {self.dtype}",
                 f"Total params: {self.total_params:,}",
                 f"Trainable params: {self.trainable_params:,}",
                 f"Total MACs: {self.total_macs:,} ({_si(self.total_macs)}); FLOPs = 2 x MACs: {_si(self.total_flops)}"]
        if largest is not None:
            lines.append(f"Largest workspace: {_bytes(largest.workspace_bytes)} ({largest.name})")
        lines.append(rule)
        return "\n".join(lines)


def summary(model, input_shape, dtype=np.float32):
    """Run ``model`` once on zeros of ``input_shape`` and tabulate its leaf layers.

    ``model`` (an :class:`npconv.nn.Module`) runs in evaluation mode; every module's training
    flag and every leaf's ``forward`` are restored afterwards, also when the forward raises.
    The forward pass leaves its saved state on the modules, as any forward does.  Returns a
    :class:`Summary` with ``total_params`` (every parameter, counted once; buffers such as
    BatchNorm's running statistics are not parameters), ``trainable_params`` (the same: every
    ``Parameter`` is trained), ``total_macs`` and one row per leaf-module call.
    """
    from .nn.module import Module

    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be an npconv.nn.Module, got {type(model).__name__}")
    if not isinstance(input_shape, (tuple, list)):
        raise TypeError(f"summary: input_shape must be a tuple of ints, got {input_shape!r}")
    input_shape = int_tuple("summary", "input_shape", tuple(input_shape), len(input_shape), 1)
    rows, seen, installed = [], set(), []
    leaves = {}
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            leaves.setdefault(id(module), (name or type(module).__name__, module))
    modes = [(module, module.training) for module in model.modules()]
    try:
        for name, module in leaves.values():
            installed.append((module, module.__dict__.get("forward")))
            object.__setattr__(module, "forward", _recording(name, module, rows, seen))
        model.eval()
        model(np.zeros(input_shape, dtype=dtype))
    finally:
        for module, own in installed:
            if own is None:
                del module.__dict__["forward"]
            else:
                object.__setattr__(module, "forward", own)
        for module, training in modes:
            object.__setattr__(module, "training", training)
    total = sum(p.size for p in _unique(model.parameters()))
    return Summary(input_shape=input_shape, dtype=np.dtype(dtype), rows=tuple(rows), total_params=total,
                   trainable_params=total, total_macs=sum(r.macs for r in rows))


def _unique(parameters):
    """Each parameter once, however many modules share it."""
    seen = set()
    for p in parameters:
        if id(p) not in seen:
            seen.add(id(p))
            yield p


def _recording(name, module, rows, seen):
    """``module``'s own forward, adding a :class:`LayerRow` per call to ``rows``."""
    forward = module.forward

    def recording(*inputs, **kwargs):
        out = forward(*inputs, **kwargs)
        macs, algorithm, workspace = _cost(module, inputs[0] if inputs else None, out)
        params = 0 if id(module) in seen else sum(p.size for p in module.parameters())
        seen.add(id(module))
        rows.append(LayerRow(name, type(module).__name__, np.shape(out), params, macs, algorithm, workspace))
        return out

    return recording


def _cost(module, x, out):
    """``(MACs, algorithm, workspace)`` of one call of a leaf ``module`` on input ``x``."""
    from .nn import conv as layers
    from .nn.linear import Linear

    transposed = isinstance(module, (layers.ConvTranspose1d, layers.ConvTranspose2d, layers.ConvTranspose3d))
    if isinstance(module, Linear):
        return int(np.size(out)) * module.in_features, None, None
    if not transposed and not isinstance(module, (layers.Conv1d, layers.Conv2d, layers.Conv3d)):
        return 0, None, None
    weight = module.weight.data
    args = dict(bias=module.bias is not None, stride=module.stride, padding=module.padding, dilation=module.dilation,
                groups=module.groups, dtype=np.result_type(x.dtype, weight.dtype))
    if transposed:
        args.update(transposed=True, output_size=np.shape(out)[2:])
    else:
        args.update(padding_mode=module.padding_mode)
    cost = explain(np.shape(x), weight.shape, **args)
    return cost.macs, cost.algorithm, cost.workspace_bytes
