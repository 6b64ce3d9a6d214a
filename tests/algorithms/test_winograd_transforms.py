"""The Cook-Toom construction of Winograd's F(m, r) transforms, checked exactly and numerically."""

from fractions import Fraction

import numpy as np
import pytest

from npconv.algorithms.winograd_transforms import POINTS, check_transforms, cook_toom, transforms


@pytest.mark.parametrize("m, r, points", [
    (2, 3, POINTS[:3]), (4, 3, POINTS[:5]), (6, 3, POINTS[:7]), (3, 2, POINTS[:3]), (7, 2, POINTS[:7]),
    (2, 2, (0, 1)), (3, 2, (0, 1, -1)), (2, 5, (0, 1, -1, 2, -2)), (1, 3, (0, 1)),
])
def test_cook_toom_is_exact_for_any_filter_size(m, r, points):
    at, g, bt = cook_toom(m, r, points)
    n = m + r - 1
    assert (len(at), len(at[0]), len(g), len(g[0]), len(bt), len(bt[0])) == (m, n, n, r, n, n)
    check_transforms(m, r, at, g, bt)  # raises if any unit pair is wrong
    rng = np.random.default_rng(0)
    d, w = rng.integers(-9, 9, n), rng.integers(-9, 9, r)
    y = [sum(at[i][j] * sum(g[j][k] * w[k] for k in range(r)) * sum(bt[j][s] * d[s] for s in range(n))
             for j in range(n)) for i in range(m)]
    assert y == [sum(int(w[k]) * int(d[i + k]) for k in range(r)) for i in range(m)]  # exact correlation


def test_a_wrong_matrix_entry_is_detected():
    at, g, bt = cook_toom(4, 3, POINTS[:5])
    bt[2][1] += Fraction(1, 7)
    with pytest.raises(ValueError, match=r"winograd: F\(4, 3\) transforms are wrong for g=e\d, d=e\d"):
        check_transforms(4, 3, at, g, bt)


@pytest.mark.parametrize("points", [(0, 1), (0, 1, 1)])
def test_cook_toom_needs_distinct_points_of_the_right_count(points):
    with pytest.raises(ValueError, match=r"cook_toom: F\(2, 3\) needs 3 distinct finite points"):
        cook_toom(2, 3, points)


@pytest.mark.parametrize("m, r", [(2, 3), (4, 3), (6, 3), (3, 2), (5, 2), (7, 2)])
def test_float_transforms_compute_2d_correlation(m, r):
    at, g, bt = transforms(m, r)
    n = m + r - 1
    rng = np.random.default_rng(m)
    d, w = rng.standard_normal((n, n)), rng.standard_normal((r, r))
    y = at @ ((g @ w @ g.T) * (bt @ d @ bt.T)) @ at.T  # (m, m)
    expected = np.array([[np.sum(d[i:i + r, j:j + r] * w) for j in range(m)] for i in range(m)])
    np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-12)

