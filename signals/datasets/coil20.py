"""COIL-20: the processed images obj{i}__{j}.png (128x128 as distributed; any size is accepted) or the
coil-20-proc.zip archive. Split by pose: every fifth pose (j mod 5 == 4) of every object is held out as test."""
from __future__ import annotations

import re
from pathlib import Path

from .archive import extract_once
from .base import Located, Split, pil_chunks
from .labels import named_classes

NAME = re.compile(r"obj(\d+)__(\d+)\.png$", re.IGNORECASE)


def locate(root: Path, cache: Path) -> Located:
    dirs = [root, root / "coil-20-proc", root / "coil-20", root / "coil20"]
    archive = root / "coil-20-proc.zip"
    if archive.is_file() and not any(_files(d) for d in dirs):
        out = extract_once(archive, cache / "coil20")
        dirs += [out, out / "coil-20-proc"]
    for d in dirs:
        files = _files(d)
        if files:
            test = [f for f in files if int(NAME.search(f.name)[2]) % 5 == 4]
            train = [f for f in files if int(NAME.search(f.name)[2]) % 5 != 4]
            classes, (ltrain, ltest) = named_classes([train, test], _object, lambda c: int(c[3:]))
            return Located(files, {"train": Split(len(train), pil_chunks(train, "L"), ltrain),
                                   "test": Split(len(test), pil_chunks(test, "L"), ltest)}, classes=classes)
    return Located([], {})


def _object(f: Path) -> str:
    """The class of a COIL-20 image: its object, obj{i}."""
    return f"obj{int(NAME.search(f.name)[1])}"


def _files(d: Path) -> list[Path]:
    if not d.is_dir():
        return []
    hits = [p for p in d.iterdir() if NAME.search(p.name)]
    return sorted(hits, key=lambda p: tuple(int(x) for x in NAME.search(p.name).groups()))
