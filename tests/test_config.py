"""Process-wide settings: thread count (Numba and BLAS together) and workspace cap."""

import threading

import numba
import pytest
from threadpoolctl import threadpool_info

import npconv


def blas_thread_counts():
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


@pytest.fixture
def restore_threads():
    original = npconv.get_num_threads()
    yield original
    npconv.set_num_threads(original)
    assert npconv.get_num_threads() == original


def test_set_num_threads_sets_numba_and_blas(restore_threads):
    if not blas_thread_counts():
        pytest.skip("threadpoolctl sees no BLAS library")
    assert restore_threads == numba.get_num_threads()
    npconv.set_num_threads(1)
    assert npconv.get_num_threads() == 1 == numba.get_num_threads()
    assert blas_thread_counts() == {1}
    npconv.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert npconv.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    assert blas_thread_counts() == {numba.config.NUMBA_NUM_THREADS}


def test_thread_count_holds_in_every_python_thread(restore_threads):
    """Numba's count is per thread; npconv's is the process's: a thread started after
    set_num_threads(1) runs its calls on one thread too."""
    npconv.set_num_threads(1)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(npconv.get_num_threads()))
    worker.start()
    worker.join()
    assert seen == [1]


def test_set_workspace_limit_returns_old_cap(workspace_limit):
    original = npconv.get_workspace_limit()
    assert workspace_limit(12345) == original
    assert npconv.get_workspace_limit() == 12345
    assert npconv.set_workspace_limit(1) == 12345
    assert npconv.get_workspace_limit() == 1
