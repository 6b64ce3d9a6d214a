"""Invalid arguments: every error has the right type and a message naming the rule and values."""

import re

import numba
import numpy as np
import pytest

import npconv

X = np.zeros((2, 8, 5, 4), dtype=np.float32)  # (N, C_in, H, W)
W = np.zeros((4, 8, 3, 3), dtype=np.float32)  # (C_out, C_in, kh, kw)
DTYPES = "accepted dtypes are float16, float32 and float64"


def zeros(*shape, dtype=np.float32):
    return np.zeros(shape, dtype=dtype)


# (id, call, exception type, regex the message must match)
CASES = [
    # dtypes
    ("int-input", lambda: npconv.conv2d(X.astype(np.int64), W), TypeError, f"conv2d: input has dtype int64; {DTYPES}"),
    ("int-list-input", lambda: npconv.conv(X.astype(int).tolist(), W), TypeError, f"conv: input has dtype int64; {DTYPES}"),
    ("bool-input", lambda: npconv.conv2d(X.astype(bool), W), TypeError, f"input has dtype bool; {DTYPES}"),
    ("complex-input", lambda: npconv.conv2d(X.astype(complex), W), TypeError, f"input has dtype complex128; {DTYPES}"),
    ("object-input", lambda: npconv.conv2d(X.astype(object), W), TypeError, f"input has dtype object; {DTYPES}"),
    ("int32-weight", lambda: npconv.conv2d(X, W.astype(np.int32)), TypeError, f"weight has dtype int32; {DTYPES}"),
    ("int-bias", lambda: npconv.conv2d(X, W, np.arange(4)), TypeError, f"bias has dtype int64; {DTYPES}"),
    ("ragged-list", lambda: npconv.conv([[[1.0, 2.0], [3.0]]], W), TypeError, "conv: input must be an array of floats, got list"),
    # ranks
    ("conv2d-3d-weight", lambda: npconv.conv2d(X, zeros(4, 8, 3)), ValueError,
     re.escape("conv2d: weight must be 4-d (C_out, C_in/groups, *kernel), got shape (4, 8, 3)")),
    ("conv1d-4d-weight", lambda: npconv.conv1d(X, W), ValueError, re.escape("conv1d: weight must be 3-d")),
    ("conv3d-4d-weight", lambda: npconv.conv3d(X, W), ValueError, re.escape("conv3d: weight must be 5-d")),
    ("x-ndim-vs-weight", lambda: npconv.conv(zeros(2, 8, 5), W), ValueError,
     re.escape("conv: input must be (N, C_in, *spatial) with 4 dims to match the 4-d weight, got shape (2, 8, 5)")),
    ("weight-2d", lambda: npconv.conv(zeros(2, 8), zeros(4, 8)), ValueError, re.escape("with at least 3 dims, got shape (4, 8)")),
    ("weight-zero-size", lambda: npconv.conv2d(X, zeros(0, 8, 3, 3)), ValueError,
     re.escape("conv2d: weight has a zero-size dim, shape (0, 8, 3, 3)")),
    ("input-zero-spatial", lambda: npconv.conv(zeros(1, 1, 0), zeros(1, 1, 1), padding=1, padding_mode="replicate"),
     ValueError, re.escape("conv: input has a zero-size channel or spatial dim, shape (1, 1, 0)")),
    # channels and groups
    ("in-not-divisible", lambda: npconv.conv2d(X, zeros(6, 3, 3, 3), groups=3), ValueError,
     "conv2d: in_channels=8 is not divisible by groups=3"),
    ("out-not-divisible", lambda: npconv.conv2d(zeros(2, 6, 5, 4), zeros(4, 2, 3, 3), groups=3), ValueError,
     "conv2d: out_channels=4 is not divisible by groups=3"),
    ("channel-mismatch", lambda: npconv.conv2d(X, zeros(4, 3, 3, 3)), ValueError,
     re.escape("conv2d: input has 8 channels but weight (4, 3, 3, 3) with groups=1 expects weight.shape[1] * groups = 3")),
    ("grouped-channel-mismatch", lambda: npconv.conv2d(X, zeros(4, 2, 3, 3), groups=2), ValueError,
     re.escape("input has 8 channels but weight (4, 2, 3, 3) with groups=2 expects weight.shape[1] * groups = 4")),
    ("groups-zero", lambda: npconv.conv2d(X, W, groups=0), ValueError, "conv2d: groups must be positive, got 0"),
    ("groups-negative", lambda: npconv.conv2d(X, W, groups=-1), ValueError, "groups must be positive, got -1"),
    ("groups-float", lambda: npconv.conv2d(X, W, groups=1.0), TypeError, "groups must be an int or a tuple of ints, got 1.0"),
    ("groups-bool", lambda: npconv.conv2d(X, W, groups=True), TypeError, "groups must be an int, got bool True"),
    # stride, dilation
    ("stride-zero", lambda: npconv.conv2d(X, W, stride=0), ValueError, "conv2d: stride must be positive, got 0"),
    ("stride-negative-per-dim", lambda: npconv.conv2d(X, W, stride=(1, -2)), ValueError,
     re.escape("stride must be positive, got (1, -2)")),
    ("dilation-zero", lambda: npconv.conv2d(X, W, dilation=0), ValueError, "conv2d: dilation must be positive, got 0"),
    ("dilation-negative", lambda: npconv.conv2d(X, W, dilation=(-1, 1)), ValueError,
     re.escape("dilation must be positive, got (-1, 1)")),
    ("stride-too-long", lambda: npconv.conv2d(X, W, stride=(1, 1, 1)), ValueError,
     re.escape("conv2d: stride needs one value per spatial dim (2), got (1, 1, 1)")),
    ("dilation-too-short", lambda: npconv.conv2d(X, W, dilation=[2]), ValueError,
     re.escape("dilation needs one value per spatial dim (2), got (2,)")),
    ("stride-float", lambda: npconv.conv2d(X, W, stride=1.0), TypeError, "conv2d: stride must be an int or a tuple of ints, got 1.0"),
    ("stride-float-per-dim", lambda: npconv.conv2d(X, W, stride=(1, 2.0)), TypeError, "stride must be an int or a tuple of ints, got 2.0"),
    ("stride-bool", lambda: npconv.conv2d(X, W, stride=True), TypeError, "conv2d: stride must be an int, got bool True"),
    ("stride-numpy-bool", lambda: npconv.conv2d(X, W, stride=(np.True_, 1)), TypeError, "stride must be an int, got bool"),
    ("stride-string", lambda: npconv.conv2d(X, W, stride="2"), TypeError, "stride must be an int or a tuple of ints, got '2'"),
    ("dilation-float", lambda: npconv.conv2d(X, W, dilation=2.5), TypeError, "dilation must be an int or a tuple of ints, got 2.5"),
    # padding
    ("padding-negative", lambda: npconv.conv2d(X, W, padding=-1), ValueError, "conv2d: padding must be non-negative, got -1"),
    ("padding-negative-per-dim", lambda: npconv.conv2d(X, W, padding=(0, -1)), ValueError,
     re.escape("padding must be non-negative, got (0, -1)")),
    ("padding-negative-pair", lambda: npconv.conv2d(X, W, padding=((0, 0), (-1, 2))), ValueError, "padding must be non-negative"),
    ("padding-too-long", lambda: npconv.conv2d(X, W, padding=(1, 1, 1)), ValueError,
     re.escape("conv2d: padding needs one value per spatial dim (2), got (1, 1, 1)")),
    ("conv1d-pair-is-two-dims", lambda: npconv.conv1d(zeros(1, 1, 5), zeros(1, 1, 3), padding=(1, 2)), ValueError,
     re.escape("conv1d: padding needs one value per spatial dim (1), got (1, 2)")),
    ("pairs-too-few", lambda: npconv.conv2d(X, W, padding=((1, 1),)), ValueError,
     re.escape("conv2d: padding as pairs needs one (lo, hi) pair per spatial dim (2), got ((1, 1),)")),
    ("pairs-mixed-with-int", lambda: npconv.conv2d(X, W, padding=((1, 1), 2)), ValueError,
     re.escape("padding as pairs needs one (lo, hi) pair per spatial dim (2), got ((1, 1), 2)")),
    ("pair-too-short", lambda: npconv.conv2d(X, W, padding=((1, 1), (2,))), ValueError,
     re.escape("padding as pairs needs one (lo, hi) pair per spatial dim (2)")),
    ("pair-too-long", lambda: npconv.conv2d(X, W, padding=((1, 1, 1), (2, 2))), ValueError,
     re.escape("padding as pairs needs one (lo, hi) pair per spatial dim (2)")),
    ("pair-float", lambda: npconv.conv2d(X, W, padding=((1, 1.5), (0, 0))), TypeError,
     "padding must be an int or a tuple of ints, got 1.5"),
    ("padding-float", lambda: npconv.conv2d(X, W, padding=1.0), TypeError, "padding must be an int or a tuple of ints, got 1.0"),
    ("padding-bool", lambda: npconv.conv2d(X, W, padding=False), TypeError, "padding must be an int, got bool False"),
    ("padding-unknown-string", lambda: npconv.conv2d(X, W, padding="full"), ValueError,
     re.escape("conv2d: padding must be an int, a tuple, 'valid', 'same' or 'same_lower', got 'full'")),
    ("padding-uppercase-string", lambda: npconv.conv2d(X, W, padding="SAME"), ValueError, "got 'SAME'"),
    # kernel vs input
    ("kernel-too-large", lambda: npconv.conv2d(X, zeros(4, 8, 7, 3)), ValueError,
     re.escape("conv2d: kernel extent dilation*(kernel-1)+1 = 7 is larger than the padded input 5+0+0 = 5 in spatial dim 0")),
    ("dilated-kernel-too-large", lambda: npconv.conv2d(X, W, dilation=(1, 2), padding=((0, 0), (0, 0))), ValueError,
     re.escape("kernel extent dilation*(kernel-1)+1 = 5 is larger than the padded input 4+0+0 = 4 in spatial dim 1")),
    ("kernel-too-large-padded", lambda: npconv.conv2d(X, zeros(4, 8, 3, 7), padding=((0, 0), (1, 1))), ValueError,
     re.escape("= 7 is larger than the padded input 4+1+1 = 6 in spatial dim 1")),
    # bias
    ("bias-wrong-length", lambda: npconv.conv2d(X, W, zeros(3)), ValueError,
     re.escape("conv2d: bias must have shape (4,) = (out_channels,), got (3,)")),
    ("bias-2d", lambda: npconv.conv2d(X, W, zeros(1, 4)), ValueError, re.escape("bias must have shape (4,) = (out_channels,), got (1, 4)")),
    # padding modes
    ("padding-mode-unknown", lambda: npconv.conv2d(X, W, padding_mode="constant"), ValueError,
     re.escape("conv2d: padding_mode must be one of 'zeros', 'reflect', 'replicate', 'circular', got 'constant'")),
    ("reflect-pad-equals-size", lambda: npconv.conv2d(X, W, padding=((1, 1), (0, 4)), padding_mode="reflect"), ValueError,
     re.escape("conv2d: reflect padding must be smaller than the input size, got padding (0, 4) for size 4 in spatial dim 1")),
    ("reflect-same-too-large", lambda: npconv.conv1d(zeros(1, 1, 1), zeros(1, 1, 3), padding="same", padding_mode="reflect"),
     ValueError, re.escape("reflect padding must be smaller than the input size, got padding (1, 1) for size 1 in spatial dim 0")),
    ("circular-pad-exceeds-size", lambda: npconv.conv2d(X, W, padding=6, padding_mode="circular"), ValueError,
     re.escape("conv2d: circular padding must not exceed the input size, got padding (6, 6) for size 5 in spatial dim 0")),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(*case[1:], id=case[0]) for case in CASES])
