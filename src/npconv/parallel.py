"""Running independent pieces of one convolution on all cores, BLAS single-threaded in each.

A kernel phase (Numba) alternating with a multi-threaded BLAS phase makes two thread
pools fight for the cores (PERFORMANCE.md: a flat ~8 ms per call).  Instead each core
takes whole pieces of work -- transform, GEMM, transform -- on a Python thread: the Numba
kernels release the GIL (``nogil=True``), NumPy releases it around BLAS, and BLAS runs
single-threaded for the duration, so each core has exactly one owner.  npconv's BLAS calls
outside the pieces run single-threaded too (:class:`single_threaded_blas`).
"""

import threading
from concurrent.futures import ThreadPoolExecutor

import numba
from threadpoolctl import ThreadpoolController

from .config import get_num_threads

# A helper thread starts on its piece 50-130 us after being called on this VM: work modelled
# below this many seconds runs on the calling thread alone.  It was 300 us while the cost
# models counted GEMMs at 180 GFLOP/s, not 300 (see .algorithms.base): the same real time.
# At 300 us with the faster GEMMs, MobileNetV2's 1x1 backward at 28x28 and 14x14 stayed on one
# thread and ran 25% slower.
SPLIT_ABOVE_SECONDS = 180e-6

_pool = None
_pool_lock = threading.Lock()


def _executor():
    """The helper threads: one fewer than the most threads, as the calling thread takes pieces too."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, numba.config.NUMBA_NUM_THREADS - 1),
                                       thread_name_prefix="npconv")
        return _pool


class single_threaded_blas:  # lower case: used like a function, ``with single_threaded_blas():``
    """BLAS runs on the calling thread alone inside ``with single_threaded_blas():`` (thread
    counts restored after).

    Every BLAS call of npconv runs inside one: a multi-threaded OpenBLAS call leaves its
    threads spinning for about 2**28 cycles, on the cores the next call's pieces need
    (after a 2048 -> 1000 fully connected layer they spun 117 ms, and ResNet-50's forward at
    batch 1 took 140 ms instead of 115).  Setting the counts through the libraries costs
    2 us; threadpoolctl's ``limit`` took 8.
    """

    _libraries = None

    def __enter__(self):
        if single_threaded_blas._libraries is None:
            single_threaded_blas._libraries = ThreadpoolController().select(user_api="blas").lib_controllers
        self._counts = [library.get_num_threads() for library in self._libraries]
        for library, count in zip(self._libraries, self._counts):
            if count != 1:
                library.set_num_threads(1)

    def __exit__(self, *exc):
        for library, count in zip(self._libraries, self._counts):
            if count != 1:
                library.set_num_threads(count)


def split(count, parts):
    """``parts`` contiguous ``(start, stop)`` ranges covering ``range(count)``, as even as possible."""
    parts = max(1, min(parts, count))
    return [(count * i // parts, count * (i + 1) // parts) for i in range(parts)]


def threads_for(seconds):
    """How many pieces to cut work modelled at ``seconds`` into: one below
    :data:`SPLIT_ABOVE_SECONDS`, where :func:`run_pieces` would run them one after another on
    the calling thread anyway (one piece is one call, not several smaller ones), else
    :func:`npconv.get_num_threads`."""
    return get_num_threads() if seconds >= SPLIT_ABOVE_SECONDS else 1


def run_pieces(work, pieces, seconds=None):
    """Call ``work(piece)`` for every piece, on up to :func:`npconv.get_num_threads` threads.

    The calling thread and ``threads - 1`` helpers each take the next piece until none is
    left, and the call returns once every piece is done: the caller works instead of waiting
    for the helpers, and never waits for one that found nothing left (a helper wakes 50-130 us
    after being called on this VM).  BLAS is single-threaded throughout
    (:func:`single_threaded_blas`).  ``seconds``, the cost models' time for all the pieces:
    below :data:`SPLIT_ABOVE_SECONDS` they run one after another on the calling thread instead.
    The first exception a piece raises is raised here, after every piece has run.
    """
    with single_threaded_blas():
        if len(pieces) <= 1 or (seconds is not None and seconds < SPLIT_ABOVE_SECONDS):
            for piece in pieces:
                work(piece)
            return
        remaining, lock, finished = iter(pieces), threading.Lock(), threading.Event()
        left, errors = [len(pieces)], []
        # Dropped once every piece has run: a helper that wakes after that (queued behind
        # another call's) must not keep ``work`` -- and the arrays it holds -- alive meanwhile.
        job = [work]

        def take_pieces():
            while True:
                with lock:
                    piece, run = next(remaining, remaining), job[0]  # the iterator itself: none left
                if piece is remaining:
                    return
                try:
                    run(piece)
                except BaseException as exc:  # raised by the caller, once every piece has run
                    errors.append(exc)
                with lock:
                    left[0] -= 1
                    if not left[0]:
                        finished.set()

        for _ in range(min(len(pieces), get_num_threads()) - 1):
            _executor().submit(take_pieces)
        take_pieces()
        finished.wait()
        job[0] = None
        if errors:
            raise errors[0]
