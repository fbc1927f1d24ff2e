"""implicit-gon: the command line, a thin layer over the Python API (one subcommand per verb)."""
from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import List, Optional

import typer

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, context_settings=CONTEXT,
                  help="Implicit Gradient Origin Networks: fit, evaluate, render, encode, sample, interpolate.")
fit_app = typer.Typer(no_args_is_help=True, context_settings=CONTEXT,
                      help="Train a GON on images, audio or signed distance fields.")
dataset_app = typer.Typer(no_args_is_help=True, context_settings=CONTEXT,
                          help="List image datasets and inspect one on disk.")
config_app = typer.Typer(no_args_is_help=True, context_settings=CONTEXT,
                         help="Show the resolved config of a dataset (defaults, its YAML, --config, --set).")
app.add_typer(fit_app, name="fit")
app.add_typer(dataset_app, name="dataset")
app.add_typer(config_app, name="config")

Opt = typer.Option
CONFIG_HELP = ("YAML layered on top of the dataset's shipped config (repeatable; later files win). "
               "`implicit-gon config show` prints the result.")
SET_HELP = "Any config field as section.key=value, applied last (repeatable), e.g. --set train.log_every=5."


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version
        try:
            print(f"implicit-gon {version('implicit-gon')}")
        except PackageNotFoundError:
            print("implicit-gon (not installed)")
        raise typer.Exit()


@app.callback()
def _root(show_version: bool = Opt(False, "--version", callback=_version, is_eager=True,
                                   help="Print the version and exit.")) -> None:
    """Implicit Gradient Origin Networks: fit, evaluate, render, encode, sample, interpolate."""


# ---------------------------------------------------------------------------------------------------------------
# fit
def _flags(**kw) -> dict:
    """CLI flags as dotted config keys (None: not given, so the YAML or default stands)."""
    keys = {"steps": "train.steps", "batch_size": "train.batch_size", "lr": "train.lr", "points": "train.points",
            "seed": "train.seed", "device": "train.device", "latent_dim": "model.latent_dim",
            "hidden": "model.hidden", "layers": "model.layers", "variational": "model.variational",
            "w0_first": "model.w0_first", "w0_hidden": "model.w0_hidden", "loss": "gon.loss",
            "step_size": "gon.step_size", "inner_steps": "gon.inner_steps", "detach": "gon.detach",
            "res": "data.res", "channels": "data.channels", "data_dir": "data.data_dir",
            "cache_dir": "data.cache_dir", "camera": "data.camera", "download": "data.download",
            "sample_rate": "data.sample_rate", "window": "data.window", "hop": "data.hop",
            "oversample": "data.oversample",
            "ckpt_every": "train.ckpt_every", "val_every": "train.val_every", "tensorboard": "train.tensorboard",
            "precision": "train.precision", "patience": "train.patience", "val_metric": "train.val_metric",
            "max_time": "train.max_time"}
    if kw.get("max_time") is not None:
        from implicit_gon.stopping import parse_duration
        kw["max_time"] = parse_duration(kw["max_time"])
    return {keys[k]: (str(v) if isinstance(v, Path) else v) for k, v in kw.items() if k in keys}


VAL_EVERY_HELP = "Score the held-out data every N steps; keeps RUN/best.safetensors (0: only at the end)."
PATIENCE_HELP = "Stop after this many held-out evaluations without improvement (needs --val-every; 0: never)."
VAL_METRIC_HELP = ("Held-out metric for best.safetensors and --patience (default auto: images sse, variational "
                   "bits_per_dim, audio snr_db, sdf chamfer_x1e3).")
MAX_TIME_HELP = "Wall-clock budget, e.g. 240s, 4m, 2h, 1h30m: stop, checkpoint, stay resumable (0: none)."
VAL_PATHS_HELP = ("Held-out {what} (files or folders, repeatable); without it, --val-every holds out every tenth "
                  "(with 2-9, the last).")
RESUMABLE = ("train.steps", "train.max_time", "train.patience", "train.precision")  # flags a --resume may change
RESUME_KEEPS = ("train.device", "data.signal", "data.dataset")  # where to run it, and what the verb names


