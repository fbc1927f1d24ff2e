"""`implicit-gon compare`: the paper's Table 1 (held-out summed squared error per image; GON against autoencoders,
its own ablations and GLO) or, with --variational, Table 2 (bits per dimension; variational GON against a VAE),
and Figure 2b (held-out error against training step), re-run at a budget of one's choosing.

Every method trains the same decoder on the same data, seeds and schedule; each (method, seed) is an ordinary run
directory OUT/<method>-s<seed> (`eval`, `render`, ... accept it), scored at the end on the whole held-out split.
OUT/table.md and OUT/table.json hold mean and spread over seeds beside the paper's figure; OUT/curves.png the
held-out curves, a band over seeds.
"""
from __future__ import annotations

import functools
import math
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import torch

from . import jsonio, paper_tables, registry, rundir
from .config import flag_keys, given_keys, guard_keys, range_of, trains_elbo, unread_keys, where_keys
from .errors import GONError, Interrupted, UsageError, natural_list
from .fsio import atomic_path, write_json

def plan(methods: list[str], decoder: str, variational: bool) -> list[str]:
    """The methods to run, checked: one-line errors for an unknown name or a method the setting cannot run."""
    for m in methods:
        known = registry.methods()
        if m not in known:
            raise UsageError(f"compare --methods: unknown method {m!r} (choose from {', '.join(known)})")
        decoders, table2 = known[m].decoders or tuple(registry.decoders()), known[m].variational
        if decoder not in decoders:
            runs = ", ".join(k for k, v in known.items() if _runs_with(v, decoder) and v.variational == variational)
            raise UsageError(f"compare --methods {m}: needs --decoder {natural_list(decoders, 'or')} "
                             f"(with --decoder {decoder}: {runs})")
        if table2 != variational:
            raise UsageError(f"compare --methods {m}: a Table {2 if table2 else 1} method; "
                             + ("add --variational" if table2 else "leave out --variational"))
    if len(set(methods)) != len(methods):
        raise UsageError("compare --methods: a method is named twice")
    return methods


OPTIONS = {"train.seed": "--seeds", "train.val_samples": "--val-samples"}
"""compare's options that set a field of every run under another name than the field's flag."""
FLAGGED = ("train.steps", "model.decoder", "model.variational", "train.val_every")
"""Fields compare sets from an option named as the field's own flag (--steps, --decoder, ...)."""


def own_keys() -> dict[str, str]:
    """Fields compare sets for each run itself, each with the option that sets it: a --set of one would make rows
    other than their labels say. Its options (OPTIONS; FLAGGED by the fields' flags) and whatever a registered
    method's overrides set (--methods: gon.detach for detach, method.name for ae, a plug-in method's own)."""
    flags = {key: flag for flag, key in flag_keys().items()}
    methods = {key: "--methods" for spec in registry.methods().values() for key in spec.overrides}
    return {**methods, **{key: flags[key] for key in FLAGGED}, **OPTIONS}


MAX_COUNTS = {"seeds": 1000, "steps": range_of("train.steps")["max"], "val_every": 10**9, "val_samples": 10**7,
              "held_out": 10**9}
"""Bounds of compare's counts, checked before anything is built or written (--seeds 200000000 would otherwise
build its list of runs until memory ran out, after the folder's comparison.json was written)."""


def check_counts(**counts: int | None) -> None:
    for name, v in counts.items():
        hi = MAX_COUNTS[name]
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= hi):
            raise UsageError(f"compare --{name.replace('_', '-')} {v}: must be an integer 1..{hi:,}")


def check_sets(sets) -> None:
    from .config import parse_sets
    own = own_keys()
    for key in parse_sets(sets or ()):
        if key in own:
            raise UsageError(f"compare --set {key}: compare sets it for every run itself; use {own[key]}")


