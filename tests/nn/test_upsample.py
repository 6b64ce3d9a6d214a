"""Upsample against torch.nn.Upsample: values and input gradients."""

import inspect

import numpy as np
import pytest
import torch

from npconv import nn

from .torch_check import check_against_torch

# (keyword arguments, input shape)
CASES = [
    (dict(scale_factor=2), (2, 3, 4, 5)),
    (dict(scale_factor=2, mode="nearest"), (2, 3, 5)),
    (dict(size=(7, 9), mode="bilinear", align_corners=True), (2, 3, 4, 5)),
    (dict(scale_factor=1.5, mode="bilinear"), (1, 2, 5, 6)),
    (dict(scale_factor=(2, 3), mode="bicubic"), (1, 2, 4, 3)),
    (dict(size=7, mode="linear"), (2, 3, 5)),
    (dict(scale_factor=2, mode="trilinear", align_corners=False), (1, 2, 3, 4, 2)),
    (dict(scale_factor=1.7, mode="nearest-exact"), (2, 2, 6)),
    (dict(scale_factor=1.7, mode="bilinear", recompute_scale_factor=True), (1, 2, 5, 4)),
    (dict(scale_factor=(1.3, 2.5), mode="nearest", recompute_scale_factor=True), (1, 2, 5, 4)),
]


def test_signature_matches_torch():
    def parameters(cls):
        return [(p.name, p.default) for p in inspect.signature(cls).parameters.values()]
    assert parameters(nn.Upsample) == parameters(torch.nn.Upsample)


@pytest.mark.parametrize("kwargs, shape", CASES, ids=[str(kwargs) for kwargs, _ in CASES])
def test_upsample_matches_torch(kwargs, shape, rng):
    check_against_torch(nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs), rng.standard_normal(shape), rng)


def test_upsample_float32_matches_torch(rng):
    kwargs = dict(scale_factor=2, mode="bilinear")
    check_against_torch(nn.Upsample(**kwargs), torch.nn.Upsample(**kwargs), rng.standard_normal((2, 3, 6, 5)), rng,
                        dtype=np.float32)


def test_upsample_has_no_parameters():
    layer = nn.Upsample(scale_factor=2)
    assert list(layer.state_dict()) == list(torch.nn.Upsample(scale_factor=2).state_dict()) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(size=4, scale_factor=2), r"Upsample: .*size.*scale_factor"),
    (dict(), r"Upsample: .*size.*scale_factor"),
    (dict(scale_factor=2, mode="cubic"), r"Upsample: mode must be one of .*got 'cubic'"),
    (dict(scale_factor=2, mode="trilinear"), r"Upsample: mode 'trilinear' is for 3-d input"),
    (dict(scale_factor=2, align_corners=True), r"Upsample: align_corners can only be set with the interpolating modes"),
    (dict(scale_factor=(2, 2, 2), recompute_scale_factor=True),
     r"Upsample: scale_factor needs one value per spatial dim \(2\), got \(2, 2, 2\)"),
])
def test_upsample_forward_errors_name_the_layer(kwargs, message):
    with pytest.raises(ValueError, match=message):
        nn.Upsample(**kwargs)(np.zeros((1, 2, 3, 3), np.float32))


def test_upsample_rejects_recompute_with_a_size():
    with pytest.raises(ValueError, match=r"Upsample: recompute_scale_factor is not meaningful with an explicit size, "
                                         r"got size=4"):
        nn.Upsample(size=4, recompute_scale_factor=True)
