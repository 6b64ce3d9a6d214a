"""run_pieces: every piece runs once; small work stays on the calling thread, in one piece; BLAS limited while split;
helpers that spin or sleep between calls, shared by calls from several threads."""

import gc
import os
import subprocess
import sys
import threading
import time
import weakref

import numba
import numpy as np
import pytest

import npconv
from threadpoolctl import threadpool_info, threadpool_limits

from npconv import parallel
from npconv.parallel import SPLIT_ABOVE_SECONDS, run_pieces, single_threaded_blas, split, threads_for


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


def test_a_one_core_process_runs_every_piece_on_the_calling_thread():
    """With one thread there are no helpers: pieces, even unmodelled ones, run on the caller."""
    script = (
        "import threading, npconv\n"
        "from npconv.parallel import run_pieces, _helpers\n"
        "seen = set()\n"
        "run_pieces(lambda piece: seen.add(threading.get_ident()), [0, 1, 2])\n"
        "assert seen == {threading.get_ident()} and not _helpers, (seen, _helpers)\n"
    )
    env = {**os.environ, "NUMBA_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


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


def busy_helpers():
    """Keep every helper on a piece of another thread's call until the returned event is set."""
    helpers = numba.config.NUMBA_NUM_THREADS - 1
    busy, release = threading.Barrier(helpers + 2, timeout=10), threading.Event()

    def block(piece):
        busy.wait()
        release.wait(10)

    other = threading.Thread(target=run_pieces, args=(block, list(range(helpers + 1))), kwargs={"seconds": 1.0})
    other.start()
    busy.wait()  # the other thread and every helper each hold one of its pieces
    return release, other


def test_a_late_helper_keeps_nothing_of_the_call_alive():
    """With every helper busy, the caller runs every piece itself and returns; a helper that
    comes to the call later must not find it, nor hold the work's arrays (conv_backward's
    peak memory grew by a phase output per late helper on a loaded machine)."""
    if npconv.get_num_threads() < 2 or npconv.get_num_threads() < numba.config.NUMBA_NUM_THREADS:
        pytest.skip("needs every helper thread")
    release, other = busy_helpers()
    try:
        held = np.zeros(1000)
        alive = weakref.ref(held)

        def work(piece, held=held):
            held[piece] = piece

        run_pieces(work, [0, 1], seconds=1.0)
        del held, work
        gc.collect()
        assert alive() is None and not parallel._open_calls
    finally:
        release.set()
        other.join(10)


def two_at_once():
    """Pieces that each wait until two of them run at the same time: they finish only if a
    helper takes one while the caller runs another."""
    barrier, threads = threading.Barrier(2, timeout=10), []

    def work(piece):
        threads.append(threading.get_ident())
        barrier.wait()

    return work, threads


def test_a_helper_asleep_is_woken_by_the_next_call(monkeypatch):
    """Past SPIN_SECONDS without work a helper sleeps; a call then wakes it."""
    if npconv.get_num_threads() < 2:
        pytest.skip("needs a helper thread")
    monkeypatch.setattr(parallel, "SPIN_SECONDS", 1e-6)
    work, _ = two_at_once()
    run_pieces(work, [0, 1], seconds=1.0)  # the helpers exist and have worked
    deadline = time.monotonic() + 10
    while parallel._sleeping[0] < len(parallel._helpers) and time.monotonic() < deadline:
        time.sleep(1e-3)
    assert parallel._sleeping[0] == len(parallel._helpers) >= 1
    work, threads = two_at_once()
    run_pieces(work, [0, 1], seconds=1.0)
    assert len(set(threads)) == 2 and threading.get_ident() in threads


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_helpers_of_its_own():
    """The parent's helpers do not exist in a forked child: its calls must start new ones."""
    if npconv.get_num_threads() < 2:
        pytest.skip("needs a helper thread")
    work, _ = two_at_once()
    run_pieces(work, [0, 1], seconds=1.0)  # the parent's helpers exist
    pid = os.fork()
    if not pid:
        try:
            work, threads = two_at_once()
            run_pieces(work, [0, 1], seconds=1.0)
            os._exit(0 if len(set(threads)) == 2 else 1)
        except BaseException:
            os._exit(2)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_the_caller_waits_past_its_spin_for_a_long_piece(monkeypatch):
    """A helper's piece outlasting the caller's spin: the call returns only once it is done."""
    if npconv.get_num_threads() < 2:
        pytest.skip("needs a helper thread")
    monkeypatch.setattr(parallel, "SPIN_SECONDS", 1e-5)
    done, barrier = [], threading.Barrier(2, timeout=10)

    def work(piece):
        barrier.wait()  # one piece on each thread
        if threading.current_thread() is not threading.main_thread():
            time.sleep(0.05)
        done.append(piece)

    run_pieces(work, [0, 1], seconds=1.0)
    assert sorted(done) == [0, 1]


def test_calls_from_several_threads_each_run_every_piece_once():
    """Calls posted at once from several Python threads share the helpers; a piece may make a
    call of its own."""
    results, errors = {}, []

    def caller(index):
        try:
            for round_ in range(20):
                out = np.zeros(6)

                def work(piece, out=out):
                    if piece == 5:  # nested: a piece's own pieces
                        inner = np.zeros(3)
                        run_pieces(lambda i: inner.__setitem__(i, 1.0), [0, 1, 2], seconds=1.0)
                        out[piece] += inner.sum() - 2.0
                    else:
                        out[piece] += 1.0

                run_pieces(work, list(range(6)), seconds=1.0)
                results[index, round_] = out.copy()
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    callers = [threading.Thread(target=caller, args=(i,)) for i in range(4)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(60)
    assert not errors
    assert len(results) == 80 and all(np.array_equal(out, np.ones(6)) for out in results.values())


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
