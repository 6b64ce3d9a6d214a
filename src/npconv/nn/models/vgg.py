"""VGG-16 (Simonyan & Zisserman 2014, https://arxiv.org/abs/1409.1556), configuration "D",
with torchvision's structure and state-dict keys: ``features`` (3x3 convolutions with
padding 1 and ReLU, 2x2 max pools), ``avgpool`` = AdaptiveAvgPool2d(7), flatten,
``classifier`` (Linear 25088 -> 4096, ReLU, Dropout, Linear 4096 -> 4096, ReLU, Dropout,
Linear 4096 -> num_classes).  The five pools shrink H and W by 32 (floor at each pool), so
inputs need H, W >= 32.
"""

from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Dropout, Flatten, Linear
from ..pooling import AdaptiveAvgPool2d, MaxPool2d
from ._common import Chain, torchvision_init

# output channels of each 3x3 convolution; "M" a 2x2 max pool
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
                512, 512, 512, "M")


def make_features(config, in_channels=3):
    layers = []
    for entry in config:
        if entry == "M":
            layers.append(MaxPool2d(2, stride=2))
        else:
            layers += [Conv2d(in_channels, entry, 3, padding=1), ReLU()]
            in_channels = entry
    return Sequential(*layers)


class VGG(Chain):
    """``VGG(features, num_classes=1000, dropout=0.5)``.  Input (N, 3, H, W) -> logits
    (N, num_classes)."""

    def __init__(self, features, num_classes=1000, dropout=0.5):
        super().__init__()
        self.features = features
        self.avgpool = AdaptiveAvgPool2d((7, 7))
        self.flatten = Flatten(1)
        self.classifier = Sequential(
            Linear(512 * 7 * 7, 4096), ReLU(), Dropout(p=dropout),
            Linear(4096, 4096), ReLU(), Dropout(p=dropout),
            Linear(4096, num_classes),
        )
        torchvision_init(self, linear_std=0.01)

    def stages(self):
        return (self.features, self.avgpool, self.flatten, self.classifier)


def vgg16(num_classes=1000, **kwargs):
    """VGG-16 without batch norm, 138,357,544 parameters at 1000 classes."""
    return VGG(make_features(VGG16_CONFIG), num_classes=num_classes, **kwargs)
