"""Training curves from RUN/metrics.jsonl: the training loss and every held-out metric (val_*) against step or
training time, one panel per metric, several runs overlaid (one colour per run, a legend)."""
from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any, Iterator

from . import jsonio
from .errors import GONError, UsageError
from .fsio import atomic_path

SKIP = {"val_n", "val_clips", "val_no_surface"}  # counts, not scores
FORMATS = (".png", ".pdf", ".svg")


MAX_POINTS = 4096
"""Points kept per curve: a metrics.jsonl of a million rows is drawn from an evenly thinned summary of this size,
read as a stream, so plotting any run takes bounded memory."""
MAX_METRICS = 64  # panels at most


def read_metrics(run: str | Path) -> Iterator[dict[str, Any]]:
    """The rows of RUN/metrics.jsonl, streamed (jsonio: bounded line length and depth). A line that is not JSON (a
    run killed mid-write) is skipped with one warning; a run without metrics is an error."""
    path = Path(run) / "metrics.jsonl"
    if not path.is_file():
        raise GONError(f"{path}: no metrics here (expected a run directory written by `implicit-gon fit`)")
    n, bad = 0, 0
    for row in jsonio.iter_lines(path):
        if isinstance(row, dict) and _finite(row.get("step")):
            n += 1
            yield row
        else:
            bad += 1
    if bad:
        print(f"warning: {path}: skipped {bad} unreadable line(s)", file=sys.stderr)
    if not n:
        raise GONError(f"{path}: holds no metric rows yet")


class _Thinned:
    """A curve's points, every stride-th kept; at 2 x MAX_POINTS every other one is dropped and the stride doubles,
    so memory stays bounded and the points stay evenly spread. The last point is always drawn."""

    def __init__(self):
        self.xs, self.ys, self.stride, self.seen, self.last = [], [], 1, 0, None

    def add(self, x: float, y: float) -> None:
        if self.seen % self.stride == 0:
            self.xs.append(x)
            self.ys.append(y)
            if len(self.xs) >= 2 * MAX_POINTS:
                self.xs, self.ys, self.stride = self.xs[::2], self.ys[::2], 2 * self.stride
        self.seen += 1
        self.last = (x, y)

    def points(self) -> tuple[list[float], list[float]]:
        if self.last is not None and (not self.xs or self.xs[-1] != self.last[0]):
            return self.xs + [self.last[0]], self.ys + [self.last[1]]
        return self.xs, self.ys


def series(rows, x: str = "step") -> dict[str, tuple[list[float], list[float]]]:
    """{metric: (xs, ys)} for `loss` and every val_* score with a finite value, at most about MAX_POINTS each.
    x = "time": training seconds (the `elapsed` column; rows written before it existed fall back to wall-clock
    since the first row that has one)."""
    t0 = None
    out: dict[str, _Thinned] = {}
    for r in rows:
        if t0 is None and _finite(r.get("time")):
            t0 = r["time"]
        xv = r["step"] if x == "step" else r.get("elapsed", r.get("time", math.nan) - (t0 or 0.0))
        for k, v in r.items():
            if (k == "loss" or k.startswith("val_")) and k not in SKIP and _finite(v) and _finite(xv):
                if k not in out and len(out) >= MAX_METRICS:
                    continue
                out.setdefault(k, _Thinned()).add(float(xv), float(v))
    return {k: t.points() for k, t in out.items()}


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def labels(runs: list[Path]) -> list[str]:
    """Legend names: the run directories' names, or their paths where names repeat."""
    names = [Path(r).name or str(r) for r in runs]
    return [str(r) if names.count(n) > 1 else n for r, n in zip(runs, names)]


def make_figure(runs: list[str | Path], x: str = "step"):
    """A matplotlib Figure: one panel per metric (loss first), one line per run that has the metric."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    runs = [Path(r) for r in runs]
    data = [series(read_metrics(r), x) for r in runs]
    metrics = sorted({k for d in data for k in d}, key=lambda k: (k != "loss", k))
    cols = min(3, len(metrics))
    rows_n = math.ceil(len(metrics) / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(5 * cols, 3.4 * rows_n), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, metric in zip(axes.flat, metrics):
        for i, (name, d) in enumerate(zip(labels(runs), data)):
            if metric in d:
                ax.plot(*d[metric], label=name, color=colours[i % len(colours)],
                        marker="o" if metric != "loss" else None, markersize=3)
        if metric == "loss" and all(v > 0 for d in data for v in d.get("loss", ([], []))[1]):
            ax.set_yscale("log")
        ax.set_title(metric if metric == "loss" else f"held out: {metric[4:]}")
        ax.set_xlabel("step" if x == "step" else "training seconds")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.tight_layout()
    return fig


def plot_runs(runs: list[str | Path], out: str | Path, x: str = "step") -> dict[str, int]:
    """Write the curves of runs to out (PNG, PDF or SVG by its suffix); returns {metric: lines drawn}."""
    import matplotlib.pyplot as plt
    out = Path(out)
    if out.suffix.lower() not in FORMATS:
        raise GONError(f"{out}: plot writes {', '.join(FORMATS)} (by the file's suffix)")
    if x not in ("step", "time"):
        raise UsageError(f"--x {x}: choose step or time")
    fig = make_figure(runs, x)
    drawn = {ax.get_title(): len(ax.lines) for ax in fig.axes if ax.get_visible()}
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format=out.suffix.lower().lstrip("."), dpi=100)
    plt.close(fig)
    return drawn
