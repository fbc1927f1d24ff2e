"""The divergence guard: training that goes non-finite or explodes stops (or rolls back), and nothing non-finite is
ever written as a checkpoint, so the last one on disk is always a run that can be continued.

A loss is judged against the median of the last WINDOW finite losses: more than train.divergence_factor times it
is an explosion (SIREN runs that diverge jump by 10-100x within a few steps: CelebA 40 -> 692 in issue 21, while a
healthy run's per-batch loss stays within ~2x of its recent median)."""
from __future__ import annotations

import collections
import math
import statistics

import torch

from .errors import GONError

WINDOW = 25
"""Recent losses the median is taken over."""
MIN_HISTORY = 10
"""Finite losses needed before a jump is judged (the first steps of a run fall fast and vary most)."""
MAX_ROLLBACKS = 8
"""train.on_divergence rollback gives up after this many (the learning rate is then 1/256 of the config's)."""


class Diverged(GONError):
    """Training produced a non-finite or exploding loss, or non-finite weights, optimiser state or Gaussian."""


class NonFinite(Diverged):
    """A tensor about to be written (or just read) holds NaN or infinity."""


def first_non_finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The name of the first floating-point tensor holding NaN or infinity, or None."""
    for name, t in tensors.items():
        if torch.is_tensor(t) and t.is_floating_point() and t.numel() and not torch.isfinite(t).all():
            return name
    return None


def check_finite(tensors: dict[str, torch.Tensor], what: str) -> None:
    """A NonFinite error naming `what` and the tensor, if any tensor holds NaN or infinity."""
    bad = first_non_finite(tensors)
    if bad is not None:
        raise NonFinite(f"{what}: {bad} holds NaN or infinity")


class LossWatch:
    """Judges each step's loss: non-finite, or more than `factor` x the median of the recent finite ones."""

    def __init__(self, factor: float):
        self.factor = factor
        self.recent: collections.deque = collections.deque(maxlen=WINDOW)

    def check(self, loss: float, step: int) -> str | None:
        """Why this loss means the run diverged (None: it does not)."""
        if not math.isfinite(loss):
            return f"the loss is {loss} at step {step}"
        if self.factor > 0 and len(self.recent) >= MIN_HISTORY:
            median = statistics.median(self.recent)
            if median > 0 and loss > self.factor * median:
                return (f"the loss jumped to {loss:.4g} at step {step}, over {self.factor:g}x its recent median "
                        f"{median:.4g} (train.divergence_factor)")
        self.recent.append(loss)
        return None

    def reset(self) -> None:
        self.recent.clear()
