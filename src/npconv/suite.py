"""Real convolution layers of well-known networks at 224x224, the benchmark suite, and its targets.

Each layer is ``(network, name, C_in, size, C_out, kernel, stride, padding, groups, group)``
with square inputs and kernels; the input is ``(batch, C_in, size, size)``.  Each distinct
shape appears once (a shape repeated in a network, e.g. ResNet-50's ``layer3 3x3 256`` in
five blocks, is one layer), so no shape weighs more than another in a group's mean.
``group`` names the target group the layer counts towards (a key of :data:`TARGETS`), or
is ``None``.  The networks are torchvision's ``resnet50`` (v1.5: the stride sits on the
3x3 conv of a bottleneck), ``vgg16``, ``mobilenet_v2`` and ``resnext50_32x4d``.
"""

from collections import namedtuple

import numpy as np

from .geometry import conv_geometry


class Layer(namedtuple("Layer", "network name in_channels size out_channels kernel stride padding groups group")):
    """One convolution layer of the suite; :meth:`geometry` checks it as npconv does."""

    __slots__ = ()

    def input_shape(self, batch):
        return (batch, self.in_channels, self.size, self.size)

    @property
    def weight_shape(self):
        return (self.out_channels, self.in_channels // self.groups, self.kernel, self.kernel)

    def geometry(self, batch, dtype=np.float32):
        """The layer's :class:`~npconv.geometry.ConvGeometry` at ``batch``, through npconv's own checks."""
        geom, _ = conv_geometry(
            "suite", self.input_shape(batch), self.weight_shape, None, stride=self.stride, padding=self.padding,
            dilation=1, groups=self.groups, padding_mode="zeros", dtype=dtype,
        )
        return geom


# Speed ratio (torch ms / npconv ms) the geometric mean over a group's layers, auto's
# choice at each of TARGET_BATCHES, must reach.
Target = namedtuple("Target", "ratio what")
TARGETS = {
    "3x3": Target(1.2, "3x3 stride 1 of ResNet-50 and VGG-16"),
    "1x1": Target(0.95, "1x1 of ResNet-50 and MobileNetV2"),
    "depthwise": Target(1.0, "depthwise 3x3 of MobileNetV2, stride 1 and 2"),
    "grouped": Target(1.0, "grouped 3x3 of ResNeXt-50 32x4d"),
    "strided": Target(0.9, "ResNet-50's 7x7/2 stem and 3x3/2"),
}
TARGET_BATCHES = (1, 8)

LAYERS = [
    # ResNet-50: stem at 224 -> 112 (then a 3x3/2 max pool to 56); bottlenecks 1x1, 3x3, 1x1,
    # the first block of each stage with a 1x1 projection (stride 1 in layer1, 2 after).
    Layer("resnet50", "conv1 7x7/2", 3, 224, 64, 7, 2, 3, 1, "strided"),
    Layer("resnet50", "layer1 1x1 64->64", 64, 56, 64, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer1 3x3 64", 64, 56, 64, 3, 1, 1, 1, "3x3"),
    Layer("resnet50", "layer1 1x1 64->256", 64, 56, 256, 1, 1, 0, 1, "1x1"),  # also the projection
    Layer("resnet50", "layer1 1x1 256->64", 256, 56, 64, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer2 1x1 256->128", 256, 56, 128, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer2 3x3/2 128", 128, 56, 128, 3, 2, 1, 1, "strided"),
    Layer("resnet50", "layer2 1x1 128->512", 128, 28, 512, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer2 1x1/2 256->512", 256, 56, 512, 1, 2, 0, 1, "1x1"),
    Layer("resnet50", "layer2 1x1 512->128", 512, 28, 128, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer2 3x3 128", 128, 28, 128, 3, 1, 1, 1, "3x3"),
    Layer("resnet50", "layer3 1x1 512->256", 512, 28, 256, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer3 3x3/2 256", 256, 28, 256, 3, 2, 1, 1, "strided"),
    Layer("resnet50", "layer3 1x1 256->1024", 256, 14, 1024, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer3 1x1/2 512->1024", 512, 28, 1024, 1, 2, 0, 1, "1x1"),
    Layer("resnet50", "layer3 1x1 1024->256", 1024, 14, 256, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer3 3x3 256", 256, 14, 256, 3, 1, 1, 1, "3x3"),
    Layer("resnet50", "layer4 1x1 1024->512", 1024, 14, 512, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer4 3x3/2 512", 512, 14, 512, 3, 2, 1, 1, "strided"),
    Layer("resnet50", "layer4 1x1 512->2048", 512, 7, 2048, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer4 1x1/2 1024->2048", 1024, 14, 2048, 1, 2, 0, 1, "1x1"),
    Layer("resnet50", "layer4 1x1 2048->512", 2048, 7, 512, 1, 1, 0, 1, "1x1"),
    Layer("resnet50", "layer4 3x3 512", 512, 7, 512, 3, 1, 1, 1, "3x3"),
    # VGG-16: 3x3 convs, a 2x2 max pool after each stage (224, 112, 56, 28, 14)
    Layer("vgg16", "conv1_1 3x3 3->64", 3, 224, 64, 3, 1, 1, 1, "3x3"),
    Layer("vgg16", "conv1_2 3x3 64", 64, 224, 64, 3, 1, 1, 1, "3x3"),
    Layer("vgg16", "conv2_1 3x3 64->128", 64, 112, 128, 3, 1, 1, 1, "3x3"),
    Layer("vgg16", "conv2_2 3x3 128", 128, 112, 128, 3, 1, 1, 1, "3x3"),
    Layer("vgg16", "conv3_1 3x3 128->256", 128, 56, 256, 3, 1, 1, 1, "3x3"),
    Layer("vgg16", "conv3_2 3x3 256", 256, 56, 256, 3, 1, 1, 1, "3x3"),  # also conv3_3
    Layer("vgg16", "conv4_1 3x3 256->512", 256, 28, 512, 3, 1, 1, 1, "3x3"),
    Layer("vgg16", "conv4_2 3x3 512", 512, 28, 512, 3, 1, 1, 1, "3x3"),  # also conv4_3
    Layer("vgg16", "conv5_2 3x3 512", 512, 14, 512, 3, 1, 1, 1, "3x3"),  # also conv5_1, conv5_3
    # MobileNetV2: a 3x3/2 stem, then inverted residuals (expand 1x1, depthwise 3x3, project
    # 1x1; no expansion in the first), a final 1x1 to 1280.  Stages at 112, 56, 28, 14, 7.
    Layer("mobilenet_v2", "conv 3x3/2 3->32", 3, 224, 32, 3, 2, 1, 1, None),
    Layer("mobilenet_v2", "dw 3x3 32", 32, 112, 32, 3, 1, 1, 32, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 32->16", 32, 112, 16, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 16->96", 16, 112, 96, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3/2 96", 96, 112, 96, 3, 2, 1, 96, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 96->24", 96, 56, 24, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 24->144", 24, 56, 144, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3 144", 144, 56, 144, 3, 1, 1, 144, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 144->24", 144, 56, 24, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3/2 144", 144, 56, 144, 3, 2, 1, 144, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 144->32", 144, 28, 32, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 32->192", 32, 28, 192, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3 192", 192, 28, 192, 3, 1, 1, 192, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 192->32", 192, 28, 32, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3/2 192", 192, 28, 192, 3, 2, 1, 192, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 192->64", 192, 14, 64, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 64->384", 64, 14, 384, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3 384", 384, 14, 384, 3, 1, 1, 384, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 384->64", 384, 14, 64, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 384->96", 384, 14, 96, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 96->576", 96, 14, 576, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3 576", 576, 14, 576, 3, 1, 1, 576, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 576->96", 576, 14, 96, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3/2 576", 576, 14, 576, 3, 2, 1, 576, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 576->160", 576, 7, 160, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 160->960", 160, 7, 960, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "dw 3x3 960", 960, 7, 960, 3, 1, 1, 960, "depthwise"),
    Layer("mobilenet_v2", "pw 1x1 960->160", 960, 7, 160, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 960->320", 960, 7, 320, 1, 1, 0, 1, "1x1"),
    Layer("mobilenet_v2", "pw 1x1 320->1280", 320, 7, 1280, 1, 1, 0, 1, "1x1"),
    # ResNeXt-50 32x4d: ResNet-50's layout with 32-group 3x3s twice as wide; only those
    # (its stem and 1x1s belong to no target group).
    Layer("resnext50_32x4d", "layer1 3x3 128 g32", 128, 56, 128, 3, 1, 1, 32, "grouped"),
    Layer("resnext50_32x4d", "layer2 3x3/2 256 g32", 256, 56, 256, 3, 2, 1, 32, "grouped"),
    Layer("resnext50_32x4d", "layer2 3x3 256 g32", 256, 28, 256, 3, 1, 1, 32, "grouped"),
    Layer("resnext50_32x4d", "layer3 3x3/2 512 g32", 512, 28, 512, 3, 2, 1, 32, "grouped"),
    Layer("resnext50_32x4d", "layer3 3x3 512 g32", 512, 14, 512, 3, 1, 1, 32, "grouped"),
    Layer("resnext50_32x4d", "layer4 3x3/2 1024 g32", 1024, 14, 1024, 3, 2, 1, 32, "grouped"),
    Layer("resnext50_32x4d", "layer4 3x3 1024 g32", 1024, 7, 1024, 3, 1, 1, 32, "grouped"),
]

NETWORKS = tuple(dict.fromkeys(layer.network for layer in LAYERS))

# ``--quick``: a layer or two of each target group and network (names are unique in the suite)
QUICK = [
    "conv1 7x7/2", "layer1 3x3 64", "layer3 3x3 256", "conv3_2 3x3 256", "layer3 1x1 256->1024",
    "dw 3x3 144", "layer2 3x3 256 g32",
]


def suite_layers(quick=False, networks=None):
    """The suite's layers (or its :data:`QUICK` ones), of ``networks`` only when given."""
    return [
        layer for layer in LAYERS
        if (not quick or layer.name in QUICK) and (not networks or layer.network in networks)
    ]
