"""A bounded, thread-safe cache of transformed weights, checked against the weights' contents.

Inference calls a layer again and again with the same weights; algorithms that transform
them (Winograd's ``G w G^T``) keep the result here.  An entry belongs to one weight buffer
(the algorithm's key, shape, dtype and the buffer's address) and is used only if the
weight's bytes equal the snapshot taken when it was made: a weight changed in place, or a
different array at a reused address, never gets a stale transform.  Training changes the
weights every step; the buffer's entry is then replaced, so the cache holds one entry per
live weight instead of one per step.  Failing its own entry, a lookup tries the entries of
other buffers of the same shape (an equal copy, such as a float16 weight cast anew each
call, reuses the transform).  The comparison reads the weight and its snapshot (0.67 ms for
a 512x512x3x3 float32 kernel on this VM, 0.5 split over 2 threads, as it is from
SPLIT_CHECK_BYTES on; from memory rather than cache, as between torch's calls in the
benchmarks, 1.2 and 0.86), cheaper than transforming it again; their first words are
compared first, so a weight changed by a training step, or another weight of its shape, is
told apart in microseconds.

Frozen weights.  :func:`freeze` copies a weight into a read-only array the cache then trusts
never to change (NumPy refuses writes to it): its entry's snapshot is the array itself, not a
copy, and a lookup through that array returns the transform without comparing (its own entry
only: an equal array's would be compared every time, so it gets one of its own).  The
comparison reads the weight and its snapshot -- 19 MB for a 512x512x3x3 float32 kernel, which
also pushes the layer's data out of the caches: with it skipped, ResNet-50's 512-channel 3x3/2
layer at batch 1 ran in 1.2 ms rather than 2.1 on ``implicit``.  Inference with fixed weights
is the use; a frozen array made writeable again is an ordinary array (its entry passed over).

Entries are found through an index by (key, shape, dtype), and the cache holds at most
``max_entries`` of them as well as ``max_bytes``: with every entry scanned per lookup and only
bytes bounded, small weights made anew call after call (a fuzzer's, or a training loop that
replaces its weights rather than updating them in place) piled up by the thousand, and a
small transposed convolution went from 0.3 to 5 ms a call over 12,000 calls.

Transforms of transforms.  What the cache makes it freezes (read-only) and holds, so its
contents cannot change while its entry lives: a transform of it (a transposed convolution's
sub-kernels, then their Winograd transform) is checked by identity, with no snapshot and no
comparison.  Such an entry goes when the one that made its weight goes.  The chain of U-Net's
1024 -> 512 resize-convolution (:mod:`npconv.upsample`: the 3x3 weight, its box-filtered
kernel, the stacked sub-kernels, their Winograd transform) made three entries of 50, 64 and
160 MB with snapshots, which outgrew the cache: each call evicted and remade one of them, 0.6 s
a call instead of 43 ms.
"""

import contextlib
import contextvars
import threading
import weakref
from collections import OrderedDict

import numpy as np
from numba import njit

from ..config import get_num_threads
from ..parallel import run_pieces, split
from .base import COPY_BYTES_PER_SECOND

DEFAULT_MAX_BYTES = 256 * 2**20
DEFAULT_MAX_ENTRIES = 1024
# Weights of this many bytes or more are compared on every thread: on this VM, a helper spinning
# for work (:mod:`..parallel`), 1 MB took 44 us on one thread and 85 on two, 2 MB 140 and 104,
# 9.4 MB 655 and 440.  (With helpers that slept between calls, 2 MB took 217 us on two.)
SPLIT_CHECK_BYTES = 3 * 2**19
# Words compared before the whole weight: any two different weights a network holds, or one
# weight before and after a step, almost surely differ in them.
HEAD_WORDS = 8


def _bits(array):
    """The array's bytes as unsigned integers, so equality is bitwise (NaN == NaN, -0.0 != 0.0):
    8-byte words where they fit (a 2.4 MB weight compared in 170 us instead of 191 as 4-byte ones)."""
    flat = array.reshape(-1)
    return flat.view(np.dtype(f"u{8 if flat.nbytes % 8 == 0 else array.dtype.itemsize}"))