def _run_fit(signal: str, name: str, config: Optional[List[Path]], flags: dict, out: Path, resume: bool,
             make_signals, progress: bool = True, sets: Optional[List[str]] = None, holdout=None) -> None:
    from implicit_gon import GON, distributed
    from implicit_gon.checkpoint import CKPT
    from implicit_gon.config import check_rules, merge, resolve
    from implicit_gon.errors import GONError
    from implicit_gon.train import fit, train

    dist = distributed.from_env(flags.get("train.device") or "auto")  # one process unless launched by torchrun
    if resume:
        if not (out / CKPT).is_file():
            raise GONError(f"{out}: nothing to resume (no {CKPT})")
        fixed = sorted(k for k, v in flags.items() if v is not None and k not in RESUMABLE + RESUME_KEEPS)
        if fixed or config or sets:
            raise GONError(f"fit --resume continues {out} with its own config: only --steps, --max-time, --patience, "
                           f"--precision and --device may be given (not {', '.join(fixed) or '--config / --set'})")
        device = distributed.device_for(dist, flags.get("train.device") or "auto")
        gon, opt_state = GON.load(out, device, with_optimizer=True)
        given = {k.split(".")[1]: flags[k] for k in RESUMABLE if flags.get(k) is not None}
        gon.cfg = check_rules(merge(gon.cfg, {"train": given}, "command line"))
    else:
        if (out / CKPT).is_file():
            raise GONError(f"{out}: already holds a run (pass --resume to continue it, or choose another --out)")
        cfg = resolve(signal, name, config, flags, sets or ())
        if cfg.data.data_dir:
            cfg.data.data_dir = str(Path(cfg.data.data_dir).expanduser().resolve())
        if holdout is not None:
            holdout(cfg)
        gon, opt_state = None, None
    cfg = gon.cfg if gon else cfg
    with dist.main_first():  # rank 0 builds any dataset cache; the others then memory-map it
        train_sig, val_sig = make_signals(cfg)
    if cfg.train.val_every and val_sig is None:
        raise GONError(f"train.val_every = {cfg.train.val_every}: this run has no held-out data to validate on")
    if dist.main:
        procs = f", {dist.world} processes" if dist.active else ""
        print(f"fit {signal}: {len(train_sig)} training samples, {cfg.train.device} device{procs}, "
              f"steps {gon.step if gon else 0}->{cfg.train.steps}, run {out}", file=sys.stderr)
    if gon is None:
        gon = fit(train_sig, cfg, out, val_sig, progress, dist)
        final = gon.last_validation
    else:
        final = train(gon, train_sig, out, val_sig, opt_state, progress, dist)
    distributed.shutdown(dist)
    if gon.stop_reason and dist.main:
        print(gon.stop_reason, file=sys.stderr)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, float))
    if dist.main:
        print(f"done: {out}" + (f" (held out: {summary})" if summary else ""), file=sys.stderr)


@fit_app.command("images")
def fit_images(
    dataset: str = Opt("digits", help="Dataset name (`implicit-gon dataset list`)."),
    data_dir: Optional[Path] = Opt(None, help="Where the dataset's files are."),
    out: Path = Opt(..., help="Run directory (checkpoints, metrics)."),
    config: Optional[List[Path]] = Opt(None, help=CONFIG_HELP),
    set_: Optional[List[str]] = Opt(None, "--set", help=SET_HELP),
    steps: Optional[int] = Opt(None), batch_size: Optional[int] = Opt(None), latent_dim: Optional[int] = Opt(None),
    hidden: Optional[int] = Opt(None), layers: Optional[int] = Opt(None),
    points: Optional[float] = Opt(None, help="Coordinates per step: fraction (<=1) or count."),
    lr: Optional[float] = Opt(None), seed: Optional[int] = Opt(None),
    precision: Optional[str] = Opt(None, help="fp32, bf16 or fp16 (autocast; float32 master weights)."),
    device: Optional[str] = Opt(None, help="auto, cpu or cuda."),
    res: Optional[int] = Opt(None, help="Training resolution (default: the dataset's)."),
    channels: Optional[int] = Opt(None), camera: Optional[str] = Opt(None, help="SmallNORB: left, right, both."),
    variational: Optional[bool] = Opt(None, "--variational/--no-variational", help="Variational GON (ELBO)."),
    download: Optional[bool] = Opt(None, "--download", help="Fetch the dataset if it is missing."),
    cache_dir: Optional[Path] = Opt(None), ckpt_every: Optional[int] = Opt(None),
    val_every: Optional[int] = Opt(None, help=VAL_EVERY_HELP), tensorboard: Optional[bool] = Opt(None, "--tensorboard"),
    resume: bool = Opt(False, "--resume", help="Continue the run in --out."),
    quiet: bool = Opt(False, "--quiet", help="No progress bar."),
    patience: Optional[int] = Opt(None, help=PATIENCE_HELP),
    val_metric: Optional[str] = Opt(None, help=VAL_METRIC_HELP),
    max_time: Optional[str] = Opt(None, help=MAX_TIME_HELP),
):
    """Train an implicit GON on an image dataset."""
    from signals import image_signal

    flags = _flags(**{k: v for k, v in locals().items() if k not in ("dataset", "out", "config", "resume", "quiet", "set_")})
    flags["data.dataset"], flags["data.signal"] = dataset, "images"

    def make(cfg):
        train_sig = image_signal(cfg.data, "train")
        val_sig = _maybe_test(cfg.data)
        return train_sig, val_sig
    _run_fit("images", dataset, config, flags, out, resume, make, not quiet, set_)


