"""Is a precision safe for a signal's config? The same config trained in each precision over several seeds, paired.

    python benchmarks/precision_seeds.py images --dataset mnist --seeds 0-9 --steps 2000
    python benchmarks/precision_seeds.py audio ../shared/data/audio --seeds 0-4 --steps 1000
    python benchmarks/precision_seeds.py sdf ../shared/data/meshes --seeds 0-4 --steps 600
        [--precisions fp32,bf16] [--set section.key=value ...] [--out DIR]

Each (seed, precision) is `implicit-gon fit SIGNAL ... --seed S --precision P --steps N` itself, run in this
process: same initialisation, batches and coordinate subsets for every precision of a seed, so the difference of
a seed's held-out scores is the precision's alone. The held-out score is the run's own validation at its last step
(images: PSNR in float32 on every pixel of the test split; audio and SDF: every tenth file, else the last, held out
as `fit --val-every` does: SNR, and Chamfer distance x 1e3, lower is better). A seed "collapses" when
the divergence guard stops it (train.loss_factor, train.drift_factor, train.grad_factor, a non-finite loss) or its
score is worse than the same seed's first precision by more than --collapse (default 3 dB, or 3x for Chamfer).
Finished runs are kept in OUT/P/seedS and skipped when the script is run again, so a long study resumes; the
figures go to OUT/precision_seeds.json. A benchmark for a quiet machine (one thread per process: run one process
per core), never a test.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from common import positive, refuse_owned_sets, run_benchmark, shared_root
from implicit_gon.errors import DataError, GONError, Interrupted
from implicit_gon.fitting import fit_run
from implicit_gon.fsio import write_json

SCORE = {"images": ("psnr", "dB", +1), "audio": ("snr_db", "dB", +1), "sdf": ("chamfer_x1e3", "x1e-3", -1)}
"""Per signal: the held-out metric, its unit, and +1 where higher is better, -1 where lower is."""


def seed_range(text: str) -> list[int]:
    """An argparse type: seeds as 0-9 or 0,3,5 (distinct, in 0 .. 2^31 - 1)."""
    try:
        if "-" in text:
            lo, hi = (int(x) for x in text.split("-"))
            seeds = list(range(lo, hi + 1))
        else:
            seeds = [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a range A-B or a comma-separated list") from None
    if not seeds or not all(0 <= s < 2**31 for s in seeds) or len(set(seeds)) != len(seeds) or len(seeds) > 1000:
        raise argparse.ArgumentTypeError(f"{text!r}: 1 to 1,000 distinct seeds in 0 .. 2^31 - 1")
    return seeds


def final_row(metrics: Path) -> dict:
    """The run's last held-out row and the step it reached (fit writes a validation row at every end)."""
    rows = [json.loads(line) for line in metrics.read_text().splitlines()] if metrics.is_file() else []
    val = [r for r in rows if any(k.startswith("val_") for k in r)]
    return {"steps": max((r.get("step", 0) for r in rows), default=0), **(val[-1] if val else {})}


# the study's own flag for each field it takes from one (the others in study_flags it fixes)
OWN_FLAGS = {"train.steps": "--steps", "train.seed": "--seeds", "train.precision": "--precisions",
             "data.data_dir": "--data-dir"}


def study_flags(args, precision: str, seed: int) -> dict:
    """The fields every run takes from the study, not from the config (a --set of any is refused: it would win)."""
    return {"train.steps": args.steps, "train.seed": seed, "train.precision": precision, "train.device": "cpu",
            "train.ckpt_every": 10**9, "train.val_every": args.steps,  # the score is the last step's validation
            **({"data.data_dir": str(args.data_dir)} if args.data_dir else {})}


def train_one(args, precision: str, seed: int, run: Path) -> dict:
    """Fit one (precision, seed) into run (skipped when a finished result is there); a guard stop is a result, a
    signal (Ctrl-C, SIGTERM) stops the study with no result written, so running it again redoes this seed."""
    done = run / "result.json"
    if done.is_file():
        return json.loads(done.read_text())
    error = None
    try:
        fit_run(args.signal, run, dataset=args.dataset, paths=args.paths or None,
                flags=study_flags(args, precision, seed), sets=args.sets,
                progress=False)
    except Interrupted:
        raise
    except GONError as e:
        error = str(e)
    row = final_row(run / "metrics.jsonl")
    metric = SCORE[args.signal][0]
    result = {"score": row.get(f"val_{metric}"), "steps": row["steps"], "error": error}
    write_json(done, result)
    return result


def collapsed(r: dict, ref: dict | None, signal: str, margin: float) -> bool:
    if r["error"] or r["score"] is None:
        return True
    if ref is None or ref["score"] is None:
        return False
    if SCORE[signal][2] > 0:
        return r["score"] < ref["score"] - margin
    return r["score"] > ref["score"] * margin


