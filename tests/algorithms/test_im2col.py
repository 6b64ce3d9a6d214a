"""im2col specifics: how it fills and chunks the column matrix under the workspace cap."""

import math

import numpy as np
import pytest
import torch

import npconv

from npconv.algorithms import REGISTRY
from npconv.algorithms import im2col
from npconv.algorithms.im2col import chunking, fill_columns, gather_columns, splits_outputs, weight_gradient
from npconv.geometry import conv_geometry
from npconv.parallel import split, threads_for

from ..conftest import torch_conv

GEOMETRIES = {
    # name: (x shape, weight shape, params)
    "1d": ((3, 2, 17), (4, 2, 3), {"stride": 2, "padding": 1}),
    "2d": ((5, 3, 9, 7), (4, 3, 3, 3), {"dilation": 2, "padding": "same"}),
    "3d-groups": ((2, 4, 5, 4, 6), (2, 2, 2, 3, 2), {"groups": 2}),
    "batch0": ((0, 3, 6, 6), (4, 3, 3, 3), {}),
}
LIMITS = [1, 100, 1024, 4096, 10_000, 2**20, 2**30]


def geometry(name, dtype):
    x_shape, w_shape, params = GEOMETRIES[name]
    params = {"stride": 1, "padding": 0, "dilation": 1, "groups": 1, "padding_mode": "zeros", **params}
    geom, _ = conv_geometry("test", x_shape, w_shape, None, dtype=np.dtype(dtype), **params)
    return geom


FILL_CASES = {
    # name: (x shape (N, C, D, H, W), kernel, stride, dilation, (lo) padding), 3-vectors
    "2d-3x3-pad1": ((3, 2, 1, 9, 7), (1, 3, 3), (1, 1, 1), (1, 1, 1), (0, 1, 1)),
    "2d-7x7-stride2": ((2, 3, 1, 11, 12), (1, 7, 7), (1, 2, 2), (1, 1, 1), (0, 3, 3)),
    "3d-mixed": ((2, 2, 5, 6, 6), (2, 3, 2), (2, 1, 2), (1, 2, 1), (1, 0, 2)),
    "1d-stride3-dilation2": ((3, 2, 1, 1, 17), (1, 1, 3), (1, 1, 3), (1, 1, 2), (0, 0, 4)),
    "pad-beyond-input": ((2, 1, 1, 2, 3), (1, 2, 2), (1, 1, 1), (1, 1, 1), (0, 3, 4)),
}


def expected_columns(x, kernel, stride, dilation, pad, out_size, n0, nb, p0, pc):
    """The column matrix (C*K, nb, pc) by NumPy: zero-pad, then slice every kernel offset."""
    reach = [p + (o - 1) * s + (k - 1) * d + 1 for p, o, s, k, d in zip(pad, out_size, stride, kernel, dilation)]
    widths = [(0, 0), (0, 0)] + [(p, max(0, r - p - i)) for p, r, i in zip(pad, reach, x.shape[2:])]
    xp = np.pad(x[n0 : n0 + nb], widths)
    taps = []
    for offset in np.ndindex(*kernel):
        view = xp[(slice(None), slice(None), *(slice(k * d, k * d + (o - 1) * s + 1, s)
                                               for k, d, o, s in zip(offset, dilation, out_size, stride)))]
        taps.append(view.reshape(nb, x.shape[1], -1)[:, :, p0 : p0 + pc])  # (nb, C, pc)
    return np.stack(taps, axis=2).transpose(1, 2, 0, 3).reshape(-1, nb, pc)  # (C, K, nb, pc) -> (C*K, nb, pc)


