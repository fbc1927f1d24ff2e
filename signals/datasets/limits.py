"""Bounds on what a data file can make us allocate. A header's declared size is checked against the file before
anything is read, and gzip data is decompressed in chunks only up to the size the header declares, so a lying
header or a gzip bomb ends in one line naming the file instead of an out-of-memory kill."""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path

from implicit_gon.errors import DataError

DECLARED_LIMIT = 4 << 30
"""Largest single data file (decompressed) we read into memory: 4 GiB (SmallNORB's training file is 0.45 GB)."""
GZIP_MAX_RATIO = 1100  # deflate expands at most ~1032:1; a header claiming more than this cannot be honest
CHUNK = 16 << 20


def is_gzip(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(2) == b"\x1f\x8b"
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror})") from None


def _stream(path: Path):
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")


def read_at_most(path: Path, limit: int) -> bytes:
    """Up to limit bytes of a file (gunzipped when gzip, by its magic number), read in chunks: a gzip bomb or a
    lying header never makes us allocate more than limit."""
    parts, got = [], 0
    try:
        with _stream(path) as f:
            while got < limit and (block := f.read(min(CHUNK, limit - got))):
                parts.append(block)
                got += len(block)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    return b"".join(parts)


def check_declared(path: Path, size: int, what: str) -> None:
    """Refuse a declared (decompressed) size that the file cannot hold, before anything is allocated."""
    if size > DECLARED_LIMIT:
        raise DataError(f"{path}: its header declares {size:,} bytes of {what}, more than the {DECLARED_LIMIT >> 30} "
                        f"GiB limit (corrupt header?)")
    stored = path.stat().st_size
    if is_gzip(path) and size > stored * GZIP_MAX_RATIO + 4096:
        raise DataError(f"{path}: its header declares {size:,} bytes of {what}, more than a {stored:,}-byte gzip "
                        f"file can hold (truncated file or corrupt header)")


def read_declared(path: Path, size: int, what: str) -> bytes:
    """Exactly the size bytes a header declares (header included), or one line saying the file is shorter or
    longer; a longer stream is read only up to one byte past the declared size."""
    check_declared(path, size, what)
    raw = read_at_most(path, size + 1)
    if len(raw) < size:
        raise DataError(f"{path}: truncated {what} file ({len(raw):,} bytes, its header says {size:,})")
    if len(raw) > size:
        raise DataError(f"{path}: holds more data than its header declares ({size:,} bytes): corrupt header")
    return raw


def verify_declared(path: Path, size: int, what: str) -> None:
    """The check read_declared does, without keeping the data: a plain file by its size; a gzip file by its
    trailer (the length mod 2^32) when that matches, else by decompressing it in chunks (never all at once)."""
    check_declared(path, size, what)
    stored = path.stat().st_size
    if not is_gzip(path):
        if stored != size:
            word = "truncated" if stored < size else "oversized"
            raise DataError(f"{path}: {word} {what} file ({stored:,} bytes, its header says {size:,})")
        return
    with open(path, "rb") as f:
        f.seek(max(stored - 4, 0))
        if int.from_bytes(f.read(4), "little") == size % (1 << 32):
            return
    got = _gunzipped_length(path, size + 1)
    if got != size:
        word = "truncated" if got < size else "oversized"
        raise DataError(f"{path}: {word} {what} file ({got:,} bytes decompressed, its header says {size:,})")


def _gunzipped_length(path: Path, limit: int) -> int:
    got = 0
    try:
        with gzip.open(path, "rb") as f:
            while got < limit and (block := f.read(min(CHUNK, limit - got))):
                got += len(block)
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise DataError(f"{path}: corrupt or truncated gzip data ({e})") from None
    return got
