"""tile_transform: ``A X A^T`` of every Winograd variant's transform matrices against NumPy, per lane, with
strided tiles, partial vectors and nothing written outside."""

import numpy as np
import pytest
from numba import njit

from npconv.algorithms import tile_transform
from npconv.algorithms.winograd import coefficients
from npconv.algorithms.winograd_transforms import transforms

# (m, r) of the forward's variants: F(2,3), F(4,3), F(6,3) and their 2x2 counterparts on the same tiles
VARIANTS = [(2, 3), (4, 3), (6, 3), (3, 2), (5, 2), (7, 2)]


@njit(cache=True)
def _transform(mat, dst, d, d_row, d_col, src, s, s_row, s_col, count):
    tile_transform.transform(mat, dst, d, d_row, d_col, src, s, s_row, s_col, count)


def _check(rng, mat, dtype, count):
    """One tile of ``count`` lanes, laid out with gaps in both strides of source and destination."""
    h, k = mat.shape
    lanes = 64 // np.dtype(dtype).itemsize
    s, s_row, s_col = 5, 3 * lanes * k, 2 * lanes  # gaps between a row's vectors and between rows
    d, d_row, d_col = 11, 2 * lanes * h + 3, lanes + 1
    src = rng.standard_normal(s + k * s_row + lanes).astype(dtype)
    dst = np.full(d + h * d_row + lanes, np.nan, dtype=dtype)
    _transform(coefficients(mat, np.dtype(dtype)), dst, d, d_row, d_col, src, s, s_row, s_col, count)
    x = np.stack([[src[s + p * s_row + q * s_col:][:count] for q in range(k)] for p in range(k)])  # (k, k, count)
    y = np.einsum("ap,pql,bq->abl", mat, x.astype(np.float64), mat)  # (h, h, count)
    expected = np.full(dst.shape, np.nan)
    for a in range(h):
        for b in range(h):
            expected[d + a * d_row + b * d_col:][:count] = y[a, b]
    tol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(dst, expected, rtol=tol, atol=tol * np.abs(y).max())  # NaN: nothing else written


@pytest.mark.parametrize("m, r", VARIANTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_input_output_and_gradient_transforms_match_numpy(rng, m, r, dtype):
    at, _, bt = transforms(m, r)
    lanes = 64 // np.dtype(dtype).itemsize
    for mat in (bt, at, at.T):  # forward input (n x n), forward output (m x n), weight gradient's (n x m)
        for count in (lanes, 1, lanes - 3):
            _check(rng, mat, dtype, count)


def test_a_count_of_zero_writes_nothing(rng):
    _, _, bt = transforms(2, 3)
    src = rng.standard_normal(64).astype(np.float32)
    dst = np.full(80, np.nan, dtype=np.float32)
    _transform(coefficients(bt, np.dtype(np.float32)), dst, 0, 16, 4, src, 0, 16, 4, 0)
    assert np.isnan(dst).all()
