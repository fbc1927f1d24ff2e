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
    """The database, opened read-only after checking data.mdb is as long as its meta page says: LMDB memory-maps
    the file, and reading a page past the end of a truncated file kills the process with SIGBUS."""
    import lmdb
    try:
        env = lmdb.open(str(path), readonly=True, lock=False, readahead=False, meminit=False, max_readers=1)
        need, have = (env.info()["last_pgno"] + 1) * env.stat()["psize"], (path / "data.mdb").stat().st_size
    except lmdb.Error as e:
        raise DataError(f"{path}: not a readable LMDB database ({e})") from None
    if have < need:
        env.close()
        raise DataError(f"{path}: truncated LMDB database (data.mdb has {have:,} bytes, its meta page says {need:,})")
    return env


def _lmdb_split(path: Path) -> Split:
    env = _open(path)
    n = env.stat()["entries"]
    env.close()

    def read():
        import lmdb
        env = _open(path)
        try:
            with env.begin(write=False) as txn:
                for key, value in txn.cursor():
                    name = f"{path} [{key.decode(errors='replace')}]"
                    yield np.asarray(open_image(io.BytesIO(value), name).convert("RGB"))[None]
        except lmdb.Error as e:
            raise DataError(f"{path}: corrupt LMDB database ({e})") from None
        finally:
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
