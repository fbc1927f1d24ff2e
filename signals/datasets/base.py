"""What every dataset reader returns: its source files and, per split, a count and a chunk reader."""
from __future__ import annotations

import gzip
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from PIL import Image, UnidentifiedImageError

from implicit_gon.errors import DataError

Chunks = Callable[[], Iterator[np.ndarray]]  # yields (k, H, W, C) uint8 chunks
Labels = Callable[[], np.ndarray]  # returns (n,) int64 class indices, in image order


@dataclass
class Split:
    """One split: n images, read in chunks at their native size."""

    n: int
    read: Chunks
    labels: Labels | None = None
    """Class index of each image, for datasets that have labels (None: this dataset has none)."""

    def subset(self, start: int, stop: int) -> "Split":
        """Images [start, stop) of this split, in order."""
        def read():
            pos = 0
            for chunk in self.read():
                lo, hi = max(start - pos, 0), min(stop - pos, len(chunk))
                if lo < hi:
                    yield chunk[lo:hi]
                pos += len(chunk)
                if pos >= stop:
                    return
        labels = None if self.labels is None else (lambda: self.labels()[start:stop])
        return Split(stop - start, read, labels)


@dataclass
class Located:
    """A dataset found on disk."""

    files: list[Path]
    splits: dict[str, Split]
    notes: list[str] = field(default_factory=list)
    crop: int | None = None  # centre crop (pixels) before resizing; None: the largest centred square
    classes: list[str] | None = None  # class names, indexed by the splits' labels (None: no labels)
    label_files: list[Path] = field(default_factory=list)  # files the labels come from (their cache key)


def read_bytes(path: Path) -> bytes:
    """A file's bytes, gunzipped when it is gzip (by its magic number, whatever its name)."""
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def open_image(path_or_file, name: str | Path) -> Image.Image:
    """Decode an image fully (so truncation shows here, with the file's name)."""
    try:
        im = Image.open(path_or_file)
        im.load()
        return im
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{name}: not a readable image ({e})") from None


def first_existing(dirs: list[Path], patterns: list[str]) -> Path | None:
    """The first file matching a pattern in the first directory that has one (ignoring downloads in progress)."""
    for d in dirs:
        for pat in patterns:
            hits = sorted(p for p in d.glob(pat) if p.is_file() and not p.name.endswith(".part"))
            if hits:
                return hits[0]
    return None


def image_files(root: Path) -> list[Path]:
    """Every non-hidden file below root, sorted (hidden folders such as caches are skipped)."""
    out = []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if p.is_file() and not any(part.startswith(".") for part in rel):
            out.append(p)
    return out


def pil_chunks(files: list[Path], mode: str) -> Chunks:
    """Decode files one at a time to (1, H, W, C) arrays in the given PIL mode ('L' or 'RGB')."""
    def read():
        for f in files:
            a = np.asarray(open_image(f, f).convert(mode))
            yield (a[..., None] if a.ndim == 2 else a)[None]
    return read