def _path_flags(flags: dict, paths, data, resume: bool, signal: str, what: str, val=None) -> None:
    """Files or folders given as arguments or --data, resolved, into data.paths (a resumed run keeps its own);
    --val likewise into data.val_paths."""
    given = [str(Path(p).expanduser().resolve()) for p in (paths or []) + (data or [])]
    if not given and not resume:
        raise _err(f"fit {signal} needs {what}: --data PATH (files or folders)")
    if resume and (given or val):
        raise _err(f"fit {signal} --resume trains on the run's own {what}: leave out --data and --val")
    if given:
        flags["data.paths"] = given
    if val:
        flags["data.val_paths"] = [str(Path(p).expanduser().resolve()) for p in val]
    flags["data.signal"] = signal


def _hold_out(cfg, find, what: str) -> None:
    """A new audio or SDF run validated during training (train.val_every) without --val: every tenth file of
    data.paths moves to data.val_paths, so the checkpoint's config records which files trained and which did not.
    With --val, a file both trained on and held out is refused."""
    from signals.base import hold_out
    if cfg.data.val_paths:
        both = sorted(set(map(str, find(cfg.data.paths))) & set(map(str, find(cfg.data.val_paths))))
        if both:
            raise _err(f"{both[0]}: given both to train on (--data) and to hold out (--val)")
        return
    if not cfg.train.val_every:
        return
    train, held = hold_out(find(cfg.data.paths), what)
    cfg.data.paths, cfg.data.val_paths = [str(f) for f in train], [str(f) for f in held]
    print(f"note: holding out {len(held)} of {len(train) + len(held)} {what} for validation: "
          f"{', '.join(Path(f).name for f in held[:3])}{' ...' if len(held) > 3 else ''} (--val PATH to choose)",
          file=sys.stderr)


@fit_app.command("audio")
def fit_audio(
    paths: Optional[List[Path]] = typer.Argument(None, help="Clips or folders (searched recursively)."),
    data: Optional[List[Path]] = Opt(None, "--data", help="Clip or folder (repeatable)."),
    out: Path = Opt(..., help="Run directory."),
    config: Optional[List[Path]] = Opt(None, help=CONFIG_HELP),
    set_: Optional[List[str]] = Opt(None, "--set", help=SET_HELP),
    sample_rate: Optional[int] = Opt(None, help="Rate the clips are resampled to."),
    window: Optional[float] = Opt(None, help="Window length in seconds."),
    hop: Optional[float] = Opt(None, help="Hop between windows in seconds (default: half a window)."),
    oversample: Optional[int] = Opt(None, help="Fit F between samples on a grid this many times finer (1: off)."),
    steps: Optional[int] = Opt(None), batch_size: Optional[int] = Opt(None), latent_dim: Optional[int] = Opt(None),
    hidden: Optional[int] = Opt(None), layers: Optional[int] = Opt(None), points: Optional[float] = Opt(None),
    lr: Optional[float] = Opt(None), seed: Optional[int] = Opt(None),
    precision: Optional[str] = Opt(None, help="fp32, bf16 or fp16 (autocast; float32 master weights)."),
    device: Optional[str] = Opt(None),
    w0_first: Optional[float] = Opt(None), channels: Optional[int] = Opt(None, help="1 mixes to mono."),
    variational: Optional[bool] = Opt(None, "--variational/--no-variational"),
    ckpt_every: Optional[int] = Opt(None),
    resume: bool = Opt(False, "--resume"), quiet: bool = Opt(False, "--quiet"),
    val: Optional[List[Path]] = Opt(None, "--val", help=VAL_PATHS_HELP.format(what="clips")),
    val_every: Optional[int] = Opt(None, help=VAL_EVERY_HELP), patience: Optional[int] = Opt(None, help=PATIENCE_HELP),
    val_metric: Optional[str] = Opt(None, help=VAL_METRIC_HELP), max_time: Optional[str] = Opt(None, help=MAX_TIME_HELP),
):
    """Train a GON over windows of audio clips."""
    import dataclasses
    from signals import audio

    flags = _flags(**{k: v for k, v in locals().items()
                      if k not in ("paths", "data", "out", "config", "resume", "quiet", "set_", "val")})
    _path_flags(flags, paths, data, resume, "audio", "clips", val)

    def make(cfg):
        held = dataclasses.replace(cfg.data, oversample=1)  # validation encodes and scores the samples only
        return (audio.load_signal(cfg.data.paths, cfg.data),
                audio.load_signal(cfg.data.val_paths, held) if cfg.data.val_paths else None)
    _run_fit("audio", "default", config, flags, out, resume, make, not quiet, set_,
             lambda cfg: _hold_out(cfg, audio.find_clips, "clips"))


