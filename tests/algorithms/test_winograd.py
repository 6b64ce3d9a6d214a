"""winograd specifics: each F(m, 3) and F(m + 1, 2) against torch, tiling edges, chunking, the
weight cache, the precision policy, the weight gradient."""

import math
import threading

import numpy as np
import pytest
import torch

import npconv
from npconv import parallel
from npconv.algorithms import REGISTRY, select, winograd
from npconv.algorithms.weight_cache import WEIGHT_CACHE
from npconv.geometry import conv_geometry

from ..conftest import assert_matches_torch, random_conv_inputs, torch_conv

VARIANTS = ["winograd", "winograd2", "winograd4", "winograd6"]


def geometry(x_shape, w_shape, stride=1, dilation=1, groups=1, dtype=np.float32):
    geom, _ = conv_geometry("test", x_shape, w_shape, None, stride=stride, padding=1, dilation=dilation,
                            groups=groups, padding_mode="zeros", dtype=dtype)
    return geom


@pytest.fixture
def precision():
    old = npconv.get_precision()
    yield npconv.set_precision
    npconv.set_precision(old)


def relative_error(y, x, w, **params):
    expected = torch_conv(x, w, **params)
    return np.abs(y - expected).max() / np.abs(expected).max()


@pytest.mark.parametrize("algo", VARIANTS)
@pytest.mark.parametrize("x_shape, w_shape, groups, padding", [
    ((2, 3, 9, 11), (4, 3, 3, 3), 1, 1),  # output not a multiple of any m
    ((1, 6, 8, 8), (9, 2, 3, 3), 3, ((0, 2), (1, 1))),  # groups, C_in != C_out, asymmetric padding
    ((3, 8, 3, 5), (8, 8, 3, 3), 1, 0),  # fewer outputs than one tile
    ((1, 4, 13, 3), (2, 4, 3, 3), 1, "same"),
    ((2, 4, 7, 7), (4, 1, 3, 3), 4, 2),  # depthwise through Winograd
    ((2, 3, 9, 11), (4, 3, 2, 2), 1, 0),  # 2x2 kernels: F(3, 2), F(5, 2), F(7, 2)
    ((1, 6, 8, 8), (9, 2, 2, 2), 3, ((1, 0), (0, 1))),
    ((3, 8, 2, 4), (8, 8, 2, 2), 1, 1),
])
def test_matches_torch_in_float64(rng, algo, x_shape, w_shape, groups, padding):
    x, w, b = random_conv_inputs(rng, x_shape, w_shape, dtype=np.float64)
    y = npconv.conv2d(x, w, b, padding=padding, groups=groups, algo=algo)
    assert_matches_torch(y, x, w, b, padding=padding, groups=groups)


# float32 error of each F(m, 3) relative to the output's magnitude; measured medians are
# about 1e-7 (m=2), 1e-6 (m=4), 3e-6 (m=6) on unit-normal data: the bounds leave ~10x room.
# The same tiles with 2x2 kernels (F(3, 2), F(5, 2), F(7, 2)) measured below these.
FLOAT32_BOUND = {"winograd2": 2e-6, "winograd4": 2e-5, "winograd6": 1e-4}


@pytest.mark.parametrize("algo", FLOAT32_BOUND)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 1e3])
@pytest.mark.parametrize("kernel", [3, 2])
def test_float32_error_scales_with_magnitude(rng, algo, scale, kernel):
    x, w, _ = random_conv_inputs(rng, (2, 32, 20, 20), (16, 32, kernel, kernel), bias=False, dtype=np.float32)
    x *= scale
    y = npconv.conv2d(x, w, padding=1, algo=algo)
    assert relative_error(y, x, w, padding=1) < FLOAT32_BOUND[algo]


@pytest.mark.parametrize("algo", ["winograd2", "winograd4", "winograd6"])
def test_chunked_images_and_small_tile_blocks(rng, workspace_limit, monkeypatch, algo):
    npconv.set_workspace_limit(1)  # one image per chunk
    monkeypatch.setattr(winograd, "BLOCK_BYTES", 1)  # one tile per block
    monkeypatch.setattr(winograd, "WEIGHT_SHARE", 0)
    x, w, b = random_conv_inputs(rng, (3, 4, 10, 9), (5, 4, 3, 3), dtype=np.float64)
    y = npconv.conv2d(x, w, b, padding=1, algo=algo)
    assert_matches_torch(y, x, w, b, padding=1)


