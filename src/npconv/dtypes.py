"""The dtype rule shared by every operation.

Accepted: float16, float32 and float64 arrays.  Mixed inputs promote as NumPy does
(``np.result_type``): float32 with float64 gives float64, float16 with float32 gives
float32.  The result has the promoted dtype; float16 is computed in float32 and rounded
back to float16 at the end.
"""

import numpy as np

ACCEPTED = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64))


def result_dtypes(op, **arrays):
    """Return ``(compute_dtype, result_dtype)`` (native byte order) for the named arrays, or raise TypeError."""
    for name, array in arrays.items():
        if array is not None and array.dtype.newbyteorder("=") not in ACCEPTED:
            raise TypeError(
                f"{op}: {name} has dtype {array.dtype}; accepted dtypes are "
                "float16, float32 and float64"
            )
    result = np.result_type(*(a.dtype.newbyteorder("=") for a in arrays.values() if a is not None))
    compute = np.dtype(np.float32) if result == np.float16 else result
    return compute, result


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