def check_finished(run: Path, cfg) -> None:
    """--resume reuses a finished run, or continues an unfinished one, only if it was trained with the config this
    comparison gives it. Fields that say only where it read, ran and wrote (config.where_keys()) may differ, and so
    may the divergence guard's (config.guard_keys()) unless the guard rolled the run back: short of a rollback the
    guard changes no step, it only stops, so a run's steps up to its last checkpoint are those of any thresholds.
    So a detach row trained with the drift guard off joins a table whose other rows kept it on, and a run the guard
    stopped continues from its last good checkpoint under thresholds it will not reach."""
    from .config import Config
    try:
        stored = Config.from_dict(jsonio.read(run / "config.json")["config"]).to_dict()
    except (OSError, ValueError, KeyError, TypeError, GONError) as e:
        raise GONError(f"{run}/config.json: unreadable ({e}); remove {run} to train it again") from None
    want, where = cfg.to_dict(), where_keys()
    if not rolled_back(run):
        where |= guard_keys()
    for section, fields in want.items():
        for k, v in fields.items():
            if f"{section}.{k}" not in where and stored[section][k] != v:
                raise UsageError(f"compare --resume: {run} was trained with {section}.{k} = {stored[section][k]!r}, "
                                 f"this comparison gives {v!r}; use another --out, or remove {run}")


def rolled_back(run: Path) -> bool:
    """Whether the divergence guard rolled the run back (an `event: rollback` row); unreadable metrics count as yes,
    so only a run known to be untouched by the guard is reused across guard thresholds."""
    try:
        rows = jsonio.iter_lines(run / "metrics.jsonl")
        return any(isinstance(r, dict) and r.get("event") == "rollback" for r in rows)
    except OSError:
        return True


MANIFEST = "comparison.json"


def check_manifest(out: Path, what: dict[str, Any], notes: dict[str, Any] | None = None) -> None:
    """OUT/comparison.json names what the folder compares; --resume into a folder of another comparison (another
    table, dataset, held-out set or number of steps) is refused, a new folder gets the file, with notes (how
    --epochs became steps) written beside what is checked."""
    path = out / MANIFEST
    if not path.is_file():
        return write_json(path, {**what, **(notes or {})})
    try:
        had = jsonio.read(path)
    except (OSError, ValueError) as e:
        raise GONError(f"{path}: unreadable ({str(e).splitlines()[0]}); remove it to continue") from None
    if not isinstance(had, dict):
        raise GONError(f"{path}: unreadable (not a JSON object); remove it to continue")
    for k, v in what.items():
        if k in had and had[k] != v:
            flag = {"table": "--variational", "held_out": "--held-out", "steps": "--steps or --epochs"}.get(k, f"--{k}")
            raise UsageError(f"compare --resume: {out} holds a comparison with {k} {had[k]!r}, this one has {v!r} "
                             f"({flag}); use another --out")


def check_keys_read(configs: dict, given: dict[str, str]) -> None:
    """Refuse a key the user gave that no method of this comparison reads (gon.step_size is read by the GON
    methods alone, and is fine beside ae)."""
    unread = [unread_keys(cfg, given) for cfg in configs.values()]
    never = [k for k in unread[0] if all(k in u for u in unread)]
    if never:
        raise UsageError(f"{given[never[0]]}: {unread[0][never[0]]}")


def default_methods(decoder: str, variational: bool) -> list[str]:
    table = 2 if variational else 1
    return [k for k, v in registry.methods().items() if v.table == table and _runs_with(v, decoder)]


def _runs_with(spec, decoder: str) -> bool:
    return spec.decoders is None or decoder in spec.decoders


def run_config(dataset: str, method: str, seed: int, flags: dict[str, Any], sets=()):
    """The resolved config of one (method, seed) run."""
    from .config import resolve
    f = {**flags, "train.seed": seed, **registry.methods()[method].overrides}  # conv runs take the config's conv: section
    f.setdefault("train.encode", "subset")  # the paper's step (and the only one GLO and the encoders can take)
    return resolve("images", dataset, None, f, sets)


