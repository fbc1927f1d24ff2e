"""The divergence guard: training that goes non-finite or explodes stops (or rolls back), and nothing non-finite is
ever written as a checkpoint, so the last one on disk is always a run that can be continued.

A loss is judged against the median of the last WINDOW finite losses: more than train.divergence_factor times it
is an explosion (SIREN runs that diverge jump by 10-100x within a few steps: CelebA 40 -> 692 in issue 21, while a
healthy run's per-batch loss stays within ~2x of its recent median). A slow blow-up has no such jump: CelebA seed 1
(docs/celeba.md) rose from 21-24 to medians near 200 over a hundred steps, no loss above 3.36x its recent median.
So that median is also judged against the lowest one seen in the run: more than train.drift_factor times it is a
divergence too. Some blow-ups never show in the loss: CelebA with an over-large gradient-origin step kept its loss at
the mean face's level while the gradient norm grew from 1.5e4 to 6.6e8 (docs/robustness.md), so the gradient norm's
median is judged the same way, against train.grad_factor. The windows and lowest medians are kept in the checkpoint
(train_state["guard"]), so they survive --resume (a resumed run judges as the uninterrupted one) and a rollback
returns to the checkpoint's."""
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
TINY = 1e-6
"""A reference (a median, a lowest median, a first value) under TINY x the largest loss the run has accepted is no
scale to judge by: a clip that is mostly silence has batches with losses near 1e-36 and others near 0.02, and was
stopped as 'diverged' at its first batch with sound (the hostile check, issue 21). Gradient norms keep no such
scale (a blow-up inflates it) and only refuse references of 1e-20 and below."""
WORSE = 1.5
"""A run whose last WINDOW losses have a median above this many times where it started (OPENING) ends with a
warning: it left the network worse than it started (on the digits, Adam 0.03 to 1 ends 1.7-3.9x above the first
loss, no jump or slow rise on the way; healthy runs end far below it)."""
OPENING = 5
"""Where a run started is the mean of its first OPENING losses at the final objective, not its first loss alone: a
clip of 0.3 s of tone in 20 s of faint noise has batches of noise alone 1,000x below those with tone, and a run whose
median of 25 losses fell 240x (0.048 to 0.0002) was warned of as left 3.3x worse than its first batch, one of noise
alone (the first step barely moves the weights, so the first few batches measure the same network)."""


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


class _Drift:
    """The median of the last WINDOW values of a quantity judged against the lowest such median seen in the run."""

    JUDGE_START = False
    """Judge the first full window against the run's first value, too: a blow-up from the second step on fills the
    first window, whose median would otherwise become the run's lowest and hide it (issue 21). The first value,
    not the smallest: a noisy quantity's smallest is a lucky draw (SDF norms 0.77-20 in 30 steps)."""

    def __init__(self, factor: float, state: dict):
        self.drift = factor
        self.recent: collections.deque = collections.deque(state.get("recent", ()), maxlen=WINDOW)
        self.lowest: float | None = state.get("lowest")  # the lowest median of WINDOW values seen, and its step
        self.lowest_step: int | None = state.get("lowest_step")
        self.start: float | None = state.get("start")  # the first value judged, and its step
        self.start_step: int | None = state.get("start_step")
        self.scale: float | None = state.get("scale")  # LossWatch: the largest value accepted

    def _add(self, value: float, step: int) -> None:
        self.recent.append(value)
        if self.start is None and self.lowest is None:
            self.start, self.start_step = value, step

    def usable(self, ref: float | None) -> bool:
        """Whether ref is a scale to judge by (TINY)."""
        return ref is not None and ref > 1e-20 and (self.scale is None or ref >= TINY * self.scale)

    def _risen(self, step: int) -> tuple[float, str] | None:
        """(the window's median, what it rose over) when it is over drift x the lowest median so far, or for the
        first window (JUDGE_START) x the first value (None: it is not; it then becomes the lowest median when it
        is lower). Judged once WINDOW values are known."""
        if len(self.recent) < WINDOW:
            return None
        median = statistics.median(self.recent)
        ref, ref_step, name = self.lowest, self.lowest_step, "its lowest"
        if ref is None and self.JUDGE_START:
            ref, ref_step, name = self.start, self.start_step, "its first value"
        if self.drift > 0 and self.usable(ref) and median > self.drift * ref:
            return median, f"{name} {ref:.4g} (step {ref_step})"
        if self.lowest is None or median < self.lowest:
            self.lowest, self.lowest_step = median, step
        return None

    def _state(self) -> dict:
        return {"recent": list(self.recent), "lowest": self.lowest, "lowest_step": self.lowest_step,
                "start": self.start, "start_step": self.start_step, "scale": self.scale}


