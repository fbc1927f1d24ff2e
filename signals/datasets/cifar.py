"""CIFAR-10: the python batches (data_batch_1..5, test_batch, batches.meta) or the cifar-10-python.tar.gz archive.
The batches are pickles. They are read with limits: the file's size is capped, its opcodes are counted before
anything is built (a batch has ~40,000; a memo-reference bomb has millions), the only globals allowed are those
that rebuild a numpy array, and an array's shape must fit in the file that holds its bytes."""
from __future__ import annotations

import io
import pickle
import pickletools
from pathlib import Path

import numpy as np

from implicit_gon.errors import DataError

from .archive import extract_once
from .base import Located, Split
from .labels import CIFAR_CLASSES, cifar_labels
from .safe_pickle import MAX_BYTES, ArraysOnly as _ArraysOnly

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
MAX_OPS = 200_000
"""Most pickle opcodes in a batch (a real one has about 40,000: 10,000 labels and 10,000 file names)."""


def _read_limited(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise DataError(f"{path}: {size:,} bytes is too large for a CIFAR-10 batch (at most {MAX_BYTES:,})")
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None
    ops = sum(1 for _ in zip(range(MAX_OPS + 1), pickletools.genops(raw)))
    if ops > MAX_OPS:
        raise DataError(f"{path}: not a CIFAR-10 batch (more than {MAX_OPS:,} pickle opcodes)")
    return raw


def parse_batch(path: Path) -> np.ndarray:
    """(n, 32, 32, 3) uint8 from one CIFAR python batch."""
    try:
        d = _ArraysOnly(io.BytesIO(_read_limited(path)), encoding="bytes").load()
        data = d[b"data"] if b"data" in d else d["data"]
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError, IndexError,
            MemoryError, RecursionError, OverflowError) as e:
        raise DataError(f"{path}: not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8:
        raise DataError(f"{path}: CIFAR-10 batch data is {type(data).__name__} "
                        f"{getattr(data, 'dtype', '')}, expected a uint8 array")
    if data.ndim != 2 or data.shape[1] != 3072 or len(data) == 0:
        raise DataError(f"{path}: CIFAR-10 batch has data of shape {data.shape}, expected (n >= 1, 3072)")
    return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def locate(root: Path, cache: Path) -> Located:
    dirs = [root, root / "cifar-10-batches-py"]
    archive = root / "cifar-10-python.tar.gz"
    if archive.is_file() and not any((d / "test_batch").is_file() for d in dirs):
        dirs.append(extract_once(archive, cache / "cifar10") / "cifar-10-batches-py")
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
    _refuse_renamed(dirs[:2])
    return Located([], {})


def _refuse_renamed(dirs: list[Path]) -> None:
    """A batch under another name (test_batch_first78, data_batch_1.bak) is not guessed to be a split: say so, and
    how to read it, rather than that nothing is here."""
    near = sorted(p for d in dirs if d.is_dir() for p in d.iterdir()
                  if p.is_file() and p.name.startswith(("test_batch", "data_batch")) and not p.name.endswith(".part"))
    if near:
        p = near[0]
        name = "test_batch" if p.name.startswith("test_batch") else "data_batch_N"
        raise DataError(f"{p}: a CIFAR-10 batch is read only under its archive name (test_batch, data_batch_1 to "
                        f"data_batch_5); link it into a folder under that name (mkdir c && ln -s {p} c/{name}) and "
                        f"pass that folder")


def _split(files: list[Path]) -> Split:
    counts = [len(parse_batch(f)) for f in files]  # small (30 MB a batch); validates every file up front
    return Split(sum(counts), lambda: (parse_batch(f) for f in files), cifar_labels(files))
