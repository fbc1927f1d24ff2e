"""Device selection: `auto` picks CUDA when it is there; everything else is passed around explicitly."""
from __future__ import annotations

import re

import torch

from .errors import GONError, UsageError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str = "auto") -> torch.device:
    """Map `auto|cpu|cuda[:N]` to a torch.device, with a clear error when CUDA is asked for but absent."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if re.fullmatch(r"cuda(:\d+)?", name):
        if not torch.cuda.is_available():
            raise UsageError(f"device {name!r}: CUDA is not available on this machine (use cpu or auto)")
        if ":" in name and int(name[5:]) >= torch.cuda.device_count():
            raise UsageError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return torch.device(name)
    raise UsageError(f"device {name!r}: unknown device (choose auto, cpu or cuda)")


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A seeded generator on the given device (random ops must draw on the device they fill)."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g
