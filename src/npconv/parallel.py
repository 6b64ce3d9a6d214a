"""Running independent pieces of one convolution on all cores, BLAS single-threaded in each.

A kernel phase (Numba) alternating with a multi-threaded BLAS phase makes two thread
pools fight for the cores (PERFORMANCE.md: a flat ~8 ms per call).  Instead each core
takes whole pieces of work -- transform, GEMM, transform -- on a Python thread: the Numba
kernels release the GIL (``nogil=True``), NumPy releases it around BLAS, and BLAS runs
single-threaded for the duration, so each core has exactly one owner.  npconv's BLAS calls
outside the pieces run single-threaded too (:class:`single_threaded_blas`).

The helper threads are npconv's own.  Between calls each one spins for :data:`SPIN_SECONDS`,
without the GIL, watching for the next call's pieces, and only then sleeps: on this VM a
thread woken from sleep starts 50-130 us later, one that spins 25-30 us (the time it waits
for the GIL while the caller starts on its own piece), so a layer's pieces are worth sharing
from about a tenth of a millisecond of work on (OpenMP runtimes, PyTorch's among them, spin
the same way).
"""

import os
import threading
import time

import numba
import numpy as np
from numba import njit, types
from numba.extending import intrinsic
from threadpoolctl import ThreadpoolController

from .config import get_num_threads

# Work modelled below this many seconds runs on the calling thread alone.  A spinning helper
# starts on its piece 25-30 us after the caller posts it (it needs the GIL, which the caller
# holds until its own piece releases it), and the caller learns the last piece is done about
# 10 us after it is.  With helpers that slept (50-130 us) it was 180 us; at 90 the 1x1,
# depthwise and grouped layers of ``npconv bench`` ran 3%, 7% and 8% faster than at 180
# (geometric means; 60 measured the same as 90).
SPLIT_ABOVE_SECONDS = 90e-6

# How long a helper spins for the next call after its last piece before it sleeps.  Back to
# back layers of a network, with the Python between them, follow each other well within it.
SPIN_SECONDS = 2e-3


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

    The calling thread and up to ``threads - 1`` helpers each take the next piece until none
    is left, and the call returns once every piece is done: the caller works instead of
    waiting for the helpers, and never waits for one that found nothing left.  BLAS is
    single-threaded throughout (:func:`single_threaded_blas`).  ``seconds``, the cost models'
    time for all the pieces: below :data:`SPLIT_ABOVE_SECONDS` they run one after another on
    the calling thread instead.  The first exception a piece raises is raised here, after
    every piece has run.
    """
    with single_threaded_blas():
        helpers = min(len(pieces), get_num_threads()) - 1
        if helpers < 1 or (seconds is not None and seconds < SPLIT_ABOVE_SECONDS):
            for piece in pieces:
                work(piece)
            return
        call = _Call(work, pieces, helpers)
        _post(call)
        done = call.take_pieces()
        # Spin until the helpers' pieces are done too; past SPIN_SECONDS, in short sleeps.
        reads = _spins()
        if not _count_down_and_spin(call.unfinished, done, call.unfinished, True, reads):
            while not _count_down_and_spin(call.unfinished, 0, call.unfinished, True, reads // 20 + 1):
                time.sleep(SPIN_SECONDS / 20)
        if call.errors:
            raise call.errors[0]


class _Call:
    """One :func:`run_pieces` call's pieces, taken one at a time by the threads running them."""

    def __init__(self, work, pieces, helpers):
        self.work, self.remaining, self.helpers = work, iter(pieces), helpers  # helpers that may still join
        self.unfinished = np.array([len(pieces)], dtype=np.int64)  # counted down without the GIL
        self.errors = []

    def take_pieces(self):
        """Run the next piece until none is left; returns how many of those run here are not yet
        counted off ``unfinished``: the last one, which the thread counts off as it stops
        holding the GIL (:func:`_count_down_and_spin`), so the thread waiting for it need not
        wait for the GIL too."""
        done = 0
        while True:
            with _lock:
                piece, work = next(self.remaining, self.remaining), self.work  # the iterator itself: none left
                if piece is self.remaining:
                    self.work = None  # a helper still holding the call must not keep its arrays alive
                    _withdraw(self)
                    return done
            if done:
                _count_down(self.unfinished, done)
            try:
                work(piece)
            except BaseException as exc:  # raised by the caller, once every piece has run
                self.errors.append(exc)
            done = 1


