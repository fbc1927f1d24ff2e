"""Held-out quality after the same wall-clock time: the engine's default config against Eq. 12.

    python benchmarks/time_to_quality.py --seconds 240 [--dataset mnist|fashion-mnist|cifar10|celeba|folder]
                                         [--data-dir DIR] [--out DIR] [--marks 12] [--threads N] [--set key=value ...]

The engine is `fit` itself with the dataset's shipped config and `train.max_time` (what `implicit-gon fit images
--dataset D --max-time 240s` runs); the baseline is benchmarks/eq12.py, the authors' Implicit-GON.py rewritten
(their architecture, initialisation, linspace grid and loss; full grid, batch 64, Adam 1e-4), trained in the same process with the same
allocator setting for the same seconds. Both are scored the same way on the same held-out images: each latent one
gradient step on the full grid, PSNR with peak 1 and summed squared error per image. The weights are copied at
`--marks` evenly spaced times and scored afterwards, so the curve costs neither system any training time.
Writes OUT/time_to_quality.json and OUT/time_to_quality.png (held-out PSNR against seconds). Run it on a quiet
machine: both systems get the cores in turn, never at once.
"""
from __future__ import annotations

import argparse
import copy
import shutil
import tempfile
import time
from pathlib import Path

import torch

from common import run_benchmark
from eq12 import ConcatSiren, eq12_step, eval_eq12
from implicit_gon.config import resolve
from implicit_gon.fsio import write_json
from implicit_gon.host import keep_freed_memory
from implicit_gon.train import evaluate, fit
from signals import image_signal

FOLDERS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar-10-batches-py", "celeba": "celeba",
           "folder": "."}  # folder: --data-dir is the folder itself (train/ and test/, e.g. make_natural64.py's)


class Marks:
    """Copies of a model's weights at `n` evenly spaced times up to `seconds` (and the last step's)."""

    def __init__(self, seconds: float, n: int):
        self.times = [seconds * (k + 1) / n for k in range(n)]
        self.snaps: list[tuple[float, int, dict]] = []

    def __call__(self, model, seconds: float, step: int) -> None:
        if len(self.snaps) < len(self.times) and seconds >= self.times[len(self.snaps)]:
            self.snaps.append((seconds, step, copy.deepcopy(model.state_dict())))

    def last(self, model, seconds: float, step: int) -> None:
        if not self.snaps or self.snaps[-1][1] != step:
            self.snaps.append((seconds, step, copy.deepcopy(model.state_dict())))


def data_folder(dataset: str, root: Path, scratch: Path) -> Path:
    """The dataset's folder in the shared data (or root itself, when it holds the dataset's files); CIFAR-10's
    derived test subset is copied in as `test_batch`."""
    src = root / FOLDERS[dataset] if (root / FOLDERS[dataset]).is_dir() else root
    if dataset != "cifar10" or not (src / "test_batch_first78").is_file():
        return src
    dst = scratch / "cifar10"
    dst.mkdir()
    shutil.copy(src / "test_batch_first78", dst / "test_batch")
    shutil.copy(src / "batches.meta", dst / "batches.meta")
    return dst


def run_engine(cfg, train, test, seconds: float, marks: int) -> dict:
    m = Marks(seconds, marks)
    with tempfile.TemporaryDirectory() as run:
        gon = fit(train, cfg, Path(run) / "run", progress=False, on_step=lambda g, s: m(g.model, s, g.step))
        m.last(gon.model, gon.train_state["elapsed"], gon.step)
    curve = []
    for s, step, state in m.snaps:
        gon.model.load_state_dict(state)
        r = evaluate(gon, test)
        curve.append({"seconds": s, "step": step, "psnr": r["psnr"], "sse": r["sse"]})
    return {"steps": gon.step, "steps_per_s": gon.step / gon.train_state["elapsed"],
            "precision": gon.train_state["precision"], "curve": curve}  # what `auto` chose on this machine


