"""One bounded JSON reader for everything the project reads back (checkpoint metadata, metrics.jsonl, compare
records, run configs): the text's size and its nesting depth are checked before json parses it, so a line of
100,000 `[` is one line of error, not a RecursionError, and a huge file is refused before it is read whole.
json's own limit on integer digits (ValueError) is caught the same way."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

from .errors import GONError

MAX_DEPTH = 64
"""Nesting the project's own JSON never comes near (a config is 3 deep, a metrics row 3)."""
MAX_BYTES = 64 << 20
"""A JSON file read whole: checkpoint metadata, compare records, configs (all well under 1 MiB when written here)."""
MAX_LINE = 1 << 20
"""One metrics.jsonl row (a row is a few hundred bytes; a resume row lists changed keys)."""


class JSONLimit(GONError, ValueError):
    """Text that is not JSON, or JSON beyond the size or depth limits (a ValueError, as json's own errors are)."""


def depth(text: str | bytes) -> int:
    """Deepest nesting of [ and { outside strings, in one pass over the text's bytes."""
    import numpy as np
    raw = np.frombuffer(text.encode() if isinstance(text, str) else bytes(text), np.uint8)
    if not raw.size:
        return 0
    quote = raw == ord('"')
    if quote.any():  # a quote escaped by an odd run of backslashes does not open or close a string
        pos = np.arange(raw.size)
        last_other = np.maximum.accumulate(np.where(raw != ord("\\"), pos, -1))  # the last non-backslash up to i
        run = pos - 1 - np.concatenate(([-1], last_other[:-1]))  # backslashes just before i
        quote &= run % 2 == 0
    inside = np.cumsum(quote) % 2 == 1  # True from an opening quote up to (not including) its closing one
    step = np.where(raw == ord("["), 1, 0) + np.where(raw == ord("{"), 1, 0) \
        - np.where(raw == ord("]"), 1, 0) - np.where(raw == ord("}"), 1, 0)
    step[inside | quote] = 0
    return int(np.cumsum(step, dtype=np.int64).max(initial=0))


def loads(text: str | bytes, what: str, max_bytes: int = MAX_BYTES, max_depth: int = MAX_DEPTH) -> Any:
    """json.loads within the limits; JSONLimit (one line naming `what`) otherwise."""
    if len(text) > max_bytes:
        raise JSONLimit(f"{what}: {len(text):,} bytes of JSON, more than the {max_bytes:,} accepted")
    opens = text.count(b"[" if isinstance(text, bytes) else "[") + text.count(b"{" if isinstance(text, bytes) else "{")
    if opens > max_depth and depth(text) > max_depth:  # counting first: a metrics row has a handful
        raise JSONLimit(f"{what}: JSON nested more than {max_depth} deep")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError, too many integer digits
        raise JSONLimit(f"{what}: not valid JSON ({str(e).splitlines()[0][:100]})") from None


def read(path: str | os.PathLike, what: str | None = None, max_bytes: int = MAX_BYTES) -> Any:
    """A JSON file, its size checked before it is read (and read no further than the limit)."""
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        if size > max_bytes:
            raise JSONLimit(f"{what or path}: {size:,} bytes, more than the {max_bytes:,} a JSON file may have")
        return loads(f.read(max_bytes + 1), what or str(path), max_bytes)


def iter_lines(path: str | os.PathLike, max_line: int = MAX_LINE) -> Iterator[Any]:
    """The values of a JSON-lines file, streamed: a line longer than max_line, nested too deep or not JSON (a torn
    line) yields None in its place, so the caller can count it; memory stays at one line."""
    with open(path, "rb") as f:
        while line := f.readline(max_line + 1):
            if len(line) > max_line and not line.endswith(b"\n"):
                while (rest := f.readline(1 << 20)) and not rest.endswith(b"\n"):
                    pass  # skip the rest of the over-long line
                yield None
                continue
            if not line.strip():
                continue
            try:
                yield loads(line, str(path), max_line)
            except JSONLimit:
                yield None
