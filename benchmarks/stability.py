"""Does a shipped image config train without diverging? The same config over several seeds, each for a budget.

    python benchmarks/stability.py --dataset celeba --seeds 0,1,2 [--data-dir DIR] [--steps N] [--seconds S]
                                   [--set section.key=value ...] [--out DIR] [--window 50]

Each seed is `fit` itself (what `implicit-gon fit images --dataset D --seed S` runs) with the loss logged every
step. Per seed it reports the largest jump of the training loss over the median of the `--window` steps before it
(a divergence shows as a jump of 10x or more; Monte Carlo noise of a healthy run stays near 1.5x), the largest
"drift", the median of the last 25 losses over the lowest such median before it (train.drift_factor stops a slow
blow-up above it), the same drift of the gradient norm (train.grad_factor), the final loss (the median of the last window), whether every loss was finite, the step reached
and the held-out PSNR (each latent one gradient step on the full grid, as `implicit-gon eval` scores it). Without
--steps or --seconds a seed runs the config's whole schedule: a benchmark for a quiet machine, never a test. Writes
OUT/stability.json.

    python benchmarks/stability.py --runs RUN [RUN ...] [--window 50]

prints the same figures for runs already trained (a kept seed continued with `implicit-gon fit ... --resume`,
which is bit-exact, so its metrics.jsonl is one uninterrupted trace), the held-out PSNR from its last
validation row; nothing is trained.
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from common import positive, refuse_owned_sets, run_benchmark, shared_root
from implicit_gon.config import resolve
from implicit_gon.errors import DataError, GONError, Interrupted
from implicit_gon.fsio import write_json
from implicit_gon.guard import WINDOW, GradWatch, LossWatch
from implicit_gon.train import fit
from signals import image_signal

DIVERGED = 10.0  # a loss jump over its recent median this large is a divergence, not sampling noise


def data_folder(dataset: str, arg: Path | None) -> Path:
    """--data-dir as given, else the dataset's folder in the shared data ($IMPLICIT_GON_DATA, ../shared/data)."""
    root = shared_root()
    folder = arg.expanduser() if arg is not None else root / dataset if (root / dataset).is_dir() else root
    if not folder.is_dir():
        raise DataError(f"{folder}: data folder not found; pass --data-dir DIR (the dataset's folder) or set "
                        "IMPLICIT_GON_DATA (the shared data, holding DATASET/)")
    return folder


def loss_trace(metrics: Path, key: str = "loss") -> list[tuple[int, float | None]]:
    """(step, value) of every training row of a run's metrics.jsonl (key: loss, or grad_norm); a non-finite value
    (null) is None. Rows without the key (validation rows; grad_norm before it was logged) are left out."""
    rows = []
    if metrics.is_file():
        for line in metrics.read_text().splitlines():
            r = json.loads(line)
            if ("loss" in r or "lr" in r) and (key == "loss" or key in r):  # a training row
                v = r.get(key)
                rows.append((r["step"], float(v) if isinstance(v, (int, float)) and v == v else None))
    return rows


def max_jump(losses: list[float], window: int) -> tuple[float, int]:
    """The largest loss[t] / median(loss[t - window:t]) and its index t (1.0, -1 when too short)."""
    best, at = 1.0, -1
    for t in range(window, len(losses)):
        ratio = losses[t] / max(1e-12, statistics.median(losses[t - window:t]))
        if ratio > best:
            best, at = ratio, t
    return best, at