@pytest.mark.parametrize("algo", ["winograd2", "winograd4", "winograd6"])
@pytest.mark.parametrize("x_shape, w_shape, groups", [
    ((1, 8, 5, 7), (32, 8, 3, 3), 1),  # few tiles, many channels: V smaller than U
    ((1, 6, 4, 6), (32, 3, 3, 3), 2),  # the same per group: outputs o0.. of each group
])
def test_output_channels_shared_out_among_threads(rng, monkeypatch, algo, x_shape, w_shape, groups):
    monkeypatch.setattr(parallel, "SPLIT_ABOVE_SECONDS", 0.0)  # every call split among the threads
    geom = geometry(x_shape, w_shape, groups=groups, dtype=np.float64)
    tiles = math.prod(winograd._tiles(geom, REGISTRY[algo].m)) * geom.batch
    assert winograd._splits_channels(geom, tiles)
    x, w, b = random_conv_inputs(rng, x_shape, w_shape, dtype=np.float64)
    y = npconv.conv2d(x, w, b, padding=1, groups=groups, algo=algo)
    assert_matches_torch(y, x, w, b, padding=1, groups=groups)


@pytest.mark.parametrize("block", [1, 2, 3, 5, 7])
def test_tile_blocks_that_end_inside_a_tile_row(rng, monkeypatch, block):
    """The output transform gathers each tile row's run of tiles within a block: blocks of
    ``block`` tiles on rows of 3 (F(4, 3) on a 10x9 output) start and end mid-row."""
    x, w, b = random_conv_inputs(rng, (3, 4, 10, 9), (5, 4, 3, 3), dtype=np.float64)
    per_tile = 6 * 6 * (4 + 5) * 8  # n^2 (C_in + C_out) float64 values
    monkeypatch.setattr(winograd, "BLOCK_BYTES", block * per_tile)
    monkeypatch.setattr(winograd, "WEIGHT_SHARE", 0)
    geom = geometry(x.shape, w.shape, dtype=np.float64)
    assert REGISTRY["winograd4"]._plan(geom)[1] == block
    y = npconv.conv2d(x, w, b, padding=1, algo="winograd4")
    assert_matches_torch(y, x, w, b, padding=1)


@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (2, 40, 33, 35), (3, 1, 1, 1)])
@pytest.mark.parametrize("shared_out", [False, True])
def test_channels_last_copy(rng, monkeypatch, shape, shared_out):
    """The input's blocked copy into the zero-bordered channels-last chunk (blocks of 32
    channels and columns, so 40 channels and 35 columns end mid-block), on the calling
    thread or its rows shared out among the threads."""
    if shared_out:
        monkeypatch.setattr(parallel, "SPLIT_ABOVE_SECONDS", 0.0)
    x = rng.standard_normal(shape)
    n, c, h, wd = shape
    xp = np.zeros((n - 1, h + 3, wd + 4, c))
    winograd.copy_channels_last(x, xp, 1, n - 1, 2, 1)  # images 1.. at row 2, column 1
    expected = np.zeros_like(xp)
    expected[:, 2 : 2 + h, 1 : 1 + wd] = x[1:].transpose(0, 2, 3, 1)
    np.testing.assert_array_equal(xp, expected)


def test_writes_every_output_element(rng):
    x, w, _ = random_conv_inputs(rng, (2, 3, 11, 10), (4, 3, 3, 3), bias=False, dtype=np.float32)
    geom = geometry(x.shape, w.shape)
    for name in ("winograd2", "winograd4", "winograd6"):
        out = np.full(geom.out_shape, np.nan, dtype=np.float32)
        REGISTRY[name].run(x, w, geom, out)
        assert not np.isnan(out).any(), name
        assert_matches_torch(out, x, w, padding=1)


@pytest.mark.parametrize("x_shape, w_shape, kwargs, reason", [
    ((1, 2, 8, 8), (2, 2, 5, 5), {}, r"needs a 3x3 or 2x2 kernel, got \(5, 5\)"),
    ((1, 2, 8, 8), (2, 2, 3, 2), {}, r"needs a 3x3 or 2x2 kernel, got \(3, 2\)"),
    ((1, 2, 8, 8), (2, 2, 3, 3), {"stride": 2}, r"needs stride 1, got \(2, 2\)"),
    ((1, 2, 8, 8), (2, 2, 3, 3), {"dilation": 2}, r"needs dilation 1, got \(2, 2\)"),
    ((1, 2, 8), (2, 2, 3), {}, "handles 2 spatial dims, got 1"),
])
@pytest.mark.parametrize("algo", VARIANTS)
def test_declines_with_reason(algo, x_shape, w_shape, kwargs, reason):
    geom = geometry(x_shape, w_shape, **kwargs)
    with pytest.raises(npconv.UnsupportedAlgorithmError, match=f"'{algo}' cannot compute this convolution: it {reason}"):
        REGISTRY[algo].check(geom)