def _same_bits(snapshot, bits):
    """Whether two :func:`_bits` arrays are equal: their first HEAD_WORDS words, then all, on
    every thread from SPLIT_CHECK_BYTES on."""
    if not np.array_equal(snapshot[:HEAD_WORDS], bits[:HEAD_WORDS]):
        return False
    if snapshot.nbytes < SPLIT_CHECK_BYTES or get_num_threads() == 1:
        return not _differ(snapshot, bits, 0, snapshot.size)
    spans = split(snapshot.size, get_num_threads())
    differ = [False] * len(spans)

    def compare(part):
        differ[part] = _differ(snapshot, bits, *spans[part])

    run_pieces(compare, range(len(spans)))
    return not any(differ)


@njit(cache=True, nogil=True)
def _differ(a, b, start, stop):
    """Whether ``a[start:stop]`` and ``b[start:stop]`` differ, read 4096 words at a time (no
    temporary array, as ``np.array_equal`` makes; it stops at the first block that differs)."""
    for lo in range(start, stop, 4096):
        x, y = a[lo : min(stop, lo + 4096)], b[lo : min(stop, lo + 4096)]
        bits = x[0] ^ y[0]
        for i in range(1, x.size):
            bits |= x[i] ^ y[i]
        if bits:
            return True
    return False


def check_seconds(nbytes):
    """The cost models' time to compare a weight of ``nbytes`` with its snapshot, reading both.
    Counted on one thread, though :func:`_same_bits` splits large ones: the snapshot is rarely
    still in cache by the next call, and from memory the split gains little (ResNet-50's
    512x512x3x3 weight, between torch's calls: 1.18 -> 0.86 ms at batch 1, 1.89 -> 1.86 at
    batch 8)."""
    return 2 * nbytes / COPY_BYTES_PER_SECOND


def _owner(array):
    """The array that owns ``array``'s memory (NumPy points every view's ``base`` at it)."""
    return array if array.base is None else array.base


