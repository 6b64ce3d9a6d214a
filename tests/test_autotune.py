"""Autotuning: keys, the measured choice, reuse, the bounded table, the on-disk file."""

import dataclasses
import json
from types import SimpleNamespace

import numpy as np
import pytest

import npconv
from npconv.algorithms import REGISTRY
from npconv.autotuner import TUNER, Tuner, geometry_key
from npconv.geometry import conv_geometry

from .conftest import assert_matches_torch, random_conv_inputs


def geometry(x_shape=(2, 8, 12, 12), w_shape=(8, 8, 3, 3), dtype=np.float32, **params):
    params = {"stride": 1, "padding": 1, "dilation": 1, "groups": 1, "padding_mode": "zeros", **params}
    geom, _ = conv_geometry("test", x_shape, w_shape, None, dtype=np.dtype(dtype), **params)
    return geom


@pytest.fixture
def tuning():
    """Autotuning off again (and the precision policy and threads restored) after the test."""
    old_precision, old_threads = npconv.get_precision(), npconv.get_num_threads()
    yield
    npconv.autotune(False)
    npconv.set_precision(old_precision)
    npconv.set_num_threads(old_threads)


class FakeAlgorithm:
    def __init__(self, name, seconds):
        self.name, self.seconds = name, seconds


def fake_clock(monkeypatch):
    """A perf_counter that trials advance by their algorithm's ``seconds``; returns the trial."""
    now = [0.0]
    monkeypatch.setattr("npconv.autotuner.time", SimpleNamespace(perf_counter=lambda: now[0]))
    calls = []

    def trial(alg):
        calls.append(alg.name)
        now[0] += alg.seconds

    return trial, calls


def test_keys_differ_in_every_field_dtype_threads_and_policy(tuning):
    base = geometry()
    variants = [
        geometry(x_shape=(3, 8, 12, 12)), geometry(x_shape=(2, 8, 12, 13)), geometry(w_shape=(4, 8, 3, 3)),
        geometry(w_shape=(8, 4, 3, 3), groups=2), geometry(w_shape=(8, 8, 3, 1)), geometry(stride=2),
        geometry(dilation=2), geometry(padding=((1, 0), (1, 1))), geometry(dtype=np.float64),
    ]
    keys = {geometry_key(g) for g in [base, *variants]}
    assert len(keys) == 1 + len(variants)
    assert geometry_key(dataclasses.replace(base)) == geometry_key(base)  # equal geometries share a key
    npconv.set_num_threads(1)
    one_thread = geometry_key(base)
    npconv.set_precision("highest")
    assert len({*keys, one_thread, geometry_key(base)}) == 3 + len(variants)


def test_choose_times_once_and_reuses(monkeypatch):
    tuner = Tuner()
    tuner.configure(True, None)
    trial, calls = fake_clock(monkeypatch)
    slow, fast = FakeAlgorithm("slow", 3.0), FakeAlgorithm("fast", 1.0)
    assert tuner.choose(geometry(), [slow, fast], trial) == "fast"
    assert calls == ["slow", "slow", "fast", "fast"]  # warm-up and timed run each
    assert tuner.choose(geometry(), [slow, fast], trial) == "fast"
    assert len(calls) == 4  # reused, not timed again
    assert tuner.choose(geometry(dtype=np.float64), [slow, fast], trial) == "fast"
    assert len(calls) == 8  # another dtype is another key


def test_table_is_bounded(monkeypatch):
    monkeypatch.setattr("npconv.autotuner.MAX_ENTRIES", 3)
    tuner = Tuner()
    tuner.configure(True, None)
    trial, _ = fake_clock(monkeypatch)
    for size in range(8, 16):
        tuner.choose(geometry(x_shape=(1, 8, size, size)), [FakeAlgorithm("a", 1.0)], trial)
    assert len(tuner.entries()) == 3


def test_table_persists_and_a_corrupt_file_is_ignored_and_rewritten(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "autotune.json"
    trial, _ = fake_clock(monkeypatch)
    first = Tuner()
    first.configure(True, path)
    first.choose(geometry(), [FakeAlgorithm("a", 2.0), FakeAlgorithm("b", 1.0)], trial)
    saved = json.loads(path.read_text())
    assert saved["entries"] == {geometry_key(geometry()): "b"}
    second = Tuner()
    second.configure(True, path)
    assert second.entries() == saved["entries"]

    path.write_text("{not json")
    third = Tuner()
    with pytest.warns(RuntimeWarning, match="npconv.autotune: ignoring unreadable table"):
        third.configure(True, path)
    assert third.entries() == {}
    third.choose(geometry(), [FakeAlgorithm("a", 1.0), FakeAlgorithm("b", 2.0)], trial)
    assert json.loads(path.read_text())["entries"] == {geometry_key(geometry()): "a"}
    assert [p.name for p in path.parent.iterdir()] == ["autotune.json"]  # no temporary file left behind


def test_wrong_format_file_is_ignored(tmp_path):
    path = tmp_path / "autotune.json"
    path.write_text(json.dumps({"format": 999, "entries": {}}))
    tuner = Tuner()
    with pytest.warns(RuntimeWarning, match="not an npconv autotune table"):
        tuner.configure(True, path)


def test_too_deeply_nested_file_is_ignored(tmp_path):
    """json raises RecursionError on deep nesting: ignored with a warning like any corrupt table."""
    path = tmp_path / "autotune.json"
    path.write_text("[" * 100_000 + "]" * 100_000)
    tuner = Tuner()
    with pytest.warns(RuntimeWarning, match="npconv.autotune: ignoring unreadable table"):
        tuner.configure(True, path)
    assert tuner.entries() == {}


def test_a_failed_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A folder where the table should be: the rename fails, warns, and its temporary file goes."""
    path = tmp_path / "autotune.json"
    path.mkdir()
    trial, _ = fake_clock(monkeypatch)
    tuner = Tuner()
    with pytest.warns(RuntimeWarning, match="npconv.autotune: ignoring unreadable table"):
        tuner.configure(True, path)
    with pytest.warns(RuntimeWarning, match="npconv.autotune: cannot write"):
        tuner.choose(geometry(), [FakeAlgorithm("a", 1.0), FakeAlgorithm("b", 2.0)], trial)
    assert [p.name for p in tmp_path.iterdir()] == ["autotune.json"]


def test_conv_with_autotune_is_exact_and_respects_the_precision_policy(rng, tuning):
    x, w, b = random_conv_inputs(rng, (2, 8, 14, 14), (8, 8, 3, 3), dtype=np.float32)
    npconv.set_precision("high")
    npconv.autotune(True)
    y = npconv.conv2d(x, w, b, padding=1)
    assert_matches_torch(y, x, w, b, padding=1)
    (chosen,) = TUNER.entries().values()
    assert REGISTRY[chosen].accuracy in ("highest", "high")  # never F(6, 3) under "high"
    npconv.autotune(False)
    assert TUNER.entries() == {}


def test_autotune_rejects_non_bool():
    with pytest.raises(TypeError, match="autotune: enabled must be a bool, got 'yes'"):
        npconv.autotune("yes")
