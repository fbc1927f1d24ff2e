"""MNIST and Fashion-MNIST: IDX files as distributed (gzipped or not), in the folder itself, in the dataset's own
folder or in torchvision's `<Name>/raw` layout. Validated by magic number and size."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from implicit_gon.errors import DataError

from .base import Located, Split, first_existing
from .labels import FASHION_CLASSES, MNIST_CLASSES, first_n, idx_label_file, parse_idx_labels
from .limits import read_at_most, read_declared, verify_declared

IMAGES_MAGIC = 0x00000803  # unsigned byte, 3 dimensions
MAX_SIDE = 4096  # pixels; MNIST's are 28

SUBDIRS = {
    "mnist": ["mnist", "MNIST/raw", "mnist/MNIST/raw"],
    "fashion-mnist": ["fashion-mnist", "fashion_mnist", "FashionMNIST/raw", "fashion-mnist/FashionMNIST/raw",
                      "data/fashion", "fashion"],
}
PREFIX = {"train": "train", "test": "t10k"}


def _header(path: Path) -> tuple[int, int, int]:
    """(n, rows, cols) from an IDX3 header, checked: the right magic number and at least one non-empty image."""
    head = read_at_most(path, 16)
    if len(head) < 16:
        raise DataError(f"{path}: truncated IDX file ({len(head)} bytes, shorter than its header)")
    magic, n, rows, cols = struct.unpack(">4I", head)
    if magic != IMAGES_MAGIC:
        raise DataError(f"{path}: not an IDX image file (magic number {magic:#010x}, expected {IMAGES_MAGIC:#010x})")
    if n == 0:
        raise DataError(f"{path}: the IDX file holds no images")
    if not (1 <= rows <= MAX_SIDE and 1 <= cols <= MAX_SIDE):
        raise DataError(f"{path}: IDX images of {rows}x{cols} pixels (corrupt header?)")
    return n, rows, cols


def parse_images(path: Path) -> np.ndarray:
    """(n, rows, cols, 1) uint8 from an IDX3 image file, read only up to the size its header declares."""
    n, rows, cols = _header(path)
    raw = read_declared(path, 16 + n * rows * cols, "IDX")
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
    """Images in an IDX file, after the checks decoding makes (header, and the file's length against it), so that
    `dataset info` fails where `fit` would."""
    n, rows, cols = _header(path)
    verify_declared(path, 16 + n * rows * cols, "IDX")
    return n
