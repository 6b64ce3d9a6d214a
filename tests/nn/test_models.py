"""The model zoo against torch.nn references with torchvision's structure and key names.

torchvision is not a dependency, so the references below are compact torch.nn definitions
mirroring torchvision's (and the DCGAN tutorial's) module trees; their parameter counts at
full size are checked against torchvision's published totals, so they cannot drift from it.
Interop tests load a torch model's state_dict (strict) into the npconv model and compare the
output, the input gradient and every parameter gradient in float64, in eval mode (with
random running statistics) and in one training-mode step (batch statistics, running
statistics updated).
"""

import numpy as np
import pytest
import torch
from torch import nn as tnn

from npconv.nn import models

# ---------------------------------------------------------------------------------------------
# torch.nn references (test oracle), torchvision's structure and key names
# ---------------------------------------------------------------------------------------------


class TorchBasicBlock(tnn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        self.conv1 = tnn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(planes)
        self.relu = tnn.ReLU()
        self.conv2 = tnn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.bn2 = tnn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x):
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchBottleneck(tnn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = tnn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = tnn.BatchNorm2d(width)
        self.conv2 = tnn.Conv2d(width, width, 3, stride, 1, groups=groups, bias=False)
        self.bn2 = tnn.BatchNorm2d(width)
        self.conv3 = tnn.Conv2d(width, planes * 4, 1, bias=False)
        self.bn3 = tnn.BatchNorm2d(planes * 4)
        self.relu = tnn.ReLU()
        self.downsample = downsample

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class TorchResNet(tnn.Module):
    def __init__(self, block, layers, num_classes=1000, groups=1, width_per_group=64):
        super().__init__()
        self.inplanes, self.groups, self.base_width = 64, groups, width_per_group
        self.conv1 = tnn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = tnn.BatchNorm2d(64)
        self.relu = tnn.ReLU()
        self.maxpool = tnn.MaxPool2d(3, 2, 1)
        self.layer1 = self._make_layer(block, 64, layers[0], 1)
        self.layer2 = self._make_layer(block, 128, layers[1], 2)
        self.layer3 = self._make_layer(block, 256, layers[2], 2)
        self.layer4 = self._make_layer(block, 512, layers[3], 2)
        self.avgpool = tnn.AdaptiveAvgPool2d((1, 1))
        self.fc = tnn.Linear(512 * block.expansion, num_classes)

    def _make_layer(self, block, planes, blocks, stride):
        out = planes * block.expansion
        downsample = None
        if stride != 1 or self.inplanes != out:
            downsample = tnn.Sequential(tnn.Conv2d(self.inplanes, out, 1, stride, bias=False), tnn.BatchNorm2d(out))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = out
        layers += [block(out, planes, groups=self.groups, base_width=self.base_width) for _ in range(1, blocks)]
        return tnn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def divisible(v, divisor=8):
    new_v = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new_v + divisor if new_v < 0.9 * v else new_v


def torch_conv_bn_relu6(cin, cout, k=3, stride=1, groups=1):
    return tnn.Sequential(tnn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False),
                          tnn.BatchNorm2d(cout), tnn.ReLU6())


class TorchInvertedResidual(tnn.Module):
    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        hidden = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [torch_conv_bn_relu6(inp, hidden, 1)] if expand_ratio != 1 else []
        layers += [torch_conv_bn_relu6(hidden, hidden, 3, stride, hidden),
                   tnn.Conv2d(hidden, oup, 1, bias=False), tnn.BatchNorm2d(oup)]
        self.conv = tnn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res_connect else self.conv(x)


