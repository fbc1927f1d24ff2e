"""A 64 px RGB natural-image folder from the shared data, for stability and time-to-quality runs beyond CelebA.

    python benchmarks/make_natural64.py OUT [--data-dir DIR] [--res 64]

Writes OUT/train/*.png and OUT/test/*.png (the `folder` dataset's splits): the CIFAR-10 test subset
(cifar-10-batches-py/test_batch_first78, every tenth image held out) upsampled from 32 px, and every COIL-20
image (coil-20-32x32, poses j mod 5 == 4 held out, as the coil20 dataset splits) cropped to its central 24 px,
where the object is, and upsampled, grey replicated to RGB. Bicubic resampling throughout. 1,078 images: 871 train,
207 test. Each PNG is written to a temporary name and renamed into place; OUT must be empty or absent.
"""
from __future__ import annotations

import argparse
import pickle
import re
from pathlib import Path

import numpy as np
from PIL import Image

from common import positive, run_benchmark, shared_root
from implicit_gon.errors import DataError

COIL_CROP = 24  # of 32 px: the objects sit in the middle, on black
MAX_PICKLE_BYTES = 64 << 20  # the shared CIFAR subset is 240 kB; the full test_batch 31 MB


def cifar_images(root: Path) -> np.ndarray:
    """The shared CIFAR-10 test subset as (n, 32, 32, 3) uint8."""
    path = root / "cifar-10-batches-py" / "test_batch_first78"
    if not path.is_file() or path.stat().st_size > MAX_PICKLE_BYTES:
        raise DataError(f"{path}: not found (or over {MAX_PICKLE_BYTES >> 20} MB); pass --data-dir (the shared data)")
    with path.open("rb") as f:
        data = pickle.load(f, encoding="bytes")[b"data"]  # the shared data's own file (SOURCES.md): trusted
    return np.asarray(data, dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)


def coil_files(root: Path) -> list[tuple[Path, bool]]:
    """(file, held out) for every COIL-20 image, held out when its pose j mod 5 == 4."""
    folder = root / "coil-20-32x32"
    name = re.compile(r"obj(\d+)__(\d+)\.png$")
    found = sorted((f, int(m[2]) % 5 == 4) for f in folder.glob("*.png") if (m := name.search(f.name)))
    if not found:
        raise DataError(f"{folder}: no COIL-20 images (obj{{i}}__{{j}}.png); pass --data-dir (the shared data)")
    return found


def resized(img: Image.Image, res: int, crop: int | None = None) -> Image.Image:
    """The image (its central crop x crop, if given) resized to res x res RGB."""
    if crop is not None:
        left = (img.width - crop) // 2
        img = img.crop((left, (img.height - crop) // 2, left + crop, (img.height - crop) // 2 + crop))
    return img.convert("RGB").resize((res, res), Image.BICUBIC)


def save(img: Image.Image, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    img.save(tmp, format="PNG")
    tmp.replace(path)


def build(root: Path, out: Path, res: int) -> dict[str, int]:
    """Write every image; returns the count per split."""
    if out.exists() and any(out.iterdir()):
        raise DataError(f"{out}: not empty; name a new folder")
    for split in ("train", "test"):
        (out / split).mkdir(parents=True, exist_ok=True)
    counts = {"train": 0, "test": 0}
    for i, a in enumerate(cifar_images(root)):
        split = "test" if i % 10 == 9 else "train"
        save(resized(Image.fromarray(a), res), out / split / f"cifar_{i:03d}.png")
        counts[split] += 1
    for f, held in coil_files(root):
        split = "test" if held else "train"
        with Image.open(f) as img:
            save(resized(img, res, COIL_CROP), out / split / f"coil_{f.stem}.png")
        counts[split] += 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the folder to create (empty or absent)")
    ap.add_argument("--data-dir", type=Path, default=None, help="the shared data folder (default "
                    "$IMPLICIT_GON_DATA, else ../shared/data)")
    ap.add_argument("--res", type=positive(int), default=64)
    args = ap.parse_args()
    if args.res > 1024:
        ap.error(f"--res {args.res}: at most 1024")
    counts = build(shared_root(args.data_dir), args.out, args.res)
    print(f"wrote {counts['train']} train and {counts['test']} test images, {args.res} px RGB, to {args.out}")


if __name__ == "__main__":
    run_benchmark(main)
