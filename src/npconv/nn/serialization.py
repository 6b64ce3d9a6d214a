"""Saving and loading state dicts as ``.npz`` archives, never pickling anything.

``save(model, path)`` writes one ``.npy`` member per state-dict entry, under the entry's key
as-is (``"features.0.weight.npy"``), as ``numpy.savez`` does; ``load(path)`` reads them back
with ``allow_pickle=False``.  To restore a model: ``model.load_state_dict(load(path))``
(strict: missing, unexpected or wrongly shaped entries raise ValueError naming them).
"""

import collections
import collections.abc
import zipfile

import numpy as np

from .module import Module


def save(module_or_state_dict, path):
    """Write a module's ``state_dict()``, or a mapping of names to arrays (e.g. a PyTorch
    state dict converted to NumPy), to the ``.npz`` file ``path`` (a path, written exactly
    there, or a binary file object).  Object arrays are refused: they would need pickling."""
    if isinstance(module_or_state_dict, Module):
        state = module_or_state_dict.state_dict()
    elif isinstance(module_or_state_dict, collections.abc.Mapping):
        state = module_or_state_dict
    else:
        raise TypeError(f"npconv.nn.save: expected a Module or a mapping of names to arrays, "
                        f"got {type(module_or_state_dict).__name__}")
    arrays = {}
    for key, value in state.items():
        if not isinstance(key, str):
            raise TypeError(f"npconv.nn.save: keys must be strings, got {key!r} ({type(key).__name__})")
        arrays[key] = np.asarray(value)
        if arrays[key].dtype.hasobject:
            raise ValueError(f"npconv.nn.save: entry {key!r} is an object array (dtype {arrays[key].dtype}); "
                             "only numeric arrays can be saved, since loading never unpickles")
    # numpy.savez's own layout, written directly so that any key (even "file") is kept as-is.
    with zipfile.ZipFile(path, "w") as archive:
        for key, array in arrays.items():
            with archive.open(key + ".npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, array, allow_pickle=False)


def load(path):
    """Read a ``.npz`` file written by :func:`save` (or ``numpy.savez``) into an OrderedDict
    of arrays, in the file's order.  Nothing is unpickled: a pickled entry raises ValueError."""
    where = repr(str(path))
    try:
        contents = np.load(path, allow_pickle=False)
    except ValueError as error:
        raise ValueError(f"npconv.nn.load: cannot read {where} without unpickling: {error}") from error
    if not isinstance(contents, np.lib.npyio.NpzFile):
        raise ValueError(f"npconv.nn.load: {where} holds a single array, not an .npz archive of named arrays")
    state = collections.OrderedDict()
    with contents:
        for key in contents.files:
            try:
                state[key] = contents[key]
            except ValueError as error:
                raise ValueError(f"npconv.nn.load: entry {key!r} of {where} is a pickled object array, "
                                 f"which is never unpickled ({error})") from error
    return state
