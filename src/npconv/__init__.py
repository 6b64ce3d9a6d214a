"""npconv: a convolution engine for Python, exact to PyTorch, on NumPy's BLAS and Numba."""

from .algorithms import algorithm_names as algorithms
from .autotuner import autotune
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

__version__ = "0.1.0"

__all__ = [
    "UnsupportedAlgorithmError",
    "algorithms",
    "autotune",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "get_num_threads",
    "get_precision",
    "get_workspace_limit",
    "set_num_threads",
    "set_precision",
    "set_workspace_limit",
]