def test_invalid_arguments(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    assert type(info.value) is exc  # not a subclass (e.g. UnsupportedAlgorithmError)


@pytest.mark.parametrize("bad, match", [
    (True, "conv2d: stride must be an int, got bool True"),
    (np.True_, "conv2d: stride must be an int, got bool np.True_"),
    (1.0, "conv2d: stride must be an int or a tuple of ints, got 1.0"),
    ((1.0, 1), "conv2d: stride must be an int or a tuple of ints, got 1.0"),
])
def test_remembered_arguments_let_no_equal_invalid_ones_through(bad, match):
    """conv_geometry remembers checked arguments; values equal to valid ones (True == 1.0 == 1)
    are still checked."""
    npconv.conv2d(X, W, stride=1, padding=1)
    npconv.conv2d(X, W, stride=(1, 1), padding=1)
    with pytest.raises(TypeError, match=re.escape(match)):
        npconv.conv2d(X, W, stride=bad, padding=1)


def test_unknown_algo_lists_registered_names():
    names = ", ".join(repr(name) for name in npconv.algorithms())
    assert "'direct'" in names and "'im2col'" in names
    with pytest.raises(ValueError, match=re.escape(f"conv2d: unknown algo 'no-such-algo'; choose 'auto' or one of {names}")) as info:
        npconv.conv2d(X, W, algo="no-such-algo")
    assert not isinstance(info.value, npconv.UnsupportedAlgorithmError)


def test_unsupported_algorithm_error_is_a_value_error():
    assert issubclass(npconv.UnsupportedAlgorithmError, ValueError)
    x, w = zeros(1, 1, 3, 3, 3, 3), zeros(1, 1, 2, 2, 2, 2)
    with pytest.raises(ValueError, match=re.escape("algorithm 'im2col' cannot compute this convolution: it handles 1 to 3 spatial dims, got 4")):
        npconv.conv(x, w, algo="im2col")


def test_invalid_arguments_are_checked_before_the_algorithm():
    """An invalid call to an algorithm that would decline it is an argument error, not 'unsupported'."""
    with pytest.raises(ValueError, match="in_channels=1 is not divisible by groups=2") as info:
        npconv.conv(zeros(1, 1, 3, 3, 3, 3), zeros(2, 1, 2, 2, 2, 2), groups=2, algo="im2col")
    assert not isinstance(info.value, npconv.UnsupportedAlgorithmError)


@pytest.mark.parametrize("value", [0, -1, 1.5, True, "1024", None])
def test_set_workspace_limit_rejects_bad_values(workspace_limit, value):
    before = npconv.get_workspace_limit()
    with pytest.raises(ValueError, match=re.escape(f"set_workspace_limit: nbytes must be a positive int, got {value!r}")):
        npconv.set_workspace_limit(value)
    assert npconv.get_workspace_limit() == before


@pytest.mark.parametrize("value", [0, -1, numba.config.NUMBA_NUM_THREADS + 1, 1.0, True, "2", None])
def test_set_num_threads_rejects_bad_values(value):
    before = npconv.get_num_threads()
    limit = numba.config.NUMBA_NUM_THREADS
    with pytest.raises(ValueError, match=re.escape(f"set_num_threads: n must be an int in [1, {limit}], got {value!r}")):
        npconv.set_num_threads(value)
    assert npconv.get_num_threads() == before


# ---- transposed convolution, interpolation, resize-convolution, checkerboard score

XT = np.zeros((2, 4, 5, 4), dtype=np.float32)  # (N, C_in, H, W)
WT = np.zeros((4, 3, 3, 3), dtype=np.float32)  # (C_in, C_out/groups, kh, kw)
X1 = np.zeros((1, 2, 5), dtype=np.float32)  # (N, C, L)
ALGOS = ", ".join(repr(name) for name in npconv.algorithms())

NEW_CASES = [
    # conv_transpose: dtypes and shapes
    ("ct-int-input", lambda: npconv.conv_transpose2d(XT.astype(np.int64), WT), TypeError,
     f"conv_transpose2d: input has dtype int64; {DTYPES}"),
    ("ct-ragged-weight", lambda: npconv.conv_transpose2d(XT, [[1.0], [2.0, 3.0]]), TypeError,
     "conv_transpose2d: weight must be an array of floats, got list"),
    ("ct-weight-rank", lambda: npconv.conv_transpose2d(XT, zeros(4, 3, 3)), ValueError,
     re.escape("conv_transpose2d: weight must be 4-d (C_in, C_out/groups, *kernel), got shape (4, 3, 3)")),
    ("ct-x-ndim", lambda: npconv.conv_transpose(zeros(2, 4, 5), WT), ValueError,
     re.escape("conv_transpose: input must be (N, C_in, *spatial) with 4 dims to match the 4-d weight, got shape (2, 4, 5)")),
    ("ct-weight-2d", lambda: npconv.conv_transpose(zeros(2, 4), zeros(4, 3)), ValueError,
     re.escape("conv_transpose: weight must be (C_in, C_out/groups, *kernel) with at least 3 dims, got shape (4, 3)")),
    ("ct-weight-zero-size", lambda: npconv.conv_transpose2d(XT, zeros(4, 0, 3, 3)), ValueError,
     re.escape("conv_transpose2d: weight has a zero-size dim, shape (4, 0, 3, 3)")),
    ("ct-input-zero-spatial", lambda: npconv.conv_transpose1d(zeros(1, 4, 0), zeros(4, 1, 1)), ValueError,
     re.escape("conv_transpose1d: input has a zero-size channel or spatial dim, shape (1, 4, 0)")),
    ("ct-channel-mismatch", lambda: npconv.conv_transpose2d(XT, zeros(3, 3, 3, 3)), ValueError,
     re.escape("conv_transpose2d: input has 4 channels but weight (3, 3, 3, 3) expects weight.shape[0] = 3")),
    ("ct-groups-not-dividing", lambda: npconv.conv_transpose2d(XT, WT, groups=3), ValueError,
     "conv_transpose2d: in_channels=4 is not divisible by groups=3"),
    ("ct-groups-zero", lambda: npconv.conv_transpose2d(XT, WT, groups=0), ValueError,
     "conv_transpose2d: groups must be positive, got 0"),
    ("ct-bias-shape", lambda: npconv.conv_transpose2d(XT, WT, zeros(3), groups=2), ValueError,
     re.escape("conv_transpose2d: bias must have shape (6,) = (weight.shape[1] * groups,), got (3,)")),
    # conv_transpose: hyper-parameters
    ("ct-stride-zero", lambda: npconv.conv_transpose2d(XT, WT, stride=0), ValueError,
     "conv_transpose2d: stride must be positive, got 0"),
    ("ct-dilation-negative", lambda: npconv.conv_transpose2d(XT, WT, dilation=(1, -1)), ValueError,
     re.escape("conv_transpose2d: dilation must be positive, got (1, -1)")),
    ("ct-stride-float", lambda: npconv.conv_transpose2d(XT, WT, stride=2.0), TypeError,
     "conv_transpose2d: stride must be an int or a tuple of ints, got 2.0"),
    ("ct-padding-same", lambda: npconv.conv_transpose2d(XT, WT, padding="same"), ValueError,
     re.escape("conv_transpose2d: padding must be an int, one int per spatial dim or one (lo, hi) pair per "
               "spatial dim, got 'same'")),
    ("ct-padding-negative", lambda: npconv.conv_transpose2d(XT, WT, padding=-1), ValueError,
     "conv_transpose2d: padding must be non-negative, got -1"),
    ("ct-padding-pairs-count", lambda: npconv.conv_transpose2d(XT, WT, padding=((1, 0),)), ValueError,
     re.escape("conv_transpose2d: padding as pairs needs one (lo, hi) pair per spatial dim (2), got ((1, 0),)")),
    ("ct-output-padding-negative", lambda: npconv.conv_transpose2d(XT, WT, output_padding=-1), ValueError,
     "conv_transpose2d: output_padding must be non-negative, got -1"),
    ("ct-output-padding-float", lambda: npconv.conv_transpose2d(XT, WT, output_padding=1.0), TypeError,
     "conv_transpose2d: output_padding must be an int or a tuple of ints, got 1.0"),
    ("ct-output-padding-too-large", lambda: npconv.conv_transpose2d(XT, WT, stride=2, output_padding=2), ValueError,
     "conv_transpose2d: output_padding=2 must be smaller than stride=2 or dilation=1, in spatial dim 0"),
    ("ct-output-padding-per-dim", lambda: npconv.conv_transpose2d(XT, WT, stride=(2, 3), dilation=(1, 2),
                                                                  output_padding=(1, 3)), ValueError,
     "conv_transpose2d: output_padding=3 must be smaller than stride=3 or dilation=2, in spatial dim 1"),
    ("ct-output-size-out-of-range", lambda: npconv.conv_transpose2d(XT, WT, stride=2, padding=1, output_size=(11, 7)),
     ValueError, re.escape("conv_transpose2d: requested an output size of (11, 7), but valid sizes range from (9, 7) "
                           "to (10, 8) (for an input of (5, 4))")),
    ("ct-output-size-too-small", lambda: npconv.conv_transpose2d(XT, WT, stride=2, padding=1, output_size=[8, 8]),
     ValueError, re.escape("requested an output size of (8, 8), but valid sizes range from (9, 7) to (10, 8)")),
    ("ct-output-size-length", lambda: npconv.conv_transpose2d(XT, WT, output_size=(9,)), ValueError,
     re.escape("conv_transpose2d: output_size needs one value per spatial dim (2), got (9,)")),
    ("ct-output-size-leading", lambda: npconv.conv_transpose2d(XT, WT, stride=2, output_size=(2, 5, 11, 9)),
     ValueError, re.escape("conv_transpose2d: output_size with 4 values must start with (N, C_out) = (2, 3), "
                           "got (2, 5, 11, 9)")),
    ("ct-output-size-float", lambda: npconv.conv_transpose2d(XT, WT, output_size=(9.0, 7)), TypeError,
     "conv_transpose2d: output_size must be an int or a tuple of ints, got 9.0"),
    ("ct-output-size-and-padding", lambda: npconv.conv_transpose2d(XT, WT, stride=2, output_padding=1,
                                                                   output_size=(11, 9)), ValueError,
     re.escape("conv_transpose2d: give output_size or output_padding, not both, got output_padding=(1, 1)")),
    ("ct-output-not-positive", lambda: npconv.conv_transpose1d(zeros(1, 1, 1), zeros(1, 1, 1), padding=1), ValueError,
     re.escape("conv_transpose1d: output size (in - 1) * stride - lo - hi + dilation * (kernel - 1) + output_padding "
               "+ 1 = (1 - 1) * 1 - 1 - 1 + 1 * (1 - 1) + 0 + 1 = -1 is not positive in spatial dim 0")),
    ("ct-unknown-algo", lambda: npconv.conv_transpose2d(XT, WT, algo="fast"), ValueError,
     re.escape(f"conv_transpose2d: unknown algo 'fast'; choose 'auto', 'subpixel', 'col2im' or one of {ALGOS}")),
    # interpolate
    ("interp-int-input", lambda: npconv.interpolate(X1.astype(np.int32), size=3), TypeError,
     f"interpolate: input has dtype int32; {DTYPES}"),
    ("interp-2d-input", lambda: npconv.interpolate(zeros(2, 3), size=3), ValueError,
     re.escape("interpolate: input must be (N, C, *spatial) with at least 3 dims, got shape (2, 3)")),
    ("interp-zero-spatial", lambda: npconv.interpolate(zeros(1, 1, 0), size=3), ValueError,
     re.escape("interpolate: input has a zero-size channel or spatial dim, shape (1, 1, 0)")),
    ("interp-unknown-mode", lambda: npconv.interpolate(X1, size=3, mode="area"), ValueError,
     re.escape("interpolate: mode must be one of 'nearest', 'nearest-exact', 'linear', 'bilinear', 'bicubic', "
               "'trilinear', got 'area'")),
    ("interp-mode-rank", lambda: npconv.interpolate(X1, size=3, mode="bilinear"), ValueError,
     re.escape("interpolate: mode 'bilinear' is for 2-d input (N, C, H, W), got shape (1, 2, 5)")),
    ("interp-bicubic-3d", lambda: npconv.interpolate(zeros(1, 1, 2, 2, 2), size=3, mode="bicubic"), ValueError,
     re.escape("interpolate: mode 'bicubic' is for 2-d input (N, C, H, W), got shape (1, 1, 2, 2, 2)")),
    ("interp-align-with-nearest", lambda: npconv.interpolate(X1, size=3, align_corners=False), ValueError,
     re.escape("interpolate: align_corners can only be set with the interpolating modes linear, bilinear, bicubic, "
               "trilinear, got mode='nearest' with align_corners=False")),
    ("interp-align-not-bool", lambda: npconv.interpolate(X1, size=3, mode="linear", align_corners=1), TypeError,
     "interpolate: align_corners must be a bool or None, got 1"),
    ("interp-neither", lambda: npconv.interpolate(X1), ValueError,
     "interpolate: give exactly one of size and scale_factor, got size=None, scale_factor=None"),
    ("interp-both", lambda: npconv.interpolate(X1, size=3, scale_factor=2), ValueError,
     "interpolate: give exactly one of size and scale_factor, got size=3, scale_factor=2"),
    ("interp-size-zero", lambda: npconv.interpolate(X1, size=0), ValueError, "interpolate: size must be positive, got 0"),
    ("interp-size-float", lambda: npconv.interpolate(X1, size=2.5), TypeError,
     "interpolate: size must be an int or a tuple of ints, got 2.5"),
    ("interp-size-length", lambda: npconv.interpolate(XT, size=(3,)), ValueError,
     re.escape("interpolate: size needs one value per spatial dim (2), got (3,)")),
    ("interp-scale-zero", lambda: npconv.interpolate(X1, scale_factor=0), ValueError,
     "interpolate: scale_factor must be positive and finite, got 0"),
    ("interp-scale-inf", lambda: npconv.interpolate(XT, scale_factor=(2, float("inf"))), ValueError,
     re.escape("interpolate: scale_factor must be positive and finite, got (2, inf)")),
    ("interp-scale-nan", lambda: npconv.interpolate(X1, scale_factor=float("nan")), ValueError,
     "interpolate: scale_factor must be positive and finite, got nan"),
    ("interp-scale-bool", lambda: npconv.interpolate(X1, scale_factor=True), TypeError,
     "interpolate: scale_factor must be a number or a tuple of numbers, got True"),
    ("interp-scale-string", lambda: npconv.interpolate(X1, scale_factor="2"), TypeError,
     "interpolate: scale_factor must be a number or a tuple of numbers, got '2'"),
    ("interp-scale-length", lambda: npconv.interpolate(XT, scale_factor=(2.0, 2.0, 2.0)), ValueError,
     re.escape("interpolate: scale_factor needs one value per spatial dim (2), got (2.0, 2.0, 2.0)")),
    ("interp-output-empty", lambda: npconv.interpolate(zeros(1, 1, 2), scale_factor=0.3), ValueError,
     re.escape("interpolate: output size floor(in * scale_factor) = floor(2 * 0.3) = 0 is not positive in spatial dim 0")),
    # upsample_conv: interpolate's and conv's rules, under its own name
    ("up-rank-mismatch", lambda: npconv.upsample_conv(X1, W), ValueError,
     re.escape("upsample_conv: input must be (N, C_in, *spatial) with 4 dims to match the 4-d weight, got shape (1, 2, 5)")),
    ("up-mode-rank", lambda: npconv.upsample_conv(XT, zeros(2, 4, 3, 3), mode="linear"), ValueError,
     re.escape("upsample_conv: mode 'linear' is for 1-d input (N, C, L), got shape (2, 4, 5, 4)")),
    ("up-scale-negative", lambda: npconv.upsample_conv(XT, zeros(2, 4, 3, 3), scale_factor=-2), ValueError,
     "upsample_conv: scale_factor must be positive and finite, got -2"),
    ("up-channel-mismatch", lambda: npconv.upsample_conv(XT, zeros(2, 3, 3, 3)), ValueError,
     re.escape("upsample_conv: input has 4 channels but weight (2, 3, 3, 3) with groups=1 expects weight.shape[1] * "
               "groups = 3")),
    ("up-int-weight", lambda: npconv.upsample_conv(XT, zeros(2, 4, 3, 3, dtype=np.int64)), TypeError,
     f"upsample_conv: weight has dtype int64; {DTYPES}"),
    # checkerboard_score
    ("cb-int", lambda: npconv.checkerboard_score(np.zeros((1, 1, 4), dtype=int), 2), TypeError,
     f"checkerboard_score: y has dtype int64; {DTYPES}"),
    ("cb-2d", lambda: npconv.checkerboard_score(zeros(4, 4), 2), ValueError,
     re.escape("checkerboard_score: y must be (N, C, *spatial) with at least 3 dims, none of size 0, got shape (4, 4)")),
    ("cb-empty", lambda: npconv.checkerboard_score(zeros(1, 1, 0), 2), ValueError,
     re.escape("checkerboard_score: y must be (N, C, *spatial) with at least 3 dims, none of size 0, got shape (1, 1, 0)")),
    ("cb-stride-zero", lambda: npconv.checkerboard_score(XT, 0), ValueError,
     "checkerboard_score: stride must be positive, got 0"),
    ("cb-stride-length", lambda: npconv.checkerboard_score(XT, (2, 2, 2)), ValueError,
     re.escape("checkerboard_score: stride needs one value per spatial dim (2), got (2, 2, 2)")),
]


@pytest.mark.parametrize("call, exc, match", [pytest.param(*case[1:], id=case[0]) for case in NEW_CASES])
def test_invalid_arguments_of_the_upsampling_ops(call, exc, match):
    with pytest.raises(exc, match=match) as info:
        call()
    assert type(info.value) is exc


def test_conv_transpose_unsupported_phase_algorithm():
    """A valid transposed convolution whose phases the named conv algorithm cannot run: unsupported, not invalid."""
    with pytest.raises(npconv.UnsupportedAlgorithmError,
                       match=re.escape("algorithm 'winograd' cannot compute this convolution: ")):
        npconv.conv_transpose2d(zeros(1, 2, 4, 4), zeros(2, 2, 5, 5), stride=2, algo="winograd")  # 3x2 phases


def test_conv_transpose_checks_arguments_before_the_algorithm():
    with pytest.raises(ValueError, match="conv_transpose: in_channels=1 is not divisible by groups=2") as info:
        npconv.conv_transpose(zeros(1, 1, 3, 3, 3, 3), zeros(1, 2, 2, 2, 2, 2), groups=2, algo="col2im")
    assert not isinstance(info.value, npconv.UnsupportedAlgorithmError)
