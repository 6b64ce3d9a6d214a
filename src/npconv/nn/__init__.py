"""npconv.nn: layers with PyTorch's constructors and state-dict keys, each with its backward.

See :mod:`npconv.nn.module` for the forward/backward contract.
"""

from .containers import Sequential
from .init import manual_seed
from .module import Module, Parameter
