"""npconv.summary: per-layer shapes, parameters and MACs against the same network in torch
(forward hooks count MACs from torch's own shapes), the restored forwards and training
modes, the published model totals, and the printed table."""

import math

import numpy as np
import pytest
import torch

import npconv
from npconv import nn
from npconv.nn.activation import ReLU, ReLU6
from tests.test_bench import mobilenet_v2_convs, resnet_convs


def torch_macs(model, x):
    """MACs of torch's conv, transposed-conv and linear layers, from the shapes torch gives."""
    rows = []

    def hook(module, inputs, out):
        if isinstance(module, torch.nn.modules.conv._ConvTransposeNd):
            macs = inputs[0].numel() * module.out_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, torch.nn.modules.conv._ConvNd):
            macs = out.numel() * module.in_channels // module.groups * math.prod(module.kernel_size)
        elif isinstance(module, torch.nn.Linear):
            macs = out.numel() * module.in_features
        else:
            macs = 0
        rows.append((tuple(out.shape), sum(p.numel() for p in module.parameters(recurse=False)), macs))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not list(m.children())]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return rows


def pair(np_layers, torch_layers):
    return nn.Sequential(*np_layers), torch.nn.Sequential(*torch_layers)


def small_cnn():
    """Strided, grouped, depthwise-separable, transposed, 1-d-free 2-d net ending in Linear."""
    ours = [
        nn.Conv2d(3, 8, 3, padding=1), ReLU(),
        nn.Conv2d(8, 12, 3, stride=2, groups=4, bias=False), ReLU6(),
        nn.DepthwiseSeparableConv2d(12, 16, 3, padding=1),
        nn.ConvTranspose2d(16, 6, 4, stride=2, padding=1, groups=2),
        nn.Conv2d(6, 6, 3, padding=2, dilation=2, padding_mode="reflect"),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(6 * 14 * 14, 10),
    ]
    theirs = [
        torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(8, 12, 3, stride=2, groups=4, bias=False), torch.nn.ReLU6(),
        torch.nn.Conv2d(12, 12, 3, padding=1, groups=12), torch.nn.Conv2d(12, 16, 1),
        torch.nn.ConvTranspose2d(16, 6, 4, stride=2, padding=1, groups=2),
        torch.nn.Conv2d(6, 6, 3, padding=2, dilation=2, padding_mode="reflect"),
        torch.nn.Flatten(), torch.nn.Dropout(0.5), torch.nn.Linear(6 * 14 * 14, 10),
    ]
    return pair(ours, theirs)


def test_rows_match_torch():
    ours, theirs = small_cnn()
    shape = (2, 3, 15, 15)
    report = npconv.summary(ours, shape)
    want = torch_macs(theirs, torch.zeros(shape))
    assert [(r.output_shape, r.params, r.macs) for r in report.rows] == want
    assert report.total_params == sum(p.numel() for p in theirs.parameters())
    assert report.trainable_params == report.total_params
    assert report.total_macs == sum(macs for _, _, macs in want)
    assert [r.name for r in report.rows][:6] == ["0", "1", "2", "3", "4.depthwise", "4.pointwise"]
    assert report.rows[4].type == "Conv2d" and report.rows[-1].type == "Linear"


def test_conv_rows_carry_explains_choice():
    ours, _ = small_cnn()
    report = npconv.summary(ours, (1, 3, 15, 15))
    first = report.rows[0]
    cost = npconv.explain((1, 3, 15, 15), (8, 3, 3, 3), padding=1)
    assert (first.algorithm, first.workspace_bytes, first.macs) == (cost.algorithm, cost.workspace_bytes, cost.macs)
    transposed = next(r for r in report.rows if r.type == "ConvTranspose2d")
    assert transposed.algorithm.split(" ")[0] in ("col2im", "subpixel")
    assert all(r.algorithm is None for r in report.rows if r.type in ("ReLU", "Flatten", "Linear", "Dropout"))


