"""A bounded, thread-safe cache of transformed weights, checked against the weights' contents.

Inference calls a layer again and again with the same weights; algorithms that transform
them (Winograd's ``G w G^T``) keep the result here.  An entry is found by the weight's
shape, dtype and the algorithm's key, and is used only if the weight's bytes equal the
snapshot taken when it was made: a weight changed in place, or a different array with the
same shape, never reuses a stale transform.  The comparison reads the weight once (about
0.5 ms for a 512x512x3x3 float32 kernel), far cheaper than transforming it again.
"""

import threading
from collections import OrderedDict

import numpy as np

DEFAULT_MAX_BYTES = 256 * 2**20


def _bits(array):
    """The array's bytes as unsigned integers, so equality is bitwise (NaN == NaN, -0.0 != 0.0)."""
    return array.reshape(-1).view(np.dtype(f"u{array.dtype.itemsize}"))


class WeightCache:
    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()  # (key, shape, dtype, index) -> (snapshot, transformed), LRU order
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, weight, key, make):
        """``make()``'s result for this weight's current contents, from the cache when possible.

        ``weight`` must be C-contiguous.  ``make`` runs outside the lock.
        """
        prefix = (key, weight.shape, weight.dtype.str)
        bits = _bits(weight)
        with self._lock:
            for entry_key, (snapshot, transformed) in self._entries.items():
                if entry_key[:3] == prefix and np.array_equal(snapshot, bits):
                    self._entries.move_to_end(entry_key)
                    return transformed
        transformed = make()
        size = weight.nbytes + transformed.nbytes
        if size > self.max_bytes:
            return transformed
        with self._lock:
            self._entries[(*prefix, object())] = (bits.copy(), transformed)
            self._bytes += size
            while self._bytes > self.max_bytes:
                _, (snapshot, old) = self._entries.popitem(last=False)
                self._bytes -= snapshot.nbytes + old.nbytes
        return transformed

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __len__(self):
        return len(self._entries)


WEIGHT_CACHE = WeightCache()
