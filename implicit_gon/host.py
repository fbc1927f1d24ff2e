"""Host (CPU) memory settings for training.

glibc's malloc returns every block above its mmap threshold (32 MiB at most by default) to the kernel when it is
freed, and the kernel zeroes fresh pages on the next allocation. A training step frees and reallocates the same
large activations every step, so on CPU that page-fault traffic costs as much as the arithmetic: Eq. 12's full-grid
step (51 MB activations) runs 1.5x faster with the threshold raised (benchmarks/step_speed.py). Freed memory is
kept for reuse instead; the process's resident size stays at its peak, which limits.py already budgets for.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_done = False


def keep_freed_memory(limit: int = 1 << 30) -> bool:
    """Keep freed blocks up to `limit` bytes in the heap for reuse (glibc only; elsewhere a no-op). Idempotent."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(_M_MMAP_THRESHOLD, limit) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    except (OSError, AttributeError):  # musl or another libc without mallopt
        return False
    _done = bool(ok)
    return _done
