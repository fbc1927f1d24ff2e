"""Checked downloads: streamed to FILE.part (resumed with an HTTP Range request after an interruption), verified
against a checksum, then renamed into place, so a complete-looking file is always a verified one."""
from __future__ import annotations

import hashlib
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

from implicit_gon.progress import work_bar

from implicit_gon.errors import DataError

CHUNK = 1 << 16


def file_digest(path: Path, algo: str) -> str:
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _parse_checksum(checksum: str) -> tuple[str, str]:
    algo, _, digest = checksum.partition(":")
    if algo not in ("md5", "sha1", "sha256") or not digest:
        raise ValueError(f"checksum {checksum!r}: expected 'sha256:HEX' or 'md5:HEX'")
    return algo, digest.lower()


def download(url: str, dest: Path, checksum: str, progress: bool = True, timeout: float = 60) -> Path:
    """Fetch url to dest unless a verified copy is there. Raises DataError on network or checksum failure."""
    algo, digest = _parse_checksum(checksum)
    dest = Path(dest)
    if dest.is_file() and file_digest(dest, algo) == digest:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch(url, part, progress, timeout)
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        raise DataError(f"{url}: download interrupted ({getattr(e, 'reason', e)}); run again to resume") from None
    got = file_digest(part, algo)
    if got != digest:
        part.unlink(missing_ok=True)
        raise DataError(f"{url}: checksum mismatch ({algo} {got}, expected {digest}); the download was removed")
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not have:  # 416: the part is already complete
            raise
        return
    with resp:
        if have and resp.status != 206:  # the server ignored Range: start again
            have = 0
        total = int(resp.headers.get("Content-Length", 0)) + have or None
        with open(part, "ab" if have else "wb") as f, work_bar(
                total, part.name[:-5], "B", progress, initial=have, unit_scale=True) as bar:
            while block := resp.read(CHUNK):
                f.write(block)
                bar.update(len(block))
        if total is not None and part.stat().st_size < total:
            raise ConnectionError(f"connection closed after {part.stat().st_size} of {total} bytes")
