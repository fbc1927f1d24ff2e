"""Any folder of images, searched recursively. With train/ and test/ subfolders those are the splits; otherwise
every tenth image in path order (i mod 10 == 9) is test. Every non-hidden file must be a readable image."""
from __future__ import annotations

from pathlib import Path

from .base import Located, Split, image_files, pil_chunks


def locate(root: Path, channels: int) -> Located:
    mode = "L" if channels == 1 else "RGB"
    if (root / "train").is_dir() and (root / "test").is_dir():
        groups = {s: image_files(root / s) for s in ("train", "test")}
    else:
        files = image_files(root)
        groups = {"train": [f for i, f in enumerate(files) if i % 10 != 9],
                  "test": [f for i, f in enumerate(files) if i % 10 == 9]}
    files = groups["train"] + groups["test"]
    return Located(files, {s: Split(len(v), pil_chunks(v, mode)) for s, v in groups.items() if v})
