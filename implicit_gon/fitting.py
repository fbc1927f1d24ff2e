"""`implicit-gon fit KIND`, for every registered signal adapter, from the command line or from Python.

An adapter (signals/base.py SignalAdapter) declares how a run is given its data (`fit_data`): a dataset's name
("dataset": data.dataset, its config configs/KIND/NAME.yaml) or files ("files": data.paths, --val's
data.val_paths, its config `default`), and makes the run's training and held-out Signals from the resolved config
(`fit_signals`). `fit_run` does the rest for every signal: it holds the run directory, resolves or resumes the
config, refuses settings the run would not read, holds out files for validation, trains and reports. The CLI's
fit commands (implicit_gon/commands) are built from the same declarations.

    from implicit_gon.fitting import fit_run
    fit_run("audio", "runs/speech", paths=["clips/"], flags={"train.steps": 500})  # `implicit-gon fit audio`
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import GONError, UsageError
from .fsio import path_list
from .plugins import signal_adapter
from .progress import say


@dataclass(frozen=True)
class FitOption:
    """An option of an adapter's own on its fit command (images: --source), beside the config fields' flags."""

    name: str
    """Its parameter name (the flag is --name, underscores as dashes)."""
    help: str
    type: Any = str


def absolute(path) -> str:
    """A path as the run records it: ~ expanded, made absolute, links resolved (a run moved or resumed from
    another folder still finds its data)."""
    return str(Path(path).expanduser().resolve())


def data_flags(kind: str, flags: dict, resume: bool, dataset: str | None = None, paths=None, val=None) -> str:
    """Put the data given (a dataset's name, or files and held-out files: lists of paths) into flags as settings
    (data.signal, data.dataset or data.paths and data.val_paths; a resumed run keeps its own); the name of the
    config the run starts from."""
    adapter = signal_adapter(kind)
    if adapter.fit_data == "dataset":
        flags["data.dataset"], flags["data.signal"] = dataset or (None if resume else adapter.dataset), kind
        return dataset or adapter.dataset
    given = [absolute(p) for p in path_list(paths or [], "paths")]
    what = adapter.files
    if not given and not resume:
        raise UsageError(f"fit {kind} needs {what}: --data PATH (files or folders)")
    if resume and (given or val):
        raise UsageError(f"fit {kind} --resume trains on the run's own {what}: leave out --data and --val")
    if given:
        flags["data.paths"] = given
    if val:
        flags["data.val_paths"] = [absolute(p) for p in path_list(val, "val")]
    flags["data.signal"] = kind
    return "default"


def fit_run(kind: str, out, *, dataset: str | None = None, paths=None, val=None, options: dict | None = None,
            config=None, flags: dict | None = None, sets=None, resume: bool = False, progress: bool = True) -> None:
    """Train (or with resume=True continue) the run in `out` on the data given, as `implicit-gon fit KIND` does:
    options the adapter's own fit options ({"source": "low-res:8"}), flags dotted settings (None: not given),
    sets `section.key=value` strings, config YAML files layered on the signal's config (the dataset's, or
    `default`). The run directory is held (a lock; Ctrl-C names the last checkpoint) from the first check to the
    last write; under torchrun rank 0 alone holds it."""
    from . import distributed, rundir
    adapter = _fit_adapter(kind, dataset, paths, val, options)
    for key, value in (("resume", resume), ("progress", progress)):
        if not isinstance(value, bool):  # "no" was taken as true
            raise UsageError(f"fit_run {key} = {value!r:.40}: True or False")
    out, flags = rundir.check_out(out), dict(flags or {})
    _refuse_given_twice(flags, sets, {key: name for name, value in (options or {}).items()
                                      for key in adapter.fit_flags({name: value})})
    name = data_flags(kind, flags, resume, dataset, paths, val)
    flags.update(adapter.fit_flags(options or {}))
    dist = distributed.from_env(flags.get("train.device") or "auto")  # one process unless launched by torchrun
    if not dist.main:
        _fit_in_run(kind, name, config, flags, out, resume, progress, sets, dist)
    else:
        if not resume:  # before the lock: a refused folder is left as it was (no .lock in it)
            rundir.check_new(rundir.check_out(out))
        with rundir.session(rundir.check_out(out)):
            _fit_in_run(kind, name, config, flags, out, resume, progress, sets, dist)
    distributed.leave(dist)  # rank 0 after its lock is released


DATA_KEYS = ("data.signal", "data.dataset", "data.paths", "data.val_paths")
"""Settings the fit command makes from the data it is given (fit KIND, --dataset, --data, --val)."""


def _refuse_given_twice(flags: dict, sets, own: dict[str, str]) -> None:
    """The data's settings come from the data given, a fit option's from that option: given again as a setting
    (`--set data.dataset=...`, flags={"data.paths": ...}), one silently won (fit_run trained on digits, its
    default, with flags={"data.dataset": "fashion-mnist"})."""
    from .config import parse_sets
    given = [k for k, v in flags.items() if v is not None] + list(parse_sets(sets or ()))
    for key in given:
        if key in DATA_KEYS:
            raise UsageError(f"{key}: set by the data the run is given (the command's signal, --dataset, --data, "
                             f"--val; in Python kind, dataset=, paths=, val=), not as a setting")
        if key in own:  # own: {setting: the fit option that makes it}
            raise UsageError(f"{key}: given by the fit option {own[key]} (--{own[key].replace('_', '-')}; in Python "
                             f"options=) and again as a setting: give it once")


def _fit_adapter(kind: str, dataset, paths, val, options: dict | None):
    """The adapter for kind, refusing what its fit command has no flag for (the CLI's `fit audio --dataset mnist`
    is click's "No such option"; fit_run trained on the clips and dropped dataset= silently)."""
    from .plugins import fit_kinds
    if not isinstance(kind, str) or kind not in fit_kinds():
        raise UsageError(f"fit_run kind = {kind!r:.40}: not a signal that fits (registered: {', '.join(fit_kinds())})")
    adapter = signal_adapter(kind)
    data = {"dataset": dataset is not None, "paths": bool(paths), "val": bool(val)}
    unused = [k for k, given in data.items() if given and (k == "dataset") != (adapter.fit_data == "dataset")]
    if unused:
        takes = "dataset=" if adapter.fit_data == "dataset" else "paths= and val="
        raise UsageError(f"fit_run {unused[0]}=: not used for {kind} runs (they are given their data as {takes})")
    own = [o.name for o in adapter.fit_options]
    if options is not None and not isinstance(options, dict):
        raise UsageError(f"fit_run options = {options!r:.40}: a dict of the fit command's own options ({own})")
    for key in options or {}:
        if key not in own:
            raise UsageError(f"fit_run options={{{key!r:.40}: ...}}: not an option of {kind} runs (theirs: "
                             f"{', '.join(own) or 'none'})")
    return adapter


def _open_run(kind: str, name: str, config, flags: dict, out: Path, resume: bool, sets, dist):
    """(the resumed GON or None, its optimizer state, the run's config, what the resume changed): resume loads the
    run in out and layers the command line on its config; a new run resolves its config and refuses settings it
    would not read."""
    from . import GON, distributed, rundir
    from .checkpoint import CKPT
    from .config import check_given_keys, given_keys, resolve
    if flags.get("data.data_dir"):  # a resumed run takes it from here; a new one may also have it from a YAML file
        flags["data.data_dir"] = absolute(flags["data.data_dir"])
    if resume:
        if not (out / CKPT).is_file():
            raise GONError(f"{out}: nothing to resume (no {CKPT})")
        device = distributed.device_for(dist, flags.get("train.device") or "auto")
        gon, opt_state = GON.load(out, device, with_optimizer=True)
        if gon.meta.get("signal") != kind:  # before its config meets this command's data settings
            raise UsageError(f"{out}: holds a run of {gon.meta.get('signal')}, not {kind}: continue it with "
                             f"fit {gon.meta.get('signal')} --resume")
        changed = rundir.resume(gon, opt_state, out, config, flags, sets or ())
        return gon, opt_state, gon.cfg, changed
    if (out / CKPT).is_file():
        raise UsageError(f"{out}: already holds a run (pass --resume to continue it, or choose another --out)")
    cfg = resolve(kind, name, config, flags, sets or ())
    check_given_keys(cfg, given_keys(flags, sets))
    if cfg.data.data_dir:
        cfg.data.data_dir = absolute(cfg.data.data_dir)
    if signal_adapter(kind).fit_data == "files":
        hold_out(cfg)
    return None, None, cfg, {}


def _fit_in_run(kind: str, name: str, config, flags: dict, out: Path, resume: bool, progress: bool, sets,
                dist) -> None:
    from . import distributed, limits, rundir
    from .train import fit, train

    gon, opt_state, cfg, changed = _open_run(kind, name, config, flags, out, resume, sets, dist)
    if gon is not None and gon.step >= cfg.train.steps:  # finished: its last step is logged once, not again
        if dist.main:
            say(f"{out}: already trained to step {gon.step} (train.steps {cfg.train.steps}): nothing to do; "
                f"--steps N continues it to N")
        return distributed.shutdown(dist)
    limits.check_model(cfg.model, training=True, res=cfg.data.res)
    with dist.main_first():  # rank 0 builds any dataset cache; the others then memory-map it
        train_sig, val_sig = signal_adapter(kind).fit_signals(cfg)
    limits.check_training(cfg, train_sig)
    if cfg.train.val_every and val_sig is None:
        raise GONError(f"train.val_every = {cfg.train.val_every}: this run has no held-out data to validate on")
    if dist.main:
        procs = f", {dist.world} processes" if dist.active else ""
        device = device_name(str(gon.device) if gon else distributed.device_for(dist, cfg.train.device))
        say(f"fit {kind}: {len(train_sig)} training samples, device {device}{procs}, "
            f"steps {gon.step if gon else 0}->{cfg.train.steps}, run {out}")
    if gon is None:
        gon = fit(train_sig, cfg, out, val_sig, progress, dist=dist)
        final = gon.last_validation
    else:
        if dist.main:
            rundir.log_resume(out, gon.step, changed)
        final = train(gon, train_sig, out, val_sig, opt_state, progress, dist=dist)
    distributed.shutdown(dist)
    if dist.main:
        _report(gon, out, final)


def _report(gon, out: Path, final: dict) -> None:
    if gon.stop_reason:  # the budget or patience the user set: said, like the summary
        say(gon.stop_reason)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, float))
    say(f"done: {out}" + (f" (held out: {summary})" if summary else ""))


