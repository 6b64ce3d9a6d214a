"""Differential tests of ``npconv.interpolate`` against ``torch.nn.functional.interpolate``."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

import npconv

MODE_RANKS = {"nearest": (1, 2, 3), "nearest-exact": (1, 2, 3), "linear": (1,), "bilinear": (2,),
              "bicubic": (2,), "trilinear": (3,)}
CASES = [(mode, rank) for mode, ranks in MODE_RANKS.items() for rank in ranks]
ALIGN = {"nearest": (None,), "nearest-exact": (None,)}  # the interpolating modes take None, False, True


def torch_interpolate(x, **kwargs):
    return F.interpolate(torch.from_numpy(np.ascontiguousarray(x)), **kwargs).numpy()


def assert_matches_torch(x, **kwargs):
    expected = torch_interpolate(x, **kwargs)
    actual = npconv.interpolate(x, **kwargs)
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    tol = {np.dtype(np.float64): 1e-12, np.dtype(np.float32): 1e-5, np.dtype(np.float16): 2e-3}[actual.dtype]
    np.testing.assert_allclose(actual.astype(np.float64), expected.astype(np.float64), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode, rank", CASES)
@pytest.mark.parametrize("size", [1, 3, 4, 6, 10, 11])
def test_sizes(rng, mode, rank, size):
    """Down, same, up by an integer factor (PyTorch's special cases for nearest 2-d) and odd ratios."""
    x = rng.standard_normal((2, 3, *(5, 3, 4)[:rank]))
    for align_corners in ALIGN.get(mode, (None, False, True)):
        assert_matches_torch(x, size=(size, 6, 3)[:rank], mode=mode, align_corners=align_corners)


@pytest.mark.parametrize("mode, rank", CASES)
@pytest.mark.parametrize("scale", [0.5, 0.6, 1.0, 1.1, 4 / 3, 1.5, 2.0, 2.1, 3.0])
def test_scale_factors(rng, mode, rank, scale):
    """The given scale is what the sampling uses (1.1 on 5 keeps the size but moves the samples)."""
    x = rng.standard_normal((1, 2, *(5, 7, 3)[:rank]))
    for align_corners in ALIGN.get(mode, (None, False, True)):
        assert_matches_torch(x, scale_factor=scale, mode=mode, align_corners=align_corners)


@pytest.mark.parametrize("mode, rank", [c for c in CASES if c[0] in ("nearest", "bilinear", "bicubic", "trilinear")])
def test_per_dim_size_and_scale(rng, mode, rank):
    x = rng.standard_normal((2, 1, *(4, 6, 5)[:rank]))
    assert_matches_torch(x, size=(7, 3, 10)[:rank], mode=mode)
    assert_matches_torch(x, scale_factor=(2.0, 0.5, 1.5)[:rank], mode=mode)


@pytest.mark.parametrize("mode, rank", CASES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_dtypes(rng, mode, rank, dtype):
    x = rng.standard_normal((1, 2, *(5, 4, 3)[:rank])).astype(dtype)
    if dtype == np.float16:  # computed in float32 and rounded back, as torch's CPU kernel does
        expected = torch_interpolate(x.astype(np.float32), scale_factor=2.5, mode=mode).astype(np.float16)
        actual = npconv.interpolate(x, scale_factor=2.5, mode=mode)
        assert actual.dtype == np.float16
        np.testing.assert_allclose(actual.astype(np.float32), expected.astype(np.float32), rtol=2e-3, atol=2e-3)
    else:
        assert_matches_torch(x, scale_factor=2.5, mode=mode)


def test_input_unmodified_and_views_accepted(rng):
    base = rng.standard_normal((2, 3, 8, 10))
    x = base[:, ::2, 1::2, ::-1]  # (2, 2, 4, 10), non-contiguous
    before = base.copy()
    for mode in ("nearest", "bilinear", "bicubic"):
        assert_matches_torch(x, scale_factor=1.5, mode=mode)
        out = npconv.interpolate(x, size=x.shape[2:], mode=mode)
        assert not np.shares_memory(out, base)
    np.testing.assert_array_equal(base, before)


def test_nearest_any_rank(rng):
    """nearest and nearest-exact work for 4 spatial dims too: the same index rule per dim."""
    x = rng.standard_normal((1, 1, 2, 3, 2, 3))
    out = npconv.interpolate(x, scale_factor=2, mode="nearest")
    np.testing.assert_array_equal(out, x.repeat(2, 2).repeat(2, 3).repeat(2, 4).repeat(2, 5))
    out = npconv.interpolate(x, size=(3, 3, 3, 3), mode="nearest-exact")
    index = [np.minimum(np.floor((np.arange(3) + 0.5) * n / 3).astype(int), n - 1) for n in x.shape[2:]]
    np.testing.assert_array_equal(out, x[np.ix_([0], [0], *index)])


# Input and output sizes where some nearest position falls on a whole number, so that its
# rounding decides the index: 195 -> 689 (53 * 195/689 = 15), 2 -> 141, 44 -> 517, 54 -> 92 at
# scale 1.71, 14 -> 14 at 1.069 (PyTorch's 2-d kernel copies), 4 -> 8 at 2.2 (2-d: i // 2).
WHOLE_POSITIONS = [(195, 689, None), (2, 141, None), (44, 517, None), (54, None, 1.71), (14, None, 1.069),
                   (4, None, 2.2), (2, 661, None), (10, 205, None), (152, 28, None), (129, None, 0.86),
                   (16, None, 3.7), (186, None, 3.7), (9, 423, None)]


@pytest.mark.parametrize("mode", ["nearest", "nearest-exact"])
@pytest.mark.parametrize("rank", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nearest_indices_where_positions_are_whole(mode, rank, dtype):
    """The copied indices exactly as PyTorch's kernels round them: its generic kernel in the
    compute dtype, its 2-d kernel (outputs with OH + OW <= 128) in float32 -- 2-d input 2 or
    120 wide, to take either."""
    for in_size, out_size, scale in WHOLE_POSITIONS:
        for width in (2, 120) if rank == 2 else (2,):
            shape = (1, 4, in_size, *(width, 3)[: rank - 1])
            x = np.broadcast_to(np.arange(in_size, dtype=dtype).reshape(in_size, *(1,) * (rank - 1)), shape).copy()
            kwargs = ({"size": (out_size, *shape[3:])} if scale is None
                      else {"scale_factor": (scale, *(1.0,) * (rank - 1))})
            np.testing.assert_array_equal(npconv.interpolate(x, mode=mode, **kwargs),
                                          torch_interpolate(x, mode=mode, **kwargs))


@settings(max_examples=80, deadline=None)
@given(
    st.sampled_from(CASES), st.integers(0, 2**32 - 1), st.data(),
)
def test_hypothesis_matches_torch(case, seed, data):
    mode, rank = case
    in_size = tuple(data.draw(st.integers(1, 9)) for _ in range(rank))
    x = np.random.default_rng(seed).standard_normal((1, 2, *in_size))
    if data.draw(st.booleans()):
        kwargs = {"size": tuple(data.draw(st.integers(1, 20)) for _ in range(rank))}
    else:
        scales = tuple(data.draw(st.floats(0.2, 4.0)) for _ in range(rank))
        if any(math.floor(i * s) < 1 for i, s in zip(in_size, scales)):
            return
        kwargs = {"scale_factor": scales}
    align_corners = data.draw(st.sampled_from(ALIGN.get(mode, (None, False, True))))
    assert_matches_torch(x, mode=mode, align_corners=align_corners, **kwargs)
