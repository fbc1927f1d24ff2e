"""Decode once: each split is decoded into a uint8 .npy (n, H, W, C) that later runs memory-map.

The cache key covers the source files (path, size, mtime) and every setting that changes the pixels, so
editing the data or the settings builds a new cache and removes the stale one for the same split."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from implicit_gon.fsio import atomic_path

Builder = Callable[[np.ndarray], None]  # fills a (n, H, W, C) uint8 array in place


def default_cache_dir(data_dir: Path | None, cache_dir: str | None = None) -> Path:
    """--cache-dir, else $IMPLICIT_GON_CACHE, else RUN-independent folders: beside the data when it is writable,
    else ~/.cache/implicit-gon."""
    if cache_dir:
        return Path(cache_dir)
    if os.environ.get("IMPLICIT_GON_CACHE"):
        return Path(os.environ["IMPLICIT_GON_CACHE"])
    if data_dir is not None and data_dir.is_dir() and os.access(data_dir, os.W_OK):
        return data_dir / ".implicit-gon-cache"
    return Path.home() / ".cache" / "implicit-gon"


def cache_key(sources: Iterable[Path], settings: dict) -> str:
    h = hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode())
    for p in sorted(Path(s) for s in sources):
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached_array(cache_dir: Path, stem: str, key: str, shape: tuple[int, ...], build: Builder) -> np.ndarray:
    """Memory-map cache_dir/{stem}-{key}.npy, building it first (atomically) if it is not there."""
    path = cache_dir / f"{stem}-{key}.npy"
    if path.is_file():
        try:
            arr = np.load(path, mmap_mode="r")
            if arr.shape == shape and arr.dtype == np.uint8:
                return arr
        except (ValueError, OSError):
            pass  # unreadable cache: rebuild it
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        build(arr)
        arr.flush()
        del arr
    for stale in cache_dir.glob(f"{stem}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return np.load(path, mmap_mode="r")


def cached_labels(cache_dir: Path, stem: str, key: str, n: int, read: Callable[[], np.ndarray]) -> np.ndarray:
    """cache_dir/{stem}-{key}.npy holding (n,) int64 class indices, from read() the first time."""
    path = cache_dir / f"{stem}-{key}.npy"
    if path.is_file():
        try:
            arr = np.load(path)
            if arr.shape == (n,) and arr.dtype == np.int64:
                return arr
        except (ValueError, OSError):
            pass  # unreadable cache: rebuild it
    arr = np.asarray(read(), np.int64)
    if arr.shape != (n,):
        from implicit_gon.errors import DataError
        raise DataError(f"{stem}: expected {n} labels, read {arr.shape[0] if arr.ndim else 0}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, arr)
    for stale in cache_dir.glob(f"{stem}-*.npy"):
        if stale != path:
            stale.unlink(missing_ok=True)
    return arr
