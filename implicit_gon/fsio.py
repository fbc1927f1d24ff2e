"""Atomic file output: everything is written to a temporary file beside the target and renamed into place,
so an interrupted write never leaves a half-written checkpoint, image or video where a complete one is expected.
A full, read-only or forbidden disk is one line naming the file, and the temporary file is removed."""
from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import GONError, UsageError, indefinite

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


NAME_MAX = 255  # bytes in one path component on every file system we write to


def check_output_name(target: Path) -> None:
    """A file name the file system can hold: a longer component is one line, not an OSError later."""
    for part in target.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            raise GONError(f"{str(target)[:80]}...: file name too long ({len(os.fsencode(part))} bytes in one "
                           f"path component, at most {NAME_MAX})")


def _temp_affixes(target: Path) -> dict[str, str]:
    """mkstemp's prefix and suffix: `.NAME.PID.` + 8 random characters + `.tmpSUFFIX`, with NAME cut so that the
    whole stays within NAME_MAX bytes (an output name of 241-255 bytes is legal; its temporary name must be too).
    The pid lets a later writer in the folder remove the file once its writer is dead (sweep_stale)."""
    suffix = f".tmp{target.suffix}" if len(os.fsencode(target.suffix)) <= 16 else ".tmp"
    pid = str(os.getpid())
    room = NAME_MAX - 3 - len(pid) - 8 - len(os.fsencode(suffix))  # the dots, the pid, mkstemp's 8 characters
    name = os.fsencode(target.name)[:room].decode(errors="ignore") if len(os.fsencode(target.name)) > room \
        else target.name
    return {"prefix": f".{name or 'x'}.{pid}.", "suffix": suffix}


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces the target, on failure it is removed.
    A write that fails for want of space or permission becomes a one-line GONError naming the target."""
    target = Path(target)
    check_output_name(target)
    _make_parent(target)
    try:
        # keep the suffix so that writers which pick a format from the name (PIL, imageio) still work
        sweep_stale(target.parent)
        fd, tmp = tempfile.mkstemp(**_temp_affixes(target), dir=target.parent)
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


TEMP = re.compile(r"\..+\.(\d+)\.[a-z0-9_]{8}\.tmp(\.[^.]*)?")
"""atomic_path's temporary names, `.NAME.PID.<random>.tmpSUFFIX`: the pid tells whether their writer is alive."""
_SWEPT: set = set()


def sweep_stale(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of dead writers in folder (once per folder and process): a process killed
    (kill -9, a power cut) mid-write leaves its temporary file, which the next use of the folder removes."""
    key = os.path.realpath(folder)
    if key in _SWEPT:
        return []
    _SWEPT.add(key)
    gone = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
            m = TEMP.fullmatch(entry.name)
            if m and not _alive(int(m.group(1))) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    gone.append(Path(entry.path))
    return gone


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # another user's live process (or a name that only looks like ours)
    return True


def finite_json(obj):
    """obj with every NaN or infinity replaced by None: JSON has no such numbers (json.dumps writes a bare NaN
    that strict readers refuse)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: finite_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [finite_json(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(finite_json(obj), indent=2, sort_keys=True, allow_nan=False) + "\n")


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one JSON line in one write; if the write fails (a full disk) or is short, the file is cut back to
    where it was, so it never ends in a torn line."""
    line = (json.dumps(finite_json(row), allow_nan=False) + "\n").encode()
    try:
        fd = open_run_file(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
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


# -- opening files safely -------------------------------------------------------------------------------------------
def _kind(mode: int) -> str:
    return ("a directory" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket" if stat.S_ISSOCK(mode)
            else "not a regular file")


def as_path(value, what: str) -> Path:
    """A path given to the Python API (str or os.PathLike): anything else (None, a number, a list) is one line
    naming `what`, not a TypeError from pathlib."""
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{what} = {value!r:.60}: give a path (a str or pathlib.Path)")
    return Path(value)


def path_list(value, what: str) -> list:
    """Files or folders given as one path or a list of them: a list of paths (a single str is one path, not its
    characters: a string iterated would make '/' its first path)."""
    if isinstance(value, (str, os.PathLike)):
        return [value]
    if not isinstance(value, (list, tuple)):
        raise UsageError(f"{what} = {value!r:.60}: give a path or a list of paths")
    return [as_path(v, what) for v in value]


def input_file(path: str | os.PathLike, what: str = "file") -> Path:
    """A path given as an input file, checked to be a regular file (links to one are fine): a missing file, a
    dangling link, a directory, a FIFO or a device is one precise line, before anything opens it (a FIFO would
    block, /dev/zero never ends)."""
    path = as_path(path, what)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        dangling = os.path.lexists(path)
        raise GONError(f"{path}: " + ("a symbolic link to a missing file" if dangling else f"{what} not found")) \
            from None
    except OSError as e:
        raise GONError(f"{str(path)[:200]}: cannot open ({e.strerror})") from None
    if not stat.S_ISREG(st.st_mode):
        raise GONError(f"{path}: is {_kind(st.st_mode)}, not {indefinite(what)}" + (" (give a file in it)"
                                                                            if stat.S_ISDIR(st.st_mode) else ""))
    return path


def open_run_file(path: str | os.PathLike, flags: int, mode: int = 0o644) -> int:
    """An fd of a file in a run or cache folder, opened without following a symbolic link (a link planted at
    RUN/.lock would have its target overwritten) and refused unless it is a regular file. flags: os.O_* (add
    os.O_EXCL for a file that must be new)."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise GONError(f"{path}: is a symbolic link; refused in a run or cache folder (remove it)") from None
        if e.errno == errno.ENXIO:  # O_NONBLOCK write-open of a FIFO without a reader
            raise GONError(f"{path}: is a named pipe (FIFO), not a regular file (remove it)") from None
        raise
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise GONError(f"{path}: is {_kind(st.st_mode)}, not a regular file (remove it)")
    return fd
