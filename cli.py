"""implicit-gon: the command line, a thin layer over the Python API (one subcommand per verb)."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import List, Optional

import click
import typer

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Implicit Gradient Origin Networks: fit, evaluate, render, encode, sample, interpolate.")
fit_app = typer.Typer(no_args_is_help=True, help="Train a GON on images, audio or signed distance fields.")
dataset_app = typer.Typer(no_args_is_help=True, help="List image datasets and inspect one on disk.")
app.add_typer(fit_app, name="fit")
app.add_typer(dataset_app, name="dataset")

Opt = typer.Option


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
            "ckpt_every": "train.ckpt_every", "val_every": "train.val_every", "tensorboard": "train.tensorboard"}
    return {keys[k]: (str(v) if isinstance(v, Path) else v) for k, v in kw.items() if k in keys}


def _run_fit(signal: str, name: str, config: Optional[Path], flags: dict, out: Path, resume: bool,
             make_signals, progress: bool = True) -> None:
    from implicit_gon import GON
    from implicit_gon.checkpoint import CKPT
    from implicit_gon.config import merge, resolve
    from implicit_gon.errors import GONError
    from implicit_gon.train import fit, train

    if resume:
        if not (out / CKPT).is_file():
            raise GONError(f"{out}: nothing to resume (no {CKPT})")
        gon, opt_state = GON.load(out, flags.get("train.device") or "auto", with_optimizer=True)
        if flags.get("train.steps"):
            gon.cfg = merge(gon.cfg, {"train": {"steps": flags["train.steps"]}})
    else:
        if (out / CKPT).is_file():
            raise GONError(f"{out}: already holds a run (pass --resume to continue it, or choose another --out)")
        cfg = resolve(signal, name, str(config) if config else None, flags)
        if cfg.data.data_dir:
            cfg.data.data_dir = str(Path(cfg.data.data_dir).expanduser().resolve())
        gon, opt_state = None, None
    cfg = gon.cfg if gon else cfg
    train_sig, val_sig = make_signals(cfg)
    print(f"fit {signal}: {len(train_sig)} training samples, {cfg.train.device} device, "
          f"steps {gon.step if gon else 0}->{cfg.train.steps}, run {out}", file=sys.stderr)
    if gon is None:
        gon = fit(train_sig, cfg, out, val_sig, progress)
        final = gon.last_validation
    else:
        final = train(gon, train_sig, out, val_sig, opt_state, progress)
    summary = ", ".join(f"{k} {v:.4g}" for k, v in final.items() if isinstance(v, float))
    print(f"done: {out}" + (f" (held out: {summary})" if summary else ""), file=sys.stderr)


@fit_app.command("images")
def fit_images(
    dataset: str = Opt("digits", help="Dataset name (`implicit-gon dataset list`)."),
    data_dir: Optional[Path] = Opt(None, help="Where the dataset's files are."),
    out: Path = Opt(..., help="Run directory (checkpoints, metrics)."),
    config: Optional[Path] = Opt(None, help="YAML config (default: configs/images/<dataset>.yaml)."),
    steps: Optional[int] = Opt(None), batch_size: Optional[int] = Opt(None), latent_dim: Optional[int] = Opt(None),
    hidden: Optional[int] = Opt(None), layers: Optional[int] = Opt(None),
    points: Optional[float] = Opt(None, help="Coordinates per step: fraction (<=1) or count."),
    lr: Optional[float] = Opt(None), seed: Optional[int] = Opt(None),
    device: Optional[str] = Opt(None, help="auto, cpu or cuda."),
    res: Optional[int] = Opt(None, help="Training resolution (default: the dataset's)."),
    channels: Optional[int] = Opt(None), camera: Optional[str] = Opt(None, help="SmallNORB: left, right, both."),
    variational: Optional[bool] = Opt(None, "--variational/--no-variational", help="Variational GON (ELBO)."),
    download: Optional[bool] = Opt(None, "--download", help="Fetch the dataset if it is missing."),
    cache_dir: Optional[Path] = Opt(None), ckpt_every: Optional[int] = Opt(None),
    val_every: Optional[int] = Opt(None), tensorboard: Optional[bool] = Opt(None, "--tensorboard"),
    resume: bool = Opt(False, "--resume", help="Continue the run in --out."),
    quiet: bool = Opt(False, "--quiet", help="No progress bar."),
    task: Optional[str] = Opt(None, help="reconstruct, classify (Eq. 13), joint (both) or convert (--source)."),
    class_weight: Optional[float] = Opt(None, help="joint: weight of the cross-entropy."),
    source: Optional[str] = Opt(None, help="convert: the view the step encodes: gray, low-res:N or mask:P."),
):
    """Train an implicit GON on an image dataset."""
    from signals import task_signal

    flags = _flags(**{k: v for k, v in locals().items() if k not in ("dataset", "out", "config", "resume", "quiet")})
    flags["data.dataset"], flags["data.signal"] = dataset, "images"
    flags.update(_task_flags(task, class_weight, source))

    def make(cfg):
        _check_task_flags(cfg, class_weight, source)
        train_sig = task_signal(cfg.data, cfg.gon.task, "train")
        val_sig = _maybe_test(cfg.data, cfg.gon.task)
        return train_sig, val_sig
    _run_fit("images", dataset, config, flags, out, resume, make, not quiet)


def _path_flags(flags: dict, paths, data, resume: bool, signal: str, what: str) -> None:
    """Files or folders given as arguments or --data, resolved, into data.paths (a resumed run keeps its own)."""
    given = [str(Path(p).expanduser().resolve()) for p in (paths or []) + (data or [])]
    if not given and not resume:
        raise _err(f"fit {signal} needs {what}: --data PATH (files or folders)")
    if given:
        flags["data.paths"] = given
    flags["data.signal"] = signal


@fit_app.command("audio")
def fit_audio(
    paths: Optional[List[Path]] = typer.Argument(None, help="Clips or folders (searched recursively)."),
    data: Optional[List[Path]] = Opt(None, "--data", help="Clip or folder (repeatable)."),
    out: Path = Opt(..., help="Run directory."),
    config: Optional[Path] = Opt(None, help="YAML config (default: configs/audio/default.yaml)."),
    sample_rate: Optional[int] = Opt(None, help="Rate the clips are resampled to."),
    window: Optional[float] = Opt(None, help="Window length in seconds."),
    hop: Optional[float] = Opt(None, help="Hop between windows in seconds (default: half a window)."),
    oversample: Optional[int] = Opt(None, help="Fit F between samples on a grid this many times finer (1: off)."),
    steps: Optional[int] = Opt(None), batch_size: Optional[int] = Opt(None), latent_dim: Optional[int] = Opt(None),
    hidden: Optional[int] = Opt(None), layers: Optional[int] = Opt(None), points: Optional[float] = Opt(None),
    lr: Optional[float] = Opt(None), seed: Optional[int] = Opt(None), device: Optional[str] = Opt(None),
    w0_first: Optional[float] = Opt(None), channels: Optional[int] = Opt(None, help="1 mixes to mono."),
    variational: Optional[bool] = Opt(None, "--variational/--no-variational"),
    ckpt_every: Optional[int] = Opt(None),
    resume: bool = Opt(False, "--resume"), quiet: bool = Opt(False, "--quiet"),
):
    """Train a GON over windows of audio clips."""
    from signals import audio

    flags = _flags(**{k: v for k, v in locals().items() if k not in ("paths", "data", "out", "config", "resume", "quiet")})
    _path_flags(flags, paths, data, resume, "audio", "clips")

    def make(cfg):
        return audio.load_signal(cfg.data.paths, cfg.data), None
    _run_fit("audio", "default", config, flags, out, resume, make, not quiet)


@fit_app.command("sdf")
def fit_sdf(
    paths: Optional[List[Path]] = typer.Argument(None, help="Meshes or folders (searched recursively)."),
    data: Optional[List[Path]] = Opt(None, "--data", help="Mesh or folder (repeatable)."),
    out: Path = Opt(..., help="Run directory."),
    config: Optional[Path] = Opt(None, help="YAML config (default: configs/sdf/default.yaml)."),
    samples: Optional[int] = Opt(None, help="SDF samples cached per mesh."),
    steps: Optional[int] = Opt(None), batch_size: Optional[int] = Opt(None), latent_dim: Optional[int] = Opt(None),
    hidden: Optional[int] = Opt(None), layers: Optional[int] = Opt(None), points: Optional[float] = Opt(None),
    lr: Optional[float] = Opt(None), seed: Optional[int] = Opt(None), device: Optional[str] = Opt(None),
    loss: Optional[str] = Opt(None, help="clamped_l1 (DeepSDF's) or mse."),
    variational: Optional[bool] = Opt(None, "--variational/--no-variational"),
    ckpt_every: Optional[int] = Opt(None),
    resume: bool = Opt(False, "--resume"), quiet: bool = Opt(False, "--quiet"),
):
    """Train a GON over the signed distance functions of meshes."""
    from signals import sdf

    flags = _flags(**{k: v for k, v in locals().items()
                      if k not in ("paths", "data", "out", "config", "resume", "quiet", "samples")})
    _path_flags(flags, paths, data, resume, "sdf", "meshes")
    if samples:
        flags["data.sdf_samples"] = samples

    def make(cfg):
        return sdf.load_signal(cfg.data.paths, cfg.data), None
    _run_fit("sdf", "default", config, flags, out, resume, make, not quiet)


def _maybe_test(data, task: str = "reconstruct"):
    from implicit_gon.errors import DataError
    from signals import task_signal
    try:
        return task_signal(data, task, "test")
    except DataError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# eval, render, encode
def _load(run: Path, device: str):
    from implicit_gon import GON
    return GON.load(run, device)


def _image_split(gon, split: str, data_dir: Optional[Path]):
    """The run's dataset split at its training resolution (another --data-dir may be given)."""
    import dataclasses
    from signals import task_signal
    data = dataclasses.replace(gon.cfg.data, data_dir=str(data_dir) if data_dir else gon.cfg.data.data_dir)
    return task_signal(data, gon.cfg.gon.task, split, gon.meta["res"], gon.meta["channels"])


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
    as_json: bool = Opt(False, "--json", help="End with one JSON line."),
):
    """Encode held-out samples in one step and score the reconstructions (images: SSE per sample and PSNR;
    audio: SNR and PSNR; SDF: Chamfer distance and IoU)."""
    import torch
    from implicit_gon.train import evaluate

    gon = _load(run, device)
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
    mask: Optional[Path] = Opt(None, help="Convert runs with source mask: PNG of the pixels --input shows (white)."),
):
    """Encode samples in one step and render them at any resolution (images: the first n of a split, or --input;
    convert runs: rows of source, conversion and target; audio: a clip at any sample rate; SDF: a shaded picture
    of a shape)."""
    import torch
    from signals import images

    gon = _load(run, device)
    if gon.meta["signal"] != "images":
        if mask is not None:
            raise _err(f"--mask is for image runs (this one is {gon.meta['signal']})")
        return _signal_module(gon).render_run(gon, input_=input_, index=index, res=res, sample_rate=sample_rate,
                                              plot=plot, out=out, hop=hop)
    if input_ is not None or mask is not None:
        return _render_input(gon, input_, mask, res, out)
    sig = _image_split(gon, split, data_dir)
    if gon.cfg.gon.task == "convert":
        return _render_comparison(gon, sig, n, res, out)
    z = gon.encode_signal(sig, torch.arange(min(n, len(sig))))
    images.save_png(images.render(gon, z, res), out)
    print(f"wrote {out} ({min(n, len(sig))} x {res}x{res})", file=sys.stderr)