def summary(results: dict, args) -> list[str]:
    metric, unit, sign = SCORE[args.signal]
    first = args.precisions[0]
    lines = [f"{args.signal} {args.dataset or ''} {len(args.seeds)} seeds x {args.steps} steps, held-out {metric} "
             f"({unit}; {'higher' if sign > 0 else 'lower'} is better)",
             "seed  " + "".join(f"{p:>12}" for p in args.precisions)
             + "".join(f"{p + '-' + first:>14}" for p in args.precisions[1:])]
    for s in args.seeds:
        row = results[str(s)]
        cells = [f"{_fmt(row[p]['score'])}{'*' if collapsed(row[p], row.get(first) if p != first else None, args.signal, args.collapse) else ' '}"
                 for p in args.precisions]
        diffs = [_diff(row[p], row[first]) for p in args.precisions[1:]]
        lines.append(f"{s:<6}" + "".join(f"{c:>12}" for c in cells) + "".join(f"{_fmt(d):>14}" for d in diffs))
    for p in args.precisions:
        scores = [results[str(s)][p]["score"] for s in args.seeds]
        ok = [x for x in scores if x is not None]
        n_bad = sum(collapsed(results[str(s)][p], results[str(s)][first] if p != first else None, args.signal,
                              args.collapse) for s in args.seeds)
        line = f"{p}: mean {_fmt(_mean(ok))} sd {_fmt(_sd(ok))}, {n_bad} of {len(args.seeds)} collapsed"
        if p != first:
            d = [x for x in (_diff(results[str(s)][p], results[str(s)][first]) for s in args.seeds) if x is not None]
            line += (f"; {p} less {first} per seed: mean {_fmt(_mean(d))} sd {_fmt(_sd(d))}, "
                     f"range {_fmt(min(d) if d else None)} .. {_fmt(max(d) if d else None)}")
        lines.append(line)
    lines.append("* collapsed: stopped by the divergence guard, no score, or worse than the same seed's "
                 f"{first} by more than {args.collapse:g} {'dB' if sign > 0 else 'x'}")
    return lines


def _diff(a: dict, b: dict):
    return None if a["score"] is None or b["score"] is None else a["score"] - b["score"]


def _mean(xs):
    return statistics.fmean(xs) if xs else None


def _sd(xs):
    return statistics.stdev(xs) if len(xs) > 1 else None


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("signal", choices=sorted(SCORE))
    ap.add_argument("paths", nargs="*", type=Path, help="audio: clips or folders; sdf: meshes or folders")
    ap.add_argument("--dataset", default=None, help="images: a shipped image config (default mnist)")
    ap.add_argument("--data-dir", type=Path, default=None, help="images: the dataset's folder (default: DATASET/ "
                    "in $IMPLICIT_GON_DATA, else ../shared/data)")
    ap.add_argument("--seeds", type=seed_range, default=[0, 1, 2], help="0-9 or 0,3,5 (default 0,1,2)")
    ap.add_argument("--steps", type=positive(int), required=True, help="steps per run")
    ap.add_argument("--precisions", default="fp32,bf16", help="the first is the reference (default fp32,bf16); one "
                    "alone runs a slice of a study, e.g. every seed's bf16 first, the fp32 reference later in the same --out")
    ap.add_argument("--collapse", type=positive(float), default=3.0, help="margin of a collapse (dB, or a factor "
                    "for Chamfer)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="config override section.key=value")
    ap.add_argument("--out", type=Path, default=Path("precision_seeds"))
    args = ap.parse_args()
    refuse_owned_sets(ap, args.sets, study_flags(args, "fp32", 0), OWN_FLAGS)
    args.precisions = args.precisions.split(",")
    if not set(args.precisions) <= {"fp32", "bf16", "fp16"} or len(set(args.precisions)) < len(args.precisions):
        ap.error(f"--precisions {','.join(args.precisions)}: distinct names among fp32, bf16, fp16")
    if args.signal == "images":
        if args.paths:
            ap.error("images take --dataset (and --data-dir), not paths")
        args.dataset = args.dataset or "mnist"
        folder = args.data_dir or shared_root() / args.dataset
        if folder.is_dir():
            args.data_dir = folder.resolve()
        elif args.data_dir:
            raise DataError(f"{folder}: data folder not found")  # else the config's own (digits: embedded)
    elif not args.paths or args.dataset or args.data_dir:
        ap.error(f"{args.signal} takes paths (files or folders), not --dataset/--data-dir")
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for seed in args.seeds:
        results[str(seed)] = {}
        for p in args.precisions:
            r = train_one(args, p, seed, args.out / p / f"seed{seed}")
            results[str(seed)][p] = r
            print(f"seed {seed} {p}: {r['steps']} steps, {SCORE[args.signal][0]} {_fmt(r['score'])}"
                  + (f"  STOPPED: {r['error']}" if r["error"] else ""), file=sys.stderr, flush=True)
            write_json(args.out / "precision_seeds.json", {"signal": args.signal, "dataset": args.dataset,
                       "steps": args.steps, "sets": args.sets, "results": results})
    print("\n".join(summary(results, args)))


if __name__ == "__main__":
    run_benchmark(main)
