"""The registry of convolution algorithms and the selector behind ``algo="auto"``."""

from ..config import get_precision, precision_allows
from ..reference.direct import Direct
from .base import Algorithm
from .depthwise import Depthwise
from .im2col import Im2col
from .pointwise import Pointwise
from .winograd import Winograd, WinogradAuto

_WINOGRAD = (Winograd(2, "high"), Winograd(4, "high"), Winograd(6, "medium"))
REGISTRY = {alg.name: alg for alg in (Direct(), Im2col(), Pointwise(), Depthwise(), WinogradAuto(_WINOGRAD), *_WINOGRAD)}


def algorithm_names():
    """Names of the registered algorithms, for ``npconv.algorithms()``."""
    return tuple(REGISTRY)


def select(op, geom, algo):
    """The algorithm to run ``geom`` with: the named one (checked) or, for ``"auto"``, the cheapest.

    ``auto`` ranks the supporting algorithms that the precision policy allows
    (:func:`npconv.set_precision`) by their cost model, and considers the reference
    algorithms only when no other supports the geometry.
    """
    if algo == "auto":
        policy = get_precision()
        supported = [
            alg for alg in REGISTRY.values()
            if precision_allows(policy, alg.accuracy) and alg.why_unsupported(geom) is None
        ]
        fast = [alg for alg in supported if not alg.reference] or supported
        return min(fast, key=lambda alg: alg.estimated_seconds(geom))
    if algo not in REGISTRY:
        raise ValueError(f"{op}: unknown algo {algo!r}; choose 'auto' or one of {', '.join(map(repr, REGISTRY))}")
    alg = REGISTRY[algo]
    alg.check(geom)
    return alg


__all__ = ["Algorithm", "REGISTRY", "algorithm_names", "select"]
