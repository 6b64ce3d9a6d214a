"""phase_winograd: the sub-pixel phases of 4x4/2 transposed convolutions by Winograd F(4, 2),
each phase on its own tiles, against PyTorch; where it applies and when ``auto`` takes it."""

import numpy as np
import pytest

import npconv
from npconv import phase_winograd, transpose
from npconv.geometry import conv_transpose_geometry
from npconv.transpose import phase_plan

from .conftest import tolerance
from .test_transpose import torch_conv_transpose


def geometry(x_shape, w_shape, dtype=np.float32, **params):
    params = {"stride": 2, "padding": 1, "output_padding": 0, "groups": 1, "dilation": 1, **params}
    return conv_transpose_geometry("test", x_shape, w_shape, None, output_size=None, dtype=np.dtype(dtype), **params)


def why_not(geom, precision):
    _, reached, grid = phase_plan(geom)
    return phase_winograd.why_unsupported(geom, reached, grid, precision)


@pytest.fixture
def forced(monkeypatch):
    """The sub-pixel path takes the per-phase Winograd wherever it applies; counts its runs."""
    runs = []
    real_run = phase_winograd.run
    monkeypatch.setattr(transpose, "phasewise", lambda geom: why_not(geom, npconv.get_precision()) is None)
    monkeypatch.setattr(phase_winograd, "run", lambda *args: runs.append(1) or real_run(*args))
    return runs


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("x_shape, w_shape, params", [
    ((2, 8, 8, 8), (8, 16, 4, 4), {}),  # 8x8 phases: whole F(4, 2) tiles
    ((3, 5, 7, 6), (5, 32, 4, 4), {}),  # phases of 7 and 6: tiles clipped at the output's edges
    ((1, 4, 1, 1), (4, 16, 4, 4), {"padding": 0}),  # one input value: every phase a 2x2 window
    ((2, 6, 5, 9), (6, 16, 4, 4), {"padding": 2, "output_padding": 1}),  # phases of unequal counts
    ((2, 8, 6, 6), (8, 16, 4, 4), {"groups": 2}),  # groups, C_in != C_out
    ((1, 3, 4, 5), (3, 16, 4, 4), {"padding": (1, 0)}),  # a different padding per dim
])
def test_matches_torch(rng, forced, dtype, x_shape, w_shape, params):
    x = rng.standard_normal(x_shape).astype(dtype)
    w = rng.standard_normal(w_shape).astype(dtype)
    b = rng.standard_normal(w_shape[1] * params.get("groups", 1)).astype(dtype)
    x_before = x.copy()
    y = npconv.conv_transpose2d(x, w, b, stride=2, algo="subpixel", **params)
    assert forced  # the per-phase path ran
    expected = torch_conv_transpose(x, w, b, stride=2, **params)
    assert y.shape == expected.shape and y.dtype == dtype
    # F(4, 2)'s float32 error (points 0, 1, -1, 2): within F(4, 3)'s bound of test_winograd
    bound = {"rtol": 0, "atol": 2e-5 * np.abs(expected).max()} if dtype == np.float32 else tolerance(dtype, w.shape)
    np.testing.assert_allclose(y, expected, **bound)
    np.testing.assert_array_equal(x, x_before)


@pytest.mark.parametrize("threads", [1, 2])
def test_tile_blocks_and_threads(rng, forced, monkeypatch, threads):
    monkeypatch.setattr(phase_winograd, "BLOCK_BYTES", 1)  # blocks of 8 tiles: several per thread
    monkeypatch.setattr(transpose, "threads_for", lambda seconds: threads)
    monkeypatch.setattr(phase_winograd, "threads_for", lambda seconds: threads)
    x, w = rng.standard_normal((5, 4, 9, 7)), rng.standard_normal((4, 8, 4, 4))
    y = npconv.conv_transpose2d(x, w, stride=2, padding=1, algo="subpixel")
    assert forced
    np.testing.assert_allclose(y, torch_conv_transpose(x, w, stride=2, padding=1), **tolerance(np.float64, w.shape))


@pytest.mark.parametrize("x_shape, w_shape, params, precision, reason", [
    ((1, 4, 5, 5), (4, 16, 4, 4), {}, "highest", "the precision policy 'highest' allows no Winograd"),
    ((1, 4, 5, 5), (4, 16, 3, 3), {}, "high", "it needs a 2-d stride-2 layer whose phases stack on one grid"),
    ((1, 4, 5, 5), (4, 16, 4, 4), {"stride": 1}, "high", "it needs a 2-d stride-2 layer"),
    ((1, 4, 5, 5), (4, 16, 4, 2), {"dilation": (1, 2)}, "high", "it needs taps in all four phases, got 2"),
    ((1, 4, 5, 5), (4, 16, 6, 6), {}, "high", "it needs 2x2 sub-kernels at dilation 1"),
    ((1, 4, 5, 5), (4, 16, 4, 4), {"padding": 4}, "high", "it needs the whole input"),
    ((1, 4, 5, 5), (4, 12, 4, 4), {}, "high", "it needs whole vectors of output channels per group, got 12"),
])
def test_declines_with_reason(x_shape, w_shape, params, precision, reason):
    geom = geometry(x_shape, w_shape, **params)
    assert why_not(geom, precision).startswith(reason)


def test_two_reached_phases_run_stacked(rng, forced):
    """Dilation 2 in one dim leaves two of the four phases without taps: the stacked
    convolution runs them (and the bias fills the others), not this path."""
    x, w, b = rng.standard_normal((2, 4, 5, 6)), rng.standard_normal((4, 16, 4, 2)), rng.standard_normal(16)
    y = npconv.conv_transpose2d(x, w, b, stride=2, padding=1, dilation=(1, 2), algo="subpixel")
    assert not forced
    np.testing.assert_allclose(y, torch_conv_transpose(x, w, b, stride=2, padding=1, dilation=(1, 2)),
                               **tolerance(np.float64, w.shape))


def test_auto_takes_it_on_dcgans_middle_layer_but_not_under_highest():
    geom = geometry((8, 128, 16, 16), (128, 64, 4, 4))
    threads, precision = npconv.get_num_threads(), npconv.get_precision()
    try:
        npconv.set_num_threads(2)
        assert transpose.phasewise(geom)
        assert transpose.auto_path(geom) == "subpixel"
        npconv.set_precision("highest")
        assert not transpose.phasewise(geom)
    finally:
        npconv.set_precision(precision)
        npconv.set_num_threads(threads)