@app.command("encode")
def encode_cmd(
    run: Path = typer.Argument(..., help="Run directory."),
    inputs: List[Path] = typer.Argument(..., help="Image files."),
    out: Path = Opt(..., help="Output .npy: one latent row per input, in order."),
    batch_size: int = Opt(64), device: str = Opt("auto"),
):
    """Encode images in one gradient step each."""
    import numpy as np
    from implicit_gon.fsio import atomic_path
    from signals import ImageSignal
    from signals.datasets import resize_square
    from signals.datasets.base import open_image

    gon = _load(run, device)
    if gon.meta["signal"] != "images":
        raise _err(f"{run}: encode takes images; for {gon.meta['signal']} runs use eval, render or export-mesh --input")
    from signals.views import as_run_signal
    mode = "L" if gon.meta["channels"] == 1 else "RGB"
    arrs = []
    for p in inputs:
        if not p.is_file():
            raise _err(f"{p}: file not found")
        a = np.asarray(open_image(p, p).convert(mode))
        arrs.append(resize_square(a[..., None] if a.ndim == 2 else a, gon.meta["res"], gon.meta["channels"]))
    z = gon.encode_signal(as_run_signal(gon, ImageSignal(np.stack(arrs))), batch_size=batch_size).cpu().numpy()
    with atomic_path(out) as tmp:
        np.save(tmp, z)
    print(f"wrote {out} {z.shape}", file=sys.stderr)