def check_out(out: Path, resume: bool) -> Path:
    """OUT must be a folder that is empty, absent, or (with resume) a comparison to continue."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out}: is not a directory (--out names a comparison folder)")
    if out.is_dir() and any(out.iterdir()) and not resume:
        raise UsageError(f"{out}: not empty (pass --resume to continue that comparison, or choose another --out)")
    return out


def budget(steps: int | None, epochs: float | None, n_train: int, batch_size: int) -> int:
    """Training steps from --steps, or from --epochs: passes over the training split at the batch size (rounded
    up: the last epoch is trained whole)."""
    if (steps is None) == (epochs is None):
        raise UsageError("compare: give --steps N or --epochs N, not both and not neither")
    if steps is not None:
        return steps
    if isinstance(epochs, bool) or not isinstance(epochs, (int, float)) or not 0 < epochs < math.inf:
        raise UsageError(f"compare --epochs {epochs}: must be a number above 0")
    steps = max(1, math.ceil(epochs * n_train / batch_size))
    check_counts(steps=steps)  # --epochs too large is refused as a --steps of that size would be
    return steps


def compare(dataset: str, out: Path, methods: list[str], seeds: int, steps: int | None, decoder: str = "conv",
            variational: bool = False, resume: bool = False, flags: dict[str, Any] | None = None,
            sets=(), val_every: int | None = None, val_samples: int = 256, held_out: int | None = None,
            log=None, epochs: float | None = None) -> dict[str, Any]:
    """Train every (method, seed) for `steps` (or `epochs` of the training split), score each on the whole
    held-out split and on as many training images, write the table and the curves."""
    log = log or (lambda s: print(s, file=sys.stderr))
    methods = plan(methods, decoder, variational)
    check_counts(seeds=seeds, steps=steps, val_every=val_every, val_samples=val_samples, held_out=held_out)
    check_sets(sets)
    out = check_out(Path(out), resume)
    base = {**(flags or {}), "model.decoder": decoder, "train.val_samples": val_samples}
    train_sig, val_sig, steps, bs = data_and_budget(dataset, methods[0], base, sets, steps, epochs)
    every = val_every or max(1, steps // 10)
    # a checkpoint at each curve point: a run the divergence guard stops keeps its folder (the last good
    # checkpoint and its curve up to the stop) instead of losing it with no checkpoint written
    base.update({"train.steps": steps, "train.val_every": every, "train.ckpt_every": every})
    configs = {m: run_config(dataset, m, 0, base, sets) for m in methods}  # every method checked before training
    check_keys_read(configs, given_keys(flags, sets))
    check_decoders(configs, train_sig)
    n_val = min(held_out or len(val_sig), len(val_sig))  # the final score's held-out images: the first n_val
    n_fit = min(n_val, len(train_sig))  # training images scored the same way: the train-test gap (Fig. 2c)
    out.mkdir(parents=True, exist_ok=True)  # only now: a refused comparison leaves no folder behind
    check_manifest(out, {"dataset": dataset, "decoder": decoder, "table": 2 if variational else 1,
                         "held_out": n_val, "steps": steps},
                   {"epochs": steps * bs / len(train_sig), "epochs_asked": epochs, "batch_size": bs,
                    "train_samples": len(train_sig)})
    metric = "bits_per_dim" if variational else "sse"
    config = functools.partial(run_config, dataset, flags=base, sets=sets)  # (method, seed) -> its Config
    runs = [(m, s) for m in methods for s in range(seeds)]
    results, stopped = train_all(out, runs, config, resume, Scoring(train_sig, val_sig, n_fit, n_val, log), metric)
    table = None
    if results:
        table = summarise(results, dataset, decoder, metric, steps, seeds, len(train_sig), n_val, bs)
        table = write_table(out, {**table, "stopped": stopped}, results)
    refuse_stopped(stopped, len(runs), table is not None)
    return table


def check_decoders(configs: dict, sig) -> None:
    """Each method's decoder built for the data, on torch's meta device (nothing allocated), before OUT is made:
    the conv GON refuses the digits' 8 px there, not after OUT/comparison.json was written (a folder that then
    refused every command but --resume with the same decoder)."""
    from .api import make_decoder
    meta = {**sig.meta(), "coord_dim": sig.coord_dim, "out_dim": sig.out_dim}
    for cfg in configs.values():
        with torch.device("meta"):
            make_decoder(cfg, meta)


def refuse_stopped(stopped: list[dict[str, Any]], runs: int, written: bool) -> None:
    """One line (exit 1) when the divergence guard stopped any run, after the table of the others is written."""
    if stopped:
        first = stopped[0]
        raise GONError(f"compare: {len(stopped)} of {runs} runs stopped by the divergence guard, first "
                       f"{first['method']} seed {first['seed']} ({first['why']}); "
                       + ("table.md lists them apart from the others" if written else "no run finished, so no table")
                       + "; to train through a slow rise, continue them with --resume --set train.drift_factor=0")


def data_and_budget(dataset: str, method: str, base: dict[str, Any], sets, steps: int | None,
                    epochs: float | None):
    """(training signal, held-out signal, steps, batch size): the first method's config gives the data and the
    batch size, which --epochs needs to become steps."""
    from .plugins import signal_adapter
    task_signal = signal_adapter("images").task_signal
    probe = run_config(dataset, method, 0, base, sets)
    train_sig = task_signal(probe.data, "reconstruct", "train")
    val_sig = task_signal(probe.data, "reconstruct", "test", notes=False)
    return train_sig, val_sig, budget(steps, epochs, len(train_sig), probe.train.batch_size), probe.train.batch_size


def train_all(out: Path, runs: list[tuple[str, int]], config, resume: bool, sc: Scoring,
              metric: str) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Train and score each (method, seed) of runs in turn with config(method, seed), a line logged per run:
    per method, its rows (methods with a finished run), and the runs the divergence guard stopped. A stopped run
    is a finding about its method (the paper's detach rises slowly at its 500 epochs), not the end of the others."""
    from .guard import Diverged
    results: dict[str, list[dict[str, Any]]] = {m: [] for m, _ in runs}
    stopped: list[dict[str, Any]] = []
    t_all = time.perf_counter()
    for k, (m, s) in enumerate(runs, 1):
        tag = f"[{k}/{len(runs)}] {m} seed {s}"
        try:
            row = train_one(out / f"{m}-s{s}", m, config(m, s), resume, sc, tag)
        except Interrupted as e:  # the comparison goes on with --resume, not a fit of its member
            raise rundir.interrupted(out / f"{m}-s{s}", e.code - 128, "the same `implicit-gon compare` command and "
                                     "--resume (runs that finished are kept)") from None
        except Diverged as e:
            stopped.append({"method": m, "seed": s, "why": str(e)})
            sc.log(f"{tag}: {e}; left out of the table")
            continue
        results[m].append(row)
        sc.log(f"{tag}: held-out {metric} {row[metric]:.4g}, training split {row['train'][metric]:.4g} "
               f"({row['seconds']:.0f} s; {time.perf_counter() - t_all:.0f} s so far)")
    return {m: rs for m, rs in results.items() if rs}, stopped