class WeightCache:
    def __init__(self, max_bytes=DEFAULT_MAX_BYTES, max_entries=DEFAULT_MAX_ENTRIES):
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        # (key, shape, dtype, address) -> (snapshot, transformed, source), LRU order: ``snapshot``
        # the weight's bits, or None where the weight is (a view of) ``source``, an array made here
        self._entries = OrderedDict()
        self._by_prefix = {}  # (key, shape, dtype) -> {entry key: None}: the entries a lookup compares
        self._made = {}  # id -> the owner of an entry's transformed array, frozen, while the entry lives
        self._derived = {}  # id of such an owner -> {entry key: None} of the entries made from it
        self._frozen = weakref.WeakValueDictionary()  # id -> an array :meth:`freeze` made
        self._bytes = 0
        self._lock = threading.Lock()

    def trusts(self, weight):
        """Whether ``weight`` is (a view of) an array :meth:`freeze` made, still read-only."""
        owner = _owner(weight)
        return self._frozen.get(id(owner)) is owner and not owner.flags.writeable

    def freeze(self, weight):
        """A read-only, C-contiguous copy of ``weight`` whose transforms this cache returns
        without comparing its bytes (module docstring)."""
        frozen = np.array(weight, order="C", copy=True)
        frozen.flags.writeable = False
        with self._lock:
            self._frozen[id(frozen)] = frozen
        return frozen

    def get(self, weight, key, make):
        """``make()``'s result for this weight's current contents, from the cache when possible.

        ``weight`` must be C-contiguous.  ``make`` runs outside the lock and must return a new
        array: the cache freezes it (read-only).
        """
        prefix = (key, weight.shape, weight.dtype.str)
        own = (*prefix, weight.__array_interface__["data"][0])
        owner = _owner(weight)
        with self._lock:
            source = self._made.get(id(owner))
            source = source if source is owner else None  # made here, so its contents are fixed
            frozen = self.trusts(weight)
            if source is not None:
                entry = self._entries.get(own)
                if entry is not None and entry[2] is source:
                    self._entries.move_to_end(own)
                    return entry[1]
            else:
                bits = _bits(weight)
                same = self._by_prefix.get(prefix, {})
                # a frozen weight's only candidate is its own entry: one made for an equal
                # array would be compared at every call
                candidates = ([own] if own in same else []) + ([] if frozen else [k for k in same if k != own])
                for entry_key in candidates:
                    snapshot, transformed, _ = self._entries[entry_key]
                    if snapshot is None:
                        continue
                    held = _owner(snapshot)
                    if self._frozen.get(id(held)) is held:  # the snapshot is a frozen weight itself
                        if held.flags.writeable:  # made writeable again: it no longer tells
                            continue
                        if held is owner:
                            self._entries.move_to_end(entry_key)
                            return transformed
                    if _same_bits(snapshot, bits):
                        self._entries.move_to_end(entry_key)
                        return transformed
        transformed = make()
        for array in (_owner(transformed), transformed):
            array.flags.writeable = False
        snapshot = None if source is not None else bits if frozen else bits.copy()
        size = transformed.nbytes + (0 if snapshot is None else snapshot.nbytes)
        with self._lock:
            self._drop(own)  # this buffer's stale entry, if any
            if size <= self.max_bytes and self.max_entries > 0:
                self._entries[own] = (snapshot, transformed, source)
                self._by_prefix.setdefault(prefix, {})[own] = None
                self._made[id(_owner(transformed))] = _owner(transformed)
                if source is not None:
                    self._derived.setdefault(id(source), {})[own] = None
                self._bytes += size
                while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                    self._drop(next(iter(self._entries)))
        return transformed

    def _drop(self, entry_key):
        """Remove one entry (a no-op for a missing key), and the entries made from its transform;
        the caller holds the lock."""
        entry = self._entries.pop(entry_key, None)
        if entry is None:
            return
        snapshot, transformed, source = entry
        self._bytes -= transformed.nbytes + (0 if snapshot is None else snapshot.nbytes)
        same = self._by_prefix[entry_key[:3]]
        del same[entry_key]
        if not same:
            del self._by_prefix[entry_key[:3]]
        if source is not None:  # no longer derived from source
            siblings = self._derived[id(source)]
            del siblings[entry_key]
            if not siblings:
                del self._derived[id(source)]
        made = id(_owner(transformed))
        self._made.pop(made, None)
        for derived in list(self._derived.get(made, ())):
            self._drop(derived)

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._by_prefix.clear()
            self._made.clear()
            self._derived.clear()
            self._bytes = 0

    def __len__(self):
        return len(self._entries)


WEIGHT_CACHE = WeightCache()


def freeze(weight):
    """A read-only copy of ``weight`` for inference with fixed weights: npconv's transformed-
    weight cache returns its transforms (Winograd's, ``implicit``'s packing, a transposed
    convolution's sub-kernels) without comparing its bytes each call, as it does for any other
    array.  NumPy refuses writes to it; made writeable again, it is an ordinary array to the
    cache (its entry, which kept no copy of its bytes, is passed over and the transform remade)."""
    return WEIGHT_CACHE.freeze(weight)


_PLANNED_FROZEN = contextvars.ContextVar("npconv_planned_frozen", default=False)


@contextlib.contextmanager
def planning_for(weight):
    """Within it, :func:`planned_frozen` tells the cost models whether ``weight`` -- the call's
    being planned -- is frozen, so that its check costs nothing."""
    token = _PLANNED_FROZEN.set(WEIGHT_CACHE.trusts(weight))
    try:
        yield
    finally:
        _PLANNED_FROZEN.reset(token)


def planned_frozen():
    """Whether the weight of the call ``auto`` is choosing for is frozen (:func:`planning_for`);
    False outside a call (``explain``'s plans)."""
    return _PLANNED_FROZEN.get()