def run_eq12(cfg, train, test, seconds: float, marks: int) -> dict:
    torch.manual_seed(cfg.train.seed)
    model = ConcatSiren(train.coord_dim, train.out_dim, cfg.model)
    opt = torch.optim.Adam(model.parameters(), 1e-4)  # the paper's rate
    m, step, t0 = Marks(seconds, marks), 0, time.perf_counter()
    while (elapsed := time.perf_counter() - t0) < seconds:
        eq12_step(model, opt, train, step)
        step += 1
        m(model, time.perf_counter() - t0, step)
    m.last(model, elapsed, step)
    curve = []
    for s, n, state in m.snaps:
        model.load_state_dict(state)
        curve.append({"seconds": s, "step": n, **eval_eq12(model, test)})
    return {"steps": step, "steps_per_s": step / elapsed, "curve": curve}


def plot(result: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, label in (("engine", "implicit-gon (default config)"), ("eq12", "authors' Implicit-GON.py (eq12.py)")):
        c = result[name]["curve"]
        ax.plot([r["seconds"] for r in c], [r["psnr"] for r in c], marker="o", ms=3,
                label=f"{label}: {result[name]['steps_per_s']:.2f} steps/s")
    ax.set(xlabel="training seconds", ylabel="held-out PSNR (dB)",
           title=f"{result['dataset']}: {result['train']} / {result['test']} images, {result['threads']} threads")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=240)
    ap.add_argument("--dataset", choices=sorted(FOLDERS), default="mnist")
    ap.add_argument("--data-dir", type=Path, default=None, help="the shared data folder (default $IMPLICIT_GON_DATA, "
                    "else ../shared/data), holding mnist/, fashion-mnist/, cifar-10-batches-py/ or celeba/")
    ap.add_argument("--out", type=Path, default=Path("time_to_quality"))
    ap.add_argument("--marks", type=int, default=12)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="engine config override key=value")
    ap.add_argument("--skip-eq12", action="store_true", help="engine only (for trying configs)")
    args = ap.parse_args()
    if args.marks < 1 or args.seconds <= 0:
        ap.error("--marks must be at least 1 and --seconds positive")
    from common import data_dir
    if args.threads:
        torch.set_num_threads(args.threads)
    keep_freed_memory()  # for both systems (host.py): the baseline gets every speed-up that is not the method
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        folder = data_folder(args.dataset, data_dir(args.data_dir), Path(scratch))
        cfg = resolve("images", args.dataset, None, {"data.data_dir": str(folder), "train.device": "cpu",
                                                     "train.max_time": args.seconds}, args.sets)
        train = image_signal(cfg.data, "train", progress=False)
        test = image_signal(cfg.data, "test", progress=False, notes=False)
    result = {"dataset": args.dataset, "seconds": args.seconds, "train": len(train), "test": len(test),
              "threads": torch.get_num_threads(), "sets": args.sets,
              "engine": run_engine(cfg, train, test, args.seconds, args.marks)}
    if not args.skip_eq12:
        result["eq12"] = run_eq12(cfg, train, test, args.seconds, args.marks)
    report(result, args.out)


def report(result: dict, out: Path) -> None:
    write_json(out / "time_to_quality.json", result)
    print(f"{result['dataset']}, {result['seconds']:g} s each, {result['threads']} threads, "
          f"{result['train']} / {result['test']} images")
    for name in ("engine", "eq12"):
        if name in result:
            r, end = result[name], result[name]["curve"][-1]
            print(f"{name:7s} {r['steps']:6d} steps  {r['steps_per_s']:6.2f} steps/s  held-out PSNR {end['psnr']:6.2f} dB"
                  f"  SSE {end['sse']:7.2f}  {r.get('precision', 'fp32')}")
    if "eq12" in result:
        e, b = result["engine"], result["eq12"]
        print(f"lead    {e['curve'][-1]['psnr'] - b['curve'][-1]['psnr']:+.2f} dB, "
              f"{e['steps_per_s'] / b['steps_per_s']:.1f}x steps/s")
        plot(result, out / "time_to_quality.png")
        print(f"wrote {out / 'time_to_quality.json'} and {out / 'time_to_quality.png'}")


if __name__ == "__main__":
    run_benchmark(main)
