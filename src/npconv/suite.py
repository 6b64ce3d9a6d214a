"""Real convolution layers of well-known networks at 224x224, the benchmark suite.

Each layer is ``(network, name, C_in, size, C_out, kernel, stride, padding, groups)`` with
square inputs and kernels; the input is ``(batch, C_in, size, size)``.
"""

from collections import namedtuple

Layer = namedtuple("Layer", "network name in_channels size out_channels kernel stride padding groups")

LAYERS = [
    # ResNet-50 (torchvision v1.5: the stride sits on the 3x3 conv of a bottleneck)
    Layer("resnet50", "conv1 7x7/2", 3, 224, 64, 7, 2, 3, 1),
    Layer("resnet50", "layer1 1x1 64->64", 64, 56, 64, 1, 1, 0, 1),
    Layer("resnet50", "layer1 3x3 64", 64, 56, 64, 3, 1, 1, 1),
    Layer("resnet50", "layer1 1x1 64->256", 64, 56, 256, 1, 1, 0, 1),
    Layer("resnet50", "layer1 1x1 256->64", 256, 56, 64, 1, 1, 0, 1),
    Layer("resnet50", "layer2 3x3/2 128", 128, 56, 128, 3, 2, 1, 1),
    Layer("resnet50", "layer2 3x3 128", 128, 28, 128, 3, 1, 1, 1),
    Layer("resnet50", "layer2 1x1 512->128", 512, 28, 128, 1, 1, 0, 1),
    Layer("resnet50", "layer3 3x3/2 256", 256, 28, 256, 3, 2, 1, 1),
    Layer("resnet50", "layer3 3x3 256", 256, 14, 256, 3, 1, 1, 1),
    Layer("resnet50", "layer3 1x1 256->1024", 256, 14, 1024, 1, 1, 0, 1),
    Layer("resnet50", "layer4 3x3/2 512", 512, 14, 512, 3, 2, 1, 1),
    Layer("resnet50", "layer4 3x3 512", 512, 7, 512, 3, 1, 1, 1),
    Layer("resnet50", "layer4 1x1 2048->512", 2048, 7, 512, 1, 1, 0, 1),
    # VGG-16
    Layer("vgg16", "conv1_2 3x3 64", 64, 224, 64, 3, 1, 1, 1),
    Layer("vgg16", "conv2_2 3x3 128", 128, 112, 128, 3, 1, 1, 1),
    Layer("vgg16", "conv3_2 3x3 256", 256, 56, 256, 3, 1, 1, 1),
    Layer("vgg16", "conv4_2 3x3 512", 512, 28, 512, 3, 1, 1, 1),
    Layer("vgg16", "conv5_2 3x3 512", 512, 14, 512, 3, 1, 1, 1),
    # MobileNetV2
    Layer("mobilenet_v2", "conv 3x3/2 3->32", 3, 224, 32, 3, 2, 1, 1),
    Layer("mobilenet_v2", "dw 3x3 32", 32, 112, 32, 3, 1, 1, 32),
    Layer("mobilenet_v2", "dw 3x3/2 96", 96, 112, 96, 3, 2, 1, 96),
    Layer("mobilenet_v2", "dw 3x3 144", 144, 56, 144, 3, 1, 1, 144),
    Layer("mobilenet_v2", "dw 3x3/2 192", 192, 28, 192, 3, 2, 1, 192),
    Layer("mobilenet_v2", "dw 3x3 384", 384, 14, 384, 3, 1, 1, 384),
    Layer("mobilenet_v2", "dw 3x3 960", 960, 7, 960, 3, 1, 1, 960),
    Layer("mobilenet_v2", "pw 1x1 16->96", 16, 112, 96, 1, 1, 0, 1),
    Layer("mobilenet_v2", "pw 1x1 144->24", 144, 56, 24, 1, 1, 0, 1),
    Layer("mobilenet_v2", "pw 1x1 320->1280", 320, 7, 1280, 1, 1, 0, 1),
    # ResNeXt-50 32x4d: the grouped 3x3 of each stage
    Layer("resnext50_32x4d", "layer1 3x3 128 g32", 128, 56, 128, 3, 1, 1, 32),
    Layer("resnext50_32x4d", "layer2 3x3 256 g32", 256, 28, 256, 3, 1, 1, 32),
    Layer("resnext50_32x4d", "layer3 3x3 512 g32", 512, 14, 512, 3, 1, 1, 32),
    Layer("resnext50_32x4d", "layer4 3x3 1024 g32", 1024, 7, 1024, 3, 1, 1, 32),
]

# ``--quick``: one layer of each kind, batch 1
QUICK = [
    "conv1 7x7/2", "layer1 3x3 64", "layer3 3x3 256", "layer3 1x1 256->1024",
    "dw 3x3 144", "layer2 3x3 256 g32",
]
