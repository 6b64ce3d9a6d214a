"""``npconv summary`` and ``npconv explain``: arguments reach npconv.summary / npconv.explain
as given, defaults per model, and errors name what was wrong."""

import types

import numpy as np
import pytest

import npconv
from npconv import cli, nn
from npconv.nn.activation import ReLU


@pytest.fixture
def fake_models(monkeypatch):
    """npconv.nn.models replaced by tiny models; returns the input shapes they were run on."""
    shapes = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.act = ReLU()

        def forward(self, x):
            shapes.append(x.shape)
            return self.act(self.conv(x)) if x.shape[1] == 3 else x

    fake = types.SimpleNamespace(**{name: Probe for name in cli.SUMMARY_MODELS})
    monkeypatch.setattr(nn, "models", fake, raising=False)
    monkeypatch.setitem(__import__("sys").modules, "npconv.nn.models", fake)
    return shapes


@pytest.mark.parametrize("argv, shape", [
    (["resnet50"], (1, 3, 224, 224)),
    (["unet"], (1, 3, 64, 64)),
    (["dcgan_generator"], (1, 100, 1, 1)),
    (["resnet50", "--input", "2x3x16x12"], (2, 3, 16, 12)),
])
def test_summary_runs_the_model_on_its_input(fake_models, capsys, argv, shape):
    cli.main(["summary", *argv])
    assert fake_models == [shape]
    out = capsys.readouterr().out
    assert "Total params: 112" in out and "Total MACs:" in out


def test_summary_prints_the_summary(fake_models, capsys):
    cli.main(["summary", "resnet50", "--input", "1x3x8x8"])
    want = npconv.summary(nn.models.resnet50(), (1, 3, 8, 8))
    assert capsys.readouterr().out == f"{want}\n"


def test_summary_errors(fake_models, capsys):
    with pytest.raises(SystemExit, match=r"npconv summary: unknown model 'alexnet'; choose from resnet18, resnet50"):
        cli.main(["summary", "alexnet"])
    with pytest.raises(SystemExit, match=r"npconv summary resnet50: conv: input must be \(N, C_in, \*spatial\) with 4"):
        cli.main(["summary", "resnet50", "--input", "1x3x8x8x8"])
    with pytest.raises(SystemExit):
        cli.main(["summary", "resnet50", "--input", "1x3xbig"])
    assert "expected sizes joined by 'x'" in capsys.readouterr().err


def test_summary_real_model(capsys):
    cli.main(["summary", "dcgan_generator"])
    out = capsys.readouterr().out
    report = npconv.summary(nn.models.dcgan_generator(), (1, 100, 1, 1))
    assert f"Total params: {report.total_params:,}" in out and f"Total MACs: {report.total_macs:,}" in out
    assert "1x3x64x64" in out


@pytest.mark.parametrize("argv, shapes, kwargs", [
    (["--input", "1x64x56x56", "--out-channels", "64", "--kernel", "3", "--groups", "32"],
     ((1, 64, 56, 56), (64, 2, 3, 3)), dict(groups=32)),
    (["--input", "2x8x20x30", "--out-channels", "16", "--kernel", "3x5", "--stride", "2", "--padding", "1x2",
      "--dilation", "1x2", "--no-bias"],
     ((2, 8, 20, 30), (16, 8, 3, 5)), dict(stride=2, padding=(1, 2), dilation=(1, 2), bias=False)),
    (["--input", "1x4x9", "--out-channels", "6", "--kernel", "3", "--padding", "same", "--padding-mode", "reflect",
      "--dtype", "float64"],
     ((1, 4, 9), (6, 4, 3)), dict(padding="same", padding_mode="reflect", dtype=np.float64)),
    (["--input", "1x16x8x8", "--out-channels", "8", "--kernel", "4", "--stride", "2", "--padding", "1",
      "--transposed"],
     ((1, 16, 8, 8), (16, 8, 4, 4)), dict(stride=2, padding=1, transposed=True)),
])
def test_explain_prints_explain(capsys, argv, shapes, kwargs):
    cli.main(["explain", *argv])
    assert capsys.readouterr().out == f"{npconv.explain(*shapes, **kwargs)}\n"


def test_explain_precision_is_restored(capsys):
    before = npconv.get_precision()
    cli.main(["explain", "--input", "1x8x12x12", "--out-channels", "8", "--kernel", "3", "--precision", "highest"])
    assert npconv.get_precision() == before
    assert "precision policy 'highest'" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["--input", "1x3x56x56", "--out-channels", "64", "--kernel", "3", "--groups", "2"],
     r"npconv explain: conv: in_channels=3 is not divisible by groups=2"),
    (["--input", "1x64", "--out-channels", "8", "--kernel", "3"],
     r"npconv explain: conv: input must be \(N, C_in, \*spatial\) with 3 dims"),
])
def test_explain_errors(argv, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(["explain", *argv])


def test_explain_rejects_unparsable_padding(capsys):
    with pytest.raises(SystemExit):
        cli.main(["explain", "--input", "1x4x8x8", "--out-channels", "8", "--kernel", "3", "--padding", "full"])
    assert "argument --padding: expected sizes joined by 'x'" in capsys.readouterr().err
