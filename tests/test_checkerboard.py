"""``npconv.checkerboard_score`` and the ``npconv demo checkerboard`` study."""

import numpy as np
import pytest

import npconv
from npconv import checkerboard, cli


def test_score_extremes():
    n = 32
    u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    constant = np.full((1, 1, n, n), 3.0)
    smooth = (np.sin(2 * np.pi * (2 * u + v) / n) + np.cos(2 * np.pi * 3 * v / n))[None, None]
    checker = ((-1.0) ** (u + v))[None, None]
    assert npconv.checkerboard_score(constant, 2) == 0.0
    assert npconv.checkerboard_score(smooth, 2) < 1e-4
    assert npconv.checkerboard_score(checker, 2) > 0.99
    assert npconv.checkerboard_score(5 + checker, 2) > 0.99  # an offset is no variation
    assert npconv.checkerboard_score(checker, 1) == 0.0  # stride 1 has no aliasing frequencies
    # a period-3 pattern scores at stride 3, per dim
    stripes = np.tile([0.0, 1.0, 0.0], 8)[None, None, None, :] * np.ones((1, 1, 16, 1))  # (1, 1, 16, 24)
    assert npconv.checkerboard_score(stripes, (1, 3)) > 0.99
    assert npconv.checkerboard_score(stripes, (3, 1)) < 1e-3


def test_score_rises_with_the_pattern():
    n = 32
    u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    smooth = np.sin(2 * np.pi * (u + 2 * v) / n)[None, None]
    checker = ((-1.0) ** (u + v))[None, None]
    scores = [npconv.checkerboard_score(smooth + a * checker, 2) for a in (0.0, 0.05, 0.2, 1.0)]
    assert scores == sorted(scores) and scores[0] < 1e-4 < scores[1]


def test_score_1d_and_3d_and_dtypes():
    y1 = np.tile([1.0, -1.0], 10)[None, None]  # (1, 1, 20)
    assert npconv.checkerboard_score(y1, 2) > 0.99
    assert npconv.checkerboard_score(y1.astype(np.float16), 2) > 0.99
    y3 = np.ones((2, 1, 16, 16, 16))
    y3[..., ::2, ::2, ::2] += 1  # one phase of 8 brighter
    assert npconv.checkerboard_score(y3, 2) > 0.99


def test_score_of_huge_and_non_finite_values():
    """The score of a pattern does not change at 1e300 (its squares would overflow); a NaN or an
    infinity anywhere gives NaN, not a score."""
    n = 32
    u, v = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    y = (np.sin(2 * np.pi * u / n) + 0.3 * (-1.0) ** (u + v))[None, None]
    assert npconv.checkerboard_score(1e300 * y, 2) == pytest.approx(npconv.checkerboard_score(y, 2), rel=1e-12)
    for bad in (np.nan, np.inf, -np.inf):
        z = y.copy()
        z[0, 0, 3, 5] = bad
        assert np.isnan(npconv.checkerboard_score(z, 2))


def test_demo_cases_are_ordered():
    """Positive weights: uneven overlap (3x3/2) > even overlap (4x4/2) > resize-convolution ~ 0.
    Zero-mean weights: both transposed convolutions show the pattern, resize-convolution does not."""
    x = checkerboard.smooth_input()
    positive = {case: npconv.checkerboard_score(y, 2) for case, y in checkerboard.demo_outputs(
        x, checkerboard.WEIGHTS["uniform [0, 1)"]).items()}
    t3, t4, nearest, bilinear = (positive[case] for case in checkerboard.CASES)
    assert t3 > 0.5 and t3 > 2 * t4 and t4 > 10 * max(nearest, bilinear)
    assert max(nearest, bilinear) < 0.01
    zero_mean = {case: npconv.checkerboard_score(y, 2) for case, y in checkerboard.demo_outputs(
        x, checkerboard.WEIGHTS["normal (zero mean)"]).items()}
    t3, t4, nearest, bilinear = (zero_mean[case] for case in checkerboard.CASES)
    assert min(t3, t4) > 0.5 and max(nearest, bilinear) < 0.05


def test_demo_cli_prints_scores_and_writes_png(capsys, tmp_path):
    out = tmp_path / "checkerboard.png"
    cli.main(["demo", "checkerboard", "--out", str(out)])
    printed = capsys.readouterr().out
    for case in checkerboard.CASES:
        assert case in printed
    assert "uniform [0, 1)" in printed and f"wrote {out}" in printed
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_cli_without_png(capsys):
    cli.main(["demo", "checkerboard"])
    assert "wrote" not in capsys.readouterr().out


def test_demo_cli_rejects_unknown_demo(capsys):
    with pytest.raises(SystemExit):
        cli.main(["demo", "moire"])
    assert "invalid choice: 'moire' (choose from 'checkerboard')" in capsys.readouterr().err
