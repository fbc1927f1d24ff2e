"""The GPU path in one run, one table, under 10 minutes: what a lent CUDA machine must prove.

    python benchmarks/gpu_check.py [--device cuda|cpu] [--install] [--tiny] [--budget 570] [--data-dir DIR]
                                   [--out DIR]

Stages, in order (each bounded by what is left of --budget; a stage that fails is a FAIL row, the others go on):
 1. build    the torch build and its CUDA (with --install and no CUDA build: `pip install torch==<version>`, the
             CUDA build PyPI serves on Linux; needs the network, which a sealed GPU machine may not have).
 2. tests    the CUDA-only tests (tests/test_cuda.py; they skip, with the reason, without a GPU).
 3. step     training steps per second of `fit` on MNIST for the SIREN and the conv decoder in fp32, TF32
             (torch.backends matmul and cuDNN TF32 on, CUDA only) and bf16 (`--precision bf16`).
 4. fit      a short `fit` on CelebA (64 px RGB) and MNIST, then `render --res 256` of each.
 5. torchrun `torchrun --nproc-per-node 1` of `fit` (nccl on CUDA, gloo on CPU): the distributed path.
 6. compare  `compare --methods gon,ae` for a few hundred steps on MNIST, its table beside the paper's.
--device cpu --tiny is the dry run of every stage at toy sizes (what CI and a machine without a GPU can check).
Exit status 0 when no stage failed, 1 otherwise. Writes OUT/gpu_check.json beside the printed table.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, positive, run_benchmark, shared_root

BIN = Path(sys.executable).parent


class Budget:
    """The run's wall-clock budget: each stage gets at most what is left (less a margin for the table)."""

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def left(self, cap: float) -> float:
        return max(1.0, min(cap, self.end - time.monotonic() - 5.0))


def sh(cmd: list, timeout: float, env: dict | None = None) -> tuple[bool, str]:
    """Run a command; (ok, its last output line, or why it failed)."""
    try:
        p = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                           env={**os.environ, **(env or {})})
    except subprocess.TimeoutExpired:
        return False, f"timed out after {timeout:.0f} s"
    lines = (p.stdout + p.stderr).strip().splitlines()
    return p.returncode == 0, (lines[-1] if lines else "") + ("" if p.returncode == 0 else f" (exit {p.returncode})")


def stage_build(args, budget: Budget) -> list[tuple]:
    import torch
    have = f"torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}, GPU available {torch.cuda.is_available()}"
    if args.device == "cuda" and not torch.cuda.is_available() and args.install:
        version = torch.__version__.split("+")[0]
        ok, line = sh([sys.executable, "-m", "pip", "install", "-q", f"torch=={version}"], budget.left(180))
        return [("build", "install CUDA torch", ok, line + "; rerun this script to use it")]
    ok = args.device == "cpu" or torch.cuda.is_available()
    name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return [("build", name, ok, have)]