# Calls with pieces left and room for a helper, oldest first, and their count as the helpers
# read it while spinning; both change under _lock, which also guards every call's pieces.
_lock = threading.Condition()
_open_calls = []
_open_count = np.zeros(1, dtype=np.int64)
_sleeping = [0]


def _post(call):
    """Offer ``call``'s pieces to the helpers, waking any that sleep."""
    if len(_helpers) < numba.config.NUMBA_NUM_THREADS - 1:
        _start_helpers()
    with _lock:
        _open_calls.append(call)
        _open_count[0] = len(_open_calls)
        if _sleeping[0]:
            _lock.notify(call.helpers)


def _join():
    """The oldest open call, one more helper on it (under _lock); None if there is none."""
    if not _open_calls:
        return None
    call = _open_calls[0]
    call.helpers -= 1
    if not call.helpers:
        _withdraw(call)
    return call


def _withdraw(call):
    """No more helpers for ``call`` (under _lock)."""
    if call in _open_calls:
        _open_calls.remove(call)
        _open_count[0] = len(_open_calls)


def _helper():
    """A helper thread's life: take pieces of open calls; with none open, spin a while, then sleep."""
    unfinished, done = np.zeros(1, dtype=np.int64), 0
    while True:
        with _lock:
            call = _join()
        if call is not None:
            done = call.take_pieces()
            unfinished, call = call.unfinished, None  # only its counter held while spinning or asleep
            continue
        found = _count_down_and_spin(unfinished, done, _open_count, False, _spins())
        done = 0
        if not found:
            with _lock:
                while not _open_calls:
                    _sleeping[0] += 1
                    _lock.wait()
                    _sleeping[0] -= 1


_helpers = []
_helpers_lock = threading.Lock()
_spins_per_second = []


def _forget_helpers():
    """In a forked child: the helpers did not come along (only the forking thread does), nor
    did the calls they served, and a lock may have been held by one of them."""
    global _lock, _helpers_lock
    _lock, _helpers_lock = threading.Condition(), threading.Lock()
    _open_calls.clear()
    _open_count[0] = _sleeping[0] = 0
    _helpers.clear()


os.register_at_fork(after_in_child=_forget_helpers)


def _start_helpers():
    """Start the helper threads, one fewer than the most threads npconv may use, after timing
    the spin (:func:`_spins`)."""
    with _helpers_lock:
        if not _spins_per_second:
            reads, zero = 1 << 20, np.zeros(1, dtype=np.int64)
            _count_down_and_spin(zero, 0, zero, False, 1)  # compiled or loaded before timing
            start = time.perf_counter()
            _count_down_and_spin(zero, 0, zero, False, reads)
            _spins_per_second.append(reads / max(time.perf_counter() - start, 1e-9))
        while len(_helpers) < numba.config.NUMBA_NUM_THREADS - 1:
            helper = threading.Thread(target=_helper, name=f"npconv-{len(_helpers)}", daemon=True)
            helper.start()
            _helpers.append(helper)


def _spins():
    """How many reads :func:`_count_down_and_spin` makes in :data:`SPIN_SECONDS`."""
    return max(1, int(SPIN_SECONDS * _spins_per_second[0]))


@intrinsic
def _load_acquire(typingctx, counter):
    """``counter[0]`` of a 1-d int64 array, read afresh from memory each time (an atomic load):
    a plain read in a loop that writes nothing may be read once and kept in a register."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.load_atomic(data, "acquire", 8)

    return types.int64(counter), codegen


@intrinsic
def _subtract_release(typingctx, counter, amount):
    """``counter[0] -= amount`` of a 1-d int64 array as one atomic step, after every write before it."""

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        builder.atomic_rmw("sub", data, args[1], "release")
        return context.get_dummy_value()

    return types.void(counter, types.int64), codegen


@njit(cache=True)
def _count_down(unfinished, done):
    """``unfinished[0] -= done``, atomically, holding the GIL (no hand-over to another thread)."""
    _subtract_release(unfinished, done)


@njit(cache=True, nogil=True)
def _count_down_and_spin(unfinished, done, watched, until_zero, reads):
    """Subtract ``done`` from ``unfinished[0]`` (atomically, after every write before it), then
    read ``watched[0]`` up to ``reads`` times, without the GIL, until it is zero
    (``until_zero``) or non-zero: whether it came to that."""
    _subtract_release(unfinished, done)
    for _ in range(reads):
        if (_load_acquire(watched) == 0) == until_zero:
            return True
    return False