@pytest.mark.parametrize("fill", [fill_columns, gather_columns], ids=["rows", "gather"])
@pytest.mark.parametrize("name", FILL_CASES)
@pytest.mark.parametrize("chunk", ["all", "one-image", "mid-row", "one-position"])
def test_fills_write_every_column(fill, name, chunk, rng):
    x_shape, kernel, stride, dilation, pad = FILL_CASES[name]
    x = rng.standard_normal(x_shape)
    out_size = [(i + 2 * p - d * (k - 1) - 1) // s + 1 for i, p, d, k, s in zip(x_shape[2:], pad, dilation, kernel, stride)]
    positions = math.prod(out_size)
    n0, nb, p0, pc = {
        "all": (0, x_shape[0], 0, positions),
        "one-image": (1, 1, 0, positions),
        "mid-row": (1, 1, out_size[2] // 2, positions - out_size[2] // 2 - 1),
        "one-position": (1, 1, positions - 1, 1),
    }[chunk]
    cols = np.full((x_shape[1] * math.prod(kernel), nb, pc), np.nan)
    params = [np.array(v, dtype=np.int64) for v in (kernel, stride, dilation, pad, out_size)]
    fill(x, cols, n0, p0, *params)
    np.testing.assert_array_equal(cols, expected_columns(x, kernel, stride, dilation, pad, out_size, n0, nb, p0, pc))


@pytest.mark.parametrize("width, gathers", [(0, False), (2**20, True)], ids=["rows", "gather"])
@pytest.mark.parametrize("name", GEOMETRIES)
def test_forward_and_weight_gradient_match_torch_with_either_fill(width, gathers, name, rng, monkeypatch):
    monkeypatch.setattr(im2col, "GATHER_BELOW_WIDTH", width)
    x_shape, w_shape, params = GEOMETRIES[name]
    geom = geometry(name, "float64")
    assert (im2col.fill_kernel(geom) is gather_columns) == gathers
    x, w = rng.standard_normal(x_shape), rng.standard_normal(w_shape)
    grad = rng.standard_normal(geom.out_shape)
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[geom.rank - 1]
    xt, wt = torch.from_numpy(x), torch.from_numpy(w).requires_grad_()
    expected = conv(xt, wt, **params)
    expected.backward(torch.from_numpy(grad))
    np.testing.assert_allclose(npconv.conv(x, w, algo="im2col", **params), expected.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(weight_gradient(x, grad, geom), wt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_chunking_fits_limit_and_covers_everything(name, dtype, limit, threads):
    geom = geometry(name, dtype)
    table = 4 * math.prod(geom.kernel) if im2col.fill_kernel(geom) is gather_columns else 0  # the gather's int32s
    column = geom.in_channels * math.prod(geom.kernel) * np.dtype(dtype).itemsize + table  # bytes per output position
    positions = math.prod(geom.out_size)
    images, chunk, used = chunking(geom, limit, threads)
    assert 1 <= used <= threads
    assert 1 <= images <= max(geom.batch, 1)
    assert 1 <= chunk <= positions
    assert images == 1 or chunk == positions  # several images only when whole
    chunks = -(-geom.batch // images) * -(-positions // chunk)
    if geom.batch and positions >= threads and column * threads <= limit:
        assert chunks >= threads and used == threads  # every thread has a chunk
    if column <= limit:  # the chunks in flight fit the cap, the output of several images' GEMM included
        staged = geom.out_channels * np.dtype(dtype).itemsize if images > 1 else 0
        assert used * images * chunk * (column + staged) <= limit
    else:
        assert (images, chunk) == (1, 1)  # below one column: one position at a time
    # The chunk grid (images x positions) covers every output exactly once.
    covered = [
        (n, p)
        for n0 in range(0, geom.batch, images)
        for p0 in range(0, positions, chunk)
        for n in range(n0, min(n0 + images, geom.batch))
        for p in range(p0, min(p0 + chunk, positions))
    ]
    assert sorted(covered) == [(n, p) for n in range(geom.batch) for p in range(positions)]


@pytest.mark.parametrize("batch", [1, 8])
@pytest.mark.parametrize("threads", [2, 3])
def test_chunks_share_the_work_evenly(batch, threads):
    """Under any cap, the threads' runs of chunks (:func:`npconv.parallel.split`, as ``run``
    shares them) carry about even shares of the outputs: the largest chunk that fit, then what
    was left, gave one thread 655 of an image's 729 positions and the other 74."""
    geom = geometry_of((batch, 32, 56, 56), (64, 32, 5, 5), stride=2, padding=1)
    positions = math.prod(geom.out_size)
    column, total = im2col.position_bytes(geom), batch * positions
    for limit in np.geomspace(column * threads, 4 * column * total, 200).astype(int):
        images, chunk, used = chunking(geom, int(limit), threads)
        sizes = [min(images, batch - n0) * min(chunk, positions - p0)
                 for n0 in range(0, batch, images) for p0 in range(0, positions, chunk)]
        busiest = max(sum(sizes[start:stop]) for start, stop in split(len(sizes), used))
        assert busiest <= 1.13 * total / used, (limit, images, chunk, used)


def geometry_of(x_shape, w_shape, **params):
    params = {"stride": 1, "padding": 1, "dilation": 1, "groups": 1, "padding_mode": "zeros", **params}
    return conv_geometry("test", x_shape, w_shape, None, dtype=np.dtype(np.float64), **params)[0]


@pytest.mark.parametrize("x_shape, w_shape, threads, splits", [
    ((1, 512, 7, 7), (512, 512, 3, 3), 2, True),  # 2 x 256 outputs by 49 positions, not 512 by 25
    ((1, 512, 7, 7), (512, 512, 3, 3), 1, False),  # one thread: nothing to share
    ((2, 512, 7, 7), (512, 512, 3, 3), 2, False),  # an image per thread
    ((1, 256, 14, 14), (256, 256, 3, 3), 2, False),  # 98 positions a thread: GEMMs as fast, the fill shared
    ((1, 1024, 7, 7), (1024, 32, 3, 3), 2, True),  # 16 groups a thread, 32 outputs by 49 positions, not 25
    ((1, 512, 14, 14), (512, 16, 3, 3), 2, False),  # 16 outputs by 98 positions: as narrow either way
])
def test_splits_outputs_where_positions_are_few(x_shape, w_shape, threads, splits):
    geom = geometry_of(x_shape, w_shape, groups=x_shape[1] // w_shape[1])
    assert splits_outputs(geom, 2**30, threads) == splits
    assert not splits_outputs(geom, 1024, threads)  # the image's columns over the cap
    if splits:  # one chunk, the whole image
        assert chunking(geom, 2**30, threads, split_outputs=True) == (1, math.prod(geom.out_size), threads)


@pytest.mark.parametrize("in_channels, groups, out_channels", [
    (512, 1, 512), (512, 1, 509),  # the outputs split, unevenly with 509
    (512, 2, 510), (1024, 32, 1024), (510, 3, 510),  # whole groups, one more for one thread with 3
])
def test_output_split_matches_torch(in_channels, groups, out_channels, rng):
    """One image's outputs shared out between two threads: every output written, equal to torch's."""
    x = rng.standard_normal((1, in_channels, 7, 7))
    w = rng.standard_normal((out_channels, in_channels // groups, 3, 3))
    geom = geometry_of(x.shape, w.shape, groups=groups)
    old = npconv.get_num_threads()
    npconv.set_num_threads(2)
    try:
        assert splits_outputs(geom, 2**30, threads_for(REGISTRY["im2col"].estimated_seconds(geom)))
        out = np.full(geom.out_shape, np.nan)
        REGISTRY["im2col"].run(x, w, geom, out)
    finally:
        npconv.set_num_threads(old)
    np.testing.assert_allclose(out, torch_conv(x, w, padding=1, groups=groups), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name", GEOMETRIES)
def test_workspace_bytes_is_one_chunk_per_busy_thread(name, workspace_limit):
    workspace_limit(4096)
    geom = geometry(name, "float64")
    images, chunk, threads = chunking(geom, 4096, threads_for(REGISTRY["im2col"].estimated_seconds(geom)))
    chunks = -(-geom.batch // images) * -(-math.prod(geom.out_size) // chunk)
    table = 4 * math.prod(geom.kernel) if im2col.fill_kernel(geom) is gather_columns else 0
    column = (geom.in_channels * math.prod(geom.kernel) + (geom.out_channels if images > 1 else 0)) * 8 + table
    assert REGISTRY["im2col"].workspace_bytes(geom) == min(threads, chunks) * images * chunk * column


def test_model_counts_the_copy_of_several_images_output(workspace_limit):
    """A chunk of several images multiplies them side by side, then copies the product into
    place: the model adds that copy (read and written, on all threads) and no more; remembered
    per setting, a lower cap (one image a chunk) is modelled anew."""
    geom = geometry_of((8, 3, 64, 64), (256, 3, 3, 3), stride=2)
    model = REGISTRY["im2col"]
    several = model.estimated_seconds(geom)
    assert chunking(geom, im2col.scratch_limit(geom), npconv.get_num_threads(), split_outputs=True)[0] > 1
    workspace_limit(im2col.position_bytes(geom) * math.prod(geom.out_size))  # one image's columns a chunk
    assert chunking(geom, im2col.scratch_limit(geom), npconv.get_num_threads(), split_outputs=True)[0] == 1
    copy = 2 * math.prod(geom.out_shape) * geom.dtype.itemsize / im2col.COPY_BYTES_PER_SECOND / npconv.get_num_threads()
    assert several - model.estimated_seconds(geom) == pytest.approx(copy)


@pytest.mark.parametrize("name", GEOMETRIES)
@pytest.mark.parametrize("limit", [100, 4096, 2**30])
def test_weight_gradient_matches_torch_however_chunked(name, limit, workspace_limit, rng):
    """Under a small cap each thread sums several chunks (of images or of positions)."""
    workspace_limit(limit)
    x_shape, w_shape, params = GEOMETRIES[name]
    geom = geometry(name, "float64")
    x = rng.standard_normal(x_shape)
    grad = rng.standard_normal(geom.out_shape)
    conv = (torch.nn.functional.conv1d, torch.nn.functional.conv2d, torch.nn.functional.conv3d)[geom.rank - 1]
    w = torch.zeros(w_shape, dtype=torch.float64, requires_grad=True)
    conv(torch.from_numpy(x), w, **params).backward(torch.from_numpy(grad))
    np.testing.assert_allclose(weight_gradient(x, grad, geom), w.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("rank, supported", [(1, True), (2, True), (3, True), (4, False)])
def test_supported_ranks(rank, supported):
    geom, _ = conv_geometry(
        "test", (1, 1, *(3,) * rank), (1, 1, *(2,) * rank), None,
        stride=1, padding=0, dilation=1, groups=1, padding_mode="zeros", dtype=np.dtype(np.float64),
    )
    reason = REGISTRY["im2col"].why_unsupported(geom)
    assert (reason is None) == supported
    if not supported:
        assert "1 to 3 spatial dims, got 4" in reason
