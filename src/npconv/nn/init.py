"""Parameter initialisation, drawn from one seedable generator (as ``torch.manual_seed``).

The layers use PyTorch's defaults: weights and biases uniform on ``[-b, b]`` with
``b = 1/sqrt(fan_in)`` (``kaiming_uniform_(a=sqrt(5))`` reduces to that bound for the weight).
"""

import math

import numpy as np

_GENERATOR = [np.random.default_rng(0)]


def manual_seed(seed):
    """Reseed the generator every layer draws its initial parameters from."""
    _GENERATOR[0] = np.random.default_rng(seed)


def generator():
    return _GENERATOR[0]


def fan_in_and_out(shape):
    """``(fan_in, fan_out)`` of a weight ``(out, in, *kernel)``, as PyTorch computes them."""
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _draw_dtype(dtype):
    """Draw float32 parameters in float32: VGG-16's 25088x4096 layer drawn in float64 and
    cast took seconds and 800 MB."""
    return np.float32 if np.dtype(dtype) == np.float32 else np.float64


def uniform(shape, bound, dtype=np.float32):
    """U(-bound, bound) of ``shape``."""
    values = generator().random(size=shape, dtype=_draw_dtype(dtype))
    values *= 2 * bound
    values -= bound
    return values.astype(dtype, copy=False)


def normal(shape, std, dtype=np.float32):
    """N(0, std^2) of ``shape``."""
    values = generator().standard_normal(size=shape, dtype=_draw_dtype(dtype))
    values *= std
    return values.astype(dtype, copy=False)


def default_bound(fan_in):
    """PyTorch's default bound for a layer's weight and bias: ``1/sqrt(fan_in)``."""
    return 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0


def kaiming_normal(shape, mode="fan_out", dtype=np.float32):
    """``kaiming_normal_(nonlinearity="relu")``: N(0, 2/fan) with fan = fan_in or fan_out."""
    fan_in, fan_out = fan_in_and_out(shape)
    fan = fan_out if mode == "fan_out" else fan_in
    return normal(shape, math.sqrt(2.0 / fan), dtype)
