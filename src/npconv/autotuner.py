"""Autotuning, as ``torch.backends.cudnn.benchmark``: time the candidates once per geometry.

With :func:`autotune` on, the first ``algo="auto"`` call of a geometry runs every algorithm
``auto`` may use (supported, allowed by the precision policy, not a reference) on the call's
own data, keeps the fastest, and later calls with that geometry reuse it.  The table lives
in memory, bounded in size, and optionally in a JSON file under the user's cache directory
(``$XDG_CACHE_HOME/npconv/autotune.json``, else ``~/.cache/npconv/autotune.json``).

Keys are the ``repr`` of every field that can change the winner -- all of the geometry
(shapes, stride, dilation, padding, groups, dtype), the thread count and the precision
policy -- so two geometries or dtypes never share an entry.  An unreadable or corrupt file
is ignored with a warning and rewritten atomically (a temporary file renamed over it).
"""

import contextlib
import json
import os
import tempfile
import threading
import time
import warnings
from collections import OrderedDict
from dataclasses import astuple
from pathlib import Path

from .config import get_num_threads, get_precision

MAX_ENTRIES = 4096
FORMAT = 1


def default_path():
    root = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(root) / "npconv" / "autotune.json"


def geometry_key(geom):
    """The table key of ``geom`` under the current thread count and precision policy."""
    fields = tuple(str(f) if not isinstance(f, (int, tuple)) else f for f in astuple(geom))
    return repr((fields, get_num_threads(), get_precision()))


class Tuner:
    def __init__(self):
        self.enabled = False
        self.path = None
        self._table = OrderedDict()  # key -> algorithm name, least recently used first
        self._lock = threading.Lock()

    def configure(self, enabled, path):
        with self._lock:
            self.enabled, self.path = enabled, path
            self._table.clear()
            if enabled and path is not None:
                self._table.update(self._read())

    def choose(self, geom, candidates, trial):
        """The name of the fastest of ``candidates`` for ``geom``, timing them with ``trial`` once."""
        key = geometry_key(geom)
        names = {alg.name for alg in candidates}
        with self._lock:
            name = self._table.get(key)
            if name in names:
                self._table.move_to_end(key)
                return name
        times = {}
        for alg in candidates:
            trial(alg)  # warm-up: kernel loading, caches, first-touch of buffers
            start = time.perf_counter()
            trial(alg)
            times[alg.name] = time.perf_counter() - start
        name = min(times, key=times.get)
        with self._lock:
            self._table[key] = name
            while len(self._table) > MAX_ENTRIES:
                self._table.popitem(last=False)
            if self.path is not None:
                self._write()
        return name

    def entries(self):
        with self._lock:
            return dict(self._table)

    def _read(self):
        try:
            with open(self.path) as f:
                data = json.load(f)
            if data.get("format") != FORMAT or not isinstance(data.get("entries"), dict):
                raise ValueError(f"not an npconv autotune table (format {FORMAT})")
            return {str(k): str(v) for k, v in data["entries"].items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, AttributeError, RecursionError) as exc:  # RecursionError: JSON nested too deep
            warnings.warn(f"npconv.autotune: ignoring unreadable table {self.path}: {exc}", RuntimeWarning,
                          stacklevel=4)
            return {}

    def _write(self):
        """Write the table atomically: a temporary file in the same folder, renamed over the old
        one -- or, where that fails, removed."""
        tmp = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".autotune-", suffix=".json")
            with os.fdopen(fd, "w") as f:
                json.dump({"format": FORMAT, "entries": dict(self._table)}, f)
            os.replace(tmp, self.path)
        except OSError as exc:
            warnings.warn(f"npconv.autotune: cannot write {self.path}: {exc}", RuntimeWarning, stacklevel=4)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)


TUNER = Tuner()


def autotune(enabled=True, *, persist=False, path=None):
    """Turn autotuning of ``algo="auto"`` on or off.

    Args:
        enabled: time the candidate algorithms the first time each geometry is seen.
        persist: also keep the table on disk (``path``, default :func:`default_path`), read
            now and rewritten after each new entry.
        path: the table file; implies ``persist``.
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"autotune: enabled must be a bool, got {enabled!r}")
    file = Path(path) if path is not None else default_path() if persist else None
    TUNER.configure(enabled, file)
