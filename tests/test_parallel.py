"""run_pieces: every piece runs once; small work stays on the calling thread, in one piece; BLAS limited while split."""

import gc
import threading
import weakref

import numba
import numpy as np
import pytest

import npconv
from threadpoolctl import threadpool_info, threadpool_limits

from npconv.parallel import SPLIT_ABOVE_SECONDS, _executor, run_pieces, single_threaded_blas, split, threads_for


@pytest.mark.parametrize("count, parts", [(10, 3), (2, 5), (0, 2), (7, 1)])
def test_split_covers_the_range_evenly(count, parts):
    spans = split(count, parts)
    assert [i for a, b in spans for i in range(a, b)] == list(range(count))
    sizes = [b - a for a, b in spans]
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("seconds, on_caller_only", [(SPLIT_ABOVE_SECONDS / 10, True), (None, False), (1.0, False)])
def test_small_work_runs_on_the_calling_thread(seconds, on_caller_only):
    if not on_caller_only and npconv.get_num_threads() < 2:
        pytest.skip("two pieces at once need two threads")
    done, threads = [], set()
    barrier = threading.Barrier(2, timeout=10) if not on_caller_only else None

    def work(piece):
        threads.add(threading.get_ident())
        if barrier is not None:
            barrier.wait()  # both pieces at once: only possible on two threads
        done.append(piece)

    run_pieces(work, [(0, 1), (1, 2)], seconds=seconds)
    assert sorted(done) == [(0, 1), (1, 2)]
    assert (threads == {threading.get_ident()}) == on_caller_only


def test_every_piece_runs_once_with_more_pieces_than_threads():
    done, lock = [], threading.Lock()

    def work(piece):
        with lock:
            done.append(piece)

    run_pieces(work, list(range(11)), seconds=1.0)
    assert sorted(done) == list(range(11))


def test_a_pieces_exception_is_raised_once_every_piece_has_run():
    done, lock = [], threading.Lock()

    def work(piece):
        if piece == 2:
            raise ValueError("piece 2 failed")
        with lock:
            done.append(piece)

    with pytest.raises(ValueError, match="piece 2 failed"):
        run_pieces(work, list(range(6)), seconds=1.0)
    assert sorted(done) == [0, 1, 3, 4, 5]


def test_a_late_helper_keeps_nothing_of_the_call_alive():
    """With the helper busy, the caller runs every piece itself and returns; the helper's
    queued task, which runs later, must not hold the work's arrays (conv_backward's peak
    memory grew by a phase output per queued task on a loaded machine)."""
    if npconv.get_num_threads() < 2:
        pytest.skip("needs a helper thread")
    helpers = numba.config.NUMBA_NUM_THREADS - 1  # as many as _executor has: every one kept busy
    busy, release = threading.Barrier(helpers + 1, timeout=10), threading.Event()
    for _ in range(helpers):
        _executor().submit(lambda: (busy.wait(), release.wait(10)))
    busy.wait()
    try:
        held = np.zeros(1000)
        alive = weakref.ref(held)

        def work(piece, held=held):
            held[piece] = piece

        run_pieces(work, [0, 1], seconds=1.0)
        del held, work
        gc.collect()
        assert alive() is None
    finally:
        release.set()


def test_small_work_is_cut_into_one_piece():
    assert threads_for(SPLIT_ABOVE_SECONDS / 10) == 1
    assert threads_for(SPLIT_ABOVE_SECONDS) == npconv.get_num_threads()


def blas_thread_counts():
    """Thread counts of the BLAS libraries single_threaded_blas controls (those loaded when it
    was first used: NumPy's; the tests load others later), read afresh by threadpoolctl."""
    with single_threaded_blas():  # loads the list
        paths = {library.filepath for library in single_threaded_blas._libraries}
    return [pool["num_threads"] for pool in threadpool_info() if pool["filepath"] in paths]


def test_blas_is_single_threaded_inside_and_restored_after():
    with threadpool_limits(2, user_api="blas"):  # every BLAS loaded
        before = blas_thread_counts()
        with single_threaded_blas():
            inside = blas_thread_counts()
            with single_threaded_blas():  # nested: still one, and the outer count comes back
                pass
            assert blas_thread_counts() == inside
        assert before == [2] * len(before) and inside == [1] * len(before)
        assert blas_thread_counts() == before


def test_pieces_run_with_single_threaded_blas():
    counts = []
    run_pieces(lambda piece: counts.append(blas_thread_counts()), [0, 1], seconds=1.0)
    run_pieces(lambda piece: counts.append(blas_thread_counts()), [0], seconds=0.0)
    assert all(count == [1] * len(count) for count in counts) and len(counts) == 3
