"""npconv: a convolution engine for Python, exact to PyTorch, on NumPy's BLAS and Numba."""

from .algorithms import algorithm_names as algorithms
from .algorithms.weight_cache import freeze
from .autotuner import autotune
from .backward import conv_backward, conv_transpose_backward
from .checkerboard import checkerboard_score
from .config import (
    get_num_threads,
    get_precision,
    get_workspace_limit,
    set_num_threads,
    set_precision,
    set_workspace_limit,
)
from .conv import conv, conv1d, conv2d, conv3d
from .errors import UnsupportedAlgorithmError
from .explain import explain
from .interpolate import interpolate, interpolate_backward
from .summary import summary
from .transpose import conv_transpose, conv_transpose1d, conv_transpose2d, conv_transpose3d
from .upsample import upsample_conv

__version__ = "0.1.0"

__all__ = [
    "UnsupportedAlgorithmError",
    "algorithms",
    "autotune",
    "checkerboard_score",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_backward",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "conv_transpose_backward",
    "explain",
    "freeze",
    "get_num_threads",
    "get_precision",
    "get_workspace_limit",
    "interpolate",
    "interpolate_backward",
    "set_num_threads",
    "set_precision",
    "set_workspace_limit",
    "summary",
    "upsample_conv",
]
