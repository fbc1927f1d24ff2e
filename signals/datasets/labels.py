"""Class labels of the image datasets that have them, read from the files their authors distribute:
IDX label files (MNIST, Fashion-MNIST), the CIFAR-10 batches' `labels`, SmallNORB's `-cat.mat`, COIL-20's object
number in the file name, and one subfolder per class for `folder` (torchvision's ImageFolder convention).

Each reader gives a split a lazy `labels()` returning (n,) int64 class indices in image order; `load_labels`
caches them as a small `.npy` beside the image cache."""
from __future__ import annotations

import io
import pickle
import re
import struct
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from implicit_gon.errors import DataError

from .base import Labels
from .limits import read_at_most
from .safe_pickle import ArraysOnly

MAX_LABEL_BYTES = 1 << 26
"""A label file holds one to four bytes per image: 64 MiB is millions of labels; more is read no further."""

LABELS_MAGIC = 0x00000801  # IDX: unsigned byte, 1 dimension
INT_MATRIX = 0x1E3D4C54  # SmallNORB: int32 matrix

MNIST_CLASSES = [str(d) for d in range(10)]
FASHION_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot"]
CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
NORB_CLASSES = ["animal", "human", "airplane", "truck", "car"]


def first_n(read: Callable[[], np.ndarray], n: int, path: Path) -> Labels:
    """labels() giving the first n labels of a file: an image file may hold a leading part of the distributed set
    (the shared Fashion-MNIST images are its first 4,443), but fewer labels than images is an error."""
    def labels() -> np.ndarray:
        lab = read()
        if len(lab) < n:
            raise DataError(f"{path}: {len(lab)} labels for {n} images")
        return lab[:n].astype(np.int64)
    return labels


def parse_idx_labels(path: Path) -> np.ndarray:
    """(n,) uint8 class indices from an IDX1 label file."""
    raw = read_at_most(path, MAX_LABEL_BYTES)
    if len(raw) < 8:
        raise DataError(f"{path}: truncated IDX label file ({len(raw)} bytes, shorter than its header)")
    magic, n = struct.unpack(">2I", raw[:8])
    if magic != LABELS_MAGIC:
        raise DataError(f"{path}: not an IDX label file (magic number {magic:#010x}, expected {LABELS_MAGIC:#010x})")
    if len(raw) < 8 + n:
        raise DataError(f"{path}: truncated IDX label file ({len(raw)} bytes, its header says {8 + n})")
    return np.frombuffer(raw, np.uint8, n, 8)


def idx_label_file(image_file: Path) -> Path | None:
    """The label file beside an IDX image file: `t10k-images-idx3-ubyte[...]` -> `t10k-labels-idx1-ubyte[.gz]`."""
    prefix = image_file.name.split("-images")[0]
    for pat in (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels-idx1-ubyte.gz", f"{prefix}-labels.idx1-ubyte",
                f"{prefix}-labels-idx1-ubyte*"):
        hits = sorted(p for p in image_file.parent.glob(pat) if p.is_file() and not p.name.endswith(".part"))
        if hits:
            return hits[0]
    return None


def cifar_batch_labels(path: Path) -> np.ndarray:
    """(n,) class indices from a CIFAR python batch (read with the reader's arrays-only unpickler)."""
    try:
        d = ArraysOnly(io.BytesIO(path.read_bytes()), encoding="bytes").load()
        lab = np.asarray(d[b"labels"] if b"labels" in d else d["labels"], dtype=np.int64)
    except (pickle.UnpicklingError, EOFError, KeyError, TypeError, ValueError, AttributeError) as e:
        raise DataError(f"{path}: CIFAR-10 batch without readable labels ({type(e).__name__}: {e})") from None
    if lab.ndim != 1:
        raise DataError(f"{path}: CIFAR-10 labels should be a list, got shape {lab.shape}")
    bad = lab[(lab < 0) | (lab > 9)]
    if bad.size:
        raise DataError(f"{path}: CIFAR-10 labels should be 0..9, got {bad[0]} ({bad.size} out of range)")
    return lab


def cifar_labels(files: Sequence[Path]) -> Labels:
    return lambda: np.concatenate([cifar_batch_labels(f) for f in files])


def parse_norb_cat(path: Path) -> np.ndarray:
    """(n,) int32 categories from a SmallNORB `-cat.mat` file (an int matrix of one dimension)."""
    raw = read_at_most(path, MAX_LABEL_BYTES)
    if len(raw) < 20:
        raise DataError(f"{path}: truncated SmallNORB file ({len(raw)} bytes)")
    magic, ndim, n = struct.unpack("<3i", raw[:12])
    if magic & 0xFFFFFFFF != INT_MATRIX or ndim != 1:
        raise DataError(f"{path}: not a SmallNORB category file (magic {magic & 0xFFFFFFFF:#x}, {ndim} dims)")
    head = 8 + 4 * 3  # the header always holds at least three dimensions
    if len(raw) < head + 4 * n:
        raise DataError(f"{path}: truncated SmallNORB file ({len(raw)} bytes, its header says {head + 4 * n})")
    lab = np.frombuffer(raw, "<i4", n, head)
    if n and not 0 <= lab.min() <= lab.max() < len(NORB_CLASSES):
        raise DataError(f"{path}: SmallNORB categories should be 0..4")
    return lab


def norb_cat_file(dat_file: Path) -> Path | None:
    """`...-dat.mat[.gz]` -> the `...-cat.mat[.gz]` beside it."""
    stem = re.sub(r"-dat\.mat(\.gz)?$", "-cat.mat", dat_file.name)
    return next((p for p in (dat_file.with_name(stem), dat_file.with_name(stem + ".gz")) if p.is_file()), None)


def named_classes(files: Sequence[Sequence[Path]], key: Callable[[Path], str],
                  order: Callable[[str], object] = str) -> tuple[list[str], list[Labels]]:
    """Classes named by key(file) (sorted by order) and, per group of files, a labels() of indices into them."""
    classes = sorted({key(f) for group in files for f in group}, key=order)
    index = {c: i for i, c in enumerate(classes)}
    return classes, [(lambda g=group: np.array([index[key(f)] for f in g], np.int64)) for group in files]