def write_table(out: Path, table: dict[str, Any], results) -> dict[str, Any]:
    """OUT/table.json, table.md and curves.png of a summarised comparison."""
    curves = load_curves(out, results, table["metric"])
    table["curves"] = {m: {"steps": c["steps"], "mean": c["mean"]} for m, c in seed_bands(curves).items()}
    write_json(out / "table.json", table)
    write_text(out / "table.md", markdown(table))
    plot_curves(curves, table["metric"], out / "curves.png", f"{table['dataset']}, {table['decoder']} decoder",
                table["reference"])
    return table


class Scoring(NamedTuple):
    """What every run of a comparison is scored on: the first n_val held-out images and the first n_fit
    training images, each encoded as at test time (the training split's score gives the train-test gap)."""
    train: Any
    val: Any
    n_fit: int
    n_val: int
    log: Any


def train_one(run: Path, method: str, cfg, resume: bool, sc: Scoring, tag: str) -> dict[str, Any]:
    """One (method, seed): trained (or, with resume, its finished run reused) and scored; its row is kept in
    run/compare.json."""
    from .train import evaluate
    done = run / "compare.json"
    row = finished_row(run, method, cfg.train.seed, "bits_per_dim" if trains_elbo(cfg) else "sse") \
        if resume else None
    if row is not None:
        check_finished(run, cfg)
        if (row.get("train") or {}).get("n") == sc.n_fit:
            sc.log(f"{tag}: finished earlier, skipped")
            return row
        from .api import GON  # finished before compare scored the training split: score it now
        gon = GON.load(run, cfg.train.device)
        sc.log(f"{tag}: finished earlier, skipped; scoring its training split")
    else:
        t0 = time.perf_counter()
        gon = train_run(run, cfg, resume, sc, tag)
        seconds = time.perf_counter() - t0
        row = {"method": method, "seed": cfg.train.seed, "steps": gon.step,
               "train_seconds": gon.train_state.get("elapsed", seconds), "seconds": seconds,
               "parameters": parameters(gon.model),
               **evaluate(gon, sc.val, torch.arange(sc.n_val), cfg.train.batch_size)}
    row["train"] = evaluate(gon, sc.train, torch.arange(sc.n_fit), cfg.train.batch_size)
    write_json(done, row)
    return row


