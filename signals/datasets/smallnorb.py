"""SmallNORB: the binary matrix files as distributed (`*-dat.mat`, `*-cat.mat`, `*-info.mat`), gzipped or not.
Each image is a stereo pair (2, 96, 96); the camera setting picks left, right or both as two channels."""
from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from implicit_gon.errors import DataError

from .base import Located, Split, first_existing
from .labels import NORB_CLASSES, first_n, norb_cat_file, parse_norb_cat
from .limits import read_at_most, read_declared, verify_declared

BYTE_MATRIX = 0x1E3D4C55
STEM = "smallnorb-5x{}x9x18x6x2x96x96-{}-dat.mat"
MAX_SIDE = 4096  # pixels; SmallNORB's are 96
IDS = {"train": ("46789", "training"), "test": ("01235", "testing")}


def _header(path: Path) -> tuple[int, tuple[int, ...]]:
    """(header length, dims) of a SmallNORB `-dat` file, checked: a byte matrix of (n >= 1, 2, H, W) with sane H, W."""
    raw = read_at_most(path, 8 + 4 * 8)
    if len(raw) < 8:
        raise DataError(f"{path}: truncated SmallNORB file ({len(raw)} bytes)")
    magic, ndim = struct.unpack("<2i", raw[:8])
    if magic & 0xFFFFFFFF != BYTE_MATRIX or not 1 <= ndim <= 8:
        raise DataError(f"{path}: not a SmallNORB byte matrix (magic {magic & 0xFFFFFFFF:#x})")
    head = 8 + 4 * max(3, ndim)
    if len(raw) < head:
        raise DataError(f"{path}: truncated SmallNORB header")
    dims = struct.unpack(f"<{ndim}i", raw[8:8 + 4 * ndim])
    if ndim != 4 or dims[1] != 2 or dims[0] < 1 or not all(1 <= d <= MAX_SIDE for d in dims[2:]):
        raise DataError(f"{path}: SmallNORB images should be (n >= 1, 2, H, W), header says {dims}")
    return head, dims


def parse_dat(path: Path) -> np.ndarray:
    """(n, 2, H, W) uint8 from a SmallNORB `-dat` file, read only up to the size its header declares."""
    head, dims = _header(path)
    count = dims[0] * dims[1] * dims[2] * dims[3]
    raw = read_declared(path, head + count, "SmallNORB")
    return np.frombuffer(raw, np.uint8, count, head).reshape(dims)


def _count(path: Path) -> int:
    """Images in a `-dat` file after the checks decoding makes (its length against its header)."""
    head, dims = _header(path)
    verify_declared(path, head + dims[0] * dims[1] * dims[2] * dims[3], "SmallNORB")
    return dims[0]


def _camera(pairs: np.ndarray, camera: str) -> np.ndarray:
    if camera == "both":
        return pairs.transpose(0, 2, 3, 1)  # (n, H, W, 2)
    if camera not in ("left", "right"):
        raise DataError(f"--camera {camera!r}: choose left, right or both")
    return pairs[:, 0 if camera == "left" else 1, :, :, None]


def locate(root: Path, camera: str) -> Located:
    dirs = [root, root / "smallnorb", root / "norb-v1.0-small"]
    files, splits = [], {}
    for split, (ids, word) in IDS.items():
        name = STEM.format(ids, word)
        path = first_existing(dirs, [name, name + ".gz"])
        if path is None:
            continue
        files.append(path)
        n = _count(path)
        cat = norb_cat_file(path)
        splits[split] = Split(n, lambda p=path: iter([_camera(parse_dat(p), camera)]),
                              cat and first_n(lambda p=cat: parse_norb_cat(p), n, cat))
    found = Located(files, splits)
    if splits and all(s.labels for s in splits.values()):
        found.classes, found.label_files = NORB_CLASSES, [norb_cat_file(f) for f in files]
    return found
