"""npconv.nn: layers with PyTorch's constructors and state-dict keys, each with its backward.

See :mod:`npconv.nn.module` for the forward/backward contract.
"""

from .activation import LeakyReLU, ReLU, ReLU6, Sigmoid, Tanh
from .containers import Sequential
from .normalization import BatchNorm1d, BatchNorm2d
from .pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d
from .conv import (Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d,
                   DepthwiseSeparableConv2d)
from .init import manual_seed
from .linear import Dropout, Flatten, Identity, Linear
from .module import Module, Parameter
from . import models, optim
from .loss import CrossEntropyLoss, MSELoss
from .optim import SGD, Adam
from .serialization import load, save
from .upsample import Upsample
