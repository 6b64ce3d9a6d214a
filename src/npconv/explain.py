"""``npconv.explain``: what one convolution costs, and which algorithm ``auto`` runs it with.

Nothing is computed on data: the shapes go through the same checks as :func:`npconv.conv`
(so the errors are the same), then the geometry's counts and the registry's own cost models
and workspace plans give the report.

Counts, for input ``(N, C_in, *in)``, weight ``(C_out, C_in/G, *kernel)``, output
``(N, C_out, *out)``::

    MACs   = N * C_out * prod(out) * C_in/G * prod(kernel)       (padding zeros included)
    FLOPs  = 2 * MACs
    params = C_out * C_in/G * prod(kernel)  (+ C_out with a bias)

so grouping divides parameters and MACs by ``G``.  A transposed convolution (``transposed=True``,
weight ``(C_in, C_out/G, *kernel)``) multiplies every input value by every tap:
``MACs = N * C_in * prod(in) * C_out/G * prod(kernel)``.

im2col's column matrix holds ``C_in * prod(kernel)`` values per output position and image
(all of it, as if unrolled at once; the algorithm itself fills it in chunks within the
workspace limit).  Arithmetic intensity is FLOPs per byte of the least memory traffic
there can be: the input, parameters and output, each moved once.

Winograd F(m x m, 3 x 3) computes an ``m x m`` output tile with ``(m + 2)^2``
multiplications per channel pair in its elementwise stage instead of ``9 m^2``: that
stage needs ``9 m^2 / (m + 2)^2`` times fewer (2.25 for m = 2, 4 for m = 4, 5.06 for m = 6;
Lavin & Gray 2016), less where partial tiles at the edges are padded.
"""

import math
from dataclasses import dataclass

import numpy as np

from .algorithms import REGISTRY, auto_rejections, select
from .algorithms.winograd import Winograd, WinogradAuto
from .autotuner import TUNER
from .col2im import col2im_seconds
from .col2im import workspace_bytes as col2im_workspace_bytes
from .col2im import why_unsupported as why_col2im_unsupported
from .config import get_precision, get_workspace_limit
from .dtypes import conv_arrays
from .geometry import conv_geometry, conv_transpose_geometry, int_tuple
from . import phase_winograd
from .transpose import auto_path, largest_counts, phase_plan, phasewise, subpixel_geometries, subpixel_seconds


@dataclass(frozen=True)
class Candidate:
    """One algorithm as ``auto`` sees it: its modelled run time and workspace where it can
    compute the convolution, and ``rejected``, why ``auto`` passes it over (None if it competes)."""

    name: str
    seconds: float | None
    workspace_bytes: int
    rejected: str | None


@dataclass(frozen=True)
class WinogradSavings:
    """F(m x m, r x r) on this geometry: ``ratio = r^2 m^2 / (m + r - 1)^2`` fewer multiplications
    in the elementwise stage per full tile; ``multiplications`` that stage actually performs
    (edge tiles padded), and ``reduction`` = direct MACs / ``multiplications``."""

    m: int
    r: int
    ratio: float
    multiplications: int
    reduction: float


