"""Safe archive extraction: a member that would land outside the target directory is refused."""
from __future__ import annotations

import tarfile
import zipfile
from pathlib import Path

from implicit_gon.errors import DataError


def _inside(target: Path, name: str) -> Path:
    dest = (target / name).resolve()
    if dest != target and target not in dest.parents:
        raise DataError(f"archive member {name!r} would be written outside {target}: refused")
    return dest


def extract(archive: Path, target: Path) -> Path:
    """Extract a .zip, .tar, .tar.gz or .tgz into target after checking every member's destination."""
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _inside(target, name)
                zf.extractall(target)
            return target
        with tarfile.open(archive) as tf:
            for m in tf.getmembers():
                _inside(target, m.name)
                if m.issym() or m.islnk():
                    _inside(target, str(Path(m.name).parent / m.linkname))
                if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                    raise DataError(f"{archive}: member {m.name!r} is a device or fifo: refused")
            tf.extractall(target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise DataError(f"{archive}: not a readable archive ({e})") from None
    return target
