"""Training progress: a tqdm bar on a terminal; in a log file or a pipe, where a bar's redraws pile up (two lines
per step), one plain line every few steps instead."""
from __future__ import annotations

import sys
from typing import Any, TextIO

LINES = 20
"""Plain lines a whole run writes when stderr is not a terminal (plus the last step)."""


def progress_bar(total: int, initial: int = 0, enabled: bool = True, file: TextIO | None = None):
    """tqdm when `file` (default stderr) is a terminal, else a PlainProgress; both take update, set_postfix, close."""
    file = file or sys.stderr
    if enabled and _is_tty(file):
        from tqdm import tqdm
        return tqdm(total=total, initial=initial, file=file, dynamic_ncols=True)
    return PlainProgress(total, initial, enabled, file)


def _is_tty(file) -> bool:
    try:
        return file.isatty()
    except (AttributeError, ValueError):
        return False


class PlainProgress:
    """One line `step N/T: key value ...` every `every` steps and at the last, with tqdm's calls."""

    def __init__(self, total: int, initial: int = 0, enabled: bool = True, file: TextIO | None = None,
                 every: int | None = None):
        self.total, self.n, self.enabled, self.file = total, initial, enabled, file or sys.stderr
        self.every = every or max(1, -(-(total - initial) // LINES))
        self._due = False

    def update(self, n: int = 1) -> None:
        self.n += n
        self._due = self.n % self.every == 0 or self.n >= self.total

    def set_postfix(self, **values: Any) -> None:
        if self.enabled and self._due:
            parts = " ".join(f"{k} {v}" for k, v in values.items())
            print(f"step {self.n}/{self.total}: {parts}", file=self.file, flush=True)
        self._due = False

    def close(self) -> None:
        pass