def test_weight_changed_in_place_is_not_served_stale(rng):
    x, w, _ = random_conv_inputs(rng, (1, 4, 9, 9), (4, 4, 3, 3), bias=False, dtype=np.float32)
    first = npconv.conv2d(x, w, padding=1, algo="winograd4")
    w[1, 2, 0, 1] += 1.0  # one element changed in place: same object, same shape
    second = npconv.conv2d(x, w, padding=1, algo="winograd4")
    assert_matches_torch(second, x, w, padding=1)
    assert not np.allclose(first, second)


def test_concurrent_calls_with_different_weights(rng):
    WEIGHT_CACHE.clear()
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    weights = [rng.standard_normal((8, 8, 3, 3)).astype(np.float32) for _ in range(4)]
    results = results_from_threads(lambda i: npconv.conv2d(x, weights[i], padding=1, algo="winograd4"), len(weights))
    for i, w in enumerate(weights):
        assert_matches_torch(results[i], x, w, padding=1)


def results_from_threads(call, count):
    """``{i: call(i)}``, each call made three times on its own Python thread, all threads at once;
    fails on any thread's exception, naming the thread."""
    results, errors = {}, []

    def worker(i):
        try:
            for _ in range(3):
                results[i] = call(i)
        except Exception as exc:  # reported below, with the thread's index
            errors.append((i, exc))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    return results


def test_precision_policy_bounds_what_auto_picks(precision, monkeypatch, request):
    geom = geometry((8, 64, 56, 56), (64, 64, 3, 3))
    monkeypatch.setattr(winograd.Winograd, "estimated_seconds", lambda self, g: {2: 3, 4: 2, 6: 1}[self.m] * 1e-9)
    winograd._pick.cache_clear()  # remembered per geometry and settings: forget it before and after
    request.addfinalizer(winograd._pick.cache_clear)
    precision("medium")
    assert select("test", geom, "auto").name in ("winograd", "winograd6")
    assert REGISTRY["winograd"].pick(geom).name == "winograd6"
    precision("high")
    assert REGISTRY["winograd"].pick(geom).name == "winograd4"
    precision("highest")
    assert "winograd" not in select("test", geom, "auto").name
    assert REGISTRY["winograd"].pick(geom).name == "winograd2"  # explicit requests run the most accurate one


def test_set_precision_rejects_unknown_policies(precision):
    with pytest.raises(ValueError, match=r"set_precision: policy must be one of 'highest', 'high', 'medium', got 'low'"):
        npconv.set_precision("low")


def torch_weight_gradient(x, w, grad, pairs, groups):
    """dL/dw of the convolution of ``x`` padded by ``pairs`` (explicitly: torch pads symmetrically)."""
    wt = torch.tensor(w, requires_grad=True)
    xp = torch.tensor(np.pad(x, ((0, 0), (0, 0), *pairs)))
    torch.nn.functional.conv2d(xp, wt, groups=groups).backward(torch.tensor(grad))
    return wt.grad.numpy()