def max_drift(trace: list[tuple[int, float | None]], watch=None, steady_from: int = 0) -> tuple[float, int | None]:
    """The divergence guard's slow criterion replayed (implicit_gon/guard.py, nothing stops): the largest ratio of
    the median of the last guard.WINDOW values to the lowest such median before it, and the step it was reached.
    train.drift_factor (losses; watch a GradWatch: train.grad_factor, gradient norms) stops a run above it.
    Steps before steady_from (a KL warm-up, gon.beta_warmup) are not judged, as the guard does not judge them.
    (1.0, None) when too short; stops at the first non-finite value."""
    watch, best, at = watch or LossWatch(0.0, 0.0), 1.0, None
    for step, v in trace:
        if v is None:
            break
        lowest, steady = watch.lowest, step >= steady_from
        watch.check(v, step, steady)
        if steady and lowest and len(watch.recent) == WINDOW:
            ratio = statistics.median(watch.recent) / lowest
            best, at = (ratio, step) if ratio > best else (best, at)
    return best, at


def summarise(trace: list[tuple[int, float | None]], window: int, norms=(), steady_from: int = 0) -> dict:
    """Per-seed figures from its loss trace (and its gradient norms' trace); the drifts from step steady_from."""
    finite = [v for _, v in trace if v is not None]
    jump, at = max_jump(finite, window)
    drift, drift_step = max_drift(trace, steady_from=steady_from)
    grad, grad_step = max_drift(list(norms), GradWatch(0.0, {}), steady_from)
    tail = finite[-window:] or [float("nan")]
    return {"steps": trace[-1][0] if trace else 0, "finite": len(finite) == len(trace) and bool(trace),
            "max_jump": jump, "jump_step": trace[at][0] if at >= 0 else None,
            "max_drift": drift, "drift_step": drift_step, "max_grad_drift": grad, "grad_drift_step": grad_step,
            "first_loss": finite[0] if finite else None, "final_loss": statistics.median(tail),
            "min_loss": min(finite) if finite else None}


def run_seed(cfg, train, test, out: Path, window: int) -> dict:
    """Train one seed into out; a stopped run (a non-finite loss, a divergence guard) is recorded, not raised; a
    signal (Ctrl-C, SIGTERM) is raised, ending the study, not recorded as this seed's divergence."""
    error, val = None, {}
    try:
        gon = fit(train, cfg, out, test, progress=False, overwrite=True)
        val = gon.last_validation
    except Interrupted:
        raise
    except GONError as e:
        error = str(e)
    s = summarise(loss_trace(out / "metrics.jsonl"), window, loss_trace(out / "metrics.jsonl", "grad_norm"),
                  cfg.gon.beta_warmup)
    s.update(error=error, val_psnr=val.get("psnr"), val_sse=val.get("sse"))
    s["diverged"] = bool(error) or not s["finite"] or s["max_jump"] >= DIVERGED
    return s


def last_validation(metrics: Path) -> dict:
    """The last held-out row of a run's metrics.jsonl (fit writes one at the end of every invocation)."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    val = [r for r in rows if "val_psnr" in r]
    return val[-1] if val else {}


def warm_up(run: Path) -> int:
    """The run's KL warm-up in steps (gon.beta_warmup of RUN/config.json; 0 when it has none or no config)."""
    try:
        return int(json.loads((run / "config.json").read_text())["config"]["gon"].get("beta_warmup") or 0)
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def report_runs(runs: list[Path], window: int) -> None:
    for run in runs:
        if not (run / "metrics.jsonl").is_file():
            raise DataError(f"{run}: no metrics.jsonl (not a run folder)")
        metrics = run / "metrics.jsonl"
        r = summarise(loss_trace(metrics), window, loss_trace(metrics, "grad_norm"), warm_up(run))
        val = last_validation(metrics)
        print(f"{run}: {r['steps']} steps, max jump {r['max_jump']:.2f}x (step {r['jump_step']}), max drift "
              f"{r['max_drift']:.2f}x (step {r['drift_step']}), gradient norm drift {r['max_grad_drift']:.2f}x "
              f"(step {r['grad_drift_step']}), loss "
              f"{_fmt(r['first_loss'])} -> {_fmt(r['final_loss'])}, finite {r['finite']}, held-out PSNR "
              f"{_fmt(val.get('val_psnr'))} dB at step {val.get('step', 'n/a')}", flush=True)


