"""The dtype rule shared by every operation.

Accepted: float16, float32 and float64 arrays.  Mixed inputs promote as NumPy does
(``np.result_type``): float32 with float64 gives float64, float16 with float32 gives
float32.  The result has the promoted dtype; float16 is computed in float32 and rounded
back to float16 at the end.
"""

import functools

import numpy as np

ACCEPTED = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def result_dtypes(op, **arrays):
    """Return ``(compute_dtype, result_dtype)`` (native byte order) for the named arrays, or raise TypeError."""
    return _result_dtypes(op, tuple((name, None if a is None else a.dtype) for name, a in arrays.items()))


@functools.lru_cache(maxsize=256)
def _result_dtypes(op, dtypes):
    """:func:`result_dtypes` from ``(name, dtype or None)`` pairs, remembered (it took 2 of a
    small convolution's ~20 us of Python)."""
    for name, dtype in dtypes:
        if dtype is not None and dtype.newbyteorder("=") not in ACCEPTED:
            raise TypeError(f"{op}: {name} has dtype {dtype}; accepted dtypes are float16, float32 and float64")
    result = np.result_type(*(d.newbyteorder("=") for _, d in dtypes if d is not None))
    compute = np.dtype(np.float32) if result == np.float16 else result
    return compute, result


def in_compute_dtype(array):
    """``array`` in the dtype it is computed in: float16 as float32 (a copy), others as they are."""
    return array.astype(np.float32) if array.dtype == np.float16 else array


def as_array(op, name, value):
    """``np.asarray`` that turns unconvertible input into a TypeError naming the argument."""
    if isinstance(value, np.ndarray):
        return value
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{op}: {name} must be an array of floats, got {type(value).__name__}") from exc
    return array


def conv_arrays(op, rank, x, weight, bias, weight_layout):
    """``(x, weight, bias, compute_dtype, result_dtype)`` as arrays, dtypes checked; with ``rank``
    given (the conv1d/2d/3d wrappers), the weight must have ``rank + 2`` dims."""
    x, weight = as_array(op, "input", x), as_array(op, "weight", weight)
    bias = None if bias is None else as_array(op, "bias", bias)
    compute, result = result_dtypes(op, input=x, weight=weight, bias=bias)
    if rank is not None and weight.ndim != rank + 2:
        raise ValueError(f"{op}: weight must be {rank + 2}-d {weight_layout}, got shape {weight.shape}")
    return x, weight, bias, compute, result
