"""The digits training demo: a short run learns, and its saved weights reproduce its predictions."""

import re
import sys

import numpy as np
import pytest

from npconv import cli, train
from npconv.nn import load


def test_short_training_learns_and_saves(tmp_path, capsys):
    lines = []
    path = tmp_path / "digits.npz"
    result = train.train_digits(epochs=2, seed=3, out=path, print_=lines.append)
    losses = [h["loss"] for h in result.history]
    assert len(losses) == 2 and losses[1] < 0.7 * losses[0]
    assert result.test_accuracy > 0.8                         # chance is 0.1
    assert result.test_accuracy == result.history[-1]["test_accuracy"]
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", lines[-1])
    assert float(lines[-1].split(": ")[1]) == pytest.approx(result.test_accuracy, abs=5e-5)
    assert [line.split()[:2] for line in lines[:2]] == [["epoch", "1/2"], ["epoch", "2/2"]]
    assert "epoch 2/2 [" in capsys.readouterr().err              # the progress bar

    _, _, x_test, y_test = train.load_digits_split(seed=3)
    fresh = train.digits_model()
    fresh.load_state_dict(load(path))
    np.testing.assert_array_equal(train.predict(fresh, x_test), train.predict(result.model, x_test))
    assert np.mean(train.predict(fresh, x_test) == y_test) == result.test_accuracy


def test_split_is_fixed_by_the_seed():
    x_train, y_train, x_test, y_test = train.load_digits_split(seed=5)
    assert x_train.shape == (1438, 1, 8, 8) and x_test.shape == (359, 1, 8, 8)
    assert x_train.dtype == np.float32 and 0 <= x_train.min() and x_train.max() == 1
    again = train.load_digits_split(seed=5)
    np.testing.assert_array_equal(again[3], y_test)
    assert not np.array_equal(train.load_digits_split(seed=6)[3], y_test)


def test_model_shapes():
    model = train.digits_model()
    assert model(np.zeros((3, 1, 8, 8), np.float32)).shape == (3, 10)


def test_missing_scikit_learn(monkeypatch):
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    with pytest.raises(ImportError, match=r"scikit-learn, which is not installed; .*pip install 'npconv\[train\]'"):
        train.train_digits(epochs=1, out=None)


@pytest.mark.parametrize("kwargs, match", [
    (dict(epochs=0), r"train_digits: epochs must be a positive int, got 0"),
    (dict(batch_size=2.5), r"train_digits: batch_size must be a positive int, got 2.5"),
])
def test_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        train.train_digits(out=None, **kwargs)


def test_cli_trains_and_saves(tmp_path, capsys):
    path = tmp_path / "w.npz"
    cli.main(["train", "digits", "--epochs", "1", "--seed", "2", "--out", str(path), "--no-progress"])
    out, err = capsys.readouterr()
    assert re.fullmatch(r"test accuracy: 0\.\d{4}", out.splitlines()[-1])
    assert f"weights saved to {path}" in out and err == ""
    train.digits_model().load_state_dict(load(path))  # strict: every key, every shape
