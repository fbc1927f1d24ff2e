"""Helpers shared by the benchmark scripts: data, timing, the Eq. 12 baseline."""
from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def mnist_split(split: str) -> np.ndarray:
    """Real MNIST (the distributed IDX files): 9,000 train / 1,000 test from $IMPLICIT_GON_DATA/mnist."""
    from signals.datasets import load_images
    data = Path(os.environ.get("IMPLICIT_GON_DATA", ROOT.parent / "shared" / "data")) / "mnist"
    return load_images("mnist", split, data, progress=False)


def steps_per_second(step, min_time: float = 8.0, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time or n < 3:
        step()
        n += 1
    return n / (time.perf_counter() - t0)
