"""A bounded, thread-safe cache of transformed weights, checked against the weights' contents.

Inference calls a layer again and again with the same weights; algorithms that transform
them (Winograd's ``G w G^T``) keep the result here.  An entry belongs to one weight buffer
(the algorithm's key, shape, dtype and the buffer's address) and is used only if the
weight's bytes equal the snapshot taken when it was made: a weight changed in place, or a
different array at a reused address, never gets a stale transform.  Training changes the
weights every step; the buffer's entry is then replaced, so the cache holds one entry per
live weight instead of one per step.  Failing its own entry, a lookup tries the entries of
other buffers of the same shape (an equal copy, such as a float16 weight cast anew each
call, reuses the transform).  The comparison reads the weight and its snapshot (0.8 ms for
a 512x512x3x3 float32 kernel on this VM), far cheaper than transforming it again.

Transforms of transforms.  What the cache makes it freezes (read-only) and holds, so its
contents cannot change while its entry lives: a transform of it (a transposed convolution's
sub-kernels, then their Winograd transform) is checked by identity, with no snapshot and no
comparison.  Such an entry goes when the one that made its weight goes.  The chain of U-Net's
1024 -> 512 resize-convolution (:mod:`npconv.upsample`: the 3x3 weight, its box-filtered
kernel, the stacked sub-kernels, their Winograd transform) made three entries of 50, 64 and
160 MB with snapshots, which outgrew the cache: each call evicted and remade one of them, 0.6 s
a call instead of 43 ms.
"""

import threading
from collections import OrderedDict

import numpy as np

DEFAULT_MAX_BYTES = 256 * 2**20


def _bits(array):
    """The array's bytes as unsigned integers, so equality is bitwise (NaN == NaN, -0.0 != 0.0):
    8-byte words where they fit (a 2.4 MB weight compared in 170 us instead of 191 as 4-byte ones)."""
    flat = array.reshape(-1)
    return flat.view(np.dtype(f"u{8 if flat.nbytes % 8 == 0 else array.dtype.itemsize}"))


def _owner(array):
    """The array that owns ``array``'s memory (NumPy points every view's ``base`` at it)."""
    return array if array.base is None else array.base


class WeightCache:
    def __init__(self, max_bytes=DEFAULT_MAX_BYTES):
        self.max_bytes = max_bytes
        # (key, shape, dtype, address) -> (snapshot, transformed, source), LRU order: ``snapshot``
        # the weight's bits, or None where the weight is (a view of) ``source``, an array made here
        self._entries = OrderedDict()
        self._made = {}  # id -> the owner of an entry's transformed array, frozen, while the entry lives
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, weight, key, make):
        """``make()``'s result for this weight's current contents, from the cache when possible.

        ``weight`` must be C-contiguous.  ``make`` runs outside the lock and must return a new
        array: the cache freezes it (read-only).
        """
        prefix = (key, weight.shape, weight.dtype.str)
        own = (*prefix, weight.__array_interface__["data"][0])
        with self._lock:
            source = self._made.get(id(_owner(weight)))
            source = source if source is _owner(weight) else None  # made here, so its contents are fixed
            if source is not None:
                entry = self._entries.get(own)
                if entry is not None and entry[2] is source:
                    self._entries.move_to_end(own)
                    return entry[1]
            else:
                bits = _bits(weight)
                candidates = [own] if own in self._entries else []
                candidates += [k for k in self._entries if k[:3] == prefix and k != own]
                for entry_key in candidates:
                    snapshot, transformed, _ = self._entries[entry_key]
                    if snapshot is not None and np.array_equal(snapshot, bits):
                        self._entries.move_to_end(entry_key)
                        return transformed
        transformed = make()
        for array in (_owner(transformed), transformed):
            array.flags.writeable = False
        snapshot = None if source is not None else bits.copy()
        size = transformed.nbytes + (0 if snapshot is None else snapshot.nbytes)
        with self._lock:
            self._drop(own)  # this buffer's stale entry, if any
            if size <= self.max_bytes:
                self._entries[own] = (snapshot, transformed, source)
                self._made[id(_owner(transformed))] = _owner(transformed)
                self._bytes += size
                while self._bytes > self.max_bytes:
                    self._drop(next(iter(self._entries)))
        return transformed

    def _drop(self, entry_key):
        """Remove one entry (a no-op for a missing key), and the entries made from its transform;
        the caller holds the lock."""
        entry = self._entries.pop(entry_key, None)
        if entry is None:
            return
        snapshot, transformed, _ = entry
        self._bytes -= transformed.nbytes + (0 if snapshot is None else snapshot.nbytes)
        made = self._made.pop(id(_owner(transformed)), None)
        for derived in [k for k, (_, _, source) in self._entries.items() if source is not None and source is made]:
            self._drop(derived)

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._made.clear()
            self._bytes = 0

    def __len__(self):
        return len(self._entries)


WEIGHT_CACHE = WeightCache()
