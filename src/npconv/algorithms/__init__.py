"""The registry of convolution algorithms and the selector behind ``algo="auto"``."""

import functools

from ..autotuner import TUNER
from ..config import get_num_threads, get_precision, get_workspace_limit, precision_allows
from ..reference.direct import Direct
from .base import Algorithm
from .depthwise import Depthwise, GroupedDirect
from .fft import FFT
from .im2col import Im2col
from .implicit_gemm import ImplicitGemm
from .pointwise import Pointwise
from .weight_cache import planned_frozen
from .winograd import Winograd, WinogradAuto

_WINOGRAD = (Winograd(2, "high"), Winograd(4, "high"), Winograd(6, "medium"))
REGISTRY = {alg.name: alg for alg in (Direct(), Im2col(), ImplicitGemm(), Pointwise(), Depthwise(), GroupedDirect(),
                                      WinogradAuto(_WINOGRAD), *_WINOGRAD, FFT())}


def algorithm_names():
    """Names of the registered algorithms, for ``npconv.algorithms()``."""
    return tuple(REGISTRY)


def auto_rejections(geom):
    """``{name: reason}`` for every registered algorithm: why ``auto`` passes it over for ``geom``,
    or None where it competes.  Competing: the supporting algorithms that the precision policy
    allows (:func:`npconv.set_precision`) and that have no reason of their own against it
    (:meth:`Algorithm.why_not_auto`); the reference algorithms only when no other one does."""
    policy = get_precision()
    reasons = {}
    for alg in REGISTRY.values():
        why = alg.why_unsupported(geom)
        if why is not None:
            reasons[alg.name] = f"unsupported: {why}"
        elif not precision_allows(policy, alg.accuracy):
            reasons[alg.name] = f"precision policy {policy!r} excludes its accuracy {alg.accuracy!r}"
        else:
            reasons[alg.name] = alg.why_not_auto(geom)
    if any(reason is None and not REGISTRY[name].reference for name, reason in reasons.items()):
        for name, reason in reasons.items():
            if reason is None and REGISTRY[name].reference:
                reasons[name] = "reference: auto uses it only when nothing else applies"
    return reasons


@functools.lru_cache(maxsize=4096)
def _cheapest(geom, precision, threads, workspace_limit, frozen):
    """The competing algorithm the cost models rank first, remembered per geometry and the
    settings they read, the weight's being frozen among them (ranking takes ~70 us, as long as
    a small convolution)."""
    competing = [REGISTRY[name] for name, reason in auto_rejections(geom).items() if reason is None]
    return min(competing, key=lambda alg: alg.estimated_seconds(geom)).name


def select(op, geom, algo, trial=None):
    """The algorithm to run ``geom`` with: the named one (checked) or, for ``"auto"``, the best.

    ``auto`` picks among the competing algorithms (:func:`auto_rejections`) the cheapest by
    their cost models -- or, with :func:`npconv.autotune` on and a ``trial(alg)`` that runs
    one on the call's data, the fastest measured.
    """
    if algo == "auto":
        if TUNER.enabled and trial is not None:
            competing = [REGISTRY[name] for name, reason in auto_rejections(geom).items() if reason is None]
            if len(competing) > 1:
                return REGISTRY[TUNER.choose(geom, competing, trial)]
        return REGISTRY[_cheapest(geom, get_precision(), get_num_threads(), get_workspace_limit(), planned_frozen())]
    if algo not in REGISTRY:
        raise ValueError(f"{op}: unknown algo {algo!r}; choose 'auto' or one of {', '.join(map(repr, REGISTRY))}")
    alg = REGISTRY[algo]
    alg.check(geom)
    return alg


__all__ = ["Algorithm", "REGISTRY", "algorithm_names", "auto_rejections", "select"]