def _err(msg: str):
    from implicit_gon.errors import GONError
    return GONError(msg)


# ---------------------------------------------------------------------------------------------------------------
# sample, interpolate
def _refit(gon, run: Path) -> None:
    """Recompute the latent Gaussian from the training data and store it with the checkpoint."""
    from implicit_gon import checkpoint
    gon.fit_gaussian(_train_signal(gon))
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
    n: int = Opt(64, help="Number of samples."),
    res: Optional[int] = Opt(None, help="Output resolution (images; default: the training one)."),
    temperature: float = Opt(1.0, help="Scale of the latent noise."),
    seed: int = Opt(0), refit: bool = Opt(False, "--refit", help="Refit the latent Gaussian first."),
    out: Path = Opt(..., help="Output file (PNG for images)."), device: str = Opt("auto"),
):
    """Draw samples: from N(0, I) for a variational run, else from the Gaussian fitted to the training latents."""
    from implicit_gon.device import make_generator
    from signals import images

    gon = _load(run, device)
    if refit:
        _refit(gon, run)
    gen = make_generator(seed)
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
    out: Path = Opt(..., help="PNG grid (a row per pair), or .mp4/.gif video (frames per pair, pairs in turn)."),
    device: str = Opt("auto"),
):
    """Morph between encoded samples by spherical interpolation of their latents (the paper's Figure 6)."""
    import torch
    from implicit_gon import slerp
    from implicit_gon.media import VIDEO_SUFFIXES, write_video
    from signals import images

    gon = _load(run, device)
    if frames < 2:
        raise _err(f"--frames {frames}: need at least 2 (the two ends)")
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
):
    """Marching cubes over the network's signed distance field."""
    from signals import sdf
    gon = _load(run, device)
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
    classes = next(iter(info.values()), {}).get("classes")
    if classes:
        print(f" classes: {len(classes)} ({', '.join(classes)})")
    if as_json:
        print(json.dumps(info))