def hold_out(cfg) -> None:
    """A new files run validated during training (train.val_every) without --val: every tenth file of data.paths
    moves to data.val_paths, so the checkpoint's config records which files trained and which did not. With
    --val, a file both trained on and held out is refused."""
    adapter = signal_adapter(cfg.data.signal)
    find, what = adapter.find, adapter.files
    if cfg.data.val_paths:
        both = sorted(set(map(str, find(cfg.data.paths))) & set(map(str, find(cfg.data.val_paths))))
        if both:
            raise UsageError(f"{both[0]}: given both to train on (--data) and to hold out (--val)")
        return
    if not cfg.train.val_every:
        return
    train, held = _split(find(cfg.data.paths), what)
    cfg.data.paths, cfg.data.val_paths = [str(f) for f in train], [str(f) for f in held]
    say(f"note: holding out {len(held)} of {len(train) + len(held)} {what} for validation: "
        f"{', '.join(Path(f).name for f in held[:3])}{' ...' if len(held) > 3 else ''} (--val PATH to choose)")


def _split(files: list, what: str) -> tuple[list, list]:
    """(train, held out) of files in path order: every tenth (the 10th, 20th, ..., as image folders do); with 2 to
    9 files, the last one. Fewer than 2 cannot be split: a DataError asking for --val."""
    from .errors import DataError
    if len(files) < 2:
        raise DataError(f"validation needs held-out {what}, and {len(files)} cannot be split: give --val PATH "
                        f"(files or folders), or train on at least 2")
    held = [f for i, f in enumerate(files) if i % 10 == 9] or files[-1:]
    return [f for f in files if f not in held], held


def device_name(name: str) -> str:
    """The device `auto|cpu|cuda[:N]` resolves to, as torch names it with its index (cpu, cuda:0)."""
    import torch

    from .device import resolve_device
    dev = resolve_device(name)
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return str(dev)
