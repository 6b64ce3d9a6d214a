"""The weight cache (:mod:`npconv.algorithms.weight_cache`) on its own: reuse by contents,
bounds, bookkeeping.  Its use by Winograd and the transposed convolution, from several Python
threads too, is tested with them (``test_winograd.py``)."""

import numpy as np
import pytest

import npconv
from npconv.algorithms import weight_cache
from npconv.algorithms.weight_cache import WeightCache


def test_cache_reuses_transforms_for_equal_weights_and_stays_bounded(rng):
    cache = WeightCache(max_bytes=3 * 1000)
    calls = []

    def make(value):
        calls.append(value)
        return np.full(100, value, dtype=np.float64)  # 800 bytes

    w = rng.standard_normal(25)
    assert cache.get(w, "k", lambda: make(1))[0] == 1
    assert cache.get(w.copy(), "k", lambda: make(2))[0] == 1  # equal contents: reused
    assert cache.get(w, "other", lambda: make(3))[0] == 3  # another algorithm's key
    for i in range(10):
        cache.get(rng.standard_normal(25), "k", lambda i=i: make(10 + i))
    assert len(cache) <= 3  # 1000 bytes per entry (200 + 800) against a 3000-byte cap
    assert calls == [1, 3, *range(10, 20)]


@pytest.mark.parametrize("size", [24, 25])  # compared as 8-byte words, and as 4-byte ones
def test_cache_compares_bits(size):
    """A NaN still equals itself (the transform is reused); 0.0 turned -0.0 in place is a change."""
    cache, calls = WeightCache(), []

    def make():
        calls.append(1)
        return np.zeros(3)

    w = np.zeros(size, dtype=np.float32)
    w[-1] = np.nan
    cache.get(w, "k", make)
    cache.get(w, "k", make)
    assert len(calls) == 1
    w[-2] = -0.0
    cache.get(w, "k", make)
    assert len(calls) == 2


def test_cache_keeps_one_entry_per_weight_updated_in_place(rng):
    cache = WeightCache()
    w = rng.standard_normal(25)
    for step in range(5):  # a training loop: the same buffer, new contents each step
        w += 1.0
        assert cache.get(w, "k", lambda: w * 2)[0] == w[0] * 2
    assert len(cache) == 1
    other = rng.standard_normal(25)
    cache.get(other, "k", lambda: other * 2)
    assert len(cache) == 2


def test_cache_trusts_what_it_made(rng, monkeypatch):
    """A transform of a transform (a view of it included) is found by identity, with no snapshot
    and no comparison; the arrays the cache made are read-only; and such an entry goes with the
    entry that made its weight."""
    cache = WeightCache()
    w = rng.standard_normal(25)
    first = cache.get(w, "first", lambda: w * 2)  # 200 bytes and a 200-byte snapshot
    assert not first.flags.writeable and cache._bytes == 400
    compared = []
    monkeypatch.setattr(np, "array_equal", lambda *args: compared.append(args) or True)
    second = cache.get(first.reshape(5, 5), "second", lambda: first.reshape(5, 5) + 1)
    assert cache._bytes == 600 and not second.flags.writeable  # no snapshot of ``first``
    assert cache.get(first.reshape(5, 5), "second", lambda: pytest.fail("made again")) is second
    assert compared == []
    cache._drop(next(iter(cache._entries)))  # the first entry: the second goes with it
    assert len(cache) == 0 and cache._bytes == 0
    with pytest.raises(ValueError, match="read-only"):
        first[0] = 0.0


def test_a_frozen_weight_is_trusted_without_a_copy_or_a_comparison(rng, monkeypatch):
    """freeze: a read-only copy; its entry's snapshot is the array itself (no copy: the
    cache's bytes grow by the transform and the weight once), found again with nothing
    compared; an equal array still compares against it; made writeable again, it is passed
    over and the transform made anew."""
    cache = WeightCache()
    w = rng.standard_normal(25)
    frozen = cache.freeze(w)
    assert frozen is not w and np.array_equal(frozen, w) and not frozen.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        frozen[0] = 0.0
    first = cache.get(frozen, "k", lambda: frozen * 2)  # 200 bytes, and the frozen weight's 200
    assert cache._bytes == 400
    compared, equal = [], np.array_equal
    monkeypatch.setattr(np, "array_equal", lambda a, b: compared.append(a.size) or equal(a, b))
    assert cache.get(frozen, "k", lambda: pytest.fail("made again")) is first
    assert compared == []
    assert cache.get(w.copy(), "k", lambda: pytest.fail("made again")) is first  # equal bytes: compared
    assert compared
    frozen.flags.writeable = True
    frozen[0] += 1.0
    assert equal(cache.get(frozen, "k", lambda: frozen * 2), frozen * 2)
    check_bookkeeping(cache)


def test_holds_at_most_max_entries_the_most_recently_used(rng):
    cache = WeightCache(max_entries=4)
    weights = [rng.standard_normal(5) for _ in range(10)]
    for i, w in enumerate(weights):
        cache.get(w, "k", lambda i=i: np.full(2, float(i)))
    assert len(cache) == 4
    for i in (6, 7, 8, 9):  # the last four made are kept
        assert cache.get(weights[i], "k", lambda: pytest.fail("made again"))[0] == i
    cache.get(weights[9], "k", lambda: pytest.fail("made again"))  # now 6 is the least recently used
    assert cache.get(weights[0], "k", lambda: np.full(2, -1.0))[0] == -1  # evicted long ago: made again
    assert cache.get(weights[6], "k", lambda: np.full(2, -6.0))[0] == -6  # evicted by weights[0]'s entry
    assert len(cache) == 4