class TorchMobileNetV2(tnn.Module):
    def __init__(self, num_classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        cin, last = divisible(32 * width_mult), divisible(1280 * max(1.0, width_mult))
        features = [torch_conv_bn_relu6(3, cin, stride=2)]
        for t, c, n, s in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                           [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]:
            for i in range(n):
                features.append(TorchInvertedResidual(cin, divisible(c * width_mult), s if i == 0 else 1, t))
                cin = divisible(c * width_mult)
        features.append(torch_conv_bn_relu6(cin, last, 1))
        self.features = tnn.Sequential(*features)
        self.classifier = tnn.Sequential(tnn.Dropout(dropout), tnn.Linear(last, num_classes))

    def forward(self, x):
        x = tnn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
        return self.classifier(torch.flatten(x, 1))


class TorchVGG16(tnn.Module):
    def __init__(self, num_classes=1000):
        super().__init__()
        layers, cin = [], 3
        for v in [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]:
            if v == "M":
                layers.append(tnn.MaxPool2d(2, 2))
            else:
                layers += [tnn.Conv2d(cin, v, 3, padding=1), tnn.ReLU()]
                cin = v
        self.features = tnn.Sequential(*layers)
        self.avgpool = tnn.AdaptiveAvgPool2d((7, 7))
        self.classifier = tnn.Sequential(tnn.Linear(25088, 4096), tnn.ReLU(), tnn.Dropout(),
                                         tnn.Linear(4096, 4096), tnn.ReLU(), tnn.Dropout(),
                                         tnn.Linear(4096, num_classes))


class TorchDCGANGenerator(tnn.Module):
    """The PyTorch DCGAN tutorial's Generator (its ``ngpu`` argument dropped)."""

    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        self.main = tnn.Sequential(
            tnn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), tnn.BatchNorm2d(ngf * 8), tnn.ReLU(True),
            tnn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf * 4), tnn.ReLU(True),
            tnn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf * 2), tnn.ReLU(True),
            tnn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf), tnn.ReLU(True),
            tnn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), tnn.Tanh())

    def forward(self, x):
        return self.main(x)