def train_run(run: Path, cfg, resume: bool, sc: Scoring, tag: str):
    """A new run; or, with resume, one that a kill, Ctrl-C or the divergence guard left unfinished, continued from
    its last checkpoint (compare checkpoints at every curve point), as `fit --resume` would: the steps are those of
    an uninterrupted run. Its config must be the one this comparison gives it, as for a finished run."""
    from .checkpoint import CKPT
    from .train import fit, train
    if resume and (run / CKPT).is_file():
        from .api import GON
        check_finished(run, cfg)
        gon, opt_state = GON.load(run, cfg.train.device, with_optimizer=True)
        if opt_state is not None:  # at its last step (killed while scored), train() only ends it
            sc.log(f"{tag}: continued from step {gon.step} of {cfg.train.steps} ...")
            gon.cfg = cfg  # the same run; the guard's thresholds as asked now (check_finished)
            train(gon, sc.train, run, sc.val, optimizer_state=opt_state, progress=False)
            return gon
    sc.log(f"{tag}: {cfg.train.steps} steps ...")
    return fit(sc.train, cfg, run, sc.val, progress=False, overwrite=True)


def finished_row(run: Path, method: str, seed: int, metric: str) -> dict[str, Any] | None:
    """RUN/compare.json of a finished run, checked (an object naming this method and seed, with a finite held-out
    score and step count); None when the run is not finished: no record, or its checkpoint is gone (it is trained
    again). A record that is there but not valid (truncated, a list, NaN, no score) is one line naming it."""
    from .checkpoint import CKPT
    done = run / "compare.json"
    if not done.is_file() or not (run / CKPT).is_file():
        return None
    try:
        row = jsonio.read(done)
    except (OSError, ValueError) as e:
        raise GONError(f"{done}: unreadable ({str(e).splitlines()[0]}); remove {run} to train it again") from None
    bad = None if isinstance(row, dict) else "not a JSON object"
    if bad is None and (row.get("method") != method or row.get("seed") != seed):
        bad = f"it records method {row.get('method')!r:.20} seed {row.get('seed')!r:.10}"
    for key in (metric, "steps", "seconds", "parameters"):
        v = None if bad else row.get(key)
        if bad is None and (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)):
            bad = f"{key} = {v!r:.20} is not a finite number"
    if bad:
        raise GONError(f"{done}: not a finished run's record ({bad}); remove {run} to train it again")
    train = row.get("train")
    if not (isinstance(train, dict) and isinstance(train.get("n"), int) and _number(train.get(metric))):
        row.pop("train", None)  # its training-split score is scored again
    return row


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def parameters(model) -> int:
    """Trainable parameters of the networks (decoder, encoder, heads), not GLO's per-image latents; a tied
    encoder's shared weights count once."""
    glo = getattr(model, "glo", None)
    skip = {id(p) for p in glo.parameters()} if glo is not None else set()
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if id(p) not in skip)


def _mean_std(v: list[float]) -> tuple[float, float]:
    m = sum(v) / len(v)
    sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
    return m, sd


def paired(rs: list[dict], ref: list[dict], metric: str) -> dict[str, Any] | None:
    """method - reference on the same seeds (the same decoder initialisation and batches): mean, std, n. The
    seeds' spread is mostly shared by every method, so the paired difference is the sharper comparison."""
    by_seed = {r["seed"]: r[metric] for r in ref}
    d = [r[metric] - by_seed[r["seed"]] for r in rs if r["seed"] in by_seed]
    if not d:
        return None
    mean, sd = _mean_std(d)
    return {"mean": mean, "std": sd, "n": len(d)}


