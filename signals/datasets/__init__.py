"""Image datasets of the paper, read from the files their authors distribute, decoded once into a uint8 cache.

    images = load_images("mnist", "train", data_dir="~/data")   # (n, 28, 28, 1) uint8, memory-mapped
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from implicit_gon.errors import DataError
from implicit_gon.progress import say

from . import celeba, cifar, coil20, digits, folder, idx, lsun, smallnorb
from .base import Located
from .cache import cache_key, cached_array, cached_labels, default_cache_dir, dir_tag
from .download import Unreachable, download


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    res: int
    """The paper's training resolution."""
    channels: int
    formats: str
    downloads: tuple[tuple, ...] = ()
    """(url, file name, checksum[, size in bytes]) of a public download; empty when none is stable or it needs a
    sign-in. The size, where known, limits the bytes accepted (else download.MAX_BYTES)."""
    missing: str = ""
    """What to put where, for a dataset that cannot be downloaded."""


MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
NORB_URL = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/"
NORB = "smallnorb-5x{}x9x18x6x2x96x96-{}-dat.mat.gz"

DATASETS: dict[str, DatasetInfo] = {d.name: d for d in [
    DatasetInfo("digits", 8, 1, "bundled with scikit-learn (offline)"),
    DatasetInfo("mnist", 28, 1, "IDX files, gzipped or not", (
        (MNIST_URL + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "md5:f68b3c2dcbeaaa9fbdd348bbdeb94873", 9_912_422),
        (MNIST_URL + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "md5:9fb629c4189551a2d022fa330f9573f3", 1_648_877))),
    DatasetInfo("fashion-mnist", 28, 1, "IDX files, gzipped or not", (
        (FASHION_URL + "train-images-idx3-ubyte.gz", "train-images-idx3-ubyte.gz", "md5:8d4fb7e6c68d591d4c3dfef9ec88bf0d", 26_421_880),
        (FASHION_URL + "t10k-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz", "md5:bef4ecab320f06d8554ea6380940ec79", 4_422_102))),
    DatasetInfo("smallnorb", 32, 1, "binary .mat files (-dat), gzipped or not", (
        (NORB_URL + NORB.format("46789", "training"), NORB.format("46789", "training"), "md5:66054832f9accfe74a0f4c36a75bc0a2"),
        (NORB_URL + NORB.format("01235", "testing"), NORB.format("01235", "testing"), "md5:e4ad715691ed5a3a5f138751a4ceb071"))),
    DatasetInfo("coil20", 32, 1, "obj{i}__{j}.png or coil-20-proc.zip",
                missing="put the processed COIL-20 images obj{i}__{j}.png (or coil-20-proc.zip) in DIR"),
    DatasetInfo("cifar10", 32, 3, "python batches or cifar-10-python.tar.gz", (
        ("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "cifar-10-python.tar.gz",
         "md5:c58f30108f718f92721af3b95e74349a", 170_498_071),)),
    DatasetInfo("celeba", 64, 3, "img_align_celeba/*.jpg + list_eval_partition.txt",
                missing="CelebA needs a sign-in to download: put img_align_celeba/*.jpg and list_eval_partition.txt "
                        "(from 'Align&Cropped Images' and 'Eval') in DIR"),
    DatasetInfo("lsun-bedroom", 128, 3, "LMDB (bedroom_train_lmdb, bedroom_val_lmdb) or a folder of images",
                missing="LSUN has no stable download: put bedroom_train_lmdb/ and bedroom_val_lmdb/ (each with data.mdb), "
                        "or a folder bedroom/ of exported images, in DIR"),
    DatasetInfo("folder", 64, 3, "any folder of images (PNG, JPEG, ...)"),
]}


def get_info(name: str) -> DatasetInfo:
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r} (choose one of: {', '.join(DATASETS)})")
    return DATASETS[name]


def locate(name: str, data_dir: Path | None, cache: Path, camera: str = "left", channels: int = 3) -> Located:
    """Find a dataset's files; the test-only fallback and error messages live here."""
    if name == "digits":
        return digits.locate()
    if data_dir is None:
        raise DataError(f"dataset {name!r} needs --data-dir")
    if not data_dir.is_dir():
        raise DataError(f"{data_dir}: data directory not found")
    found = {
        "mnist": lambda: idx.locate(data_dir, "mnist"),
        "fashion-mnist": lambda: idx.locate(data_dir, "fashion-mnist"),
        "cifar10": lambda: cifar.locate(data_dir, cache),
        "smallnorb": lambda: smallnorb.locate(data_dir, camera),
        "coil20": lambda: coil20.locate(data_dir, cache),
        "celeba": lambda: celeba.locate(data_dir),
        "lsun-bedroom": lambda: lsun.locate(data_dir, channels),
        "folder": lambda: folder.locate(data_dir, channels),
    }[name]()
    _drop_empty_splits(found, data_dir, name)
    if not found.splits:
        info = get_info(name)
        hint = info.missing.replace("DIR", str(data_dir)) if info.missing else (
            f"expected {info.formats}" + ("; or pass --download" if info.downloads else ""))
        raise DataError(f"{data_dir}: no {name} files found ({hint})")
    return _test_only_fallback(found, name)