@fit_app.command("sdf")
def fit_sdf(
    paths: Optional[List[Path]] = typer.Argument(None, help="Meshes or folders (searched recursively)."),
    data: Optional[List[Path]] = Opt(None, "--data", help="Mesh or folder (repeatable)."),
    out: Path = Opt(..., help="Run directory."),
    config: Optional[List[Path]] = Opt(None, help=CONFIG_HELP),
    set_: Optional[List[str]] = Opt(None, "--set", help=SET_HELP),
    samples: Optional[int] = Opt(None, help="SDF samples cached per mesh."),
    steps: Optional[int] = Opt(None), batch_size: Optional[int] = Opt(None), latent_dim: Optional[int] = Opt(None),
    hidden: Optional[int] = Opt(None), layers: Optional[int] = Opt(None), points: Optional[float] = Opt(None),
    lr: Optional[float] = Opt(None), seed: Optional[int] = Opt(None),
    precision: Optional[str] = Opt(None, help="fp32, bf16 or fp16 (autocast; float32 master weights)."),
    device: Optional[str] = Opt(None),
    loss: Optional[str] = Opt(None, help="clamped_l1 (DeepSDF's) or mse."),
    variational: Optional[bool] = Opt(None, "--variational/--no-variational"),
    ckpt_every: Optional[int] = Opt(None),
    resume: bool = Opt(False, "--resume"), quiet: bool = Opt(False, "--quiet"),
    val: Optional[List[Path]] = Opt(None, "--val", help=VAL_PATHS_HELP.format(what="meshes")),
    val_every: Optional[int] = Opt(None, help=VAL_EVERY_HELP), patience: Optional[int] = Opt(None, help=PATIENCE_HELP),
    val_metric: Optional[str] = Opt(None, help=VAL_METRIC_HELP), max_time: Optional[str] = Opt(None, help=MAX_TIME_HELP),
):
    """Train a GON over the signed distance functions of meshes."""
    from signals import sdf

    flags = _flags(**{k: v for k, v in locals().items()
                      if k not in ("paths", "data", "out", "config", "resume", "quiet", "samples", "set_", "val")})
    _path_flags(flags, paths, data, resume, "sdf", "meshes", val)
    if samples:
        flags["data.sdf_samples"] = samples

    def make(cfg):
        return (sdf.load_signal(cfg.data.paths, cfg.data),
                sdf.load_signal(cfg.data.val_paths, cfg.data, quiet=True) if cfg.data.val_paths else None)
    _run_fit("sdf", "default", config, flags, out, resume, make, not quiet, set_,
             lambda cfg: _hold_out(cfg, sdf.find_meshes, "meshes"))


def _maybe_test(data):
    from implicit_gon.errors import DataError
    from signals import image_signal
    try:
        return image_signal(data, "test")
    except DataError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# eval, render, encode
class Which(str, Enum):
    """Which of a run's checkpoints a verb loads."""
    last = "last"
    best = "best"