def summarise(results, dataset, decoder, metric, steps, seeds, n_train, n_val, batch_size=None) -> dict[str, Any]:
    """The table: per method our mean and spread over seeds, the same-seed difference from the reference, the
    training split's score and the gap to the held-out one, the paper's figure and ours over it; the paper's
    ordering checked against ours, and its train-test gap claim (Appendix E, Fig. 2c)."""
    variational = metric == "bits_per_dim"
    ref = "vgon" if variational else "gon"
    rows = {m: _row(rs, results.get(ref), m == ref, metric, steps, paper_tables.figure(dataset, m, variational))
            for m, rs in results.items()}
    paper = {m: r["paper"] for m, r in rows.items() if r["paper"] is not None}
    return {"dataset": dataset, "decoder": decoder, "metric": metric, "steps": steps, "seeds": seeds,
            "train_samples": n_train, "held_out_samples": n_val, "batch_size": batch_size,
            "epochs": steps * batch_size / n_train if batch_size else None,
            "reference": ref if ref in results else None, "methods": rows,
            "ordering": paper_tables.ordering({m: r["mean"] for m, r in rows.items()}, paper),
            "gap_claim": gap_claim(rows), "paper_source": paper_tables.SOURCE}


def _row(rs: list[dict], ref_rs, is_ref: bool, metric: str, steps: int, paper) -> dict[str, Any]:
    """One method's row from its runs' records (rs: one per seed)."""
    vals = [r[metric] for r in rs]
    mean, sd = _mean_std(vals)
    trained = [r for r in rs if r.get("train")]  # runs that scored the training split
    train = _mean_std([r["train"][metric] for r in trained]) if trained else None
    gap = _mean_std([r[metric] - r["train"][metric] for r in trained]) if trained else None
    return {"mean": mean, "std": sd, "per_seed": vals, "steps": steps,
            "seconds": _mean_std([r["seconds"] for r in rs])[0], "parameters": rs[0]["parameters"],
            "minus_reference": paired(rs, ref_rs, metric) if ref_rs and not is_ref else None,
            "train": None if train is None else {"mean": train[0], "std": train[1], "n": trained[0]["train"]["n"]},
            "gap": None if gap is None else {"mean": gap[0], "std": gap[1], "n": len(trained)},
            "paper": paper, "ours_over_paper": mean / paper["mean"] if paper else None}


GON_LIKE, AE_LIKE = ("gon", "gon-10", "vgon"), ("ae", "tied-ae", "vae")


def gap_claim(rows: dict[str, dict]) -> dict[str, Any] | None:
    """The paper's Appendix E / Fig. 2c: the held-out less training-split loss is smaller for GONs than for
    autoencoders of the same decoder. Every (GON, autoencoder) pair with gaps: whether it holds for each."""
    gaps = {m: r["gap"]["mean"] for m, r in rows.items() if r.get("gap")}
    pairs = [[g, a, gaps[g] < gaps[a]] for g in GON_LIKE if g in gaps for a in AE_LIKE if a in gaps]
    return {"gaps": gaps, "pairs": pairs, "holds": all(p[2] for p in pairs)} if pairs else None


def _pm(sd: float, n: int) -> str:
    return f" ± {sd:.2g}" if n > 1 else ""


def _cells(r: dict[str, Any], ref: str | None, seeds: int) -> str:
    """One method's markdown cells after its name."""
    d, tr, gap, p = r.get("minus_reference"), r.get("train"), r.get("gap"), r.get("paper")
    diff = "" if not ref else "— | " if d is None else f"{d['mean']:+.3g}{_pm(d['std'], d['n'])} | "
    train = "—" if tr is None else f"{tr['mean']:.4g}{_pm(tr['std'], seeds)}"
    gap_s = "—" if gap is None else f"{gap['mean']:+.3g}{_pm(gap['std'], gap['n'])}"
    paper = "n/a" if p is None else f"{p['mean']:g}" + (f" ± {p['std']:g}" if p.get("std") else "")
    ratio = "—" if r.get("ours_over_paper") is None else f"{r['ours_over_paper']:.3g}"
    return (f"{r['mean']:.4g}{_pm(r['std'], len(r['per_seed']))} | {', '.join(f'{v:.4g}' for v in r['per_seed'])} | "
            f"{diff}{train} | {gap_s} | {r['steps']} | {r['seconds']:.0f} | {r['parameters']:,} | {paper} | {ratio} |")


