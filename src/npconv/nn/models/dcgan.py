"""The DCGAN generator of PyTorch's DCGAN tutorial (Radford et al. 2015,
https://arxiv.org/abs/1511.06434): a latent vector (N, nz, 1, 1) -> an image (N, nc, 64, 64)
in [-1, 1].  Each transposed convolution gives ``(H - 1) * stride - 2 * padding + 4``:
4x4 kernel, stride 1, padding 0 takes 1 -> 4, then four 4x4 stride-2 padding-1 layers double
it to 64.  State-dict keys as the tutorial's ``Generator`` (``main.0.weight``, ...).
"""

import numpy as np

from .. import init
from ..activation import ReLU, Tanh
from ..containers import Sequential
from ..conv import ConvTranspose2d
from ..normalization import BatchNorm2d
from ._common import Chain


class Generator(Chain):
    """``Generator(nz=100, ngf=64, nc=3)``: ConvTranspose2d(nz, 8 ngf, 4, 1, 0), then
    8 ngf -> 4 ngf -> 2 ngf -> ngf -> nc with 4x4 stride-2 padding-1 layers; BatchNorm2d and
    ReLU after every layer but the last, Tanh after it.  No biases.  Initialised as the
    tutorial's ``weights_init``: conv weights N(0, 0.02^2), BatchNorm weights N(1, 0.02^2)
    and biases 0."""

    def __init__(self, nz=100, ngf=64, nc=3):
        super().__init__()
        widths = [nz, ngf * 8, ngf * 4, ngf * 2, ngf]
        layers = []
        for i, (cin, cout) in enumerate(zip(widths, widths[1:])):
            stride, padding = (1, 0) if i == 0 else (2, 1)
            layers += [ConvTranspose2d(cin, cout, 4, stride, padding, bias=False),
                       BatchNorm2d(cout), ReLU()]
        layers += [ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), Tanh()]
        self.main = Sequential(*layers)
        for module in self.modules():
            if isinstance(module, ConvTranspose2d):
                module.weight.data = init.normal(module.weight.shape, 0.02)
            elif isinstance(module, BatchNorm2d):
                module.weight.data = 1.0 + init.normal(module.weight.shape, 0.02)
                module.bias.data = np.zeros_like(module.bias.data)

    def stages(self):
        return (self.main,)


def dcgan_generator(nz=100, ngf=64, nc=3):
    """The DCGAN tutorial's generator: (N, nz, 1, 1) -> (N, nc, 64, 64)."""
    return Generator(nz=nz, ngf=ngf, nc=nc)
