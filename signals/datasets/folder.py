"""Any folder of images, searched recursively. With train/ and test/ subfolders those are the splits; otherwise
every tenth image in path order (i mod 10 == 9) is test. Files without an image extension are skipped (one note
counts them); a file with an image extension must be a readable image."""
from __future__ import annotations

from pathlib import Path

from .base import Located, Split, image_files, pil_chunks, skipped_note


def locate(root: Path, channels: int) -> Located:
    mode = "L" if channels == 1 else "RGB"
    if (root / "train").is_dir() and (root / "test").is_dir():
        found = {s: image_files(root / s) for s in ("train", "test")}
        groups = {s: images for s, (images, _) in found.items()}
        others = found["train"][1] + found["test"][1]
    else:
        files, others = image_files(root)
        groups = {"train": [f for i, f in enumerate(files) if i % 10 != 9],
                  "test": [f for i, f in enumerate(files) if i % 10 == 9]}
    files = groups["train"] + groups["test"]
    return Located(files, {s: Split(len(v), pil_chunks(v, mode)) for s, v in groups.items() if v},
                   skipped_note(root, others))