def markdown(t: dict[str, Any]) -> str:
    unit = "bits/dim" if t["metric"] == "bits_per_dim" else "SSE per image"
    table_no = 2 if t["metric"] == "bits_per_dim" else 1
    ref, first = t.get("reference"), next(iter(t["methods"].values()))
    ep = t.get("epochs")
    epochs = f" ({ep:.3g} epoch{'' if ep == 1 else 's'} at batch {t['batch_size']})" if ep else ""
    paper_epochs = f", {first['paper']['epochs']} epochs" if first.get("paper") else ""
    n_fit = next((r["train"]["n"] for r in t["methods"].values() if r.get("train")), 0)
    lines = [f"{t['dataset']}, {t['decoder']} decoder: held-out {unit} ({t['held_out_samples']} images, "
             f"{t['train_samples']} trained on), {t['steps']} steps{epochs}, {t['seeds']} seed"
             f"{'s' if t['seeds'] != 1 else ''}", "",
             f"| method | {unit} ({'mean ± std' if t['seeds'] > 1 else 'one seed'}) | per seed | "
             + (f"minus {ref}, same seed | " if ref else "") + f"training split ({n_fit} images) | gap | steps | "
             f"seconds | parameters | paper (Table {table_no}{paper_epochs}) | ours / paper |",
             "|---" * (11 if ref else 10) + "|"]
    lines += [f"| {m} | {_cells(r, ref, t['seeds'])}" for m, r in t["methods"].items()]
    if ref:
        lines += ["", f"minus {ref}: the method's figure less {ref}'s on the same seed (the same decoder "
                      "initialisation and batches)" + (", mean ± std over seeds." if t["seeds"] > 1 else ".")]
    lines += ["", "training split: the first training images, each encoded as the held-out ones are; gap: held-out "
              "less training split, same seed.", "", *stopped_lines(t), *claims(t, table_no), *along_training(t),
              f"Paper: {t['paper_source']}", ""]
    return "\n".join(lines)


def stopped_lines(t: dict[str, Any]) -> list[str]:
    """The runs the divergence guard stopped (left out of the rows above), as markdown lines."""
    stopped = t.get("stopped") or []
    if not stopped:
        return []
    return ["Stopped by the divergence guard, left out of the rows above (each run's folder keeps its curve and "
            "its last good checkpoint):", "", *(f"- {r['method']} seed {r['seed']}: {r['why']}" for r in stopped), ""]


def claims(t: dict[str, Any], table_no: int) -> list[str]:
    """The paper's ordering and its train-test gap claim, checked against this table, as markdown lines."""
    lines, o, g = [], t.get("ordering"), t.get("gap_claim")
    if o and o["holds"] is not None:
        verdict = "holds" if o["holds"] else "does not hold: " + ", ".join(f"{w} before {b}" for b, w in o["disagree"])
        lines.append(f"The paper's order (Table {table_no}, {t['dataset']}, best first): {' < '.join(o['paper'])}; "
                     f"ours: {' < '.join(o['ours'])}. The paper's order {verdict} ({len(o['agree'])} of "
                     f"{len(o['agree']) + len(o['disagree'])} pairs it tells apart agree).")
    if g:
        verdict = "holds" if g["holds"] else "does not hold"
        pairs = ", ".join(f"{a} {g['gaps'][a]:+.3g} {'<' if ok else '≥'} {b} {g['gaps'][b]:+.3g}" for a, b, ok in g["pairs"])
        lines.append(f"Train-test gap smaller for GON than for the autoencoders (Appendix E, Fig. 2c): {verdict} "
                     f"({pairs}).")
    return [*lines, ""] if lines else []


def load_curves(out: Path, results, metric: str) -> dict[str, dict[int, tuple[list[int], list[float]]]]:
    """Per method, per seed, its held-out curve (steps, values) from the run's metrics.jsonl, read once."""
    return {m: {r["seed"]: curve(out / f"{m}-s{r['seed']}", metric) for r in rs} for m, rs in results.items()}


def seed_bands(curves: dict[str, dict[int, tuple[list[int], list[float]]]]) -> dict[str, dict[str, list]]:
    """Per method with points, at the steps all its seeds have: the mean over seeds, the lowest and the highest."""
    bands = {}
    for m, by_seed in curves.items():
        steps = sorted(set.intersection(*(set(c[0]) for c in by_seed.values())))
        cols = [[dict(zip(*c))[s] for c in by_seed.values()] for s in steps]  # (steps, seeds)
        if cols:
            bands[m] = {"steps": steps, "mean": [sum(c) / len(c) for c in cols],
                        "min": [min(c) for c in cols], "max": [max(c) for c in cols]}
    return bands


