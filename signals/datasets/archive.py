"""Safe archive extraction. Only regular files and folders are written, each to a path resolved inside the target
(after following any link already on disk); an archive holding a link, a device or a member outside the target is
refused before anything is written. Links are never created, so a chain of symlinks (`y -> .`, `x -> y/..`, then
`x/../escaped`) or a hardlink to a file outside cannot redirect a later member: tarfile's own filter="data" misses
some such chains on Python releases before mid-2025, so it is not relied on."""
from __future__ import annotations

import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from pathlib import Path

from implicit_gon.errors import DataError

from .cache import check_free_space
from .limits import CHUNK, GZIP_MAX_RATIO

MAX_MEMBERS = 100_000


class _Outside(DataError):
    """A member that would land outside the extraction folder; extract() names the archive in its message."""


def _inside(target: Path, name: str) -> Path:
    dest = (target / name).resolve()
    if dest != target and target not in dest.parents:
        raise _Outside(f"member {name!r} would be written outside the extraction folder: refused")
    return dest


def extract(archive: Path, target: Path) -> Path:
    """Extract a .zip, .tar, .tar.gz or .tgz into target after checking every member (kind, path and size)."""
    target.mkdir(parents=True, exist_ok=True)
    target = target.resolve()
    try:
        if zipfile.is_zipfile(archive):
            _extract_zip(archive, target)
        elif archive.suffix.lower() == ".zip":
            raise DataError(f"{archive}: not a readable zip archive (corrupt or truncated)")
        else:
            _extract_tar(archive, target)
    except _Outside as e:
        raise DataError(f"{archive}: {e}") from None
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zlib.error, OSError,
            RuntimeError, NotImplementedError) as e:  # zipfile: an encrypted member, an unknown compression method
        why = " ".join(str(e).split())  # tarfile lists one reason per compression method, on separate lines
        raise DataError(f"{archive}: not a readable archive ({why})") from None
    return target


def extract_once(archive: Path, cache_root: Path) -> Path:
    """archive extracted to cache_root/<name>-<tag of its resolved path, size and mtime>, once. It is extracted into
    a temporary folder that is renamed into place when complete, so an interrupted extraction is never taken for the
    data, and archives of one name in different folders do not share (or overwrite) one extraction."""
    st = archive.stat()
    tag = hashlib.sha1(os.fsencode(archive.resolve()) + f"|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    dest = cache_root / f"{archive.name}-{tag}"
    if dest.is_dir():
        return dest
    cache_root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=cache_root))
    try:
        extract(archive, tmp)
        os.rename(tmp, dest)
    except OSError:
        if not dest.is_dir():  # else another process finished the same extraction first: use it
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _refuse(archive: Path, name: str, why: str):
    return DataError(f"{archive}: member {name!r} {why}: refused (only files and folders are extracted)")


def _extract_tar(archive: Path, target: Path) -> None:
    with tarfile.open(archive) as tf:
        members = []
        for m in tf:  # counted while read: a tar of millions of empty members never lists them all
            members.append(m)
            _check_count(archive, len(members))
        for m in members:
            _inside(target, m.name)
            if m.issym() or m.islnk():
                raise _refuse(archive, m.name, f"is a {'symbolic' if m.issym() else 'hard'} link to {m.linkname!r}")
            if not (m.isfile() or m.isdir()):
                raise _refuse(archive, m.name, "is a device or fifo")
        _check_sizes(archive, target, sum(m.size for m in members if m.isfile()))
        for m in members:
            dest = _inside(target, m.name)  # again: resolves through whatever is on disk now
            if m.isdir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                _write(archive, m.name, tf.extractfile(m), dest, m.size)


def _extract_zip(archive: Path, target: Path) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        _check_count(archive, len(infos))
        for i in infos:
            _inside(target, i.filename)
            if stat.S_ISLNK(i.external_attr >> 16):
                raise _refuse(archive, i.filename, "is a symbolic link")
        _check_sizes(archive, target, sum(i.file_size for i in infos))
        for i in infos:
            dest = _inside(target, i.filename)
            if i.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
            else:
                with zf.open(i) as src:
                    _write(archive, i.filename, src, dest, i.file_size)


def _check_count(archive: Path, n: int) -> None:
    if n > MAX_MEMBERS:
        raise DataError(f"{archive}: more than {MAX_MEMBERS:,} members (CIFAR-10's archive has 8, COIL-20's about 1,440)")


def _check_sizes(archive: Path, target: Path, total: int) -> None:
    """The members' declared sizes against what the archive could hold and what the disk has free."""
    stored = archive.stat().st_size
    if total > stored * GZIP_MAX_RATIO + (1 << 20):
        raise DataError(f"{archive}: members declare {total:,} bytes, more than a {stored:,}-byte archive can "
                        f"hold (corrupt or hostile archive)")
    check_free_space(target, total, f"the contents of {archive.name}")


def _write(archive: Path, name: str, src, dest: Path, size: int) -> None:
    """Copy at most size bytes (the member's declared size) to dest, never following a link at dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    with os.fdopen(fd, "wb") as out:
        left = size
        while left > 0 and (block := src.read(min(CHUNK, left))):
            out.write(block)
            left -= len(block)
    if left > 0:
        raise DataError(f"{archive}: member {name!r} is truncated ({size - left:,} of {size:,} bytes)")
    if src.read(1):
        raise DataError(f"{archive}: member {name!r} holds more than its declared {size:,} bytes")