CHECKPOINT_HELP = ("last: the weights training ended with; best: RUN/best.safetensors, the best held-out score "
                   "(kept by fit --val-every).")


def _load(run: Path, device: str, which: Which = Which.last):
    from implicit_gon import GON
    return GON.load(run, device, which=Which(which).value)


def _image_split(gon, split: str, data_dir: Optional[Path]):
    """The run's dataset split at its training resolution (another --data-dir may be given)."""
    import dataclasses
    from signals import image_signal
    data = dataclasses.replace(gon.cfg.data, data_dir=str(data_dir) if data_dir else gon.cfg.data.data_dir)
    return image_signal(data, split, gon.meta["res"], gon.meta["channels"])


@app.command("eval")
def eval_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    paths: Optional[List[Path]] = typer.Argument(None, help="Audio clips or meshes to evaluate (default: training)."),
    data: Optional[List[Path]] = Opt(None, "--data", help="Audio clip or mesh, or a folder (repeatable)."),
    plot: Optional[Path] = Opt(None, help="Audio: spectrograms of original and reconstruction (PNG)."),
    data_dir: Optional[Path] = Opt(None, help="Dataset location (default: the run's)."),
    split: str = Opt("test", help="Split to evaluate."),
    n: Optional[int] = Opt(None, help="Evaluate the first n samples only."),
    batch_size: int = Opt(64), device: str = Opt("auto"),
    checkpoint: Which = Opt(Which.last, "--checkpoint", help=CHECKPOINT_HELP),
    as_json: bool = Opt(False, "--json", help="End with one JSON line."),
):
    """Encode held-out samples in one step and score the reconstructions (images: SSE per sample and PSNR;
    audio: SNR and PSNR; SDF: Chamfer distance and IoU)."""
    import torch
    from implicit_gon.train import evaluate

    gon = _load(run, device, checkpoint)
    given = list(data or []) + list(paths or [])
    if gon.meta["signal"] != "images":
        res = _signal_module(gon).evaluate_run(gon, given, plot=plot, batch_size=batch_size)
        return _report(res, as_json)
    sig = _image_split(gon, split, data_dir)
    idx = torch.arange(min(n, len(sig)) if n else len(sig))
    res = evaluate(gon, sig, idx, batch_size)
    res["split"] = split
    _report(res, as_json)


def _report(res: dict, as_json: bool) -> None:
    for k, v in res.items():
        if k == "shapes":
            for s in v:
                print("  " + "  ".join(f"{a}={b:.4g}" if isinstance(b, float) else f"{a}={b}" for a, b in s.items()))
            continue
        print(f"{k:>14}: {v:.6g}" if isinstance(v, float) else f"{k:>14}: {v}")
    if as_json:
        print(json.dumps(res))


@app.command("render")
def render_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    res: int = Opt(256, help="Output resolution (above the training one: super-resolution)."),
    n: int = Opt(16, help="Number of samples; 1 writes a single image, more a grid."),
    split: str = Opt("test"), data_dir: Optional[Path] = Opt(None),
    input_: Optional[Path] = Opt(None, "--input", help="Audio clip or mesh to encode and render."),
    index: Optional[int] = Opt(None, help="SDF: training shape to render."),
    sample_rate: Optional[int] = Opt(None, help="Audio: output rate (above the training rate: super-resolution)."),
    plot: Optional[Path] = Opt(None, help="Audio: spectrograms of original and rendering (PNG)."),
    hop: Optional[float] = Opt(None, help="Audio: hop between the encoded windows in seconds (default: an eighth "
                               "of a window; the overlapping renderings are cross-faded)"),
    out: Path = Opt(..., help="Output file: PNG (images, SDF) or WAV (audio)."), device: str = Opt("auto"),
    checkpoint: Which = Opt(Which.last, "--checkpoint", help=CHECKPOINT_HELP),
):
    """Encode samples in one step and render them at any resolution (images: the first n of a split; audio: a
    clip at any sample rate; SDF: a shaded picture of a shape)."""
    import torch
    from signals import images

    gon = _load(run, device, checkpoint)
    if gon.meta["signal"] != "images":
        return _signal_module(gon).render_run(gon, input_=input_, index=index, res=res, sample_rate=sample_rate,
                                              plot=plot, out=out, hop=hop)
    sig = _image_split(gon, split, data_dir)
    z = gon.encode_signal(sig, torch.arange(min(n, len(sig))))
    images.save_png(images.render(gon, z, res), out)
    print(f"wrote {out} ({min(n, len(sig))} x {res}x{res})", file=sys.stderr)