def seed_list(text: str) -> list[int]:
    """An argparse type: comma-separated seeds, each a whole number in 0 .. 2^31 - 1."""
    try:
        seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of whole numbers") from None
    if not all(0 <= s < 2**31 for s in seeds) or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: seeds must be distinct, in 0 .. 2^31 - 1")
    return seeds


# the study's own flag for each field it takes from one (the others in study_flags it fixes)
OWN_FLAGS = {"train.steps": "--steps", "train.max_time": "--seconds", "train.seed": "--seeds",
             "train.device": "--device", "data.data_dir": "--data-dir"}


def study_flags(args, folder: Path, seed: int) -> dict:
    """The fields every seed's fit takes from the study, not from the config (a --set of any is refused: it would
    win): the loss of every step is logged, and no periodic checkpoint interrupts the trace."""
    return {"data.data_dir": str(folder), "train.seed": seed, "train.log_every": 1, "train.ckpt_every": 10**9,
            "train.steps": args.steps, "train.max_time": args.seconds, "train.device": args.device}


def seed_config(args, folder: Path, seed: int):
    return resolve("images", args.dataset, None, study_flags(args, folder, seed), args.sets)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dataset", default="celeba", help="a shipped image config (configs/images/NAME.yaml)")
    ap.add_argument("--data-dir", type=Path, default=None, help="the dataset's folder (default: DATASET/ in "
                    "$IMPLICIT_GON_DATA, else ../shared/data); with --dataset folder, any image folder")
    ap.add_argument("--seeds", type=seed_list, default=None, help="comma-separated (default 0,1,2)")
    ap.add_argument("--steps", type=positive(int), default=None, help="steps per seed (default: the config's)")
    ap.add_argument("--seconds", type=positive(float), default=None, help="wall-clock budget per seed")
    ap.add_argument("--window", type=positive(int), default=50, help="steps in the running median")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override section.key=value")
    ap.add_argument("--out", type=Path, default=Path("stability"))
    ap.add_argument("--keep", action="store_true", help="keep each seed's run in OUT/seedS (else a temporary folder)")
    ap.add_argument("--runs", type=Path, nargs="+", default=None, help="only report runs already trained")
    args = ap.parse_args()
    refuse_owned_sets(ap, args.sets, study_flags(args, Path(), 0), OWN_FLAGS)
    if args.runs:
        return report_runs(args.runs, args.window)
    seeds = [0, 1, 2] if args.seeds is None else args.seeds
    folder = data_folder(args.dataset, args.data_dir)
    cfg = seed_config(args, folder, seeds[0])
    train = image_signal(cfg.data, "train", progress=False)
    test = image_signal(cfg.data, "test", progress=False, notes=False)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"dataset": args.dataset, "data_dir": str(folder), "train": len(train), "test": len(test),
              "sets": args.sets, "window": args.window, "seeds": {}}
    with tempfile.TemporaryDirectory(dir=args.out) as scratch:
        for seed in seeds:
            run = (args.out if args.keep else Path(scratch)) / f"seed{seed}"
            r = run_seed(seed_config(args, folder, seed), train, test, run, args.window)
            result["seeds"][seed] = r
            write_json(args.out / "stability.json", result)
            print(f"seed {seed}: {r['steps']} steps, max jump {r['max_jump']:.2f}x (step {r['jump_step']}), "
                  f"max drift {r['max_drift']:.2f}x (step {r['drift_step']}), "
                  f"gradient norm drift {r['max_grad_drift']:.2f}x (step {r['grad_drift_step']}), "
                  f"loss {_fmt(r['first_loss'])} -> {_fmt(r['final_loss'])}, finite {r['finite']}, "
                  f"held-out PSNR {_fmt(r['val_psnr'])} dB{'  DIVERGED' if r['diverged'] else ''}", flush=True)
    print(f"wrote {args.out / 'stability.json'}")


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.4g}"


if __name__ == "__main__":
    run_benchmark(main)
