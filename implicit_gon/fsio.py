"""Atomic file output: everything is written to a temporary file beside the target and renamed into place,
so an interrupted write never leaves a half-written checkpoint, image or video where a complete one is expected.
A full, read-only or forbidden disk is one line naming the file, and the temporary file is removed."""
from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import GONError

# errors that mean "this output cannot be written there" (the user's disk or path), not a bug
WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG, errno.EISDIR,
                errno.ENOTDIR, errno.ENAMETOOLONG}


def write_error(target: str | os.PathLike, e: BaseException) -> GONError:
    """The one line for an output that could not be written."""
    why = e.strerror if isinstance(e, OSError) and e.strerror else str(e).splitlines()[0] if str(e) else type(e).__name__
    return GONError(f"{target}: cannot write ({why})")


def wrapped_errno(e: BaseException) -> int | None:
    """The write errno an exception of a writer's own type carries in its message, as safetensors' "I/O error: No
    space left on device (os error 28)" does; None if it names none."""
    import re
    m = re.search(r"os error (\d+)|\[Errno (\d+)\]", str(e))
    code = int(m.group(1) or m.group(2)) if m else None
    return code if code in WRITE_ERRNOS else None


def disk_full(path: Path) -> bool:
    """Less than 64 KiB left for an ordinary user on path's file system."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < (1 << 16)


def _make_parent(target: Path) -> None:
    if target.is_dir():
        raise GONError(f"{target}: is a directory (give a file name)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise GONError(f"{target.parent}: cannot be a folder (a file of that name is in the way)") from None
    except OSError as e:
        raise write_error(target.parent, e) from None


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces the target, on failure it is removed.
    A write that fails for want of space or permission becomes a one-line GONError naming the target."""
    target = Path(target)
    _make_parent(target)
    try:
        # keep the suffix so that writers which pick a format from the name (PIL, imageio) still work
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{target.suffix}", dir=target.parent)
    except OSError as e:
        raise write_error(target, e) from None
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        # mkstemp makes 0600, and some writers (safetensors) replace the file: after writing, give it the
        # permissions a plain open() would
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except OSError as e:
        if e.errno in WRITE_ERRNOS:
            raise write_error(target, e) from None
        raise
    except Exception as e:  # writers that wrap the OS error in their own type (safetensors, soundfile, ffmpeg)
        code = None if isinstance(e, GONError) else wrapped_errno(e)
        if code is None and not isinstance(e, GONError) and disk_full(target.parent):
            code = errno.ENOSPC
        if code is not None:
            raise write_error(target, OSError(code, os.strerror(code))) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one JSON line in one write; if the write fails (a full disk) or is short, the file is cut back to
    where it was, so it never ends in a torn line."""
    line = (json.dumps(row) + "\n").encode()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise write_error(path, e) from None
    try:
        size = os.fstat(fd).st_size
        try:
            if os.write(fd, line) != len(line):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        except OSError as e:
            os.ftruncate(fd, size)
            raise write_error(path, e) from None
    finally:
        os.close(fd)
