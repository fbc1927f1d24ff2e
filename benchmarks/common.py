"""Helpers shared by the benchmark scripts: data, timing, the Eq. 12 baseline."""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


DATA_HELP = ("folder holding MNIST's IDX files (or a folder with mnist/ in it); default $IMPLICIT_GON_DATA, "
             "else ../shared/data beside the repository")


def positive(kind):
    """An argparse type: a number of `kind` above 0 (a bad one is a usage error naming the value)."""
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a {kind.__name__}") from None
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{text!r} must be above 0")
        return v
    parse.__name__ = f"positive {kind.__name__}"
    return parse


def positive_list(kind):
    """An argparse type: comma-separated numbers of `kind`, each above 0."""
    one = positive(kind)
    def parse(text: str):
        return [one(x.strip()) for x in text.split(",")]
    parse.__name__ = f"comma-separated positive {kind.__name__}s"
    return parse


def refuse_owned_sets(ap: argparse.ArgumentParser, sets: list[str], owned: Iterable[str],
                      flags: dict[str, str]) -> None:
    """A usage error for each --set of a field the benchmark sets itself: owned (the keys of the flags dict it
    resolves its config with, so the list cannot fall behind it) and flags (its own option for each field it takes
    from one, set or not). Applied last, such a --set would silently win (--set train.steps=50000 made --steps 4000
    run 50,000 steps; --set train.log_every=100 would thin a per-step trace)."""
    from implicit_gon.config import parse_sets
    owned = set(owned) | set(flags)
    for item in sets:
        key, = parse_sets([item])  # the config's own reading of a --set (a malformed one is refused as fit refuses it)
        if key in owned:
            how = f"use {flags[key]}" if key in flags else "the study needs its own value"
            ap.error(f"--set {item}: this benchmark sets {key} itself; {how}")


def writable_file(text: str) -> Path:
    """An argparse type: a file path whose folder exists and can be written (checked before any training)."""
    p = Path(text).expanduser()
    if not p.parent.is_dir() or not os.access(p.parent, os.W_OK):
        raise argparse.ArgumentTypeError(f"{text}: its folder {p.parent} does not exist or is not writable")
    return p


def add_data_dir(ap) -> None:
    """The --data-dir option every benchmark that reads MNIST takes."""
    ap.add_argument("--data-dir", type=Path, default=None, help=DATA_HELP)


def shared_root(arg: Path | None = None) -> Path:
    """--data-dir, else $IMPLICIT_GON_DATA, else ../shared/data (not checked)."""
    return Path(arg or os.environ.get("IMPLICIT_GON_DATA") or ROOT.parent / "shared" / "data").expanduser()


def data_dir(arg: Path | None) -> Path:
    """shared_root(arg); a missing folder is a one-line error."""
    from implicit_gon.errors import DataError
    path = shared_root(arg)
    if not path.is_dir():
        raise DataError(f"{path}: data folder not found; pass --data-dir DIR (MNIST's IDX files, or a folder with "
                        "mnist/ in it) or set IMPLICIT_GON_DATA")
    return path


def mnist_split(split: str, data: Path | None = None) -> np.ndarray:
    """Real MNIST (the distributed IDX files; 9,000 train / 1,000 test when only t10k is there) from data_dir."""
    from implicit_gon.errors import DataError
    from signals.datasets import load_images
    root = data_dir(data)
    try:
        return load_images("mnist", split, root, progress=False, notes=False)
    except DataError as e:
        raise DataError(f"{e} (benchmarks read MNIST from --data-dir or $IMPLICIT_GON_DATA)") from None


def run_benchmark(main) -> None:
    """Run a benchmark's main: user errors (missing data, a bad run) as one line and exit 1; Ctrl-C, SIGTERM and
    SIGHUP as one line and 130, 143 and 129, as the CLI exits."""
    from implicit_gon.errors import GONError, Interrupted
    try:
        main()
    except Interrupted as e:  # a fit stopped by a signal (it wrote a checkpoint): the study stops too
        print(f"error: {e}", file=sys.stderr)
        sys.exit(e.code)
    except GONError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as e:  # a command it runs failed; that command printed why
        print(f"error: {' '.join(map(str, e.cmd[:3]))} ... exited with status {e.returncode}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)


def steps_per_second(step, min_time: float = 8.0, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < min_time or n < 3:
        step()
        n += 1
    return n / (time.perf_counter() - t0)
