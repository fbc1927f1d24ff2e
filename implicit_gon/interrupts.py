"""Ctrl-C, SIGTERM and SIGHUP as exceptions, so that every `finally` and `with` block runs (temporary files go,
locks are released) whichever of them ends a process; inside `deferred()` (a training step) they wait for the
step to end, so the run can checkpoint a consistent state at that step and --resume continues it exactly.

A batch scheduler sends SIGTERM before it kills a job, a closed terminal SIGHUP: both are stops, like Ctrl-C, and
exit with 128 + the signal's number (130, 143, 129)."""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REPEAT_GRACE = 3.0
"""Seconds after a deferred stop during which more stop signals are the same request: Ctrl-C reaches every process
of the terminal's group, and a wrapper (torchrun, timeout, make) may forward it again a few milliseconds later;
cut short by that echo, a run lost the step's checkpoint (or, before its first, everything). A signal after this
stops at once: the user insists, and the last checkpoint on disk is whole (every write is renamed into place)."""
_state = {"defer": 0, "pending": None, "since": 0.0, "raised": None, "raised_at": 0.0, "redeliver": False}
# depth of deferred() blocks; the signal that arrived inside one and when; the last signal raised as Stop; whether
# a signal that came during an import waits to be delivered again


class Stop(KeyboardInterrupt):
    """A stop signal (SIGINT, SIGTERM, SIGHUP) raised as an exception; a KeyboardInterrupt, so code that handles
    Ctrl-C handles all three."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def code(self) -> int:
        return 128 + self.signum


def exit_code(e: BaseException) -> int:
    """The exit status of a stop: 128 + its signal (Ctrl-C, a plain KeyboardInterrupt, is 130)."""
    return e.code if isinstance(e, Stop) else 128 + signal.SIGINT


def signal_name(e: BaseException) -> str:
    return e.name if isinstance(e, Stop) else "SIGINT"


def _handler(signum, frame) -> None:
    if _state["defer"] and _state["pending"] is None:
        _state["pending"], _state["since"] = signum, time.monotonic()  # the step ends first
        return
    if _state["defer"] and time.monotonic() - _state["since"] < REPEAT_GRACE:
        return  # the same stop, delivered twice
    if _state["raised"] is not None and time.monotonic() - _state["raised_at"] < REPEAT_GRACE:
        return  # the same stop again while the first unwinds (raised there, it cut its handling short)
    if _importing(frame):
        _after_import(signum)
        return
    _state["raised"], _state["raised_at"] = signum, time.monotonic()
    raise Stop(signum)


def _importing(frame) -> bool:
    """Whether the frame runs inside an import. torch registers its operators as its modules import, and its C++
    side clears an exception raised there: a stop raised inside it was swallowed, the run went on with a module
    half made (torchrun's ranks then failed with "torch.Generator() cannot be called before the opaque metaclass
    is set" and the like, each with a traceback)."""
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


def _after_import(signum: int) -> None:
    """Deliver the signal again once the main thread has left its imports (polled every 20 ms by a thread:
    Python runs handlers, and so raises, in the main thread only)."""
    if _state["redeliver"]:
        return  # already on its way
    _state["redeliver"] = True
    main = threading.main_thread().ident

    def watch():
        while _importing(sys._current_frames().get(main)):
            time.sleep(0.02)
        _state["redeliver"] = False
        os.kill(os.getpid(), signum)
    threading.Thread(target=watch, name="stop-after-import", daemon=True).start()


def raised() -> int | None:
    """The stop signal last raised as a Stop in this process, if any: an error after it (a module half imported
    when the signal cut its import short) is that stop's doing, and is reported as the stop."""
    return _state["raised"]


@contextlib.contextmanager
def handled() -> Iterator[None]:
    """Turn the stop signals into Stop exceptions inside the block (the main thread only: elsewhere Python cannot
    install handlers, and the block runs as it is)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {s: signal.signal(s, _handler) for s in _not_ignored()}
    try:
        yield
    finally:
        for s, h in before.items():
            signal.signal(s, h)


def install() -> None:
    """handled() for the rest of the process (the CLI's entry point)."""
    if threading.current_thread() is threading.main_thread():
        _state["pending"] = _state["raised"] = None  # an earlier command of this process is not this one
        for s in _not_ignored():
            signal.signal(s, _handler)


def settle() -> None:
    """The process is ending (its command returned or raised, and the reason is about to be reported): from now
    on a stop signal is recorded, not raised. torchrun sends SIGTERM to a rank whose peer died while that rank is
    already reporting "another rank failed"; raised there, it would print a traceback instead of the line."""
    if threading.current_thread() is threading.main_thread():
        for s in _not_ignored():
            signal.signal(s, _record)


def release() -> None:
    """The program has said its last line and is exiting: the stop signals are ignored from here on. As Python
    finalises it puts the default handlers back, and torch's teardown then takes 0.1-0.4 s: a second Ctrl-C or
    SIGTERM in that window (a wrapper forwarding the first) killed the process by the signal, whatever its line
    and exit status had said (the hostile check, issue 21)."""
    if threading.current_thread() is threading.main_thread():
        for s in _not_ignored():
            signal.signal(s, signal.SIG_IGN)


def _record(signum, frame) -> None:
    _state["pending"] = _state["pending"] or signum


def _not_ignored() -> list[int]:
    """The stop signals this process does not ignore: `nohup implicit-gon fit &` ignores SIGHUP (and a background
    job SIGINT) on purpose, and must go on when the terminal closes."""
    return [s for s in SIGNALS if signal.getsignal(s) is not signal.SIG_IGN]


def pending() -> int | None:
    """The stop signal that arrived inside the current deferred() block, if any."""
    return _state["pending"]


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Hold stop signals until the block ends (or the code inside asks pending() and stops itself): the block's
    work is never cut in half. A signal still pending at the end is raised there."""
    _state["defer"] += 1
    try:
        yield
    finally:
        _state["defer"] -= 1
        signum = _state["pending"]
        if not _state["defer"]:
            _state["pending"] = None
    if signum is not None and not _state["defer"]:
        _state["raised"], _state["raised_at"] = signum, time.monotonic()
        raise Stop(signum)


@contextlib.contextmanager
def unswallowed() -> Iterator[None]:
    """A stop raised inside the block is raised again when the block ends, even if code inside caught it (trimesh
    reads a mesh's assets inside `except BaseException`), and not lost behind an error it caused there. Unlike
    deferred(), the stop is raised at once where the code lets it through: a long computation is cut short."""
    start = time.monotonic()
    try:
        yield
    finally:
        if _state["raised"] is not None and _state["raised_at"] >= start:
            raise Stop(_state["raised"])


def clear() -> None:
    """Forget a pending signal (the code inside deferred() has acted on it)."""
    _state["pending"] = None
