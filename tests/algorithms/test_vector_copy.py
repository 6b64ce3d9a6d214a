"""vector_copy: row copies, deals and their inverse, stride-2 reads and block transposes against NumPy slicing,
every length around the vector width, and nothing written outside."""

import numpy as np
import pytest
from numba import njit

from npconv.algorithms import vector_copy

LENGTHS = [0, 1, 7, 15, 16, 17, 31, 32, 33, 40]


@njit(cache=True)
def _copy(dst, d, src, s, n):
    vector_copy.copy(dst, d, src, s, n)


@njit(cache=True)
def _deal(even, e, odd, o, src, s, n):
    vector_copy.deal(even, e, odd, o, src, s, n)


@njit(cache=True)
def _evens(dst, d, src, s, n):
    vector_copy.evens(dst, d, src, s, n)


@njit(cache=True)
def _weave(dst, d, even, e, odd, o, n):
    vector_copy.weave(dst, d, even, e, odd, o, n)


@njit(cache=True)
def _transpose(dst, d, d_stride, src, s, s_stride, rows, cols):
    vector_copy.transpose(dst, d, d_stride, src, s, s_stride, rows, cols)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copy_matches_slicing(rng, n, dtype):
    src = rng.standard_normal(n + 9).astype(dtype)
    dst = np.full(n + 12, np.nan, dtype=dtype)
    _copy(dst, 5, src, 3, n)
    expected = np.full_like(dst, np.nan)
    expected[5 : 5 + n] = src[3 : 3 + n]
    np.testing.assert_array_equal(dst, expected)  # NaN where nothing was to be written


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_deal_matches_slicing(rng, n, dtype):
    src = rng.standard_normal(2 * n + 9).astype(dtype)
    buf = np.full(2 * n + 20, np.nan, dtype=dtype)  # both phases in one buffer, as the kernels hold them
    _deal(buf, 3, buf, n + 11, src, 5, n)
    expected = np.full_like(buf, np.nan)
    expected[3 : 3 + n] = src[5 : 5 + 2 * n : 2]
    expected[n + 11 : 2 * n + 11] = src[6 : 6 + 2 * n : 2]
    np.testing.assert_array_equal(buf, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transpose_matches_numpy_for_every_block_size(rng, dtype):
    lanes = 64 // np.dtype(dtype).itemsize
    for rows in range(lanes + 1):
        for cols in range(lanes + 1):
            src = rng.standard_normal(3 + lanes * 19).astype(dtype)  # rows 19 apart
            dst = np.full(7 + lanes * 21, np.nan, dtype=dtype)  # rows 21 apart
            _transpose(dst, 7, 21, src, 3, 19, rows, cols)
            expected = np.full_like(dst, np.nan)
            block = src[3 : 3 + rows * 19].reshape(rows, 19)[:, :cols]  # (rows, cols)
            expected[7 : 7 + cols * 21].reshape(cols, 21)[:, :rows] = block.T
            np.testing.assert_array_equal(dst, expected, err_msg=f"{rows} x {cols}")  # NaN: nothing else written


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_evens_matches_slicing(rng, n, dtype):
    src = rng.standard_normal(max(5 + 2 * n - 1, 0)).astype(dtype)  # ends at the last value read
    dst = np.full(n + 12, np.nan, dtype=dtype)
    _evens(dst, 4, src, 5, n)
    expected = np.full_like(dst, np.nan)
    expected[4 : 4 + n] = src[5 : 5 + 2 * n : 2]
    np.testing.assert_array_equal(dst, expected)


@pytest.mark.parametrize("n", LENGTHS + [2 * 16 + 1, 64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_weave_matches_slicing(rng, n, dtype):
    even = rng.standard_normal(3 + (n + 1) // 2).astype(dtype)
    odd = rng.standard_normal(6 + n // 2).astype(dtype)
    dst = np.full(n + 14, np.nan, dtype=dtype)
    _weave(dst, 5, even, 3, odd, 6, n)
    expected = np.full_like(dst, np.nan)
    expected[5 : 5 + n : 2] = even[3:]
    expected[6 : 5 + n : 2] = odd[6:]
    np.testing.assert_array_equal(dst, expected)
