"""SDF training speed and quality at equal wall-clock: the shipped SDF config against variants of it.

    python benchmarks/sdf_speed.py --seconds 300 [--meshes DIR] [--variant NAME=key=value,key=value ...]

Each variant is `fit` on the same meshes (the shared data's five OBJ files by default) with `train.max_time`
seconds, one after another; the table gives its steps/s and the held-out scores `implicit-gon eval` reports
(Chamfer x1e3 and IoU at the eval resolution). With --profile, one step of each variant is profiled first
(where the time goes, by operator).
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from common import run_benchmark, shared_root
from implicit_gon.config import resolve
from implicit_gon.host import keep_freed_memory
from implicit_gon.train import fit
from signals.sdf import EVAL_RES, IOU_POINTS, load_signal, score_shapes

DEFAULT_VARIANTS = ["shipped=", "bf16=train.precision=bf16"]


def parse_variant(text: str) -> tuple[str, list[str]]:
    """'NAME=' (the shipped config) or 'NAME=key=value,key=value'; anything else is a usage error."""
    name, eq, sets = text.partition("=")
    items = [x for x in sets.split(",") if x]
    if not name or not eq or any("=" not in x for x in items):
        raise argparse.ArgumentTypeError(f"{text!r}: give NAME= or NAME=key=value[,key=value...]")
    return name, items


def shared_meshes() -> Path:
    """The shared data's meshes/ ($IMPLICIT_GON_DATA, else ../shared/data); missing: one line naming --meshes."""
    from implicit_gon.errors import DataError
    root = shared_root()
    if not (root / "meshes").is_dir():
        raise DataError(f"{root / 'meshes'}: no meshes folder; pass --meshes DIR (a folder of OBJ/PLY/STL files) or "
                        f"set IMPLICIT_GON_DATA to the shared data folder")
    return root / "meshes"


def profile_step(cfg, sig) -> str:
    from implicit_gon.api import GON
    from implicit_gon.precision import Precision
    from implicit_gon.tasks import objective
    from implicit_gon.train import batch_indices, step_generator
    torch.manual_seed(0)
    gon = GON(cfg, {**sig.meta(), "coord_dim": 3, "out_dim": 1}, "cpu")
    amp = Precision(cfg.train.precision, "cpu")

    def step(s):
        gen = step_generator(0, s, "cpu")
        b = sig.batch(batch_indices(len(sig), min(cfg.train.batch_size, len(sig)), 0, s), cfg.train.points, gen, "cpu")
        with amp.autocast():
            loss, _ = objective(gon.model, b, cfg, gen, 1.0)
        loss.backward()
    step(0)
    from torch.profiler import profile
    with profile() as p:
        step(1)
    return p.key_averages().table(sort_by="self_cpu_time_total", row_limit=10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=300)
    ap.add_argument("--meshes", type=Path, default=None, help="folder of meshes (default: the shared data's meshes/)")
    ap.add_argument("--variant", action="append", type=parse_variant, default=None,
                    help="NAME=key=value,key=value (repeatable; NAME= alone is the shipped config)")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--plain-malloc", action="store_true",
                    help="leave glibc's allocator settings alone (the engine before implicit_gon/host.py)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.plain_malloc:
        import implicit_gon.host
        implicit_gon.host._done = True  # train() then leaves malloc alone
    else:
        keep_freed_memory()
    meshes = args.meshes or shared_meshes()
    rows = []
    for name, sets in args.variant or [parse_variant(v) for v in DEFAULT_VARIANTS]:
        cfg = resolve("sdf", "default", None, {"train.device": "cpu", "data.paths": [str(meshes)],
                                               "train.max_time": args.seconds}, sets)
        sig = load_signal(cfg.data.paths, cfg.data, quiet=True)
        if args.profile:
            print(f"{name}: one step\n{profile_step(cfg, sig)}")
        with tempfile.TemporaryDirectory() as run:
            gon = fit(sig, cfg, Path(run) / "run", progress=False)
        score = score_shapes(gon, sig, len(sig), 8, EVAL_RES, 30000, IOU_POINTS)
        rows.append({"variant": name, "sets": sets, "steps": gon.step,
                     "steps_per_s": gon.step / gon.train_state["elapsed"],
                     "chamfer_x1e3": score["chamfer_x1e3"], "iou": score["iou"]})
        r = rows[-1]
        print(f"{name:12s} {r['steps']:5d} steps  {r['steps_per_s']:5.2f} steps/s  Chamfer x1e3 "
              f"{r['chamfer_x1e3'] if r['chamfer_x1e3'] is None else round(r['chamfer_x1e3'], 3)}  IoU {r['iou']:.3f}",
              flush=True)
    print(json.dumps(rows))


if __name__ == "__main__":
    run_benchmark(main)