class Shared(nn.Module):
    """One ReLU applied twice, one Linear's weights used by two calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(2, 4, 3)
        self.act = ReLU()
        self.fc = nn.Linear(6, 6)

    def forward(self, x):
        return self.act(self.fc(self.fc(self.act(self.conv(x)))))


def test_reused_modules_count_macs_per_call_and_params_once():
    model = Shared()
    report = npconv.summary(model, (3, 2, 8))
    assert [r.name for r in report.rows] == ["conv", "act", "fc", "fc", "act"]
    assert [r.params for r in report.rows] == [4 * 2 * 3 + 4, 0, 42, 0, 0]
    assert report.total_params == 4 * 2 * 3 + 4 + 42
    assert [r.macs for r in report.rows] == [3 * 4 * 6 * 2 * 3, 0, 3 * 4 * 6 * 6, 3 * 4 * 6 * 6, 0]


def test_restores_forward_and_training_mode():
    ours, _ = small_cnn()
    ours.train()
    ours[8].eval()  # a mixed state comes back as it was
    modes = [m.training for m in ours.modules()]
    npconv.summary(ours, (1, 3, 15, 15))
    assert [m.training for m in ours.modules()] == modes
    assert all("forward" not in m.__dict__ for m in ours.modules())


def test_runs_in_eval_mode():
    seen = []

    class Probe(nn.Module):
        def forward(self, x):
            seen.append(self.training)
            return x

    model = nn.Sequential(Probe(), nn.Dropout(0.9))
    report = npconv.summary(model, (1, 4))
    assert seen == [False] and model.training
    assert report.rows[1].output_shape == (1, 4)


def test_restores_on_error():
    ours, _ = small_cnn()
    modes = [m.training for m in ours.modules()]
    with pytest.raises(ValueError, match=r"conv: input has 4 channels but weight"):
        npconv.summary(ours, (1, 4, 15, 15))
    assert [m.training for m in ours.modules()] == modes
    assert all("forward" not in m.__dict__ for m in ours.modules())


def test_argument_errors():
    with pytest.raises(TypeError, match=r"summary: model must be an npconv.nn.Module, got Conv2d"):
        npconv.summary(torch.nn.Conv2d(1, 1, 1), (1, 1, 4, 4))
    with pytest.raises(TypeError, match=r"summary: input_shape must be a tuple of ints, got 4"):
        npconv.summary(ReLU(), 4)
    with pytest.raises(ValueError, match=r"summary: input_shape must be positive"):
        npconv.summary(ReLU(), (1, 0))


def test_str_has_table_and_totals():
    ours, _ = small_cnn()
    report = npconv.summary(ours, (1, 3, 15, 15))
    text = str(report)
    assert f"Total params: {report.total_params:,}" in text
    assert f"Total MACs: {report.total_macs:,}" in text
    for r in report.rows:
        assert f"{r.name} ({r.type})" in text
    assert "Layer (type)" in text and "Algorithm" in text and "Workspace" in text
    assert "1x3x15x15" in text


def test_dtype():
    ours, _ = small_cnn()
    report = npconv.summary(ours.to(np.float64), (1, 3, 15, 15), dtype=np.float64)
    assert report.dtype == np.float64 and "float64" in str(report)


# ---- the model zoo against the published figures -----------------------------------------


def model(name):
    models = pytest.importorskip("npconv.nn.models")
    if not hasattr(models, name):
        pytest.skip(f"npconv.nn.models.{name} not written yet")
    return getattr(models, name)()


def listed_macs(convs, classifier_in):
    """MACs of test_bench's independent list of a network's convolutions, plus a 1000-way classifier."""
    return sum(c_out * out * out * c_in // groups * k * k
               for (c_in, _, c_out, k, _, _, groups), out in convs) + classifier_in * 1000


@pytest.mark.parametrize("name, params, gmacs, convs, classifier_in", [
    # torchvision's figures: 0.30 and 4.09 GFLOPS (counted as MACs); ResNeXt's 4.23
    ("mobilenet_v2", 3_504_872, 0.30, mobilenet_v2_convs(), 1280),
    ("resnet50", 25_557_032, 4.09, resnet_convs(), 2048),
    ("resnext50_32x4d", 25_028_904, 4.23, resnet_convs(groups=32, width_per_group=4), 2048),
])
def test_published_figures(name, params, gmacs, convs, classifier_in):
    report = npconv.summary(model(name), (1, 3, 224, 224))
    assert report.total_params == params
    assert round(report.total_macs / 1e9, 2) == gmacs
    assert report.total_macs == listed_macs(convs, classifier_in)
