"""The registry of convolution algorithms and the selector behind ``algo="auto"``."""

from ..autotuner import TUNER
from ..config import get_precision, precision_allows
from ..reference.direct import Direct
from .base import Algorithm
from .depthwise import Depthwise, GroupedDirect
from .fft import FFT
from .im2col import Im2col
from .pointwise import Pointwise
from .winograd import Winograd, WinogradAuto

_WINOGRAD = (Winograd(2, "high"), Winograd(4, "high"), Winograd(6, "medium"))
REGISTRY = {alg.name: alg for alg in (Direct(), Im2col(), Pointwise(), Depthwise(), GroupedDirect(), WinogradAuto(_WINOGRAD), *_WINOGRAD, FFT())}


def algorithm_names():
    """Names of the registered algorithms, for ``npconv.algorithms()``."""
    return tuple(REGISTRY)


def select(op, geom, algo, trial=None):
    """The algorithm to run ``geom`` with: the named one (checked) or, for ``"auto"``, the best.

    ``auto`` considers the supporting algorithms that the precision policy allows
    (:func:`npconv.set_precision`), the reference algorithms only when no other supports
    the geometry, and picks the cheapest by their cost models -- or, with
    :func:`npconv.autotune` on and a ``trial(alg)`` that runs one on the call's data, the
    fastest measured.
    """
    if algo == "auto":
        policy = get_precision()
        supported = [
            alg for alg in REGISTRY.values()
            if precision_allows(policy, alg.accuracy) and alg.why_unsupported(geom) is None
        ]
        fast = [alg for alg in supported if not alg.reference] or supported
        if TUNER.enabled and trial is not None and len(fast) > 1:
            return REGISTRY[TUNER.choose(geom, fast, trial)]
        return min(fast, key=lambda alg: alg.estimated_seconds(geom))
    if algo not in REGISTRY:
        raise ValueError(f"{op}: unknown algo {algo!r}; choose 'auto' or one of {', '.join(map(repr, REGISTRY))}")
    alg = REGISTRY[algo]
    alg.check(geom)
    return alg


__all__ = ["Algorithm", "REGISTRY", "algorithm_names", "select"]
