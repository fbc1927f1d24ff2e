"""CIFAR-10: the python batches (data_batch_1..5, test_batch, batches.meta) or the cifar-10-python.tar.gz archive.
The batches are pickles; they are read with an unpickler that only builds numpy arrays, never arbitrary objects."""
from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np

from implicit_gon.errors import DataError

from .archive import extract
from .base import Located, Split
from .labels import CIFAR_CLASSES, cifar_labels

ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
           ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"), ("copyreg", "_reconstructor")}
TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def parse_batch(path: Path) -> np.ndarray:
    """(n, 32, 32, 3) uint8 from one CIFAR python batch."""
    try:
        d = _ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        data = np.asarray(d[b"data"] if b"data" in d else d["data"], dtype=np.uint8)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: CIFAR-10 batch has data of shape {data.shape}, expected (n, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def locate(root: Path, cache: Path) -> Located:
    dirs = [root, root / "cifar-10-batches-py", cache / "cifar10" / "cifar-10-batches-py"]
    archive = root / "cifar-10-python.tar.gz"
    if archive.is_file() and not any((d / "test_batch").is_file() for d in dirs[:2]):
        extract(archive, cache / "cifar10")
    for d in dirs:
        test, train = d / "test_batch", [d / n for n in TRAIN if (d / n).is_file()]
        if test.is_file() or train:
            splits = {}
            if train:
                splits["train"] = _split(train)
            if test.is_file():
                splits["test"] = _split([test])
            files = train + ([test] if test.is_file() else [])
            return Located(files, splits, classes=CIFAR_CLASSES, label_files=files)
    return Located([], {})


def _split(files: list[Path]) -> Split:
    counts = [len(parse_batch(f)) for f in files]  # small (30 MB a batch); validates every file up front
    return Split(sum(counts), lambda: (parse_batch(f) for f in files), cifar_labels(files))