@pytest.mark.parametrize("algo", ["winograd2", "winograd4", "winograd6"])
@pytest.mark.parametrize("x_shape, w_shape, groups, pairs", [
    ((2, 3, 9, 11), (4, 3, 3, 3), 1, ((1, 1), (1, 1))),  # output not a multiple of any m
    ((1, 6, 8, 8), (9, 2, 3, 3), 3, ((0, 2), (1, 1))),  # groups, C_in != C_out, asymmetric padding
    ((3, 8, 3, 5), (8, 8, 3, 3), 1, ((0, 0), (0, 0))),  # fewer outputs than one tile
    ((2, 3, 9, 11), (4, 3, 2, 2), 1, ((1, 0), (0, 1))),  # 2x2 kernels
    ((1, 6, 8, 8), (9, 2, 2, 2), 3, ((0, 0), (1, 1))),
])
@pytest.mark.parametrize("chunked", [False, True])
def test_weight_gradient_matches_torch(rng, workspace_limit, monkeypatch, algo, x_shape, w_shape, groups, pairs,
                                       chunked):
    if chunked:
        npconv.set_workspace_limit(1)  # one image per chunk
        monkeypatch.setattr(winograd, "BLOCK_BYTES", 1)  # one tile per block
        monkeypatch.setattr(winograd, "WEIGHT_SHARE", 0)
    x, w, _ = random_conv_inputs(rng, x_shape, w_shape, bias=False)
    geom, _ = conv_geometry("test", x_shape, w_shape, None, stride=1, padding=pairs, dilation=1, groups=groups,
                            padding_mode="zeros", dtype=np.dtype(np.float64))
    grad = rng.standard_normal(geom.out_shape)
    expected = torch_weight_gradient(x, w, grad, pairs, groups)
    np.testing.assert_allclose(REGISTRY[algo].weight_gradient(x, grad, geom), expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("algo", ["winograd2", "winograd4", "winograd6"])
def test_weight_gradient_float32_error_is_the_forwards(rng, algo):
    x, w, _ = random_conv_inputs(rng, (2, 32, 20, 20), (32, 32, 3, 3), bias=False, dtype=np.float32)
    geom, _ = conv_geometry("test", x.shape, w.shape, None, stride=1, padding=((1, 1), (1, 1)), dilation=1, groups=1,
                            padding_mode="zeros", dtype=np.dtype(np.float32))
    grad = rng.standard_normal(geom.out_shape).astype(np.float32)
    expected = torch_weight_gradient(*(a.astype(np.float64) for a in (x, w, grad)), ((1, 1), (1, 1)), 1)
    error = np.abs(REGISTRY[algo].weight_gradient(x, grad, geom) - expected).max() / np.abs(expected).max()
    assert error < FLOAT32_BOUND[algo]


@pytest.mark.parametrize("modelled, winograds", [(0.0, True), (float("inf"), False)])
def test_conv_backward_takes_winograds_weight_gradient_where_its_model_says(rng, monkeypatch, precision, modelled,
                                                                             winograds):
    """Where auto runs the forward on Winograd, the weight gradient is Winograd's when its cost
    model finds it no dearer than im2col's, else im2col's; never under the "highest" policy."""
    x, w, _ = random_conv_inputs(rng, (2, 128, 24, 24), (128, 128, 3, 3), bias=False, dtype=np.float32)
    assert select("test", geometry(x.shape, w.shape), "auto").name == "winograd"
    calls = []
    original = winograd.Winograd.weight_gradient
    monkeypatch.setattr(winograd.Winograd, "weight_gradient",
                        lambda self, *args: calls.append(self.name) or original(self, *args))
    monkeypatch.setattr(winograd.Winograd, "weight_gradient_seconds", lambda self, geom: modelled)
    grad = rng.standard_normal(x.shape).astype(np.float32)
    _, grad_weight, _ = npconv.conv_backward(grad, x, w, padding=1, needs="weight")
    assert bool(calls) == winograds
    expected = torch_weight_gradient(*(a.astype(np.float64) for a in (x, w, grad)), ((1, 1), (1, 1)), 1)
    assert np.abs(grad_weight - expected).max() / np.abs(expected).max() < FLOAT32_BOUND["winograd4"]
    precision("highest")  # no Winograd forward, so no Winograd gradient
    calls.clear()
    npconv.conv_backward(grad, x, w, padding=1, needs="weight")
    assert calls == []


def test_concurrent_transposed_calls_through_chained_entries(rng):
    """Sub-kernels made from each weight, then their Winograd transform made from those (trusted,
    no snapshot): from several Python threads at once, each result its own weight's."""
    WEIGHT_CACHE.clear()
    x = rng.standard_normal((2, 6, 5, 5)).astype(np.float32)
    weights = [rng.standard_normal((6, 4, 4, 4)).astype(np.float32) for _ in range(4)]
    results = results_from_threads(
        lambda i: npconv.conv_transpose2d(x, weights[i], stride=2, padding=1, algo="winograd2"), len(weights))
    for i, w in enumerate(weights):
        expected = torch.nn.functional.conv_transpose2d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                                                        stride=2, padding=1).numpy()
        np.testing.assert_allclose(results[i], expected, rtol=1e-4, atol=1e-4)
    assert any(entry[0] is None for entry in WEIGHT_CACHE._entries.values())  # the transforms' entries: trusted