def along_training(t: dict[str, Any], fractions=(0.1, 0.25, 0.5, 0.75, 1.0)) -> list[str]:
    """A markdown table of the mean curves at the steps nearest these fractions of the last: where methods cross."""
    curves = t.get("curves") or {}
    steps = sorted(set.intersection(*(set(c["steps"]) for c in curves.values()))) if curves else []
    if not steps:
        return []
    picked = sorted({min(steps, key=lambda s: abs(s - f * steps[-1])) for f in fractions})
    lines = [f"Held-out {'bits/dim' if t['metric'] == 'bits_per_dim' else 'SSE'} along training (the first "
             f"val_samples held-out images, mean over seeds):", "",
             "| method | " + " | ".join(f"step {s}" for s in picked) + " |", "|---" * (len(picked) + 1) + "|"]
    for m, c in curves.items():
        at = dict(zip(c["steps"], c["mean"]))
        lines.append(f"| {m} | " + " | ".join(f"{at[s]:.4g}" for s in picked) + " |")
    return lines + [""]


def curve(run: Path, metric: str) -> tuple[list[int], list[float]]:
    """(steps, held-out metric) from a run's metrics.jsonl."""
    steps, vals = [], []
    for row in jsonio.iter_lines(run / "metrics.jsonl"):
        v = row.get(f"val_{metric}") if isinstance(row, dict) else None
        if _number(v) and _number(row.get("step")):
            steps.append(row["step"])
            vals.append(v)
    return steps, vals


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def paired_curves(curves, ref: str) -> dict[str, dict[str, list]]:
    """Per method but ref, its held-out curve less ref's on the same seed, step by step: mean, lowest, highest.
    The seeds' spread is mostly shared by every method (the same initialisation and batches), so this shows
    where methods really part, which the bands of the raw curves hide."""
    refs = {seed: dict(zip(*c)) for seed, c in curves.get(ref, {}).items()}

    def less_ref(seed: int, steps: list[int], vals: list[float]) -> tuple[list[int], list[float]]:
        pairs = [(s, v - refs[seed][s]) for s, v in zip(steps, vals) if s in refs[seed]]
        return [s for s, _ in pairs], [d for _, d in pairs]

    diffs = {m: {seed: less_ref(seed, *c) for seed, c in by_seed.items() if seed in refs}
             for m, by_seed in curves.items() if m != ref}
    return seed_bands({m: d for m, d in diffs.items() if d})


def plot_curves(curves, metric: str, path: Path, title: str, ref: str | None = None) -> None:
    """Held-out metric against step, log scale: the mean over seeds, a band from the lowest to the highest; with
    ref, a second panel of each method less ref on the same seed."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diffs = paired_curves(curves, ref) if ref else {}
    fig, axes = plt.subplots(1, 2 if diffs else 1, figsize=(12.0 if diffs else 6.4, 4.2), squeeze=False)
    unit = "bits/dim" if metric == "bits_per_dim" else "SSE per image"
    ax = axes[0, 0]
    for m, b in seed_bands(curves).items():
        ax.plot(b["steps"], b["mean"], label=m, color=_colour(m, curves))
        ax.fill_between(b["steps"], b["min"], b["max"], alpha=0.2, color=_colour(m, curves))
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel(f"held-out {unit}")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    if diffs:
        _plot_paired(axes[0, 1], diffs, curves, ref, unit)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _colour(m: str, curves) -> str:
    """The same colour for a method in both panels: its place among the compared methods."""
    return f"C{list(curves).index(m) % 10}"


def _plot_paired(ax, diffs, curves, ref: str, unit: str) -> None:
    for m, d in diffs.items():
        ax.plot(d["steps"], d["mean"], label=m, color=_colour(m, curves))
        ax.fill_between(d["steps"], d["min"], d["max"], alpha=0.2, color=_colour(m, curves))
    ax.axhline(0.0, color=_colour(ref, curves), lw=1.0, label=ref)
    ax.set_yscale("symlog", linthresh=1.0 if unit.startswith("SSE") else 0.01)
    ax.set_xlabel("step")
    ax.set_ylabel(f"held-out {unit}, less {ref}'s (same seed)")
    ax.set_title(f"each method less {ref} (below 0: better than {ref})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