@app.command("encode")
def encode_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    inputs: List[Path] = typer.Argument(..., help="Image files."),
    out: Path = Opt(..., help="Output .npy: one latent row per input, in order."),
    batch_size: int = Opt(64), device: str = Opt("auto"),
    checkpoint: Which = Opt(Which.last, "--checkpoint", help=CHECKPOINT_HELP),
):
    """Encode images in one gradient step each."""
    import numpy as np
    from implicit_gon.fsio import atomic_path
    from signals import ImageSignal
    from signals.datasets import resize_square
    from signals.datasets.base import open_image

    gon = _load(run, device, checkpoint)
    if gon.meta["signal"] != "images":
        raise _err(f"{run}: encode takes images; for {gon.meta['signal']} runs use eval, render or export-mesh --input")
    mode = "L" if gon.meta["channels"] == 1 else "RGB"
    arrs = []
    for p in inputs:
        if not p.is_file():
            raise _err(f"{p}: file not found")
        a = np.asarray(open_image(p, p).convert(mode))
        arrs.append(resize_square(a[..., None] if a.ndim == 2 else a, gon.meta["res"], gon.meta["channels"]))
    z = gon.encode_signal(ImageSignal(np.stack(arrs)), batch_size=batch_size).cpu().numpy()
    with atomic_path(out) as tmp:
        np.save(tmp, z)
    print(f"wrote {out} {z.shape}", file=sys.stderr)


def _err(msg: str):
    from implicit_gon.errors import GONError
    return GONError(msg)


# ---------------------------------------------------------------------------------------------------------------
# sample, interpolate
def _refit(gon, run: Path, which: Which = Which.last) -> None:
    """Recompute the latent Gaussian from the training data and store it with the checkpoint it was loaded from."""
    from implicit_gon import checkpoint
    gon.fit_gaussian(_train_signal(gon))
    if Which(which) is Which.best:
        gon.save(run, name=checkpoint.BEST)
        return
    _, _, opt_state, _ = checkpoint.load(run)  # keep the Adam state so the run can still be resumed
    gon.save(run, opt_state)


def _train_signal(gon):
    if gon.meta["signal"] == "images":
        return _image_split(gon, "train", None)
    return _signal_module(gon).signal_for_run(gon, None)


def _signal_module(gon):
    import importlib
    return importlib.import_module(f"signals.{gon.meta['signal']}")


@app.command("sample")
def sample_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    n: Optional[int] = Opt(None, help="Number of samples (default 64; audio: 1 clip)."),
    seconds: Optional[float] = Opt(None, min=0.001, help="Audio: duration of each sampled clip (default 2)."),
    res: Optional[int] = Opt(None, help="Output resolution (images; default: the training one)."),
    temperature: float = Opt(1.0, help="Scale of the latent noise."),
    seed: int = Opt(0), refit: bool = Opt(False, "--refit", help="Refit the latent Gaussian first."),
    out: Path = Opt(..., help="Output file (PNG for images; audio: a .wav of the clips in sequence, or a folder)."), device: str = Opt("auto"),
    checkpoint: Which = Opt(Which.last, "--checkpoint", help=CHECKPOINT_HELP),
):
    """Draw samples: from N(0, I) for a variational run, else from the Gaussian fitted to the training latents."""
    from implicit_gon.device import make_generator
    from signals import images

    gon = _load(run, device, checkpoint)
    if refit:
        _refit(gon, run, checkpoint)
    gen = make_generator(seed)
    if seconds is not None and gon.meta["signal"] != "audio":
        raise _err(f"--seconds is for audio runs; this one is {gon.meta['signal']}")
    if gon.meta["signal"] == "audio":
        wrote = _signal_module(gon).sample(gon, n or 1, gen, temperature, out, seconds)
        print(f"wrote {wrote}", file=sys.stderr)
        return
    n = n or 64
    if gon.meta["signal"] != "images":
        return _signal_module(gon).sample(gon, n, gen, temperature, out)
    res = res or gon.meta["res"]
    values = gon.generate(n, images.grid(res), gen, temperature)
    images.save_png(images.to_uint8(values, res), out)
    print(f"wrote {out} ({n} samples, {res}x{res})", file=sys.stderr)


