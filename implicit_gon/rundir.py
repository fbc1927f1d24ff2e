"""Run directories: one writer at a time, no stale temporary files, a metrics log that matches the checkpoint.

A run directory is held by an advisory lock (fcntl.flock on RUN/.lock, which records the holder's pid) while a
process trains or writes into it; a second process gets a one-line error naming that pid. The lock goes with the
process, so a crash or kill -9 never leaves a run locked. When a run starts or resumes, the temporary files that a
killed writer left (fsio.atomic_path's `.NAME.PID.<random>.tmpSUFFIX`) are removed and metrics.jsonl is cut back to the
checkpoint's step, so a resumed run logs every step once.
"""
from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import math
import os
import re
import shlex
import signal
from pathlib import Path
from typing import Iterator

from .errors import GONError, Interrupted, UsageError
from .fsio import as_path, open_run_file
from .interrupts import deferred

CKPT = "checkpoint.safetensors"
BEST = "best.safetensors"  # the weights with the best held-out score (train.val_every), beside CKPT

LOCK = ".lock"
METRICS = "metrics.jsonl"
_TEMP = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp(\.[^.]*)?")  # fsio.atomic_path's temporary names
_HELD: dict[Path, list] = {}  # run -> [fd, depth]: the lock is re-entrant within a process (flock is not)


def check_out(run: str | os.PathLike) -> Path:
    """A run directory path that can hold a run: an existing file there is a one-line error."""
    run = as_path(run, "run")
    if run.is_symlink() and not run.exists():
        raise GONError(f"{run}: a symbolic link to a missing path (--out names a run directory)")
    if run.exists() and not run.is_dir():
        raise UsageError(f"{run}: exists and is not a directory (--out names a run directory)")
    return run


_KEPT = re.compile(r"checkpoint-\d+\.safetensors")


def check_new(run: Path) -> None:
    """A new run's folder must be missing, empty, or hold only a run's own files (an earlier attempt that stopped
    before its first checkpoint): a run written among other files would mix with them, and `--out ''` or
    `--out .` in a project folder is a slip, not a choice."""
    if not run.is_dir():
        return
    own = {CKPT, LOCK, "tb", "compare.json", *OWN}  # train.tensorboard's folder; compare's record
    for p in run.iterdir():  # stops at the first file that is not a run's: a huge folder is not listed whole
        if p.name not in own and not _KEPT.fullmatch(p.name) and not _TEMP.fullmatch(p.name):
            raise UsageError(f"{run}: not empty and holds no run (it has {p.name!r:.80}); give --out a new or empty "
                             f"folder")


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 32).decode(errors="replace").strip()
    return f"pid {text}" if text.isdigit() else "a process that is starting"


@contextlib.contextmanager
def locked(run: str | os.PathLike) -> Iterator[Path]:
    """Hold RUN's advisory lock (creating RUN); refuse with one line when another process holds it."""
    run = check_out(run)
    key = run.resolve()
    if key in _HELD:
        _HELD[key][1] += 1
        try:
            yield run
        finally:
            _HELD[key][1] -= 1
        return
    created, fd = not run.exists(), None
    try:
        with deferred():  # a stop while taking the lock waits until it is recorded, then unwinds through finally
            fd = _acquire(run)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            _HELD[key] = [fd, 1]
        yield run
    finally:
        _HELD.pop(key, None)
        if created:  # a start that failed leaves nothing behind
            with contextlib.suppress(OSError):
                if [p.name for p in run.iterdir()] == [LOCK]:
                    (run / LOCK).unlink()
                    run.rmdir()
        if fd is not None:
            os.close(fd)  # releases the lock


def _acquire(run: Path) -> int:
    """An fd of RUN/.lock holding its flock. The lock file can be removed (a failed start), so after locking the fd
    must still be the file at that path; else another process may lock the new file, and we try again."""
    while True:
        fd = _open_lock(run)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            who = _holder(fd)
            os.close(fd)
            raise GONError(f"{run}: in use by another implicit-gon process ({who}); wait for it or choose "
                           f"another --out") from None
        try:
            if os.stat(run / LOCK).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def _open_lock(run: Path) -> int:
    try:
        run.mkdir(parents=True, exist_ok=True)
        return open_run_file(run / LOCK, os.O_RDWR | os.O_CREAT, 0o644)  # never through a planted link
    except OSError as e:
        raise GONError(f"{run}: cannot write the run directory ({e.strerror})") from None


