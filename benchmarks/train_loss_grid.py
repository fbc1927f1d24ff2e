"""Training-set loss of `compare` runs over a grid of settings (the paper's Appendix B: GON against the autoencoder
on CIFAR-10 over latent sizes and filter counts, training-set loss after each epoch): for every compare folder
given, each method's logged training loss (SSE per image of its training batches, from RUN/metrics.jsonl) at the
end of the run, GON less the autoencoder, and a picture of the curves, one panel per folder.

    python benchmarks/train_loss_grid.py OUT [OUT ...] --last 3 --plot grid.png
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from common import positive


def curves(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """{run name (method-seed): [(step, training loss), ...]} of one compare folder."""
    out = {}
    for run in sorted(p for p in folder.iterdir() if (p / "metrics.jsonl").is_file()):
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]
        out[run.name] = [(r["step"], r["loss"]) for r in rows if "loss" in r and "step" in r]
    if not out:
        sys.exit(f"error: {folder}: no runs with metrics.jsonl here (expected an `implicit-gon compare --out` folder)")
    return out


def plot(grid: dict[str, dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(grid), figsize=(2.6 * len(grid), 2.6), sharey=True, squeeze=False)
    for ax, (name, runs) in zip(axes[0], grid.items()):
        for run, pts in runs.items():
            ax.plot(*zip(*pts), label=run.rsplit("-s", 1)[0], ls="-" if run.startswith("gon") else "--")
        ax.set_yscale("log")
        ax.set_title(name, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    axes[0][0].set_ylabel("training loss (SSE per image)", fontsize=8)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folders", nargs="+", type=Path, help="`implicit-gon compare --out` folders")
    ap.add_argument("--last", type=positive(int), default=3, help="logged training losses averaged at the end")
    ap.add_argument("--plot", type=Path, default=None, help="picture of the curves (.png)")
    args = ap.parse_args()
    grid = {f.name: curves(f) for f in args.folders}
    names = list(next(iter(grid.values())))
    print(f"| settings | {' | '.join(names)} | gon less ae | gon / ae |\n" + "|---" * (len(names) + 3) + "|")
    for name, runs in grid.items():
        end = {run: sum(v for _, v in pts[-args.last:]) / len(pts[-args.last:]) for run, pts in runs.items()}
        gon, ae = end.get("gon-s0"), end.get("ae-s0")
        diff = f"{gon - ae:+.2f} | {gon / ae:.2f}" if gon is not None and ae is not None else "— | —"
        print(f"| {name} | {' | '.join(f'{v:.2f}' for v in end.values())} | {diff} |")
    if args.plot:
        plot(grid, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)


if __name__ == "__main__":
    main()