@app.command("interpolate")
def interpolate_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    pairs: int = Opt(4, help="Number of pairs of consecutive test samples (0-1, 2-3, ...)."),
    from_: Optional[str] = Opt(None, "--from", help="First end: a test index (images) or a file (audio, SDF)."),
    to: Optional[str] = Opt(None, "--to", help="Second end."),
    frames: int = Opt(8, help="Frames per pair, ends included."),
    res: Optional[int] = Opt(None, help="Output resolution (images; default: the training one)."),
    split: str = Opt("test"), data_dir: Optional[Path] = Opt(None),
    fps: int = Opt(15, help="Video frame rate."),
    out: Path = Opt(..., help="PNG grid (a row per pair), or .mp4/.gif video (frames per pair, pairs in turn); "
                    "audio: a .wav of the frames in sequence, or a folder (one WAV per frame)."),
    device: str = Opt("auto"),
    checkpoint: Which = Opt(Which.last, "--checkpoint", help=CHECKPOINT_HELP),
):
    """Morph between encoded samples by spherical interpolation of their latents (the paper's Figure 6)."""
    import torch
    from implicit_gon import slerp
    from implicit_gon.media import VIDEO_SUFFIXES, write_video
    from signals import images

    gon = _load(run, device, checkpoint)
    if frames < 2:
        raise _err(f"--frames {frames}: need at least 2 (the two ends)")
    if gon.meta["signal"] == "audio":
        print(f"wrote {_signal_module(gon).interpolate(gon, from_, to, frames, out)}", file=sys.stderr)
        return
    if gon.meta["signal"] != "images":
        return _signal_module(gon).interpolate(gon, from_, to, frames, out, fps=fps, res=res)
    sig = _image_split(gon, split, data_dir)
    if (from_ is None) != (to is None):
        raise _err("give both --from and --to, or neither")
    if from_ is not None and not (from_.isdigit() and to.isdigit()):
        raise _err(f"--from {from_} --to {to}: for an image run these are indices into the {split} split")
    ends = [(int(from_), int(to))] if from_ is not None else [(2 * i, 2 * i + 1) for i in range(pairs)]
    for i, j in ends:
        for k in (i, j):
            if not 0 <= k < len(sig):
                raise _err(f"index {k}: out of range for the {split} split ({len(sig)} samples)")
    z = gon.encode_signal(sig, torch.tensor([k for e in ends for k in e])).cpu()
    t = torch.linspace(0, 1, frames)
    path = torch.cat([slerp(z[2 * p], z[2 * p + 1], t) for p in range(len(ends))])  # (pairs * frames, K)
    res = res or gon.meta["res"]
    pics = images.render(gon, path, res)
    if out.suffix.lower() in VIDEO_SUFFIXES:
        write_video(pics, out, fps)
    else:
        images.save_png(pics, out, nrow=frames)
    print(f"wrote {out} ({len(ends)} pairs x {frames} frames, {res}x{res})", file=sys.stderr)