@dataclass(frozen=True)
class ConvCost:
    """What :func:`explain` finds; ``str()`` prints it as a report."""

    op: str
    input_shape: tuple
    weight_shape: tuple
    output_shape: tuple
    dtype: np.dtype
    geometry: object
    weight_params: int
    bias_params: int
    macs: int
    im2col_bytes: int
    algorithm: str
    workspace_bytes: int
    workspace_limit: int
    precision: str
    candidates: tuple
    winograd: tuple

    @property
    def params(self):
        """Parameters: weight plus bias values."""
        return self.weight_params + self.bias_params

    @property
    def flops(self):
        """Floating-point operations, counted as 2 x MACs (one multiply and one add each)."""
        return 2 * self.macs

    @property
    def minimal_bytes(self):
        """Input, parameters and output, each moved once, at ``dtype``."""
        values = math.prod(self.input_shape) + self.params + math.prod(self.output_shape)
        return values * self.dtype.itemsize

    @property
    def arithmetic_intensity(self):
        """FLOPs per byte of :attr:`minimal_bytes`."""
        return self.flops / self.minimal_bytes if self.minimal_bytes else 0.0

    def __str__(self):
        g = self.geometry
        pads = tuple(lo if lo == hi else (lo, hi) for lo, hi in g.padding)
        lines = [
            f"{self.op} input {_dims(self.input_shape)}, weight {_dims(self.weight_shape)}, {self.dtype} "
            f"(stride {_one(g.stride)}, padding {_one(pads)}, dilation {_one(g.dilation)}, groups {g.groups})",
            f"  output                {_dims(self.output_shape)}",
            f"  parameters            {self.params:,} (weight {self.weight_params:,} + bias {self.bias_params:,})",
            f"  MACs                  {self.macs:,} ({_si(self.macs)} multiply-accumulates)",
            f"  FLOPs                 {self.flops:,} ({_si(self.flops)}, 2 x MACs)",
            f"  im2col columns        {_bytes(self.im2col_bytes)} (whole column matrix, unrolled at once)",
            f"  arithmetic intensity  {self.arithmetic_intensity:.1f} FLOPs/byte "
            f"(input + parameters + output = {_bytes(self.minimal_bytes)})",
        ]
        for w in self.winograd:
            lines.append(f"  {f'winograd F({w.m},{w.r})':<22}{w.ratio:.2f}x fewer multiplications per tile, "
                         f"{w.reduction:.2f}x here ({w.multiplications:,})")
        lines.append(f"  auto picks            {self.algorithm}: workspace {_bytes(self.workspace_bytes)} "
                     f"(limit {_bytes(self.workspace_limit)}), precision policy {self.precision!r}")
        if TUNER.enabled:
            lines.append("  (autotune is on: a measured choice may differ from the cost models')")
        lines.append("  candidates            modelled time, workspace")
        for c in self.candidates:
            cost = "" if c.seconds is None else f"{c.seconds * 1e3:9.3f} ms  {_bytes(c.workspace_bytes):>10}"
            note = "chosen" if c.name == self.algorithm.split(" ")[0] else (c.rejected or "")
            lines.append(f"    {c.name:<12}{cost:<24}  {note}".rstrip())
        return "\n".join(lines)


def explain(input_shape, weight_shape, *, bias=True, stride=1, padding=0, dilation=1, groups=1,
            padding_mode="zeros", dtype=np.float32, transposed=False, output_padding=0, output_size=None):
    """The cost of a convolution of these shapes and arguments, without running it.

    Arguments as :func:`npconv.conv` (``bias`` says whether there is one); with
    ``transposed=True`` as :func:`npconv.conv_transpose` (weight ``(C_in, C_out/groups,
    *kernel)``, ``output_padding``, ``output_size``).  The checks and their errors are
    conv's (conv_transpose's).  Returns a :class:`ConvCost`: output shape, parameters,
    MACs and FLOPs, im2col's column bytes, arithmetic intensity, Winograd's savings where
    it applies, and the algorithm ``auto`` would choose by the cost models under the
    current workspace limit and precision policy, with every algorithm's modelled time
    and workspace or the reason ``auto`` rejects it.
    """
    op = "conv_transpose" if transposed else "conv"
    x = _placeholder(op, "input_shape", input_shape, dtype)
    w = _placeholder(op, "weight_shape", weight_shape, dtype)
    x, w, _, compute, _ = conv_arrays(op, None, x, w, None, "")
    args = dict(stride=stride, padding=padding, dilation=dilation, groups=groups, dtype=compute)
    if transposed:
        if padding_mode != "zeros":
            raise ValueError(f"{op}: transposed convolutions pad with zeros only, got padding_mode={padding_mode!r}")
        geom = conv_transpose_geometry(op, x.shape, w.shape, None, output_padding=output_padding,
                                       output_size=output_size, **args)
        algorithm, workspace, candidates, winograd = _transposed_choice(geom)
    else:
        if output_padding != 0 or output_size is not None:
            raise ValueError(f"{op}: output_padding and output_size apply to transposed convolutions only "
                             f"(transposed=True), got output_padding={output_padding!r}, output_size={output_size!r}")
        geom, _ = conv_geometry(op, x.shape, w.shape, None, padding_mode=padding_mode, **args)
        algorithm, workspace, candidates, winograd = _conv_choice(geom)
    return ConvCost(
        op=op, input_shape=x.shape, weight_shape=w.shape, output_shape=geom.out_shape, dtype=x.dtype,
        geometry=geom, weight_params=w.size, bias_params=geom.out_channels if bias else 0, macs=geom.macs,
        im2col_bytes=_im2col_bytes(geom), algorithm=algorithm, workspace_bytes=workspace,
        workspace_limit=get_workspace_limit(), precision=get_precision(), candidates=candidates, winograd=winograd,
    )


