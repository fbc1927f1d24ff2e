"""Any folder of images, searched recursively. With train/ and test/ subfolders those are the splits; otherwise
every tenth image in path order (i mod 10 == 9) is test. Files without an image extension are skipped (one note
counts them); a file with an image extension must be a readable image. When every image lies in a subfolder (below
train/ and test/, if those are there), the subfolders are the classes: torchvision's ImageFolder convention."""
from __future__ import annotations

from pathlib import Path

from .base import Located, Split, image_files, pil_chunks, skipped_note
from .labels import named_classes


def locate(root: Path, channels: int) -> Located:
    mode = "L" if channels == 1 else "RGB"
    if (root / "train").is_dir() and (root / "test").is_dir():
        found = {s: image_files(root / s) for s in ("train", "test")}
        groups = {s: images for s, (images, _) in found.items()}
        others = found["train"][1] + found["test"][1]
        roots = {"train": root / "train", "test": root / "test"}
    else:
        files, others = image_files(root)
        groups = {"train": [f for i, f in enumerate(files) if i % 10 != 9],
                  "test": [f for i, f in enumerate(files) if i % 10 == 9]}
        roots = {"train": root, "test": root}
    files = groups["train"] + groups["test"]
    located = Located(files, {s: Split(len(v), pil_chunks(v, mode)) for s, v in groups.items() if v},
                      skipped_note(root, others))
    return _with_classes(located, groups, roots)


def _with_classes(found: Located, groups: dict[str, list[Path]], roots: dict[str, Path]) -> Located:
    """Labels when every image is in a class subfolder: the first folder below its split's root."""
    split_of = {f: s for s, v in groups.items() for f in v}
    if not all(len(f.relative_to(roots[s]).parts) > 1 for f, s in split_of.items()):
        return found
    names = list(found.splits)
    found.classes, labels = named_classes([groups[s] for s in names],
                                          lambda f: f.relative_to(roots[split_of[f]]).parts[0])
    for s, lab in zip(names, labels):
        found.splits[s].labels = lab
    return found
