"""Checks of verb options (the ones that are not config fields: --n, --res, --frames, ...), one table, one rule
format (config.py's `min`/`max`/`gt`/`choices`/`pattern`), so every verb refuses a bad value with the same kind of
line and exit status 1 instead of a traceback or a silent reinterpretation (`--res 0`, `--n 0`). An option that
takes a config field's values (--batch-size, --device, ...) is checked by that field's declaration."""
from __future__ import annotations

import math

from . import limits
from .config import check_range, range_of
from .errors import GONError

RULES: dict[str, dict] = {
    "n": {"min": 1, "max": limits.MAX_SAMPLES},
    "res": {"min": 1, "max": 1 << 20},
    "batch_size": range_of("train.batch_size"),
    "frames": {"min": 2, "max": limits.MAX_FRAMES},
    "fps": {"min": 1, "max": 240},
    "pairs": {"min": 1, "max": 1000},
    "sample_rate": range_of("data.sample_rate"),
    "hop": {"gt": 0},
    "index": {"min": 0},
    "temperature": {"min": 0, "max": 100},
    "seed": {"min": 0, "max": 2**63 - 1},
    "split": {"choices": ("train", "test")},
    "device": range_of("train.device"),
    "format": {"choices": ("ply", "obj", "glb", "stl")},
    "nrow": {"min": 1, "max": limits.MAX_SAMPLES},
    "seconds": {"gt": 0, "max": 3600},
    "camera": range_of("data.camera"),
}
VERB_RULES: dict[tuple[str, str], dict] = {
    ("export-mesh", "res"): {"min": 2, "max": 1 << 20},  # marching cubes needs two samples a side
}


def check(verb: str, **values) -> None:
    """Check the given options of `verb` (None: not given); the first bad one is a one-line GONError."""
    for name, val in values.items():
        if val is None:
            continue
        rule = VERB_RULES.get((verb, name), RULES[name])
        try:
            if isinstance(val, float) and not math.isfinite(val):
                raise ValueError("must be a finite number")
            check_range(val, rule)
        except ValueError as e:
            raise GONError(f"{verb} --{name.replace('_', '-')} {val}: {e}") from None
