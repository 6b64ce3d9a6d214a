"""ResNet and ResNeXt (He et al. 2015, https://arxiv.org/abs/1512.03385; Xie et al. 2016,
https://arxiv.org/abs/1611.05431) with torchvision's structure and state-dict keys.

The stem halves the input twice (7x7 stride-2 conv, 3x3 stride-2 max pool) and layer2..4
halve it again, so the last feature map is ``ceil(H / 32) x ceil(W / 32)``; the adaptive
average pool makes any input of at least 32x32 work (smaller ones too, down to 1x1 maps).
"""

from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Flatten, Linear
from ..module import Module
from ..normalization import BatchNorm2d
from ..pooling import AdaptiveAvgPool2d, MaxPool2d
from ._common import Chain, backward_chain, forward_chain, torchvision_init


def conv3x3(in_planes, out_planes, stride=1, groups=1):
    return Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


class _Residual(Module):
    """A residual block: ``out = relu(main(x) + shortcut(x))`` where ``shortcut`` is
    ``downsample`` (conv1x1 + BatchNorm) or the identity.  Subclasses build ``main`` from their
    own children; ``_main_layers`` lists them in order (ReLUs included), ending with the
    last BatchNorm."""

    def forward(self, x):
        out = forward_chain(self._main_layers(), x)
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu_out(out + identity)

    def backward(self, grad_output):
        grad = self.relu_out.backward(grad_output)  # flows to both branches of the sum
        grad_main = backward_chain(self._main_layers(), grad)
        grad_identity = grad if self.downsample is None else self.downsample.backward(grad)
        return grad_main + grad_identity


class BasicBlock(_Residual):
    """Two 3x3 convolutions (ResNet-18/34).  Each ReLU position has its own module (a module
    keeps only its latest call for backward); ReLUs have no state, so the keys are
    torchvision's."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        if groups != 1 or base_width != 64:
            raise ValueError(f"BasicBlock: only supports groups=1 and base_width=64, "
                             f"got groups={groups}, base_width={base_width}")
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = BatchNorm2d(planes)
        self.relu = ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = BatchNorm2d(planes)
        self.downsample = downsample
        self.relu_out = ReLU()
        self.stride = stride

    def _main_layers(self):
        return (self.conv1, self.bn1, self.relu, self.conv2, self.bn2)


class Bottleneck(_Residual):
    """1x1 reduce, 3x3 (stride and groups here, as torchvision's "ResNet V1.5"), 1x1 expand
    by 4 (ResNet-50/101/152, ResNeXt).  The inner width is
    ``int(planes * base_width / 64) * groups``."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        self.conv1 = conv1x1(inplanes, width)
        self.bn1 = BatchNorm2d(width)
        self.relu = ReLU()
        self.conv2 = conv3x3(width, width, stride, groups)
        self.bn2 = BatchNorm2d(width)
        self.relu2 = ReLU()
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = BatchNorm2d(planes * self.expansion)
        self.downsample = downsample
        self.relu_out = ReLU()
        self.stride = stride

    def _main_layers(self):
        return (self.conv1, self.bn1, self.relu, self.conv2, self.bn2, self.relu2,
                self.conv3, self.bn3)


class ResNet(Chain):
    """``ResNet(block, layers, num_classes=1000, zero_init_residual=False, groups=1,
    width_per_group=64)`` as torchvision's: stem (conv1, bn1, relu, maxpool), layer1..layer4
    with ``layers[i]`` blocks of 64, 128, 256, 512 planes (stride 2 from layer2 on), average
    pool, flatten, ``fc``.  Input (N, 3, H, W) -> logits (N, num_classes)."""

    def __init__(self, block, layers, num_classes=1000, zero_init_residual=False, groups=1,
                 width_per_group=64):
        super().__init__()
        if len(layers) != 4:
            raise ValueError(f"ResNet: layers must list 4 block counts, got {layers!r}")
        self.inplanes = 64
        self.groups = groups
        self.base_width = width_per_group
        self.conv1 = Conv2d(3, self.inplanes, 7, stride=2, padding=3, bias=False)
        self.bn1 = BatchNorm2d(self.inplanes)
        self.relu = ReLU()
        self.maxpool = MaxPool2d(3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        self.avgpool = AdaptiveAvgPool2d((1, 1))
        self.flatten = Flatten(1)
        self.fc = Linear(512 * block.expansion, num_classes)
        torchvision_init(self)
        if zero_init_residual:
            for module in self.modules():
                if isinstance(module, _Residual):
                    module._main_layers()[-1].weight.data[...] = 0

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                    BatchNorm2d(planes * block.expansion))
        layers = [block(self.inplanes, planes, stride, downsample, self.groups, self.base_width)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, groups=self.groups, base_width=self.base_width)
                   for _ in range(1, blocks)]
        return Sequential(*layers)

    def stages(self):
        return (self.conv1, self.bn1, self.relu, self.maxpool, self.layer1, self.layer2,
                self.layer3, self.layer4, self.avgpool, self.flatten, self.fc)


def resnet18(num_classes=1000, **kwargs):
    """ResNet-18: BasicBlock x [2, 2, 2, 2], 11,689,512 parameters at 1000 classes."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, **kwargs)


def resnet50(num_classes=1000, **kwargs):
    """ResNet-50: Bottleneck x [3, 4, 6, 3], 25,557,032 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, **kwargs)


def resnext50_32x4d(num_classes=1000, **kwargs):
    """ResNeXt-50 32x4d: ResNet-50 with 32 groups of width 4 per 64 planes in each 3x3
    convolution, 25,028,904 parameters at 1000 classes."""
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes=num_classes, groups=32,
                  width_per_group=4, **kwargs)