def _drop_empty_splits(found: Located, data_dir: Path, name: str) -> None:
    """A split without images is left out; files that hold no image at all are one line."""
    if found.splits and all(sp.n == 0 for sp in found.splits.values()):
        raise DataError(f"{data_dir}: the {name} files hold no images")
    found.splits = {k: sp for k, sp in found.splits.items() if sp.n > 0}


def _test_only_fallback(found: Located, name: str) -> Located:
    """Only the test files are there (common for quick experiments): train on the first 90% of them and hold out
    the last 10%, e.g. MNIST's t10k set becomes 9,000 train and 1,000 test images."""
    if "train" in found.splits or "test" not in found.splits:
        return found
    test = found.splits["test"]
    cut = test.n - max(1, test.n // 10)
    found.splits = {"train": test.subset(0, cut), "test": test.subset(cut, test.n)}
    found.notes.append(f"{name}: only test files found; using their first {cut} images to train, last {test.n - cut} to test")
    return found


def fetch(name: str, target: Path, progress: bool = True) -> None:
    """Download a dataset's public files into target (checked against their checksums). A target this call made
    is removed again when nothing could be written into it."""
    info = get_info(name)
    if not info.downloads:
        raise DataError(f"{name}: no public download; {info.missing.replace('DIR', str(target))}")
    made = not target.exists()
    try:
        for url, fname, checksum, *size in info.downloads:
            download(url, target / fname, checksum, progress, size=size[0] if size else None)
    except DataError:
        if made and target.is_dir() and not any(target.iterdir()):
            target.rmdir()
        raise


def _fetch_or_local(name: str, target: Path, progress: bool, cache: Path, camera: str,
                    channels: int) -> Located | None:
    """--download where the server cannot be reached (no network) but target already holds a usable set (MNIST's
    test files alone are one): a note, and the local files, as located (None: the download went through). The
    README's MNIST command failed offline beside the very files it then trains on. A refused download (a checksum,
    a size) is still an error."""
    try:
        fetch(name, target, progress)
        return None
    except Unreachable as e:
        try:
            found = locate(name, target, cache, camera, channels)
        except DataError:
            raise e from None
        note = f"--download: could not reach {e.url} ({e.reason}); using the {name} files already in {target}"
        if note not in _NOTED:
            _NOTED.add(note)
            say(f"note: {note}")
        return found


def resize_square(img: np.ndarray, res: int, channels: int, crop: int | None = None) -> np.ndarray:
    """(H, W, C) uint8 -> (res, res, channels): centre crop (to `crop`, or the largest centred square), then resize
    (Lanczos when shrinking, bicubic when enlarging); channels converted by luminance or replication."""
    h, w, c = img.shape
    side = min(h, w, crop or max(h, w))
    top, left = (h - side) // 2, (w - side) // 2
    img = img[top:top + side, left:left + side]
    if c != channels:
        if channels == 1 and c == 3:
            img = np.asarray(Image.fromarray(img).convert("L"))[..., None]
        elif c == 1:
            img = np.repeat(img, channels, axis=2)
        else:
            raise DataError(f"cannot turn {c}-channel images into {channels} channels")
    if side == res:
        return img
    method = Image.Resampling.LANCZOS if side > res else Image.Resampling.BICUBIC
    planes = [np.asarray(Image.fromarray(np.ascontiguousarray(img[..., k])).resize((res, res), method))
              for k in range(img.shape[2])]
    return np.stack(planes, -1)


_NOTED: set[str] = set()


def _find(name: str, data_dir: Path | None, cache: Path, download: bool, progress: bool, camera: str,
          channels: int) -> tuple[Path | None, Located]:
    """(data_dir, its files located), fetched first with download. With no data_dir, the folder an earlier
    --download filled (the cache's downloads/NAME) is the data's, so a run's verbs find it without the network."""
    fetched = cache / "downloads" / name
    if download or (data_dir is None and fetched.is_dir()):
        data_dir = data_dir or fetched
    found = _fetch_or_local(name, data_dir, progress, cache, camera, channels) if download else None
    return data_dir, found or locate(name, data_dir, cache, camera, channels)  # offline: located already


def load_images(name: str, split: str = "train", data_dir: str | Path | None = None, res: int | None = None,
                channels: int | None = None, cache_dir: str | None = None, download: bool = False,
                camera: str = "left", progress: bool = True, notes: bool = True) -> np.ndarray:
    """One split as a read-only (n, res, res, C) uint8 array, memory-mapped from the decode cache. notes: print
    what the reader noticed (e.g. a test-only split), each note once per process."""
    info = get_info(name)
    data_dir = Path(data_dir).expanduser() if data_dir else None
    cache = default_cache_dir(data_dir, cache_dir)
    channels = channels or (2 if camera == "both" and name == "smallnorb" else info.channels)
    res = res or info.res
    data_dir, found = _find(name, data_dir, cache, download, progress, camera, channels)
    _print_notes(found, notes)
    if split not in found.splits:
        raise DataError(f"{name}: no {split!r} split (available: {', '.join(found.splits)})")
    sp = found.splits[split]
    if sp.n == 0:
        raise DataError(f"{name}: the {split!r} split is empty")
    settings = {"name": name, "split": split, "res": res, "channels": channels, "camera": camera,
                "crop": found.crop, "v": 1}

    def build(out: np.ndarray) -> None:
        """Decode chunk by chunk into the memory map: memory stays bounded whatever the dataset's size."""
        from implicit_gon.progress import work_bar
        pos = 0
        with work_bar(sp.n, f"decoding {name} {split}", "img", progress) as bar:
            for chunk in sp.read():
                for img in chunk:
                    out[pos] = resize_square(img, res, channels, found.crop)
                    pos += 1
                bar.update(len(chunk))
        if pos != sp.n:
            raise DataError(f"{name}: expected {sp.n} {split} images, decoded {pos}")

    key = cache_key(found.files, settings)
    stem = f"{name}-{split}-{res}px-{dir_tag(data_dir)}"  # per data directory: one never removes another's cache
    return cached_array(cache, stem, key, (sp.n, res, res, channels), build)


def _print_notes(found: Located, notes: bool = True) -> None:
    for note in found.notes if notes else ():
        if note not in _NOTED:  # a fit loads train and test: one note, not two
            _NOTED.add(note)
            say(f"note: {note}")


def split_shapes(name: str, data_dir=None, res=None, channels=None, cache_dir=None, camera="left") -> dict:
    """{split: {"n": count, "shape": [C, H, W]}} without decoding the images."""
    info = get_info(name)
    data_dir = Path(data_dir).expanduser() if data_dir else None
    channels = channels or (2 if camera == "both" and name == "smallnorb" else info.channels)
    res = res or info.res
    found = locate(name, data_dir, default_cache_dir(data_dir, cache_dir), camera, channels)
    _print_notes(found)
    classes = {"classes": found.classes} if found.classes else {}
    return {s: {"n": sp.n, "shape": [channels, res, res], **classes} for s, sp in found.splits.items()}


def load_labels(name: str, split: str = "train", data_dir: str | Path | None = None, cache_dir: str | None = None,
                camera: str = "left") -> tuple[np.ndarray, list[str]]:
    """One split's class indices (n,) int64, in image order, and the class names; cached like the images.
    A dataset without labels is a DataError."""
    data_dir = Path(data_dir).expanduser() if data_dir else None
    cache = default_cache_dir(data_dir, cache_dir)
    found = locate(name, data_dir, cache, camera)
    if split not in found.splits:
        raise DataError(f"{name}: no {split!r} split (available: {', '.join(found.splits)})")
    sp = found.splits[split]
    if not found.classes or sp.labels is None:
        where = f" in {data_dir}" if data_dir else ""
        raise DataError(f"{name}: no class labels{where} (classification needs a dataset with labels: mnist, "
                        f"fashion-mnist, cifar10, smallnorb, coil20, digits, or folder with a subfolder per class)")
    key = cache_key(found.files + found.label_files, {"name": name, "split": split, "classes": found.classes, "v": 1})
    files = list(found.label_files or found.files)
    source = str(files[0]) if len(files) == 1 else f"{name} labels in {files[0].parent if files else data_dir}"
    source += f" ({split} split)"
    lab = cached_labels(cache, f"labels-{name}-{dir_tag(data_dir)}-{split}", key, sp.n, sp.labels, source)
    return lab, list(found.classes)
