"""CelebA: img_align_celeba/*.jpg with list_eval_partition.txt (0 train, 1 valid, 2 test). Without the partition
file, every tenth image in name order (i mod 10 == 9) is test and the rest train. Faces are centre-cropped to
148x148 (the usual crop of the aligned 178x218 images) before resizing."""
from __future__ import annotations

from pathlib import Path

from implicit_gon.errors import DataError

from .base import Located, Split, pil_chunks

CROP = 148
MAX_PARTITION_BYTES = 64 << 20
PARTS = {"0": "train", "1": "valid", "2": "test"}


def locate(root: Path) -> Located:
    for d in (root, root / "celeba", root / "CelebA"):
        img = d / "img_align_celeba"
        if img.is_dir():
            files = sorted(p for p in img.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
            part = next((p for p in (d / "list_eval_partition.txt", d / "Eval" / "list_eval_partition.txt")
                         if p.is_file()), None)
            groups = _partition(files, part) if part else _default_split(files)
            located = Located(files + ([part] if part else []),
                              {k: Split(len(v), pil_chunks(v, "RGB")) for k, v in groups.items() if v})
            located.crop = CROP
            if part is None:
                located.notes.append(f"{img}: no list_eval_partition.txt; every tenth image is test")
            return located
    return Located([], {})


def _default_split(files: list[Path]) -> dict[str, list[Path]]:
    return {"train": [f for i, f in enumerate(files) if i % 10 != 9],
            "test": [f for i, f in enumerate(files) if i % 10 == 9]}


def _read_text(part: Path) -> str:
    try:
        if part.stat().st_size > MAX_PARTITION_BYTES:
            raise DataError(f"{part}: {part.stat().st_size:,} bytes is too large for a partition list (CelebA's is 3.3 MB)")
        return part.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{part}: not a text file (byte {e.start} is not UTF-8)") from None
    except OSError as e:
        raise DataError(f"{part}: cannot read ({e.strerror})") from None


def _partition(files: list[Path], part: Path) -> dict[str, list[Path]]:
    by_name = {f.name: f for f in files}
    groups: dict[str, list[Path]] = {"train": [], "valid": [], "test": []}
    for ln, line in enumerate(_read_text(part).splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in PARTS:
            raise DataError(f"{part}:{ln}: expected '<image> <0|1|2>', got {line!r}")
        if fields[0] in by_name:
            groups[PARTS[fields[1]]].append(by_name[fields[0]])
    return groups