def test_a_weight_changed_in_its_first_words_is_not_compared_whole(rng, monkeypatch):
    """A training step changes a weight everywhere: its first words tell it from the snapshot,
    without reading the rest; a change past them still misses, after the whole comparison."""
    cache = WeightCache()
    w = rng.standard_normal(1000)
    cache.get(w, "k", lambda: w * 2)
    spans, differ = [], weight_cache._differ
    monkeypatch.setattr(weight_cache, "_differ", lambda a, b, start, stop: spans.append((start, stop))
                        or differ(a, b, start, stop))
    w[0] += 1.0
    assert np.array_equal(cache.get(w, "k", lambda: w * 2), w * 2)
    assert spans == []
    w[-1] += 1.0
    assert np.array_equal(cache.get(w, "k", lambda: w * 2), w * 2)
    assert spans == [(0, w.size)]


@pytest.mark.parametrize("changed", [None, 8, 4095, 4096, 4097, "middle", "last"])
def test_a_large_weight_is_compared_in_spans_on_every_thread(rng, monkeypatch, changed):
    """Compared on two threads, each takes a span; a difference in either span, or either side
    of a 4096-word block's edge, is a miss, and no difference a hit."""
    cache = WeightCache()
    w = rng.standard_normal(3 * 4096 + 5)
    cache.get(w, "k", lambda: w * 2)
    spans, differ = [], weight_cache._differ
    monkeypatch.setattr(weight_cache, "SPLIT_CHECK_BYTES", 0)
    monkeypatch.setattr(weight_cache, "get_num_threads", lambda: 2)
    monkeypatch.setattr(weight_cache, "_differ", lambda a, b, start, stop: spans.append((start, stop))
                        or differ(a, b, start, stop))
    before = cache.get(w, "k", lambda: pytest.fail("made again"))
    if changed is not None:
        w[{"middle": w.size // 2, "last": -1}.get(changed, changed)] += 1.0
    after = cache.get(w, "k", lambda: w * 2)
    assert (after is before) == (changed is None)
    np.testing.assert_array_equal(after, w * 2)
    assert sorted(spans[:2]) == sorted(spans[2:]) == [(0, w.size // 2), (w.size // 2, w.size)]


@pytest.mark.parametrize("nbytes, spans", [(2**16, 1), (weight_cache.SPLIT_CHECK_BYTES - 8, 1),
                                           (weight_cache.SPLIT_CHECK_BYTES, 2)])
def test_only_a_weight_worth_it_is_compared_on_two_threads(rng, monkeypatch, nbytes, spans):
    """On two threads, a weight of SPLIT_CHECK_BYTES or more is compared in two spans; a
    smaller one on the calling thread alone."""
    threads = npconv.get_num_threads()
    try:
        npconv.set_num_threads(2)
        cache, w = WeightCache(), rng.standard_normal(nbytes // 8)
        cache.get(w, "k", lambda: w * 2)
        compared, differ = [], weight_cache._differ
        monkeypatch.setattr(weight_cache, "_differ", lambda *args: compared.append(args[2:]) or differ(*args))
        cache.get(w, "k", lambda: pytest.fail("made again"))
        assert len(compared) == spans
    finally:
        npconv.set_num_threads(threads)


def check_bookkeeping(cache):
    """The cache's indexes describe exactly its entries, and its bounds hold."""
    by_prefix, derived = {}, {}
    for entry_key, (_, _, source) in cache._entries.items():
        by_prefix.setdefault(entry_key[:3], set()).add(entry_key)
        if source is not None:
            derived.setdefault(id(source), set()).add(entry_key)
    assert {prefix: set(keys) for prefix, keys in cache._by_prefix.items()} == by_prefix
    assert {owner: set(keys) for owner, keys in cache._derived.items()} == derived
    made = {id(weight_cache._owner(transformed)) for _, transformed, _ in cache._entries.values()}
    assert set(cache._made) == made and set(derived) <= made  # a derived entry's source is a live entry's
    assert cache._bytes == sum(t.nbytes + (0 if s is None else s.nbytes) for s, t, _ in cache._entries.values())
    assert len(cache) <= cache.max_entries and cache._bytes <= cache.max_bytes


def test_bookkeeping_through_updates_evictions_and_derived_entries(rng):
    """Random weights of two shapes and two keys, changed in place now and then, transforms of
    the cache's own transforms (trusted entries), evicted by count and by bytes: every result is
    its weight's, and the indexes stay exact."""
    cache = WeightCache(max_bytes=1500, max_entries=6)
    weights, made = [], []
    for _ in range(400):
        op = rng.integers(4)
        if op == 0 or not weights:
            weights.append(rng.standard_normal(int(rng.choice([5, 6]))))
        if op <= 1:
            w, key = weights[rng.integers(len(weights))], f"k{rng.integers(2)}"
            if rng.random() < 0.3:
                w[rng.integers(w.size)] += 1.0  # a step, in place
            transformed = cache.get(w, key, lambda w=w: w * 2)
            np.testing.assert_array_equal(transformed, w * 2)
            made.append(transformed)
        elif op == 2 and made:  # a transform of a transform
            source = made[rng.integers(len(made))]
            np.testing.assert_array_equal(cache.get(source, "derived", lambda s=source: s + 1), source + 1)
        elif op == 3 and cache._entries:  # an entry dropped, with what was made from it
            entries = list(cache._entries)
            cache._drop(entries[rng.integers(len(entries))])
        check_bookkeeping(cache)
