"""Checked downloads: streamed to FILE.part (resumed with an HTTP Range request after an interruption), verified
against a checksum, then renamed into place, so a complete-looking file is always a verified one.

A hostile or broken server cannot fill the disk or hang a run: the bytes are limited to the file's known size (or
MAX_BYTES when it is not known), the whole transfer to a deadline (a server trickling a byte every few seconds never
trips a per-read timeout), redirects to MAX_REDIRECTS. Each failure is one DataError line; a failure other than a
dropped connection (which a second run resumes) removes the .part file."""
from __future__ import annotations

import hashlib
import os
import time
import urllib.error
import urllib.request
from pathlib import Path

from implicit_gon.errors import DataError
from implicit_gon.fsio import open_run_file
from implicit_gon.progress import work_bar

CHUNK = 1 << 16
MAX_BYTES = 2 << 30
"""Bytes a download of unknown size may have at most (CIFAR-10's archive, the largest known, is 170 MB)."""
MIN_RATE = 32 << 10
"""Bytes per second a download must average: its deadline is DEADLINE_S plus its limit at this rate."""
DEADLINE_S = 120.0
MAX_REDIRECTS = 5


class _Refused(DataError):
    """A failure after which the .part file is worthless (too big, too slow, a bad header, a checksum)."""


class Unreachable(DataError):
    """The server could not be reached or the transfer broke off (no network, a name that does not resolve, a
    reset): the .part file is kept, and a run again resumes it."""

    def __init__(self, url: str, reason: str):
        super().__init__(f"{url}: could not download ({reason}); run again to retry (a partial file resumes)")
        self.url, self.reason = url, reason


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


def deadline_for(limit: int) -> float:
    """Seconds a download of at most `limit` bytes may take in all (IMPLICIT_GON_DOWNLOAD_DEADLINE overrides)."""
    env = os.environ.get("IMPLICIT_GON_DOWNLOAD_DEADLINE")
    if env:
        try:
            return max(0.0, float(env))
        except ValueError:
            raise DataError(f"IMPLICIT_GON_DOWNLOAD_DEADLINE={env!r}: expected seconds") from None
    return DEADLINE_S + limit / MIN_RATE


def download(url: str, dest: Path, checksum: str, progress: bool = True, timeout: float = 60,
             size: int | None = None, deadline: float | None = None) -> Path:
    """Fetch url to dest unless a verified copy is there: at most `size` bytes (the file's known size) or
    MAX_BYTES, within `deadline` seconds (default deadline_for the limit). Raises DataError, one line."""
    algo, digest = _parse_checksum(checksum)
    dest, limit = Path(dest), size or MAX_BYTES
    if dest.is_file() and file_digest(dest, algo) == digest:
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if part.is_file() and part.stat().st_size > limit:  # an earlier, unbounded download's leftovers
        part.unlink()
    try:
        _fetch(url, part, progress, timeout, limit, time.monotonic() + (deadline or deadline_for(limit)))
        _verify(url, part, algo, digest)
    except _Refused:
        part.unlink(missing_ok=True)
        raise
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        raise Unreachable(url, _reason(e)) from None
    os.replace(part, dest)
    return dest


def _reason(e: BaseException) -> str:
    why = getattr(e, "reason", None) or getattr(e, "strerror", None) or str(e) or type(e).__name__
    return str(why).splitlines()[0]


def _verify(url: str, part: Path, algo: str, digest: str) -> None:
    got = file_digest(part, algo)
    if got != digest:
        raise _Refused(f"{url}: checksum mismatch ({algo} {got}, expected {digest}); the download was removed")


class _Redirects(urllib.request.HTTPRedirectHandler):
    """At most MAX_REDIRECTS hops, each to http(s) only; a loop or too many is one line."""
    max_redirections = MAX_REDIRECTS

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if not newurl.lower().startswith(("http://", "https://")):
            raise _Refused(f"{req.full_url}: redirected to {newurl[:80]!r}, which is not http(s)")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _open(url: str, have: int, timeout: float):
    """The response for bytes have.. of url, or None when the part is already complete (416)."""
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    opener = urllib.request.build_opener(_Redirects())
    try:
        return opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        e.close()
        if e.code == 416 and have:  # 416: the part is already complete
            return None
        if 300 <= e.code < 400:
            raise _Refused(f"{url}: too many redirects (a redirect loop?)") from None
        raise DataError(f"{url}: the server answered HTTP {e.code} ({e.reason})") from None


def _content_length(url: str, resp) -> int | None:
    text = resp.headers.get("Content-Length")
    if text is None:
        return None
    if not text.strip().isdigit():
        raise _Refused(f"{url}: the server sent a bad Content-Length {text[:40]!r}")
    return int(text)


def _fetch(url: str, part: Path, progress: bool, timeout: float, limit: int, until: float) -> None:
    have = part.stat().st_size if part.is_file() else 0
    resp = _open(url, have, timeout)
    if resp is None:
        return
    with resp:
        if have and resp.status != 206:  # the server ignored Range: start again
            have = 0
        length = _content_length(url, resp)
        total = None if length is None else length + have
        if total is not None and total > limit:
            raise _Refused(f"{url}: the server announces {total:,} bytes, more than the {limit:,} expected")
        _stream(url, resp, part, have, total, limit, until, progress)
    if total is not None and part.stat().st_size < total:
        raise ConnectionError(f"connection closed after {part.stat().st_size:,} of {total:,} bytes")


def _stream(url: str, resp, part: Path, have: int, total: int | None, limit: int, until: float,
            progress: bool) -> None:
    """Copy the body to part: read1 returns what one receive got, so the deadline is checked however slowly the
    bytes come (read(n) would wait for all n)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if have else os.O_TRUNC)
    with os.fdopen(open_run_file(part, flags), "wb") as f, work_bar(
            total, part.name[:-5], "B", progress, initial=have, unit_scale=True) as bar:
        while block := resp.read1(CHUNK):
            have += len(block)
            if have > (total or limit):
                raise _Refused(f"{url}: the server sent more than the {total or limit:,} bytes expected")
            f.write(block)
            bar.update(len(block))
            if time.monotonic() > until:
                raise _Refused(f"{url}: too slow ({have:,} bytes by the deadline); the download was removed")
