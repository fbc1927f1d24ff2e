"""MNIST and Fashion-MNIST: IDX files as distributed (gzipped or not), in the folder itself, in the dataset's own
folder or in torchvision's `<Name>/raw` layout. Validated by magic number and size."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np

from implicit_gon.errors import DataError

from .base import Located, Split, first_existing, read_bytes
from .labels import FASHION_CLASSES, MNIST_CLASSES, first_n, idx_label_file, parse_idx_labels

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions

SUBDIRS = {
    "mnist": ["mnist", "MNIST/raw", "mnist/MNIST/raw"],
    "fashion-mnist": ["fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "fashion-mnist/FashionMNIST/raw",
                      "data/fashion", "fashion"],
}
PREFIX = {"train": "train", "test": "t10k"}


def parse_images(path: Path) -> np.ndarray:
    """(n, rows, cols, 1) uint8 from an IDX3 image file."""
    raw = read_bytes(path)
    if len(raw) < 16:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, shorter than its header)")
    magic, n, rows, cols = struct.unpack(">4I", raw[:16])
    if magic != IMAGES_MAGIC:
        raise DataError(f"{path}: not an IDX image file (magic number {magic:#010x}, expected {IMAGES_MAGIC:#010x})")
    need = 16 + n * rows * cols
    if len(raw) < need:
        raise DataError(f"{path}: truncated IDX file ({len(raw)} bytes, its header says {need})")
    return np.frombuffer(raw, np.uint8, n * rows * cols, 16).reshape(n, rows, cols, 1)


def locate(root: Path, name: str) -> Located:
    dirs = [root] + [root / s for s in SUBDIRS[name]]
    files, splits = [], {}
    for split, prefix in PREFIX.items():
        path = first_existing(dirs, [f"{prefix}-images-idx3-ubyte", f"{prefix}-images-idx3-ubyte.gz",
                                     f"{prefix}-images.idx3-ubyte", f"{prefix}-images-idx3-ubyte*"])
        if path is None:
            continue
        files.append(path)
        n = _count(path)
        lab = idx_label_file(path)
        splits[split] = Split(n, lambda p=path: iter([parse_images(p)]),
                              lab and first_n(lambda p=lab: parse_idx_labels(p), n, lab))
    return _with_classes(Located(files, splits), name)


def _with_classes(found: Located, name: str) -> Located:
    """Class names when every split has its label file (a split without one: no labels at all)."""
    if found.splits and all(s.labels for s in found.splits.values()):
        found.classes = MNIST_CLASSES if name == "mnist" else FASHION_CLASSES
        found.label_files = [idx_label_file(f) for f in found.files]
    return found


def _count(path: Path) -> int:
    """Images in an IDX file, from its header (the whole file is validated when it is decoded)."""
    try:
        with open(path, "rb") as f:
            gz = f.read(2) == b"\x1f\x8b"
        with (gzip.open(path) if gz else open(path, "rb")) as f:
            head = f.read(16)
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: corrupt or truncated file ({e})") from None
    if len(head) < 16 or struct.unpack(">I", head[:4])[0] != IMAGES_MAGIC:
        raise DataError(f"{path}: not an IDX image file")
    return struct.unpack(">I", head[4:8])[0]
