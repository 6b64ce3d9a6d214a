"""Model zoo with torchvision's architectures and state-dict keys (a torchvision
``state_dict()``, tensors converted to NumPy, loads with ``load_state_dict``), plus a small
U-Net and the DCGAN tutorial's generator.  Every model has a backward."""

from .dcgan import Generator, dcgan_generator
from .mobilenet import InvertedResidual, MobileNetV2, mobilenet_v2
from .resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet50, resnext50_32x4d
from .unet import UNet, unet
from .vgg import VGG, vgg16

__all__ = [
    "resnet18", "resnet50", "resnext50_32x4d", "mobilenet_v2", "vgg16", "unet", "dcgan_generator",
    "ResNet", "BasicBlock", "Bottleneck", "MobileNetV2", "InvertedResidual", "VGG", "UNet",
    "Generator",
]
