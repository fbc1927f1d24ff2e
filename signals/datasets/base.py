"""What every dataset reader returns: its source files and, per split, a count and a chunk reader."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .pixels import open_image

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


def first_existing(dirs: list[Path], patterns: list[str]) -> Path | None:
    """The first file matching a pattern in the first directory that has one (ignoring downloads in progress)."""
    for d in dirs:
        for pat in patterns:
            hits = sorted(p for p in d.glob(pat) if p.is_file() and not p.name.endswith(".part"))
            if hits:
                return hits[0]
    return None


IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm",
                    ".pnm", ".tga", ".jp2")


def image_files(root: Path) -> tuple[list[Path], list[Path]]:
    """(images, others): every non-hidden file below root with an image extension, sorted, and the files without
    one (skipped, so a stray notes.txt does not stop a run; a file named .png that is not an image still does)."""
    images, others = [], []
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).parts
        if p.is_file() and not any(part.startswith(".") for part in rel):
            (images if p.suffix.lower() in IMAGE_EXTENSIONS else others).append(p)
    return images, others


def skipped_note(root: Path, others: list[Path]) -> list[str]:
    """The one line that says which non-image files were skipped."""
    if not others:
        return []
    s = "" if len(others) == 1 else "s"
    return [f"{root}: skipped {len(others)} file{s} without an image extension (e.g. {others[0].name})"]


def pil_chunks(files: list[Path], mode: str) -> Chunks:
    """Decode files one at a time to (1, H, W, C) arrays in the given PIL mode ('L' or 'RGB')."""
    def read():
        for f in files:
            a = np.asarray(open_image(f, f).convert(mode))
            yield (a[..., None] if a.ndim == 2 else a)[None]
    return read
