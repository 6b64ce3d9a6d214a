"""npconv.nn: layers with PyTorch's constructors and state-dict keys, each with its backward.

See :mod:`npconv.nn.module` for the forward/backward contract.
"""

from . import models, optim
from .activation import LeakyReLU, ReLU, ReLU6, Sigmoid, Tanh
from .containers import Sequential
from .conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
                   DepthwiseSeparableConv2d)
from .init import manual_seed
from .linear import Dropout, Flatten, Identity, Linear
from .loss import CrossEntropyLoss, MSELoss
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d
from .optim import SGD, Adam
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .serialization import load, save
from .upsample import Upsample

__all__ = [
    "Adam", "AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "Conv3d",
    "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d", "CrossEntropyLoss", "DepthwiseSeparableConv2d",
    "Dropout", "Flatten", "Identity", "LeakyReLU", "Linear", "MSELoss", "MaxPool2d", "Module", "Parameter",
    "ReLU", "ReLU6", "SGD", "Sequential", "Sigmoid", "Tanh", "Upsample", "load", "manual_seed", "models",
    "optim", "save",
]