class GradWatch(_Drift):
    """Judges each step's gradient norm (before clipping): the median of the last WINDOW norms more than `factor` x
    the lowest such median seen is a divergence (a blow-up inside the network that the loss does not show)."""

    JUDGE_START = True  # healthy first windows: 0.5-11x their first norm (every config kind), healthy runs 7.5x

    def check(self, norm: float, step: int, steady: bool = True, overflow_ok: bool = False) -> str | None:
        """Why this gradient norm means the run diverged (None: it does not). A non-finite norm is a divergence,
        unless overflow_ok (fp16's loss scaler skips such steps itself). Not judged while the objective changes."""
        if not math.isfinite(norm):
            return None if overflow_ok else f"the gradient norm is {norm} at step {step}"
        if not steady:
            return None
        self._add(norm, step)
        risen = self._risen(step)
        if risen is None:
            return None
        return (f"the median of the last {WINDOW} gradient norms rose to {risen[0]:.4g} at step {step}, over "
                f"{self.drift:g}x {risen[1]} (train.grad_factor)")


class LossWatch(_Drift):
    """Judges each step's loss: non-finite, or more than `factor` x the median of the recent finite ones (a jump),
    or that median, once WINDOW losses are known, more than `drift` x the lowest such median seen (a slow rise).
    Its `grads` (a GradWatch, with `grad` as its factor) judges the step's gradient norm."""

    def __init__(self, factor: float, drift: float = 0.0, state: dict | None = None, grad: float = 0.0):
        state = state or {}
        super().__init__(drift, state)
        self.factor = factor
        self.first: float | None = state.get("first")  # the mean of the OPENING first losses at the final objective
        self.opening: list[float] = list(state.get("opening", ()))  # those losses, until OPENING are known
        self.grads = GradWatch(grad, state.get("grad", {}))

    @classmethod
    def for_run(cls, tc, train_state: dict) -> "LossWatch":
        """The watch of a run at its step: the train config's factors, the checkpoint's windows and lowest medians."""
        return cls(tc.divergence_factor, tc.drift_factor, train_state.get("guard"), tc.grad_factor)

    def check(self, loss: float, step: int, steady: bool = True) -> str | None:
        """Why this loss means the run diverged (None: it does not). steady is False while the objective itself
        changes with the step (the KL weight's warm-up): the lowest median is then neither judged nor recorded."""
        if not math.isfinite(loss):
            return f"the loss is {loss} at step {step}"
        if self.factor > 0 and len(self.recent) >= MIN_HISTORY:
            median = statistics.median(self.recent)
            if self.usable(median) and loss > self.factor * median:
                return (f"the loss jumped to {loss:.4g} at step {step}, over {self.factor:g}x its recent median "
                        f"{median:.4g} (train.divergence_factor)")
        self._add(loss, step)
        self.scale = loss if self.scale is None else max(self.scale, loss)
        if steady and self.first is None:
            self.opening.append(loss)
            if len(self.opening) == OPENING:
                self.first, self.opening = sum(self.opening) / OPENING, []
        return self._drifted(step) if steady else None

    def _drifted(self, step: int) -> str | None:
        """The slow criterion, on the window that now ends with this step's loss."""
        risen = self._risen(step)
        if risen is None:
            return None
        return (f"the median of the last {WINDOW} losses rose to {risen[0]:.4g} at step {step}, over "
                f"{self.drift:g}x {risen[1]} (train.drift_factor)")

    def unsettled(self) -> str | None:
        """Why the state just reached is not to be checkpointed as a good one although no criterion stopped the run
        (None: it may be): this step's own loss over train.divergence_factor, or its own gradient norm over
        train.grad_factor, times the run's lowest median. A blow-up shows there steps before the window's median
        catches up: a gradient norm rising from 55 to 8.5e17 in ten steps was checkpointed as "good" at step 30,
        the guard stopped the run at step 33, and each rollback went back to the blown-up step 30. Before the
        first window is full the reference is the run's first value: a blow-up from step 2 on (a gradient norm of
        22, then 1e16) left no healthy median to compare with, and steps 5 and 10 were written."""
        for watch, factor, what in ((self, self.factor, "loss"), (self.grads, self.grads.drift, "gradient norm")):
            ref, of = watch.lowest, "the run's lowest median"
            if ref is None and len(watch.recent) > 1:
                ref, of = watch.start, "its first value"
            last = watch.recent[-1] if watch.recent else None
            if factor > 0 and last is not None and watch.usable(ref) and last > factor * ref:
                return f"its {what} {last:.4g} is over {factor:g}x {of} {ref:.4g}"
        return None

    def state(self) -> dict:
        """What the checkpoint keeps (train_state["guard"]): plain floats, so JSON holds them exactly."""
        return {**self._state(), "first": self.first, "opening": self.opening, "grad": self.grads._state()}

    def worse_than_start(self) -> str | None:
        """At the end of a run: why it left the network worse than it started (None: it did not)."""
        if not self.usable(self.first) or len(self.recent) < WINDOW:  # first batches of silence: no scale
            return None
        median = statistics.median(self.recent)
        if median <= WORSE * self.first:
            return None
        return (f"the training loss ended {median / self.first:.1f}x above where it started (median of the last "
                f"{WINDOW} {median:.4g}, mean of the first {OPENING} {self.first:.4g}): the run made the network "
                f"worse; lower --lr or gon.step_size")
