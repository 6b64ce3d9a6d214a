"""save/load: .npz round trips, strict loading, and files that would need unpickling."""

import collections
import io
import zipfile

import numpy as np
import pytest
import torch

import npconv.nn
from npconv.nn import Module, Parameter, Sequential, load, save

UNPICKLED = []


class Tripwire:
    """Records it if it is ever unpickled."""

    def __reduce__(self):
        return (UNPICKLED.append, ("unpickled",))


class Block(Module):
    def __init__(self, rng, channels):
        super().__init__()
        self.weight = Parameter(rng.standard_normal((channels, 3)))
        self.bias = Parameter(rng.standard_normal(channels))
        self.register_buffer("running_mean", rng.standard_normal(channels).astype(np.float32))
        self.register_buffer("num_batches_tracked", np.array(7, dtype=np.int64))


def model(rng):
    return Sequential(Block(rng, 4), Sequential(Block(rng, 2)))


def test_round_trip(rng, tmp_path):
    source, target = model(rng), model(rng)
    path = tmp_path / "weights.npz"
    save(source, path)
    loaded = load(path)
    assert isinstance(loaded, collections.OrderedDict)
    assert list(loaded) == list(source.state_dict())       # keys as-is, in the model's order
    for key, value in source.state_dict().items():
        assert loaded[key].dtype == value.dtype and loaded[key].shape == value.shape
        np.testing.assert_array_equal(loaded[key], value)
    target.load_state_dict(loaded)
    for (key, a), b in zip(target.state_dict().items(), source.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=key)
    assert npconv.nn.load is load and npconv.nn.save is save


def test_written_exactly_at_path_and_readable_by_numpy(rng, tmp_path):
    path = tmp_path / "weights.bin"
    save({"file": np.arange(3), "a.b": np.ones((2, 2), np.float32)}, str(path))
    assert [p.name for p in tmp_path.iterdir()] == ["weights.bin"]
    with np.load(path, allow_pickle=False) as archive:
        assert archive.files == ["file", "a.b"]
        np.testing.assert_array_equal(archive["file"], np.arange(3))


def test_file_objects_and_numpy_savez(tmp_path):
    buffer = io.BytesIO()
    save({"x": np.arange(4.0)}, buffer)
    buffer.seek(0)
    np.testing.assert_array_equal(load(buffer)["x"], np.arange(4.0))
    np.savez(tmp_path / "plain.npz", y=np.eye(2))
    np.testing.assert_array_equal(load(tmp_path / "plain.npz")["y"], np.eye(2))


def test_torch_state_dict_saved_and_loaded(tmp_path):
    """A PyTorch state dict (tensors converted to NumPy) saves and loads into a module with those keys."""
    linear = torch.nn.Linear(3, 2)
    save({k: v.numpy() for k, v in linear.state_dict().items()}, tmp_path / "t.npz")
    ours = Module()
    ours.weight = Parameter(np.zeros((2, 3)))
    ours.bias = Parameter(np.zeros(2))
    ours.load_state_dict(load(tmp_path / "t.npz"))
    np.testing.assert_array_equal(ours.weight.data, linear.weight.detach().numpy())


def test_pickled_object_array_is_not_unpickled(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, weight=np.ones(2), payload=np.array([Tripwire()], dtype=object))
    with pytest.raises(ValueError, match=r"npconv.nn.load: entry 'payload' of .* is a pickled object array"):
        load(path)
    pickle_path = tmp_path / "evil.npy"
    np.save(pickle_path, np.array([Tripwire()], dtype=object))
    with pytest.raises(ValueError, match=r"npconv.nn.load: .*evil.npy"):
        load(pickle_path)
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(b"\x80\x04" + b"\x00" * 20)
    with pytest.raises(ValueError, match=r"npconv.nn.load: cannot read .* without unpickling"):
        load(raw)
    assert UNPICKLED == []


def test_single_array_file_is_rejected(tmp_path):
    np.save(tmp_path / "one.npy", np.ones(3))
    with pytest.raises(ValueError, match=r"npconv.nn.load: .*one.npy' holds a single array, not an .npz archive"):
        load(tmp_path / "one.npy")


@pytest.mark.parametrize("state, error, match", [
    ({"w": np.array([Tripwire()], dtype=object)}, ValueError,
     r"npconv.nn.save: entry 'w' is an object array \(dtype object\); only numeric arrays can be saved"),
    ({"w": [1, "a", None]}, ValueError, r"entry 'w' is an object array"),
    ({1: np.ones(2)}, TypeError, r"npconv.nn.save: keys must be strings, got 1 \(int\)"),
    ([np.ones(2)], TypeError, r"npconv.nn.save: expected a Module or a mapping of names to arrays, got list"),
])
def test_save_errors(tmp_path, state, error, match):
    with pytest.raises(error, match=match):
        save(state, tmp_path / "x.npz")


def test_strict_loading_names_the_keys(rng, tmp_path):
    source = model(rng)
    state = dict(source.state_dict())
    del state["0.bias"]
    state["0.extra"] = np.zeros(1)
    state["1.0.weight"] = np.zeros((5, 3))
    save(state, tmp_path / "bad.npz")
    target = model(rng)
    before = {k: v.copy() for k, v in target.state_dict().items()}
    with pytest.raises(ValueError, match=r"missing keys \['0.bias'\], unexpected keys \['0.extra'\], "
                                         r"wrong shapes \(1.0.weight: expected \(2, 3\), got \(5, 3\)\)"):
        target.load_state_dict(load(tmp_path / "bad.npz"))
    for key, value in target.state_dict().items():
        np.testing.assert_array_equal(value, before[key])      # nothing changed


def test_archive_members_are_plain_npy(rng, tmp_path):
    save(model(rng), tmp_path / "m.npz")
    with zipfile.ZipFile(tmp_path / "m.npz") as archive:
        assert archive.namelist() == [k + ".npy" for k in model(rng).state_dict()]