@contextlib.contextmanager
def writing_into(path: str | os.PathLike | None) -> Iterator[None]:
    """Hold the lock of the run directory that `path` lies in, if it lies in one (a verb writing its output beside
    a checkpoint must not race a `fit` of that run); elsewhere, or for no path, nothing to hold."""
    if path is None:
        yield
        return
    parent = Path(path).parent
    if (parent / CKPT).is_file() or (parent / LOCK).is_file():
        with locked(parent):
            yield
    else:
        yield


def clean_temps(run: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a killed writer left in RUN (call with RUN locked): the removed paths."""
    gone = []
    for p in Path(run).iterdir():
        if _TEMP.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The rows of a metrics.jsonl; a torn or unreadable line (a kill or a full disk mid-append) is skipped."""
    return [row for row, _ in _metric_rows(path) if row is not None]


def _metric_rows(path: str | os.PathLike) -> Iterator[tuple[dict | None, int]]:
    """(row or None for a line that is not one, its step) per line, streamed with bounded line length and depth.
    A row holding NaN or infinity is not one of ours (rows are written as strict JSON): it goes like a torn line."""
    from . import jsonio
    try:
        for row in jsonio.iter_lines(path):
            ok = isinstance(row, dict) and isinstance(row.get("step"), int) and not isinstance(row["step"], bool)
            ok = ok and all(not isinstance(v, float) or math.isfinite(v) for v in row.values())
            yield (row, row["step"]) if ok else (None, -1)
    except FileNotFoundError:
        return


def repair_metrics(run: str | os.PathLike, step: int) -> int:
    """Cut RUN/metrics.jsonl back to the rows of steps <= step (the checkpoint's) and drop torn lines, so a
    resumed run logs each step once; streamed, so a file of millions of rows takes no memory. Returns the number
    of lines removed."""
    from .fsio import atomic_path
    path = Path(run) / METRICS
    if not path.is_file():
        return 0
    removed = sum(row is None or s > step for row, s in _metric_rows(path))
    if removed:
        with atomic_path(path) as tmp, open(tmp, "w") as f:
            for row, s in _metric_rows(path):
                if row is not None and s <= step:
                    f.write(json.dumps(row) + "\n")
    return removed


def checkpoint_step(run: str | os.PathLike) -> int | None:
    """The step of RUN's checkpoint from its metadata alone (None: no readable checkpoint)."""
    info = _checkpoint_info(run)
    return int(info["step"]) if info is not None else None


def _checkpoint_info(run: str | os.PathLike) -> dict | None:
    from safetensors import safe_open

    try:
        with safe_open(str(Path(run) / CKPT), framework="pt") as f:
            info = json.loads((f.metadata() or {})["info"])
            int(info["step"])
            return info
    except Exception:  # any unreadable checkpoint: there is none to point to
        return None


def interrupted(run: str | os.PathLike, signum: int = signal.SIGINT, again: str | None = None) -> Interrupted:
    """The one line for a stop signal during work on RUN: where the last checkpoint is and how to go on (`again`:
    the work RUN is part of says how, e.g. compare). Without a checkpoint the run's folder is about to be removed,
    so the line does not send anyone there."""
    name, info = signal.Signals(signum).name, _checkpoint_info(run)
    if again is not None:
        where = "before its first checkpoint" if info is None else f"at {Path(run) / CKPT} (step {info['step']})"
        return Interrupted(f"interrupted by {name}: {Path(run).name} stopped {where}; continue with {again}",
                           128 + signum)
    if info is None:
        return Interrupted(f"interrupted by {name} before any checkpoint: nothing was kept", 128 + signum)
    try:
        kind = str(info["config"]["data"]["signal"])
    except (KeyError, TypeError):
        kind = "KIND"
    again = f"implicit-gon fit {kind} --out {shlex.quote(str(run))} --resume"
    return Interrupted(f"interrupted by {name}: the last checkpoint is {Path(run) / CKPT} (step {info['step']}); "
                       f"continue with `{again}` (the run keeps its data: no paths)", 128 + signum)


@contextlib.contextmanager
def session(run: str | os.PathLike, step: int | None = None) -> Iterator[Path]:
    """Hold RUN for training: locked, stale temporary files removed, metrics cut back to `step` (the step the run
    starts or resumes from; None leaves them), and Ctrl-C turned into one line naming the last checkpoint."""
    try:
        with locked(run) as run:
            before = _own_files(run)
            try:
                clean_temps(run)  # a resume with nothing to do, too: a killed writer's files go when the run is used
                if step is not None:
                    repair_metrics(run, step)
                yield run
            except KeyboardInterrupt as e:
                _drop_unfinished(run, before)
                raise interrupted(run, getattr(e, "signum", signal.SIGINT)) from None
            except BaseException:
                _drop_unfinished(run, before)
                raise
    except KeyboardInterrupt as e:  # a stop while the lock was taken, before the run was touched
        raise interrupted(run, getattr(e, "signum", signal.SIGINT)) from None


OWN = ("config.json", METRICS, "best.safetensors")
"""What a run writes besides its checkpoint: removed again when a new run fails before its first checkpoint."""


def _own_files(run: Path) -> set[str]:
    return {n for n in OWN if (run / n).exists()}


def _drop_unfinished(run: Path, before: set[str]) -> None:
    """A run that ends in an error before its first checkpoint leaves nothing it wrote (config.json, metrics.jsonl
    of a run that does not exist); a run with a checkpoint, and files that were there before, are left alone."""
    if (run / CKPT).exists():
        return
    for name in set(OWN) - before:
        with contextlib.suppress(OSError):
            (run / name).unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        clean_temps(run)


def training(train_fn):
    """Decorator for train(gon, signal, run, ...): runs it inside session(run, gon.step)."""
    @functools.wraps(train_fn)
    def wrapper(gon, signal, run, *args, **kwargs):
        dist = kwargs.get("dist")
        if dist is not None and not dist.main:  # under torchrun rank 0 alone holds and writes the run
            return train_fn(gon, signal, run, *args, **kwargs)
        with session(run, gon.step):
            return train_fn(gon, signal, run, *args, **kwargs)
    return wrapper



def resume(gon, opt_state: dict | None, run: str | os.PathLike, config_files, flags: dict, sets=()) -> dict:
    """Apply a `fit --resume`'s flags, --config files and --set to a loaded run (config.resume_config decides what
    may change) and return what changed (log_resume records it once the run trains on). A checkpoint without
    optimiser state cannot continue the same run and is refused."""
    from .config import resume_config
    if opt_state is None:
        raise GONError(f"{run}: the checkpoint holds no optimiser state, so the run cannot be resumed exactly "
                       f"(start a new run with another --out)")
    _check_optimizer(gon, opt_state, run)
    cfg, changed = resume_config(gon.cfg, config_files, flags, sets)
    if cfg.train.steps < gon.step:
        raise UsageError(f"--steps {cfg.train.steps}: the run is already at step {gon.step}")
    gon.cfg = cfg  # train() sets every group's rate from this config each step (a new --lr included)
    return changed


def log_resume(run: str | os.PathLike, step: int, changed: dict) -> None:
    """What a `fit --resume` changed, as a metrics.jsonl row: written when the resumed run is about to train, so a
    resume with nothing to do (already at its --steps), or refused, records no change it never applied."""
    import time

    from .fsio import append_jsonl
    if changed:
        repair_metrics(run, step)  # first, so the row never lands after a torn line
        append_jsonl(Path(run) / METRICS, {"step": step, "event": "resume", "changed": changed, "time": time.time()})


def _check_optimizer(gon, opt_state: dict, run) -> None:
    """The stored Adam state must fit the model: its groups load, and every moment has its parameter's shape."""
    from .optim import make_optimizer
    opt = make_optimizer(gon.model, gon.cfg.train)
    try:
        opt.load_state_dict(opt_state)
    except (ValueError, KeyError, TypeError, RuntimeError) as e:
        raise GONError(f"{run}: the checkpoint's optimiser state does not fit its model ({str(e).splitlines()[0]})") from None
    params = [p for g in opt.param_groups for p in g["params"]]
    missing = [i for i, p in enumerate(params) if p.requires_grad and not {"step", "exp_avg", "exp_avg_sq"}
               <= set(opt.state.get(p, {}))]
    if gon.step > 0 and missing:  # Adam keeps moments for every trained parameter from the first step on
        raise GONError(f"{run}: the checkpoint's optimiser state is incomplete ({len(missing)} of {len(params)} "
                       f"parameters have no Adam moments), so the run cannot be resumed exactly")
    for p, state in opt.state.items():
        for k, v in state.items():
            if k in ("exp_avg", "exp_avg_sq") and v.shape != p.shape:
                raise GONError(f"{run}: the checkpoint's optimiser state does not fit its model ({k} has shape "
                               f"{tuple(v.shape)}, its parameter {tuple(p.shape)})")
