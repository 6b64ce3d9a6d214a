"""Running independent pieces of one convolution on all cores, BLAS single-threaded in each.

A kernel phase (Numba) alternating with a multi-threaded BLAS phase makes two thread
pools fight for the cores (PERFORMANCE.md: a flat ~8 ms per call).  Instead each core
takes whole pieces of work -- transform, GEMM, transform -- on a Python thread: the Numba
kernels release the GIL (``nogil=True``), NumPy releases it around BLAS, and BLAS runs
single-threaded for the duration, so each core has exactly one owner.
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
from threadpoolctl import ThreadpoolController

# Handing pieces to the pool's threads costs about 100 us a call on this VM (waking them and
# waiting for them): work modelled below this many seconds runs on the calling thread alone.
SPLIT_ABOVE_SECONDS = 300e-6

_pool = None
_pool_lock = threading.Lock()
_blas = None


def _executor():
    global _pool, _blas
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=numba.config.NUMBA_NUM_THREADS, thread_name_prefix="npconv")
            _blas = ThreadpoolController().select(user_api="blas")
        return _pool, _blas


def split(count, parts):
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(count)``, as even as possible."""
    parts = max(1, min(parts, count))
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]


def threads_for(seconds):
    """How many pieces to cut work modelled at ``seconds`` into: one below
    :data:`SPLIT_ABOVE_SECONDS`, where :func:`run_pieces` would run them one after another on
    the calling thread anyway (one piece is one call, not several smaller ones), else
    :func:`npconv.get_num_threads`."""
    return numba.get_num_threads() if seconds >= SPLIT_ABOVE_SECONDS else 1


def run_pieces(work, pieces, seconds=None):
    """Call ``work(piece)`` for every piece, one per thread of :func:`npconv.get_num_threads`.

    BLAS is single-threaded while the pieces run (when there is more than one).  ``seconds``,
    the cost models' time for all the pieces: below :data:`SPLIT_ABOVE_SECONDS` they run one
    after another on the calling thread instead.
    """
    if len(pieces) <= 1 or (seconds is not None and seconds < SPLIT_ABOVE_SECONDS):
        for piece in pieces:
            work(piece)
        return
    pool, blas = _executor()
    with blas.limit(limits=1):
        for future in [pool.submit(work, piece) for piece in pieces]:
            future.result()