# ---------------------------------------------------------------------------------------------------------------
# tasks (paper Sec. 3.5): classify, joint, convert; the latents picture
def _task_flags(task: Optional[str], class_weight: Optional[float], source: Optional[str]) -> dict:
    """--task, --class-weight and --source as config keys (--source low-res:8 sets data.source and its size)."""
    from signals.views import parse_view
    flags = {"gon.task": task, "gon.class_weight": class_weight}
    return {**flags, **(parse_view(source) if source else {})}


def _check_task_flags(cfg, class_weight: Optional[float], source: Optional[str]) -> None:
    """Refuse the task flags the run's task cannot use."""
    if source and cfg.gon.task != "convert":
        raise _err(f"--source {source}: only the convert task encodes a view (this run's task is {cfg.gon.task})")
    if class_weight is not None and cfg.gon.task != "joint":
        raise _err(f"--class-weight: only the joint task weighs a cross-entropy (this run's task is {cfg.gon.task})")


def _render_input(gon, input_: Optional[Path], mask: Optional[Path], res: int, out: Path) -> None:
    """Encode one image (its source view for a convert run, through --mask if given) and render it at res."""
    import numpy as np
    from signals import ImageSignal, images
    from signals.datasets import resize_square
    from signals.datasets.base import open_image
    from signals.views import as_run_signal, load_mask

    if input_ is None:
        raise _err("--mask needs --input IMAGE (the image whose pixels it selects)")
    if not input_.is_file():
        raise _err(f"{input_}: file not found")
    a = np.asarray(open_image(input_, input_).convert("L" if gon.meta["channels"] == 1 else "RGB"))
    a = resize_square(a[..., None] if a.ndim == 2 else a, gon.meta["res"], gon.meta["channels"])
    m = load_mask(mask, gon.meta["res"]) if mask is not None else None
    z = gon.encode_signal(as_run_signal(gon, ImageSignal(a[None]), m))
    images.save_png(images.render(gon, z, res), out)
    print(f"wrote {out} ({res}x{res} from {input_})", file=sys.stderr)