def torch_double_conv(cin, cout):
    return tnn.Sequential(tnn.Conv2d(cin, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU(),
                          tnn.Conv2d(cout, cout, 3, padding=1, bias=False), tnn.BatchNorm2d(cout), tnn.ReLU())


class TorchUNet(tnn.Module):
    def __init__(self, in_channels=3, num_classes=2, base=16, depth=3):
        super().__init__()
        self.depth = depth
        w = [base * 2 ** i for i in range(depth + 1)]
        for i in range(depth):
            setattr(self, f"down{i}", torch_double_conv(in_channels if i == 0 else w[i - 1], w[i]))
        self.bottleneck = torch_double_conv(w[depth - 1], w[depth])
        for i in range(depth):
            setattr(self, f"up{i}", tnn.ConvTranspose2d(w[i + 1], w[i], 2, stride=2))
            setattr(self, f"dec{i}", torch_double_conv(2 * w[i], w[i]))
        self.head = tnn.Conv2d(base, num_classes, 1)

    def forward(self, x):
        skips = []
        for i in range(self.depth):
            skips.append(getattr(self, f"down{i}")(x))
            x = tnn.functional.max_pool2d(skips[-1], 2)
        x = self.bottleneck(x)
        for i in reversed(range(self.depth)):
            x = getattr(self, f"dec{i}")(torch.cat([skips[i], getattr(self, f"up{i}")(x)], dim=1))
        return self.head(x)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------


def count(model):
    return sum(p.size for p in model.parameters())


def randomize_batchnorm(model, seed):
    """Give every BatchNorm non-trivial affine parameters and running statistics."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, tnn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=g))
                m.bias.copy_(0.1 * torch.randn(m.bias.shape, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model


def assert_close(ours, theirs, what):
    theirs = theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{what}: shape {ours.shape} != {theirs.shape}"
    scale = max(1.0, float(np.abs(theirs).max(initial=0.0)))
    np.testing.assert_allclose(ours, theirs, rtol=1e-7, atol=1e-9 * scale, err_msg=what)


def check_against_torch(ours, theirs, input_shape, train, seed=0):
    """Load ``theirs``'s state_dict into ``ours`` (strict), run both in float64 on the same
    input, backpropagate the same random grad_output, compare everything."""
    theirs = randomize_batchnorm(theirs, seed).double().train(train)
    result = ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    assert result == ([], [])
    ours.to(np.float64).train(train)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(input_shape)
    x_torch = torch.tensor(x, requires_grad=True)
    out_torch = theirs(x_torch)
    out = ours(x)
    assert_close(out, out_torch, "output")
    grad_output = rng.standard_normal(out.shape)
    out_torch.backward(torch.tensor(grad_output))
    assert_close(ours.backward(grad_output), x_torch.grad, "input gradient")
    theirs_params = dict(theirs.named_parameters())
    assert [name for name, _ in ours.named_parameters()] == list(theirs_params)
    for name, p in ours.named_parameters():
        assert_close(p.grad, theirs_params[name].grad, f"gradient of {name}")
    state = ours.state_dict()
    for name, value in theirs.state_dict().items():  # running statistics after a training step
        assert_close(np.asarray(state[name], dtype=np.float64), value.double(), name)


# ---------------------------------------------------------------------------------------------
# parameter counts and keys at full size (published torchvision totals)
# ---------------------------------------------------------------------------------------------

FULL_SIZE = {
    "resnet18": (lambda: TorchResNet(TorchBasicBlock, [2, 2, 2, 2]), 11_689_512),
    "resnet50": (lambda: TorchResNet(TorchBottleneck, [3, 4, 6, 3]), 25_557_032),
    "resnext50_32x4d": (lambda: TorchResNet(TorchBottleneck, [3, 4, 6, 3], groups=32, width_per_group=4),
                        25_028_904),
    "mobilenet_v2": (TorchMobileNetV2, 3_504_872),
}


@pytest.mark.parametrize("name", sorted(FULL_SIZE))
def test_full_size_parameter_count_and_keys(name):
    make_torch, published = FULL_SIZE[name]
    ours = getattr(models, name)()
    with torch.device("meta"):  # shapes only, no memory
        theirs = make_torch()
    assert count(ours) == published
    assert sum(p.numel() for p in theirs.parameters()) == published  # the oracle is torchvision's
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours.state_dict()) == list(theirs.state_dict())


@pytest.fixture(scope="module")
def vgg():
    return models.vgg16()


def test_vgg16_count_keys_and_a_small_forward(vgg):
    with torch.device("meta"):
        theirs = TorchVGG16()
    assert count(vgg) == 138_357_544
    assert {k: v.shape for k, v in vgg.state_dict().items()} == \
           {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    vgg.eval()
    x = np.random.default_rng(1).standard_normal((1, 3, 32, 32)).astype(np.float32)
    out = vgg(x)  # the five pools leave 1x1, the adaptive pool repeats it to 7x7
    assert out.shape == (1, 1000) and np.isfinite(out).all() and out.std() > 0


def test_classifier_init_as_torchvision(vgg):
    # convs: kaiming_normal fan_out (std sqrt(2 / (out * 9))), bias 0; linears N(0, 0.01^2), bias 0
    conv = vgg.features[28]
    assert abs(conv.weight.data.std() / np.sqrt(2.0 / (512 * 9)) - 1) < 0.01
    assert not conv.bias.data.any()
    linear = vgg.classifier[3]
    assert abs(linear.weight.data.std() / 0.01 - 1) < 0.01 and not linear.bias.data.any()
    resnet = models.resnet18(num_classes=10)
    assert abs(resnet.layer4[1].conv2.weight.data.std() / np.sqrt(2.0 / (512 * 9)) - 1) < 0.02
    assert resnet.bn1.weight.data.tolist() == [1.0] * 64 and not resnet.bn1.bias.data.any()
    bound = 1 / np.sqrt(512)  # ResNet's fc keeps PyTorch's default init
    assert np.abs(resnet.fc.weight.data).max() <= bound and resnet.fc.weight.data.std() > bound / 2
    zeroed = models.resnet50(zero_init_residual=True)
    assert not zeroed.layer1[0].bn3.weight.data.any() and zeroed.layer1[0].bn2.weight.data.all()


# ---------------------------------------------------------------------------------------------
# interop: same outputs and gradients as torch.nn, eval mode and a training step
# ---------------------------------------------------------------------------------------------

MODES = [pytest.param(False, id="eval"), pytest.param(True, id="train")]


@pytest.mark.parametrize("train", MODES)
def test_resnet_basic_block_matches_torch(train):
    # layer1 keeps the identity shortcut, layer2..4 downsample (stride 2, conv1x1 + BN)
    check_against_torch(models.ResNet(models.BasicBlock, [2, 1, 1, 1], num_classes=10),
                        TorchResNet(TorchBasicBlock, [2, 1, 1, 1], num_classes=10), (2, 3, 32, 32), train)


@pytest.mark.parametrize("train", MODES)
def test_resnet_bottleneck_matches_torch(train):
    # layer1's first block downsamples with stride 1 (64 -> 256 channels), its second is identity
    check_against_torch(models.ResNet(models.Bottleneck, [2, 1, 1, 1], num_classes=10),
                        TorchResNet(TorchBottleneck, [2, 1, 1, 1], num_classes=10), (2, 3, 32, 32), train)


@pytest.mark.parametrize("train", MODES)
def test_resnext_grouped_bottleneck_matches_torch(train):
    check_against_torch(models.ResNet(models.Bottleneck, [1, 1, 1, 1], num_classes=10, groups=8,
                                      width_per_group=4),
                        TorchResNet(TorchBottleneck, [1, 1, 1, 1], num_classes=10, groups=8, width_per_group=4),
                        (2, 3, 32, 32), train)


@pytest.mark.parametrize("train", MODES)
def test_mobilenet_v2_matches_torch(train):
    # width 0.25: every block kind (no expansion, strided, residual) at small widths; 4 images of 64x64 leave
    # the last BatchNorms 16 values per channel (with 2 values, train mode amplified rounding to 1e-7)
    check_against_torch(models.mobilenet_v2(num_classes=10, width_mult=0.25, dropout=0.0),
                        TorchMobileNetV2(num_classes=10, width_mult=0.25, dropout=0.0), (4, 3, 64, 64), train)


@pytest.mark.parametrize("train", MODES)
def test_dcgan_generator_matches_torch(train):
    ours = models.dcgan_generator(nz=8, ngf=4, nc=3)
    check_against_torch(ours, TorchDCGANGenerator(nz=8, ngf=4, nc=3), (2, 8, 1, 1), train)
    assert ours(np.zeros((1, 8, 1, 1))).shape == (1, 3, 64, 64)


@pytest.mark.parametrize("train", MODES)
def test_unet_matches_torch(train):
    check_against_torch(models.unet(in_channels=3, num_classes=2, base=4, depth=3),
                        TorchUNet(in_channels=3, num_classes=2, base=4, depth=3), (2, 3, 16, 24), train)


def test_dcgan_generator_init_as_the_tutorial():
    gen = models.dcgan_generator()
    assert count(gen) == sum(p.numel() for p in TorchDCGANGenerator().parameters())
    weight = gen.main[3].weight.data
    assert abs(weight.std() / 0.02 - 1) < 0.02 and abs(weight.mean()) < 1e-3
    bn = gen.main[1]
    assert abs(bn.weight.data.mean() - 1) < 0.01 and 0.01 < bn.weight.data.std() < 0.03
    assert not bn.bias.data.any()


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------


def test_errors_name_the_model_and_the_rule():
    with pytest.raises(ValueError, match=r"UNet: input must be \(N, C, H, W\) with H and W divisible by "
                                         r"2\*\*depth = 8, got shape \(1, 3, 16, 20\)"):
        models.unet(base=2)(np.zeros((1, 3, 16, 20)))
    with pytest.raises(ValueError, match="UNet: depth must be at least 1, got 0"):
        models.unet(depth=0)
    with pytest.raises(ValueError, match="BasicBlock: only supports groups=1 and base_width=64, "
                                         "got groups=32, base_width=4"):
        models.resnet18(groups=32, width_per_group=4)
    with pytest.raises(ValueError, match=r"ResNet: layers must list 4 block counts, got \[2, 2, 2\]"):
        models.ResNet(models.BasicBlock, [2, 2, 2])
    with pytest.raises(ValueError, match="InvertedResidual: stride must be 1 or 2, got 3"):
        models.InvertedResidual(8, 8, 3, 6)
