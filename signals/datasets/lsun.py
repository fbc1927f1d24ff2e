"""LSUN Bedroom: the LMDB databases as distributed (bedroom_train_lmdb, bedroom_val_lmdb; values are encoded
images), or a folder of exported images (split as any folder). Read with the `lmdb` package, one image at a time."""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from implicit_gon.errors import DataError

from .base import Located, Split, open_image
from . import folder

DBS = {"train": "bedroom_train_lmdb", "test": "bedroom_val_lmdb"}


def _open(path: Path):
    import lmdb
    try:
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=1)
    except lmdb.Error as e:
        raise DataError(f"{path}: not a readable LMDB database ({e})") from None


def _lmdb_split(path: Path) -> Split:
    env = _open(path)
    n = env.stat()["entries"]
    env.close()

    def read():
        env = _open(path)
        with env.begin(write=False) as txn:
            for key, value in txn.cursor():
                a = np.asarray(open_image(io.BytesIO(value), f"{path} [{key.decode(errors='replace')}]").convert("RGB"))
                yield a[None]
        env.close()
    return Split(n, read)


def locate(root: Path, channels: int) -> Located:
    dirs = [root, root / "lsun", root / "lsun-bedroom"]
    for d in dirs:
        found = {s: d / name for s, name in DBS.items() if (d / name / "data.mdb").is_file()}
        if found:
            files = [p / "data.mdb" for p in found.values()]
            return Located(files, {s: _lmdb_split(p) for s, p in found.items()})
    for d in (root / "bedroom", root / "lsun-bedroom-images"):
        if d.is_dir():
            return folder.locate(d, channels)
    return Located([], {})
