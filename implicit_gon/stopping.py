"""When training stops before train.steps: early stopping on a held-out metric (train.patience) and a wall-clock
budget (train.max_time). Both survive `--resume`: the early-stopping state is stored in the checkpoint."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .config import Config, parse_duration, trains_elbo  # noqa: F401 (parse_duration: its old home)
from .plugins import signal_adapter


def monitored(cfg: Config) -> tuple[str, bool]:
    """(metric, higher is better) that early stopping and best.safetensors follow. `auto` picks per signal: images
    the summed squared error per sample (the paper's Table 1 unit; bits_per_dim, its Table 2 unit, when
    variational), audio the SNR of the held-out windows, SDF the Chamfer distance."""
    name, adapter = cfg.train.val_metric, signal_adapter(cfg.data.signal)
    if name == "auto":  # the adapter's metric; an ELBO-trained run's bits/dim where its signal reports them
        name = "bits_per_dim" if trains_elbo(cfg) and "bits_per_dim" in adapter.val_metrics else adapter.metric
    return name, adapter.val_metrics[name]


@dataclass
class EarlyStop:
    """The best held-out score so far and how many evaluations since it improved."""

    metric: str
    higher: bool
    best: float | None = None
    best_step: int | None = None
    bad: int = 0  # evaluations since the last improvement

    @classmethod
    def for_run(cls, cfg: Config, state: dict[str, Any] | None = None) -> "EarlyStop":
        """A fresh tracker, or the one a checkpoint stored (if it followed the same metric)."""
        metric, higher = monitored(cfg)
        if state and state.get("metric") == metric:
            return cls(metric, higher, state.get("best"), state.get("best_step"), int(state.get("bad", 0)))
        return cls(metric, higher)

    def improves(self, scores: dict[str, Any]) -> bool:
        """Whether these scores beat the best so far. A missing or non-finite score (an SDF reconstruction with
        no surface) never does."""
        v = scores.get(self.metric)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            return False
        return self.best is None or (v > self.best if self.higher else v < self.best)

    def update(self, step: int, scores: dict[str, Any]) -> bool:
        """Record one evaluation; True when it is the best so far."""
        if self.improves(scores):
            self.best, self.best_step, self.bad = float(scores[self.metric]), step, 0
            return True
        self.bad += 1
        return False

    def exhausted(self, patience: int) -> bool:
        return patience > 0 and self.bad >= patience

    def state(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"best val_{self.metric} {self.best:.4g} at step {self.best_step}" if self.best is not None else \
            f"no finite val_{self.metric} yet"
