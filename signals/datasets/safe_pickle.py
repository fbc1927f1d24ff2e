"""An unpickler for CIFAR-10's python batches that builds numpy arrays and bytes and nothing else."""
from __future__ import annotations

import pickle

import numpy as np

MAX_BYTES = 256 << 20
"""Largest batch file read: 256 MiB (a CIFAR-10 batch is 31 MB)."""


def _reconstruct(subtype, shape, dtype):
    """numpy's array-unpickling helper, refusing a shape larger than the file could fill (the bytes come later)."""
    if subtype is not np.ndarray or np.prod(shape, dtype=np.float64) > MAX_BYTES:
        raise pickle.UnpicklingError(f"refusing an array of shape {shape}")
    return np.ndarray.__new__(subtype, shape, dtype)


def _dtype(*args):
    d = np.dtype(*args)
    if d.hasobject or d.itemsize > 16:
        raise pickle.UnpicklingError(f"refusing dtype {d}")
    return d


def _bytes(*args):
    """bytes(...) as protocol-2 pickles use it (an empty array's buffer), never bytes(n): n zero bytes."""
    if args and not isinstance(args[0], (str, bytes)):
        raise pickle.UnpicklingError(f"refusing bytes({type(args[0]).__name__})")
    return bytes(*args)


ALLOWED = {("numpy.core.multiarray", "_reconstruct"): _reconstruct,
           ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
           ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _dtype, ("_codecs", "encode"): None,
           ("__builtin__", "bytes"): _bytes, ("builtins", "bytes"): _bytes}


class ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return ALLOWED[module, name] or super().find_class(module, name)
