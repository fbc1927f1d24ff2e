"""Learning-rate schedules over a run's budget: its steps, or its wall-clock budget when that ends first.

A run stopped by `--max-time` must still finish its schedule (a cosine cut off at a tenth of its steps trains
like a constant rate), so progress is whichever budget is further spent. Without a time budget progress is
step / steps, a pure function of the step, so `--resume` continues the very same schedule; the time budget is
per invocation, so a resumed run with `--max-time` decays again over its new budget (a warm restart).
"""
from __future__ import annotations

import math


def progress(tc, step: int, seconds: float) -> float:
    """Fraction of the budget spent at `step`, `seconds` into this invocation."""
    p = step / tc.steps
    if tc.max_time:
        p = max(p, seconds / tc.max_time)
    return min(1.0, p)


def lr_factor(tc, step: int, p: float) -> float:
    """Multiplier of every group's base learning rate: linear warm-up over tc.warmup steps, then the schedule."""
    warm = min(1.0, (step + 1) / tc.warmup) if tc.warmup else 1.0
    if tc.schedule == "constant":
        return warm
    return warm * (tc.final_lr + (1.0 - tc.final_lr) * 0.5 * (1.0 + math.cos(math.pi * p)))


def set_lr(opt, base: list[float], factor: float) -> None:
    """Every group's rate: its base rate (from the config, multipliers included) times factor."""
    for g, lr in zip(opt.param_groups, base):
        g["lr"] = lr * factor
