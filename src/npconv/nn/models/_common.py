"""What the models share: a chain of stages with its backward, and torchvision's weight
initialisation."""

import numpy as np

from .. import init
from ..conv import Conv2d
from ..linear import Linear
from ..module import Module


def forward_chain(layers, x):
    """Apply ``layers`` in order."""
    for layer in layers:
        x = layer(x)
    return x


def backward_chain(layers, grad_output):
    """The backward of :func:`forward_chain`: each layer's backward, in reverse order."""
    for layer in reversed(layers):
        grad_output = layer.backward(grad_output)
    return grad_output


class Chain(Module):
    """A model whose forward runs its children ``stages()`` in order (as a Sequential, but with
    torchvision's attribute names, and stateless stages such as a Flatten in between)."""

    def stages(self):
        raise NotImplementedError(f"{type(self).__name__} does not define stages")

    def forward(self, x):
        return forward_chain(self.stages(), x)

    def backward(self, grad_output):
        return backward_chain(self.stages(), grad_output)


def torchvision_init(model, linear_std=None):
    """Initialise ``model`` in place as torchvision's classifiers do: every Conv2d weight
    ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` with a zero bias; with
    ``linear_std`` every Linear weight N(0, linear_std^2) with a zero bias (otherwise the
    Linear keeps PyTorch's default).  BatchNorm keeps its default weight 1, bias 0."""
    for module in model.modules():
        if isinstance(module, Conv2d):
            _reset(module, init.kaiming_normal(module.weight.shape, mode="fan_out"))
        elif isinstance(module, Linear) and linear_std is not None:
            _reset(module, init.normal(module.weight.shape, linear_std))
    return model


def _reset(module, weight):
    module.weight.data = weight.astype(module.weight.dtype)
    if getattr(module, "bias", None) is not None:
        module.bias.data = np.zeros_like(module.bias.data)