def stage_tests(args, budget: Budget) -> list[tuple]:
    ok, line = sh([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda.py"],
                  budget.left(150), {"IMPLICIT_GON_DATA": str(args.data)})
    return [("tests", "tests/test_cuda.py", ok, line)]


def fit_speed(args, decoder: str, precision: str, seconds: float) -> tuple[bool, str]:
    """Steps per second of `fit` on MNIST after 3 warm-up steps, in this process (TF32 set on the torch backends)."""
    import torch

    from implicit_gon.config import resolve
    from implicit_gon.train import fit
    from signals import image_signal
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    cfg = resolve("images", "mnist", None, {"data.data_dir": str(args.data / "mnist"), "model.decoder": decoder,
                                            "train.device": args.device, "train.steps": 100000,
                                            "train.max_time": seconds, "train.ckpt_every": 100000,
                                            "train.precision": "fp32" if tf32 else precision})
    times = []
    with tempfile.TemporaryDirectory() as run:
        fit(image_signal(cfg.data, "train", progress=False), cfg, Path(run) / "r", progress=False,
            on_step=lambda g, s: times.append(time.perf_counter()))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    if len(times) < 5:  # it trained, too slowly to time here (bf16 emulated on a CPU without it)
        return True, f"trained, but only {len(times)} steps in {seconds:.0f} s: too few to time"
    return True, f"{(len(times) - 4) / (times[-1] - times[3]):.1f} steps/s"


def stage_step(args, budget: Budget) -> list[tuple]:
    rows = []
    for decoder in ("siren", "conv"):
        for precision in ("fp32", "tf32", "bf16"):
            if precision == "tf32" and args.device != "cuda":
                rows.append(("step", f"{decoder} tf32", True, "skipped: TF32 is CUDA only"))
                continue
            try:
                ok, line = fit_speed(args, decoder, precision, budget.left(args.step_seconds))
            except Exception as e:  # noqa: BLE001  (a failing combination is a FAIL row; the others still run)
                ok, line = False, f"{type(e).__name__}: {e}"
            rows.append(("step", f"{decoder} {precision}", ok, line))
    return rows


def stage_fit(args, budget: Budget, out: Path) -> list[tuple]:
    rows = []
    for dataset in ("celeba", "mnist"):
        run = out / f"fit-{dataset}"
        ok, line = sh([BIN / "implicit-gon", "fit", "images", "--dataset", dataset, "--data-dir",
                       args.data / dataset, "--steps", args.fit_steps, "--device", args.device, "--out", run],
                      budget.left(120))  # not --quiet: its last line, `done: RUN (held out: ...)`, goes in the table
        if ok:
            ok, line = sh([BIN / "implicit-gon", "render", run, "--res", "256", "--n", "4", "--device", args.device,
                           "--out", out / f"render-{dataset}-256.png"], budget.left(60))
        rows.append(("fit", f"{dataset} fit + render --res 256", ok, line))
    return rows


def stage_torchrun(args, budget: Budget, out: Path) -> list[tuple]:
    ok, line = sh([BIN / "torchrun", "--nproc-per-node", "1", "--no-python", BIN / "implicit-gon", "fit", "images",
                   "--dataset", "mnist", "--data-dir", args.data / "mnist", "--steps", args.fit_steps, "--device",
                   args.device, "--out", out / "torchrun"], budget.left(120))
    backend = "nccl" if args.device == "cuda" else "gloo"
    return [("torchrun", f"1 process, {backend}", ok, line)]


def stage_compare(args, budget: Budget, out: Path) -> list[tuple]:
    tiny = ["--train-limit", "16", "--held-out", "8", "--val-samples", "4", "--batch-size", "8"] if args.tiny else []
    ok, line = sh([BIN / "implicit-gon", "compare", "--dataset", "mnist", "--data-dir", args.data / "mnist",
                   "--methods", "gon,ae", "--seeds", "1", "--steps", args.compare_steps, "--device", args.device,
                   "--out", out / "compare", *tiny], budget.left(150))
    if ok:
        t = json.loads((out / "compare" / "table.json").read_text())
        line = ", ".join(f"{m} {r['mean']:.3g} (paper {r['paper']['mean']:g})" for m, r in t["methods"].items())
    return [("compare", f"gon, ae, {args.compare_steps} steps", ok, line)]


def parse():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    ap.add_argument("--install", action="store_true", help="pip install torch's CUDA build if this one has none")
    ap.add_argument("--tiny", action="store_true", help="toy sizes: the dry run of every stage")
    ap.add_argument("--budget", type=positive(float), default=570.0, help="seconds for everything (default 570)")
    ap.add_argument("--data-dir", type=Path, default=None, help="the shared data folder (default $IMPLICIT_GON_DATA)")
    ap.add_argument("--out", type=Path, default=None, help="folder for the runs and gpu_check.json (default: temp)")
    args = ap.parse_args()
    args.data = shared_root(args.data_dir).resolve()
    args.step_seconds = 3.0 if args.tiny else 20.0
    args.fit_steps = 3 if args.tiny else 300
    args.compare_steps = 2 if args.tiny else 300
    return args


def main():
    args = parse()
    budget, t0 = Budget(args.budget), time.monotonic()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        out.mkdir(parents=True, exist_ok=True)
        rows = []
        for stage in (stage_build, stage_tests, stage_step):
            rows += stage(args, budget)
        for stage in (stage_fit, stage_torchrun, stage_compare):
            rows += stage(args, budget, out)
        print(f"gpu_check --device {args.device}{' --tiny' if args.tiny else ''}: "
              f"{time.monotonic() - t0:.0f} s of {args.budget:.0f}")
        print(f"| stage | what | result | detail |\n|---|---|---|---|")
        for stage, what, ok, detail in rows:
            print(f"| {stage} | {what} | {'ok' if ok else 'FAIL'} | {detail} |")
        if args.out:
            (out / "gpu_check.json").write_text(json.dumps([dict(zip(("stage", "what", "ok", "detail"), r))
                                                            for r in rows], indent=1))
    sys.exit(0 if all(r[2] for r in rows) else 1)


if __name__ == "__main__":
    run_benchmark(main)
