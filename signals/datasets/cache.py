"""Decode once: each split is decoded into a uint8 .npy (n, H, W, C) that later runs memory-map.

The cache key covers the source files (path, size, mtime) and every setting that changes the pixels, so
editing the data or the settings builds a new cache and removes the stale one for the same split."""
from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from implicit_gon.errors import DataError
from implicit_gon.fsio import atomic_path, sweep_stale

HEADER_SLACK = 1 << 16  # the .npy header, and a little room
Builder = Callable[[np.ndarray], None]  # fills a (n, H, W, C) uint8 array in place


def default_cache_dir(data_dir: Path | None, cache_dir: str | None = None) -> Path:
    """--cache-dir, else $IMPLICIT_GON_CACHE, else the user's cache folder: $XDG_CACHE_HOME/implicit-gon, else
    ~/.cache/implicit-gon. Never inside the data folder (read-only or shared lab drives); caches of different data
    folders differ by dir_tag, the resolved folder's hash, in their names."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("IMPLICIT_GON_CACHE"):
        return Path(os.environ["IMPLICIT_GON_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"  # the XDG spec: absolute only
    return base / "implicit-gon"


def dir_tag(data_dir: Path | None) -> str:
    """A short tag of the resolved data directory: caches of one dataset name read from different directories get
    different names, so building one never removes the other as stale."""
    if data_dir is None:
        return "builtin"
    return hashlib.sha1(os.fsencode(Path(data_dir).resolve())).hexdigest()[:8]


def cache_key(sources: Iterable[Path], settings: dict) -> str:
    h = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for p in sorted(Path(s) for s in sources):
        st = p.stat()
        h.update(os.fsencode(p.resolve()) + f"|{st.st_size}|{st.st_mtime_ns}".encode())  # any file name
    return h.hexdigest()[:16]


def cached_array(cache_dir: Path, stem: str, key: str, shape: tuple[int, ...], build: Builder) -> np.ndarray:
    """Memory-map cache_dir/{stem}-{key}.npy, building it first (atomically) if it is not there. The folder's
    temporary files from killed builders go whenever it is used, not only when a cache is built into it."""
    path = cache_dir / f"{stem}-{key}.npy"
    sweep_stale(cache_dir)
    if path.is_file():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape == shape and arr.dtype == np.uint8:
                return arr
        except (ValueError, OSError):
            pass  # unreadable cache: rebuild it
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(f"{cache_dir}: cannot create the decode cache folder ({e.strerror}); pass --cache-dir") from None
    need = int(np.prod(shape)) + HEADER_SLACK
    check_free_space(cache_dir, need, path.name)
    try:
        with atomic_path(path) as tmp:
            arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            _reserve(tmp, path.name)
            build(arr)
            arr.flush()
            del arr
    except OSError as e:  # the header write or the flush on a disk that filled meanwhile; the temp file is gone
        raise DataError(f"{cache_dir}: cannot write the decode cache {path.name} ({e.strerror or e})") from None
    for stale in cache_dir.glob(f"{stem}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


def check_free_space(folder: Path, need: int, what: str) -> None:
    """One line, before anything is written, when folder's file system has less than need bytes free."""
    free = shutil.disk_usage(folder).free
    if free < need:
        raise DataError(f"{folder}: not enough free space for {what} (needs {need / 1e6:,.1f} MB, "
                        f"{free / 1e6:,.1f} MB free); free some space or pass --cache-dir")


def _reserve(tmp: Path, what: str) -> None:
    """Allocate the whole memory-mapped file now: writing into a sparse map on a disk that fills up meanwhile
    would kill the process with SIGBUS instead of raising an error."""
    try:
        with open(tmp, "r+b") as f:
            os.posix_fallocate(f.fileno(), 0, os.fstat(f.fileno()).st_size)
    except OSError as e:
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise DataError(f"{tmp.parent}: no space left for {what} ({e.strerror}); free some space or pass "
                            f"--cache-dir") from None
        if e.errno not in (errno.EOPNOTSUPP, errno.EINVAL):  # file systems without fallocate: go on unreserved
            raise DataError(f"{tmp.parent}: cannot write {what} ({e.strerror})") from None
def cached_labels(cache_dir: Path, stem: str, key: str, n: int, read: Callable[[], np.ndarray],
                  source: str | None = None) -> np.ndarray:
    """cache_dir/{stem}-{key}.npy holding (n,) int64 class indices, from read() the first time. source names the
    label files in errors (default: the stem)."""
    path = cache_dir / f"{stem}-{key}.npy"
    if path.is_file():
        from implicit_gon import limits
        from implicit_gon.errors import GONError
        try:
            arr = limits.load_array(path, "labels", "label cache")  # its header checked before its data
            if arr.shape == (n,) and arr.dtype == np.int64:
                return arr
        except GONError:
            pass  # unreadable cache: rebuild it
    arr = np.asarray(read(), np.int64)
    if arr.shape != (n,):
        from implicit_gon.errors import DataError
        raise DataError(f"{source or stem}: {arr.shape[0] if arr.ndim else 0} labels for {n} images")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)
    for stale in cache_dir.glob(f"{stem}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return arr