def _placeholder(op, name, shape, dtype):
    """A read-only zero-stride array of ``shape`` (no memory), for conv's own array checks."""
    if not isinstance(shape, (tuple, list)):
        raise TypeError(f"{op}: {name} must be a tuple of ints, got {shape!r}")
    shape = int_tuple(op, name, tuple(shape), len(shape), 0)
    return np.broadcast_to(np.zeros((), dtype=dtype), shape)


def _im2col_bytes(geom):
    """The whole column matrix: ``C_in * prod(kernel)`` values per output position and image
    (for a transposed convolution, the equivalent stride-1 convolution's over the output)."""
    return geom.batch * geom.in_channels * math.prod(geom.kernel) * math.prod(geom.out_size) * geom.dtype.itemsize


def _conv_choice(geom):
    """``(algorithm, workspace, candidates, winograd savings)``: the choice is :func:`select`'s,
    the reasons :func:`auto_rejections`'s (the ones select goes by)."""
    chosen = select("conv", geom, "auto")
    candidates = []
    for name, rejected in auto_rejections(geom).items():
        alg = REGISTRY[name]
        modelled = alg.why_unsupported(geom) is None
        candidates.append(Candidate(name, alg.estimated_seconds(geom) if modelled else None,
                                    alg.workspace_bytes(geom) if modelled else None, rejected))
    candidates.sort(key=lambda c: (c.seconds is None, c.rejected is not None, c.seconds or 0.0))
    name = f"{chosen.name} ({chosen.pick(geom).name})" if isinstance(chosen, WinogradAuto) else chosen.name
    return name, chosen.workspace_bytes(geom), tuple(candidates), _winograd_savings(geom)


def _winograd_savings(geom):
    variants = [alg for alg in REGISTRY.values() if isinstance(alg, Winograd) and alg.why_unsupported(geom) is None]
    savings = []
    for alg in sorted(variants, key=lambda v: v.m):
        (m, r), n = alg.sizes(geom), alg.tile
        tiles = math.prod(-(-o // m) for o in geom.out_size)
        multiplications = geom.batch * tiles * n * n * geom.in_per_group * geom.out_channels
        savings.append(WinogradSavings(m, r, r * r * m * m / (n * n), multiplications, geom.macs / multiplications))
    return tuple(savings)


def _transposed_choice(geom):
    """The path ``auto`` takes (col2im, or sub-pixel stride-1 convolutions by their own ``auto``
    choices) and both paths' modelled times; the sub-pixel workspace is its largest
    convolution's, plus that convolution's output where it is copied into place (strides)."""
    convs = subpixel_geometries(geom)
    chosen = [select("conv_transpose", g, "auto") for g in convs]
    staged = any(s > 1 for s in geom.stride)
    subpixel_workspace = max((alg.workspace_bytes(g) + staged * math.prod(g.out_shape) * g.dtype.itemsize
                              for alg, g in zip(chosen, convs)), default=0)
    reason = why_col2im_unsupported(geom)
    candidates = (
        Candidate("col2im", None, None, f"unsupported: {reason}") if reason
        else Candidate("col2im", col2im_seconds(geom), col2im_workspace_bytes(geom), None),
        Candidate("subpixel", subpixel_seconds(geom), subpixel_workspace, None),
    )
    if auto_path(geom) == "col2im":
        return "col2im", col2im_workspace_bytes(geom), candidates, ()
    reached = phase_plan(geom)[1]
    phases = len(reached)
    if phasewise(geom):
        counts = largest_counts(reached)
        return (f"subpixel ({phases} phases: winograd F(4,2) on each)", phase_winograd.workspace_bytes(geom, counts),
                candidates, ())
    names = ", ".join(sorted({alg.name for alg in chosen}))
    how = "stacked in one convolution" if len(convs) < phases else "phases"
    return f"subpixel ({phases} {how}: {names})", subpixel_workspace, candidates, ()


def _dims(shape):
    return "x".join(map(str, shape))


def _one(values):
    """A per-dim tuple as one value when all dims agree."""
    return values[0] if len(set(values)) == 1 else values


def _si(n):
    for scale, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n}"


def _bytes(n):
    for scale, unit in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
