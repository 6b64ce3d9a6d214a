"""MobileNetV2 (Sandler et al. 2018, https://arxiv.org/abs/1801.04381) with torchvision's
structure and state-dict keys: ``features.0`` a 3x3 stride-2 Conv2dNormActivation,
``features.1..17`` InvertedResidual blocks (each with a ``conv`` Sequential), ``features.18``
a 1x1 Conv2dNormActivation to ``last_channel``, then global average pooling, flatten and
``classifier`` = Sequential(Dropout, Linear).  The feature map shrinks by 32:
``ceil(H / 32) x ceil(W / 32)``.
"""

from ..activation import ReLU6
from ..containers import Sequential
from ..conv import Conv2d
from ..linear import Dropout, Flatten, Linear
from ..module import Module
from ..normalization import BatchNorm2d
from ..pooling import AdaptiveAvgPool2d
from ._common import Chain, torchvision_init

# t (expansion), c (output channels), n (repeats), s (stride of the first repeat)
INVERTED_RESIDUAL_SETTING = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def make_divisible(value, divisor, min_value=None):
    """Round ``value`` to the nearest multiple of ``divisor`` (at least ``min_value``, which
    defaults to ``divisor``), going up one step where rounding lost more than 10%."""
    min_value = divisor if min_value is None else min_value
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def conv_norm_activation(in_channels, out_channels, kernel_size=3, stride=1, groups=1):
    """torchvision's Conv2dNormActivation with ReLU6: Sequential(Conv2d without bias, padding
    ``(kernel_size - 1) // 2``; BatchNorm2d; ReLU6), keys ``0.weight``, ``1.weight``, ..."""
    return Sequential(
        Conv2d(in_channels, out_channels, kernel_size, stride=stride,
               padding=(kernel_size - 1) // 2, groups=groups, bias=False),
        BatchNorm2d(out_channels),
        ReLU6(),
    )


class InvertedResidual(Module):
    """Expand 1x1 (skipped when ``expand_ratio == 1``), depthwise 3x3 with the stride, project
    1x1 without activation; the input is added back when ``stride == 1 and inp == oup``."""

    def __init__(self, inp, oup, stride, expand_ratio):
        super().__init__()
        if stride not in (1, 2):
            raise ValueError(f"InvertedResidual: stride must be 1 or 2, got {stride}")
        hidden_dim = int(round(inp * expand_ratio))
        self.use_res_connect = stride == 1 and inp == oup
        layers = [conv_norm_activation(inp, hidden_dim, kernel_size=1)] if expand_ratio != 1 else []
        layers += [
            conv_norm_activation(hidden_dim, hidden_dim, stride=stride, groups=hidden_dim),
            Conv2d(hidden_dim, oup, 1, bias=False),
            BatchNorm2d(oup),
        ]
        self.conv = Sequential(*layers)
        self.out_channels = oup
        self.stride = stride

    def forward(self, x):
        out = self.conv(x)
        return x + out if self.use_res_connect else out

    def backward(self, grad_output):
        grad_input = self.conv.backward(grad_output)
        return grad_input + grad_output if self.use_res_connect else grad_input


class MobileNetV2(Chain):
    """``MobileNetV2(num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2)``:
    channel counts are ``make_divisible(c * width_mult, round_nearest)``, the last one
    ``make_divisible(1280 * max(1, width_mult), round_nearest)``.  Input (N, 3, H, W) ->
    logits (N, num_classes)."""

    def __init__(self, num_classes=1000, width_mult=1.0, round_nearest=8, dropout=0.2):
        super().__init__()
        input_channel = make_divisible(32 * width_mult, round_nearest)
        self.last_channel = make_divisible(1280 * max(1.0, width_mult), round_nearest)
        features = [conv_norm_activation(3, input_channel, stride=2)]
        for t, c, n, s in INVERTED_RESIDUAL_SETTING:
            output_channel = make_divisible(c * width_mult, round_nearest)
            for i in range(n):
                features.append(InvertedResidual(input_channel, output_channel,
                                                 s if i == 0 else 1, expand_ratio=t))
                input_channel = output_channel
        features.append(conv_norm_activation(input_channel, self.last_channel, kernel_size=1))
        self.features = Sequential(*features)
        self.pool = AdaptiveAvgPool2d((1, 1))
        self.flatten = Flatten(1)
        self.classifier = Sequential(Dropout(p=dropout), Linear(self.last_channel, num_classes))
        torchvision_init(self, linear_std=0.01)

    def stages(self):
        return (self.features, self.pool, self.flatten, self.classifier)


def mobilenet_v2(num_classes=1000, width_mult=1.0, **kwargs):
    """MobileNetV2, 3,504,872 parameters at 1000 classes and ``width_mult=1.0``."""
    return MobileNetV2(num_classes=num_classes, width_mult=width_mult, **kwargs)