@app.command("export-mesh")
def export_mesh_cmd(
    run: Path = typer.Argument(..., help="Run directory of an SDF run."),
    index: Optional[int] = Opt(None, help="Training shape to export."),
    input_: Optional[Path] = Opt(None, "--input", help="A mesh the network never saw, encoded in one step."),
    res: int = Opt(256, help="Marching-cubes grid resolution (res^3, evaluated in slabs)."),
    fmt: Optional[str] = Opt(None, "--format", help="ply, obj, glb or stl (default: from --out)."),
    original_units: bool = Opt(False, "--original-units", help="Undo the normalisation into the unit sphere."),
    out: Path = Opt(..., help="Output mesh file."), device: str = Opt("auto"),
    checkpoint: Which = Opt(Which.last, "--checkpoint", help=CHECKPOINT_HELP),
):
    """Marching cubes over the network's signed distance field."""
    from signals import sdf
    gon = _load(run, device, checkpoint)
    if gon.meta["signal"] != "sdf":
        raise _err(f"{run}: export-mesh needs an SDF run (this one is {gon.meta['signal']})")
    mesh = sdf.export_mesh(gon, index, input_, res, fmt, original_units, out)
    print(f"wrote {out} ({len(mesh.vertices)} vertices, {len(mesh.faces)} faces)", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------
# datasets
@dataset_app.command("list")
def dataset_list():
    """The image datasets, their native resolution and whether they can be downloaded."""
    from signals.datasets import DATASETS
    print(f"{'name':<14}{'res':>5}{'ch':>4}  {'download':<9} formats")
    for d in DATASETS.values():
        print(f"{d.name:<14}{d.res:>5}{d.channels:>4}  {'yes' if d.downloads else 'no':<9} {d.formats}")


@dataset_app.command("info")
def dataset_info(
    name: str = typer.Argument(...), data_dir: Optional[Path] = Opt(None),
    res: Optional[int] = Opt(None), camera: str = Opt("left"),
    as_json: bool = Opt(False, "--json"),
):
    """Per split, the number of images and their shape (C, H, W)."""
    from signals.datasets import split_shapes
    info = split_shapes(name, data_dir, res, None, None, camera)
    for split, v in info.items():
        print(f"{split:>8}: {v['n']} images of shape {tuple(v['shape'])}")
    if as_json:
        print(json.dumps(info))


# ---------------------------------------------------------------------------------------------------------------
# config
@config_app.command("show")
def config_show(
    signal: str = typer.Argument(..., help="images, audio or sdf."),
    name: str = typer.Argument("default", help="Dataset name (images) or `default` (audio, sdf)."),
    config: Optional[List[Path]] = Opt(None, help=CONFIG_HELP),
    set_: Optional[List[str]] = Opt(None, "--set", help=SET_HELP),
    variational: bool = Opt(False, "--variational", help="Resolve as a variational run."),
):
    """Print the config a `fit` would use, as YAML: the defaults every flag starts from."""
    from implicit_gon.config import resolve, to_yaml
    from signals import SIGNALS
    if signal not in SIGNALS:
        raise _err(f"signal {signal!r}: choose one of {', '.join(SIGNALS)}")
    flags = {"model.variational": True} if variational else {}
    print(to_yaml(resolve(signal, name, config, flags, set_ or ())), end="")


# ---------------------------------------------------------------------------------------------------------------
# plot
class XAxis(str, Enum):
    step = "step"
    time = "time"


@app.command("plot")
def plot_cmd(
    runs: List[Path] = typer.Argument(..., help="Run directories (several are overlaid)."),
    out: Path = Opt(..., help="Output image: .png, .pdf or .svg."),
    x: XAxis = Opt(XAxis.step, "--x", help="step, or time: training seconds (wall-clock of the training steps)."),
):
    """Training loss and every held-out metric of metrics.jsonl, one panel each, runs overlaid."""
    from implicit_gon.plot import plot_runs
    drawn = plot_runs(runs, out, x.value)
    print(f"wrote {out} ({len(runs)} run(s), panels: {', '.join(drawn)})", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------
def _click_errors() -> tuple[tuple, tuple]:
    """(usage/click exceptions, abort exceptions) of the click that typer runs on, and of click itself: typer
    >= 0.17 bundles its own copy, whose exceptions are not click's."""
    usage, abort = [], [KeyboardInterrupt]
    try:
        from typer import _click as bundled
        from typer import exceptions as typer_exceptions
        usage.append(bundled.exceptions.ClickException)
        abort.append(typer_exceptions.Abort)
    except (ImportError, AttributeError):
        pass
    try:
        import click
        usage.append(click.exceptions.ClickException)
        abort.append(click.exceptions.Abort)
    except ImportError:
        pass
    return tuple(usage), tuple(abort)


def main(argv: Optional[list] = None) -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit, never a traceback;
    usage errors print typer's usage message and exit 2; Ctrl-C exits 130."""
    from implicit_gon.errors import GONError, Interrupted
    usage, abort = _click_errors()
    try:
        rc = typer.main.get_command(app).main(args=argv, prog_name="implicit-gon", standalone_mode=False)
    except Interrupted as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(130)
    except GONError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except abort:  # Ctrl-C outside a command that can say more
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except usage as e:
        e.show()
        sys.exit(e.exit_code)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    if isinstance(rc, int) and rc == 130:  # typer returns Ctrl-C as exit code 130 when not standalone
        print("error: interrupted", file=sys.stderr)
    if isinstance(rc, int) and rc != 0:
        sys.exit(rc)


if __name__ == "__main__":
    main()
