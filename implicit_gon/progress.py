"""Training progress: a tqdm bar on a terminal; in a log file or a pipe, where a bar's redraws pile up (two lines
per step), one plain line every few steps instead."""
from __future__ import annotations

import contextlib
import sys
import time
from typing import Any, Iterator, TextIO

LINES = 20
"""Plain lines a whole run writes when stderr is not a terminal (plus the last step)."""


_QUIET = [False]


def say(line: str) -> None:
    """An informational line on stderr (a note, a run's first and last lines), left out under `fit --quiet`;
    warnings and errors are printed regardless."""
    if not _QUIET[0]:
        print(line, file=sys.stderr)


@contextlib.contextmanager
def quiet(on: bool = True) -> Iterator[None]:
    """Within: say() prints nothing (when on)."""
    before, _QUIET[0] = _QUIET[0], on or _QUIET[0]
    try:
        yield
    finally:
        _QUIET[0] = before


def progress_bar(total: int, initial: int = 0, enabled: bool = True, file: TextIO | None = None):
    """tqdm when `file` (default stderr) is a terminal or a notebook runs us (tqdm.auto: a widget when ipywidgets
    is there), else a PlainProgress; both take update, set_postfix, close."""
    file = file or sys.stderr
    if enabled and _in_notebook():
        return _tqdm()(total=total, initial=initial)
    if enabled and _is_tty(file):
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, file=file, dynamic_ncols=True)
    return PlainProgress(total, initial, enabled, file)


def _in_notebook() -> bool:
    """Whether a Jupyter kernel runs this process (its stderr is no terminal, but it shows a bar well)."""
    shell = sys.modules.get("IPython")
    try:
        ip = shell.get_ipython() if shell else None
    except Exception:  # an IPython too old or half torn down: no bar, plain lines
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def _tqdm():
    """tqdm.auto's class: the notebook widget where ipywidgets is installed, else the text bar (no warning)."""
    try:
        import ipywidgets  # noqa: F401
        from tqdm.auto import tqdm
    except ImportError:
        from tqdm import tqdm
    return tqdm


def _is_tty(file) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


LINE_S = 30.0
"""Longest wait between plain lines: a slow run (seconds per step) still shows it is alive in a log."""


class PlainProgress:
    """One line `step N/T: key value ...` after the first step, every `every` steps, at least every LINE_S seconds
    and at the last, with tqdm's calls."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, file: TextIO | None = None,
                 every: int | None = None, clock=time.monotonic):
        self.total, self.n, self.enabled, self.file = total, initial, enabled, file or sys.stderr
        self.every = every or max(1, -(-(total - initial) // LINES))
        self.first, self.clock, self._last = initial + 1, clock, clock()
        self._due = False

    def update(self, n: int = 1) -> None:
        self.n += n
        self._due = (self.n % self.every == 0 or self.n >= self.total or self.n == self.first
                     or self.clock() - self._last >= LINE_S)

    def set_postfix(self, **values: Any) -> None:
        if self.enabled and self._due:
            parts = " ".join(f"{k} {v}" for k, v in values.items())
            print(f"step {self.n}/{self.total}: {parts}", file=self.file, flush=True)
            self._last = self.clock()
        self._due = False

    def close(self) -> None:
        pass


def eta(done: int, left: int, seconds: float, max_time: float = 0.0) -> float | None:
    """Seconds still to go from the measured rate (done steps in seconds), capped by a wall-clock budget."""
    if done <= 0 or seconds <= 0:
        return None
    out = left * seconds / done
    return min(out, max(0.0, max_time - seconds)) if max_time else out


def duration(seconds: float | None) -> str:
    """12s, 3m05s, 2h07m; ? when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def work_bar(total: int | None, desc: str, unit: str = "img", enabled: bool = True, file: TextIO | None = None,
             **tqdm_kw: Any):
    """A bar for counted work (decoding a split, a download): tqdm on a terminal; elsewhere a line at most every
    `PlainWork.EVERY_S` seconds, so a quick build stays silent and a long one still shows it is alive in a log."""
    file = file or sys.stderr
    if enabled and _in_notebook():
        return _tqdm()(total=total, desc=desc, unit=unit, mininterval=1.0, **tqdm_kw)
    if enabled and _is_tty(file):
        from tqdm import tqdm
        return tqdm(total=total, desc=desc, unit=unit, file=file, mininterval=1.0, **tqdm_kw)
    return PlainWork(total, desc, unit, enabled, file, tqdm_kw.get("initial", 0))


class PlainWork:
    """`desc: n/total unit` every EVERY_S seconds, and the final count if any line was written; a context manager."""
    EVERY_S = 30.0

    def __init__(self, total: int | None, desc: str, unit: str, enabled: bool, file: TextIO, initial: int = 0):
        import time
        self.total, self.desc, self.unit, self.enabled, self.file, self.n = total, desc, unit, enabled, file, initial
        self._clock = time.monotonic
        self._last, self._shown = self._clock(), None  # _shown: the count the last line showed

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled and self._clock() - self._last >= self.EVERY_S:
            self._line()

    def _line(self) -> None:
        of = f"/{self.total}" if self.total else ""
        print(f"{self.desc}: {self.n}{of} {self.unit}", file=self.file, flush=True)
        self._last, self._shown = self._clock(), self.n

    def close(self) -> None:
        if self._shown is not None and self._shown != self.n:
            self._line()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
