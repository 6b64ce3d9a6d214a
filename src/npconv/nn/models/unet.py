"""A small U-Net (Ronneberger et al. 2015, https://arxiv.org/abs/1505.04597) for
segmentation, with "same" padding so the output has the input's height and width.

Level ``i`` (0 .. depth - 1) of the encoder is ``down{i}`` (two 3x3 conv + BatchNorm + ReLU,
``base * 2**i`` channels) then ``pool{i}`` (2x2 max pool); ``bottleneck`` works at
``base * 2**depth`` channels; the decoder's level ``i`` is ``up{i}`` (ConvTranspose2d 2x2
stride 2, halving the channels and doubling H and W), concatenation with ``down{i}``'s output
along channels (skip first), then ``dec{i}`` (two 3x3 conv blocks back to ``base * 2**i``);
``head`` is a 1x1 convolution to ``num_classes``.
"""

import numpy as np

from ..activation import ReLU
from ..containers import Sequential
from ..conv import Conv2d, ConvTranspose2d
from ..module import Module
from ..normalization import BatchNorm2d
from ..pooling import MaxPool2d


def double_conv(in_channels, out_channels):
    """Sequential(Conv2d 3x3 pad 1, BatchNorm2d, ReLU) twice; convolutions without bias."""
    return Sequential(
        Conv2d(in_channels, out_channels, 3, padding=1, bias=False), BatchNorm2d(out_channels), ReLU(),
        Conv2d(out_channels, out_channels, 3, padding=1, bias=False), BatchNorm2d(out_channels), ReLU(),
    )


class UNet(Module):
    """``UNet(in_channels=3, num_classes=2, base=16, depth=3)``: (N, in_channels, H, W) ->
    per-pixel logits (N, num_classes, H, W).  H and W must be divisible by ``2**depth`` (each
    pool halves them and each up-convolution doubles them back)."""

    def __init__(self, in_channels=3, num_classes=2, base=16, depth=3):
        super().__init__()
        if depth < 1:
            raise ValueError(f"UNet: depth must be at least 1, got {depth}")
        self.depth = depth
        widths = [base * 2 ** i for i in range(depth + 1)]
        for i in range(depth):
            setattr(self, f"down{i}", double_conv(in_channels if i == 0 else widths[i - 1], widths[i]))
            setattr(self, f"pool{i}", MaxPool2d(2))
        self.bottleneck = double_conv(widths[depth - 1], widths[depth])
        for i in range(depth):
            setattr(self, f"up{i}", ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2))
            setattr(self, f"dec{i}", double_conv(2 * widths[i], widths[i]))
        self.head = Conv2d(base, num_classes, 1)

    def _level(self, kind, i):
        return getattr(self, f"{kind}{i}")

    def forward(self, x):
        multiple = 2 ** self.depth
        if x.ndim != 4 or x.shape[2] % multiple or x.shape[3] % multiple:
            raise ValueError(f"UNet: input must be (N, C, H, W) with H and W divisible by "
                             f"2**depth = {multiple}, got shape {x.shape}")
        skips = []
        for i in range(self.depth):
            x = self._level("down", i)(x)
            skips.append(x)
            x = self._level("pool", i)(x)
        x = self.bottleneck(x)
        for i in reversed(range(self.depth)):
            x = self._level("up", i)(x)
            x = np.concatenate([skips[i], x], axis=1)  # (N, 2 * widths[i], H_i, W_i)
            x = self._level("dec", i)(x)
        self._skip_channels = [s.shape[1] for s in skips]
        return self.head(x)

    def backward(self, grad_output):
        grad = self.head.backward(grad_output)
        skip_grads = []
        for i in range(self.depth):  # the decoder in reverse: level 0 was decoded last
            grad = self._level("dec", i).backward(grad)
            # split the concatenation's gradient: skip channels first, then the up path
            skip_grads.append(grad[:, :self._skip_channels[i]])
            grad = self._level("up", i).backward(grad[:, self._skip_channels[i]:])
        grad = self.bottleneck.backward(grad)
        for i in reversed(range(self.depth)):
            # down{i}'s output fed both pool{i} and the skip: add the two gradients
            grad = self._level("pool", i).backward(grad) + skip_grads[i]
            grad = self._level("down", i).backward(grad)
        return grad


def unet(in_channels=3, num_classes=2, base=16, depth=3):
    """A small U-Net; H and W of the input must be divisible by ``2**depth``."""
    return UNet(in_channels=in_channels, num_classes=num_classes, base=base, depth=depth)