def _render_comparison(gon, sig, n: int, res: int, out: Path) -> None:
    from signals import images
    from signals.views import comparison
    n = min(n, len(sig))
    images.save_png(comparison(gon, sig, n, res), out, nrow=n)
    print(f"wrote {out} (rows: {gon.cfg.data.source} source's naive reconstruction, conversion, target; "
          f"{n} x {res}x{res})", file=sys.stderr)


@app.command("latents")
def latents_cmd(
    run: Path = typer.Argument(..., help="Run directory of an image run."),
    split: str = Opt("test", help="Split to encode."), data_dir: Optional[Path] = Opt(None),
    n: Optional[int] = Opt(None, help="Encode the first n samples only."),
    batch_size: int = Opt(64), device: str = Opt("auto"),
    out: Path = Opt(..., help="PNG (or PDF, SVG) scatter coloured by class, or .npz of latents and labels."),
):
    """Held-out latents: the 2-D latents of a --latent-dim 2 run directly (the paper's Figure 12), a PCA
    projection otherwise; coloured by class where the dataset has labels."""
    import torch
    from signals import latent_plot

    gon = _load(run, device)
    if gon.meta["signal"] != "images":
        raise _err(f"{run}: latents takes image runs (this one is {gon.meta['signal']})")
    sig = _image_split(gon, split, data_dir)
    idx = torch.arange(min(n, len(sig)) if n else len(sig))
    z = gon.encode_signal(sig, idx, batch_size).cpu()
    labels, classes = latent_plot.labels_for(gon, split, data_dir)
    labels = None if labels is None else labels[:len(idx)]
    title = f"{gon.cfg.data.dataset} {split}: {len(idx)} latents of {run.name} ({gon.cfg.gon.task})"
    latent_plot.write(z, labels, classes, out, title)
    print(f"wrote {out} ({len(idx)} latents of dimension {z.shape[1]})", file=sys.stderr)


# ---------------------------------------------------------------------------------------------------------------
def main(argv: Optional[list] = None) -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit, never a traceback."""
    from implicit_gon.errors import GONError
    try:
        typer.main.get_command(app).main(args=argv, prog_name="implicit-gon", standalone_mode=False)
    except GONError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
    except click.exceptions.Abort:
        print("error: aborted", file=sys.stderr)
        sys.exit(1)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("error: interrupted (the last checkpoint is intact)", file=sys.stderr)
        sys.exit(130)
    except (FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError) as e:
        print(f"error: {e.filename}: {e.strerror}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
