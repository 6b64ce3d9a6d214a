"""Process-wide settings: the workspace cap and the thread count.

This is the one place that sets threads, for Numba's kernels and BLAS together, so the
two pools never oversubscribe the cores.
"""

import os

import numba
from threadpoolctl import threadpool_limits

DEFAULT_WORKSPACE_LIMIT = 64 * 2**20
_workspace_limit = int(os.environ.get("NPCONV_WORKSPACE_LIMIT", DEFAULT_WORKSPACE_LIMIT))


def set_workspace_limit(nbytes):
    """Cap the scratch memory (bytes) an algorithm may allocate per call; returns the old cap."""
    global _workspace_limit
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 1:
        raise ValueError(f"set_workspace_limit: nbytes must be a positive int, got {nbytes!r}")
    old, _workspace_limit = _workspace_limit, nbytes
    return old


def get_workspace_limit():
    """The scratch-memory cap in bytes (default 64 MiB, or ``$NPCONV_WORKSPACE_LIMIT``)."""
    return _workspace_limit


PRECISIONS = ("highest", "high", "medium")
_precision = "high"


def set_precision(policy):
    """Which inexact algorithms ``auto`` may use; returns the old policy.

    ``"highest"``: only methods exact up to float rounding (no Winograd, no FFT);
    ``"high"`` (default): also Winograd F(2,3), F(4,3) and FFT; ``"medium"``: also F(6,3).
    An algorithm named explicitly with ``algo=`` runs whatever the policy.
    """
    global _precision
    if policy not in PRECISIONS:
        raise ValueError(f"set_precision: policy must be one of {', '.join(map(repr, PRECISIONS))}, got {policy!r}")
    old, _precision = _precision, policy
    return old


def get_precision():
    """The precision policy ``auto`` follows (see :func:`set_precision`)."""
    return _precision


def precision_allows(policy, accuracy):
    """Whether an algorithm of ``accuracy`` (a policy name) may run under ``policy``."""
    return PRECISIONS.index(accuracy) <= PRECISIONS.index(policy)


# npconv's own count, for every Python thread: Numba's is per thread (a thread started after
# set_num_threads would see Numba's default), and npconv's pieces run on threads of its own.
_num_threads = numba.config.NUMBA_NUM_THREADS


def set_num_threads(n):
    """Use ``n`` threads for npconv's calls (from any Python thread), for Numba (in the calling
    thread) and for BLAS."""
    global _num_threads
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= numba.config.NUMBA_NUM_THREADS:
        raise ValueError(
            f"set_num_threads: n must be an int in [1, {numba.config.NUMBA_NUM_THREADS}], got {n!r}"
        )
    numba.set_num_threads(n)
    threadpool_limits(limits=n, user_api="blas")
    _num_threads = n


def get_num_threads():
    """The thread count npconv's calls use, whichever Python thread makes them (BLAS is kept
    equal by :func:`set_num_threads`); by default Numba's, ``NUMBA_NUM_THREADS``."""
    return _num_threads
