"""implicit-gon: the command line, a thin layer over the Python API (one subcommand per verb). This is the app's
assembly: the verbs' shared options are declared once below and each verb hands its arguments to the run's adapter
(implicit_gon/commands/dispatch.py); the fit commands are built from the adapters' declarations
(implicit_gon/commands/fit.py), the config fields' options from their declarations (implicit_gon/commands/fields.py)."""
from __future__ import annotations

import os
import sys

from implicit_gon import interrupts  # the standard library only

PROGRAM = __name__ == "__main__" or os.path.basename(sys.argv[0]) == "implicit-gon"
"""This module is the running program (the console script, or python -m cli), not one imported by a test or a
notebook: the stop signals are its own from the first import on, and ignored once it has said its last line."""


def _exit_stopped(stop: BaseException) -> None:
    """A stop signal that no command could report with more (a checkpoint): its one line and 128 + its number."""
    print(f"error: interrupted by {interrupts.signal_name(stop)}", file=sys.stderr)
    sys.exit(interrupts.exit_code(stop))


if PROGRAM:
    interrupts.install()  # a stop during the imports below (a second or more on a busy machine) is a stop too
try:
    import json
    import math
    from enum import Enum
    from pathlib import Path
    from typing import List, Optional

    import typer

    from implicit_gon import config as typed_config
    from implicit_gon.commands import fit
    from implicit_gon.commands.dispatch import Which, flag, given, report, verb
    from implicit_gon.commands.fields import CONFIG_HELP, SET_HELP, command, flags, option
except KeyboardInterrupt as stop:
    _exit_stopped(stop)

CONTEXT = {"help_option_names": ["-h", "--help"]}
app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, context_settings=CONTEXT,
                  help="Implicit Gradient Origin Networks: fit, evaluate, render, encode, sample, interpolate.")
fit_app = typer.Typer(cls=fit.FitGroup, no_args_is_help=True, context_settings=CONTEXT, help=fit.HELP)
dataset_app = typer.Typer(no_args_is_help=True, context_settings=CONTEXT,
                          help="List image datasets and inspect one on disk, or a run's or folder's clips and meshes.")
config_app = typer.Typer(no_args_is_help=True, context_settings=CONTEXT,
                         help="Show the resolved config of a dataset (defaults, its YAML, --config, --set).")
app.add_typer(fit_app, name="fit")
app.add_typer(dataset_app, name="dataset")
app.add_typer(config_app, name="config")

Opt = typer.Option


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
# the verbs: each loads the run and dispatches to its signal's adapter (signals/base.py SignalAdapter), which
# declares the options it reads (any other given is refused) and what it writes (checked before any work)
RUN = typer.Argument(..., help="Run directory.")
DEVICE = Opt("auto", "--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")
CHECKPOINT = Opt(Which.last, "--checkpoint", help="last: the weights training ended with; best: "
                 "RUN/best.safetensors, the best held-out score (kept by fit --val-every).")
BATCH = Opt(64, "--batch-size", help="Samples encoded at once (latents do not depend on it).")
# the verbs' options, declared once; the help says which signals read each (the run's adapter refuses the rest)
N = Opt(None, "--n", help="How many: images rendered (default 16; 1 writes a single image) or evaluated and "
        "encoded (default all); samples drawn (default 64; audio: 1 clip).")
RES = Opt(None, "--res", help="Images and SDF: output side in pixels (render: default 256, else the training "
          "resolution; above it: super-resolution; conv runs: their training grid only; SDF: 256, meshes 128).")
SPLIT = Opt("test", "--split", help="Images: the dataset split the samples come from.")
DATA_DIR = Opt(None, "--data-dir", help="Images: dataset location (default: the run's).")
INPUTS = Opt(None, "--input", help="Your own files, encoded in one step: images (repeatable, at the run's "
             "resolution), an audio clip, or a mesh.")
COMPARE = Opt(False, "--compare", help="Images: the originals above their renderings (render; eval --plot), or "
              "each sample above its nearest training image (sample: a memorisation check).")
PLOT = Opt(None, "--plot", help="A picture besides: eval: the first 16 reconstructions (images) or spectrograms of "
           "original and reconstruction (audio, .png); render: spectrograms (audio, .png).")
INDEX = Opt(None, "--index", help="SDF: a training shape (`implicit-gon dataset info RUN` numbers them).")
FROM = Opt(None, "--from", help="First end: a test index (images), a clip (audio), a training index or mesh (SDF).")
TO = Opt(None, "--to", help="Second end.")


@app.command("eval")
def eval_cmd(ctx: typer.Context, run: Path = RUN,
             paths: Optional[List[Path]] = typer.Argument(None, help="Audio clips or meshes to evaluate (default: "
                                                          "the run's held-out ones, else its training ones)."),
             data: Optional[List[Path]] = Opt(None, "--data", help="Audio clip or mesh, or a folder (repeatable)."),
             plot: Optional[Path] = PLOT, compare: bool = COMPARE, data_dir: Optional[Path] = DATA_DIR,
             split: str = SPLIT, n: Optional[int] = N, batch_size: int = BATCH, device: str = DEVICE,
             as_json: bool = Opt(False, "--json", help="Write only a JSON document on stdout (the table: stderr)."),
             checkpoint: Which = CHECKPOINT):
    """Encode held-out samples in one step and score the reconstructions (images: SSE per sample and PSNR;
    audio: SNR and PSNR; SDF: Chamfer distance and IoU)."""
    data = (list(data or []) + list(paths or [])) or None
    output = verb("eval", dict(locals(), out=None))
    from implicit_gon import rundir
    with rundir.writing_into(plot):
        lines = output.save(plot) if plot and output.save else []
    report(output.value, as_json, output.notes)
    for line in lines:
        print(f"wrote {line}", file=sys.stderr)


@app.command("render")
def render_cmd(ctx: typer.Context, run: Path = RUN, res: Optional[int] = RES, n: Optional[int] = N,
               split: str = SPLIT, data_dir: Optional[Path] = DATA_DIR, input_: Optional[List[Path]] = INPUTS,
               compare: bool = COMPARE, index: Optional[int] = INDEX,
               sample_rate: Optional[int] = Opt(None, help="Audio: output rate (above the training rate: "
                                                "super-resolution)."),
               plot: Optional[Path] = PLOT,
               hop: Optional[float] = Opt(None, help="Audio: hop between the encoded windows in seconds (default: "
                                          "an eighth of a window; the overlapping renderings are cross-faded)"),
               out: Path = Opt(..., help="Output file: .png, .jpg, .webp or .gif (images, SDF); .wav, .flac or .ogg "
                               "(audio)."),
               device: str = DEVICE, checkpoint: Which = CHECKPOINT,
               mask: Optional[Path] = Opt(None, help="Convert runs with source mask: PNG of the pixels --input shows "
                                          "(white).")):
    """Encode samples in one step and render them at any resolution (images: the first n of a split, or your own
    files; convert runs: rows of source, conversion and target; audio: a clip at any sample rate; SDF: a shaded
    picture of a shape)."""
    verb("render", locals())


@app.command("encode")
def encode_cmd(ctx: typer.Context, run: Path = RUN,
               input_: List[Path] = typer.Argument(..., metavar="INPUTS", help="Image files (centre-cropped and "
                                                   "resized to the run's resolution); audio: a clip (a latent per "
                                                   "window); SDF: a mesh."),
               out: Path = Opt(..., help="Output .npy: one latent row per input, in order (`implicit-gon decode` "
                               "renders it)."),
               batch_size: int = BATCH, device: str = DEVICE, checkpoint: Which = CHECKPOINT):
    """Encode inputs in one gradient step each."""
    verb("encode", locals())


@app.command("decode")
def decode_cmd(ctx: typer.Context, run: Path = RUN,
               latents: Path = typer.Argument(..., help="A .npy of latents, (n, K) or (K,), as `implicit-gon encode` "
                                              "writes, or the .npz `implicit-gon latents` writes."),
               res: Optional[int] = RES,
               nrow: Optional[int] = Opt(None, help="Images per row of the grid (default: a square-ish grid)."),
               out: Path = Opt(..., help="Output picture: .png, .jpg, .webp or .gif (one latent: one image, more: a "
                               "grid)."),
               device: str = DEVICE, checkpoint: Which = CHECKPOINT):
    """Render latents (from `encode`, or your own edits of them) at any resolution."""
    verb("decode", locals())


def _err(msg: str):
    from implicit_gon.errors import UsageError
    return UsageError(msg)


@app.command("sample")
def sample_cmd(ctx: typer.Context, run: Path = RUN, n: Optional[int] = N,
               seconds: Optional[float] = Opt(None, help="Audio: duration of each sampled clip (default 2, or one "
                                              "window where that is longer)."),
               res: Optional[int] = RES, temperature: float = Opt(1.0, help="Scale of the latent noise."),
               seed: int = Opt(0, help="Seed of the latent noise (the same seed draws the same samples)."),
               refit: bool = Opt(False, "--refit", help="Refit the latent Gaussian to the training latents first."),
               compare: bool = COMPARE,
               out: Path = Opt(..., help="Output: .png, .jpg, .webp or .gif (images; SDF renders, or a folder of "
                               "meshes); audio: a .wav of the clips in sequence, or a folder (one WAV per clip)."),
               device: str = DEVICE, checkpoint: Which = CHECKPOINT):
    """Draw samples: from N(0, I) for a variational run, else from the Gaussian fitted to the training latents."""
    verb("sample", locals(), (lambda gon: gon.refit_gaussian(Which(checkpoint).value)) if refit else None)


@app.command("interpolate")
def interpolate_cmd(ctx: typer.Context, run: Path = RUN,
                    pairs: Optional[int] = Opt(None, help="Images: pairs of consecutive test samples (0-1, 2-3, ...; "
                                               "default 4, or as many as the split holds)."),
                    from_: Optional[str] = FROM, to: Optional[str] = TO,
                    frames: int = Opt(8, help="Frames per pair, ends included."), res: Optional[int] = RES,
                    split: str = SPLIT, data_dir: Optional[Path] = DATA_DIR,
                    fps: int = Opt(15, help="Video frame rate."),
                    out: Path = Opt(..., help="Images: a picture (.png, .jpg, .webp: a row per pair) or a video "
                                    "(.mp4, .webm, .gif); audio: a .wav of the frames in sequence, or a folder (one "
                                    "WAV per frame); SDF: a video of renders, or a folder of meshes."),
                    device: str = DEVICE, checkpoint: Which = CHECKPOINT):
    """Morph between encoded samples by spherical interpolation of their latents (the paper's Figure 6)."""
    verb("interpolate", locals())


@app.command("export-mesh")
def export_mesh_cmd(ctx: typer.Context, run: Path = RUN, index: Optional[int] = INDEX,
                    input_: Optional[List[Path]] = INPUTS,
                    res: int = Opt(256, help="Marching-cubes grid resolution (res^3, evaluated in slabs)."),
                    fmt: Optional[str] = Opt(None, "--format", help="ply, obj, glb or stl (default: from --out)."),
                    original_units: bool = Opt(False, "--original-units", help="Undo the normalisation into the "
                                               "unit sphere."),
                    out: Path = Opt(..., help="Output mesh file (.ply, .obj, .glb, .stl)."),
                    device: str = DEVICE, checkpoint: Which = CHECKPOINT):
    """Marching cubes over the network's signed distance field."""
    verb("export", locals())


@app.command("latents")
def latents_cmd(ctx: typer.Context, run: Path = RUN, split: str = SPLIT, data_dir: Optional[Path] = DATA_DIR,
                n: Optional[int] = N, batch_size: int = BATCH, device: str = DEVICE, checkpoint: Which = CHECKPOINT,
                out: Path = Opt(..., help="PNG (or PDF, SVG) scatter coloured by class, or .npz of latents and "
                                "labels.")):
    """Held-out latents: the 2-D latents of a --latent-dim 2 run directly (the paper's Figure 12), a PCA
    projection otherwise; coloured by class where the dataset has labels."""
    verb("latents", locals())


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
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Dataset name (`implicit-gon dataset list`), or a run or a folder of "
                               "clips or meshes: each file with the index the verbs use."),
    data_dir: Optional[Path] = Opt(None, help="Where the dataset's files are."),
    res: Optional[int] = Opt(None, help="Resolution to report (default: the dataset's native one)."),
    camera: str = Opt("left", help="SmallNORB: left, right or both."),
    as_json: bool = Opt(False, "--json", help="Write only a JSON document on stdout (the table goes to stderr)."),
    quick: bool = Opt(False, "--quick", help="Count from the files' headers only, without decoding every image and "
                      "label as `fit` does (the decoded cache is what `fit` then reuses)."),
):
    """Per split, the number of images and their shape (C, H, W), after the checks `fit` makes. For a run or a
    folder of clips or meshes: each file with the index that render/export-mesh/interpolate --index and eval use."""
    from implicit_gon import options
    from signals.datasets import DATASETS, split_shapes
    if name not in DATASETS and Path(name).expanduser().exists():
        return _dataset_files(ctx, Path(name).expanduser(), as_json)
    options.check("dataset info", res=res, camera=camera)
    info = split_shapes(name, data_dir, res, None, None, camera)
    if not quick:
        _decode_splits(name, data_dir, res, camera, info)
    for split, v in info.items():
        print(f"{split:>8}: {v['n']} images of shape {tuple(v['shape'])}", file=sys.stderr if as_json else sys.stdout)
    classes = next(iter(info.values()), {}).get("classes")
    if classes:
        print(f" classes: {len(classes)} ({', '.join(classes)})", file=sys.stderr if as_json else sys.stdout)
    if as_json:
        print(json.dumps(info))


def _dataset_files(ctx: typer.Context, path: Path, as_json: bool) -> None:
    """`dataset info` of a run or a folder: its clips or meshes, numbered as the verbs number them."""
    from signals import listing
    for name in ("data_dir", "res", "camera", "quick"):
        if given(ctx, name):
            raise _err(f"dataset info {flag(ctx, name)}: for an image dataset, not a run or a folder ({path})")
    listing.print_files(path, as_json)


def _decode_splits(name: str, data_dir: Optional[Path], res: Optional[int], camera: str, info: dict) -> None:
    """Decode every split (and its labels) as `fit` would, so a file `fit` would refuse is refused here."""
    from signals.datasets import load_images, load_labels
    for split in info:
        load_images(name, split, data_dir, res, None, None, camera=camera, notes=False)
        if info[split].get("classes"):
            load_labels(name, split, data_dir, None, camera)


# ---------------------------------------------------------------------------------------------------------------
# config
@config_app.command("show")
def config_show(
    signal: str = typer.Argument(..., help="images, audio or sdf (or a plug-in's kind)."),
    name: Optional[str] = typer.Argument(None, help="Dataset name (images; default: fit's, digits) or `default` "
                                         "(audio, sdf)."),
    config: Optional[List[Path]] = Opt(None, help=CONFIG_HELP),
    set_: Optional[List[str]] = Opt(None, "--set", help=SET_HELP),
    variational: bool = Opt(False, "--variational", help="Resolve as a variational run."),
    decoder: Optional[str] = Opt(None, help="Resolve for this decoder: siren or conv (the config's conv: section)."),
):
    """Print the config a `fit` would use, as YAML: the defaults every flag starts from (the fields a run of this
    signal reads)."""
    from implicit_gon.config import check_given_keys, given_keys, resolve, to_yaml
    from implicit_gon.errors import natural_list
    from implicit_gon.plugins import signal_adapter, signal_kinds
    if signal not in signal_kinds():  # the shipped adapters and any a plug-in registers
        raise _err(f"signal {signal!r}: choose one of {natural_list(signal_kinds(), 'or')}")
    settings = {"model.variational": True if variational else None, "model.decoder": decoder}
    name = name or signal_adapter(signal).dataset or "default"  # as `fit SIGNAL` without --dataset
    cfg = resolve(signal, name, config, settings, set_ or ())
    check_given_keys(cfg, given_keys({}, set_ or ()))  # as fit would: a --set this run would never read
    print(to_yaml(cfg, typed_config.signal_keys(signal)), end="")


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


def _count(n: int, noun: str) -> str:
    """'1 seed', '3 seeds'."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


# ---------------------------------------------------------------------------------------------------------------
# compare (the paper's Tables 1 and 2, Figure 2b)
COMPARE_KEYS = {flag: key for flag, key in typed_config.flag_keys().items() if key in (
    "data.data_dir", "train.batch_size", "train.lr", "model.latent_dim", "data.train_limit", "train.device")}
"""compare's options that set a field of every run: those fields' fit flags (default: the dataset's config)."""


@command(app, "compare", "images", COMPARE_KEYS,
          option("dataset", str, "mnist", help="Image dataset (`implicit-gon dataset list`)."),
          option("methods", Optional[str], None, help="Comma-separated: gon, ae, tied-ae, detach, gon-10, "
                  "detach-10, glo (Table 1, the default); with --variational: vgon, vae (Table 2)."),
          option("steps", Optional[int], None, help="Training steps of every run (or --epochs)."),
          option("epochs", Optional[float], None, help="Passes over the training split instead of --steps: steps "
                  "= ceil(epochs x training images / batch size), recorded in OUT/comparison.json (the paper: 500 "
                  "epochs for Table 1, 1,000 for Table 2)."),
          option("seeds", int, 3, help="Seeds per method (0, 1, ...)."),
          option("decoder", str, "conv", help="conv (every method) or siren (gon, detach, gon-10, detach-10, glo; "
                  "vgon)."),
          option("variational", bool, False, "--variational", help="Table 2: variational GON against a VAE, in "
                  "bits/dim."),
          option("val_every", Optional[int], None, help="Steps between held-out points of the curves (default "
                  "steps/10)."),
          option("val_samples", int, 256, help="Held-out images scored at each curve point (the final score uses "
                  "all)."),
          option("held_out", Optional[int], None, help="Score the final table on the first N held-out images "
                  "(default all)."),
          option("set_", Optional[List[str]], None, "--set", help=SET_HELP),
          option("resume", bool, False, "--resume", help="Continue the comparison in --out: finished runs are "
                  "skipped, unfinished ones continue from their last checkpoint."),
          option("out", Path, ..., help="Folder: a run directory per method and seed, table.md, table.json, "
                  "curves.png."))
def compare_cmd(dataset, methods, steps, epochs, seeds, decoder, variational, val_every, val_samples, held_out,
                set_, resume, out, **fields):
    """Re-run the paper's Table 1 (held-out SSE per image) or Table 2 (--variational: bits/dim) and Figure 2b
    (held-out error against step) at a budget of your choosing, beside the paper's figures."""
    from implicit_gon import compare, rundir
    from implicit_gon.errors import natural_list
    if (steps is None) == (epochs is None):
        raise _err("compare: give --steps N or --epochs N (one of them)")
    if epochs is not None and not (math.isfinite(epochs) and epochs > 0):
        raise _err(f"compare --epochs {epochs}: must be a number above 0")
    rundir.check_out(out)  # a file in the way is one line, before any training
    decoders = typed_config.range_of("model.decoder")["choices"]  # the registered decoders
    if decoder not in decoders:
        raise _err(f"compare --decoder {decoder}: choose {natural_list(decoders, 'or')}")
    names = [m.strip() for m in methods.split(",")] if methods is not None else \
        compare.default_methods(decoder, variational)
    if not all(names):
        raise _err(f"compare --methods {methods!r}: an empty name (give comma-separated methods, e.g. gon,ae)")
    settings = flags(COMPARE_KEYS, fields)
    if settings["data.data_dir"]:
        settings["data.data_dir"] = str(Path(settings["data.data_dir"]).expanduser().resolve())
    table = compare.compare(dataset, out, names, seeds, steps, decoder, variational, resume,
                            {k: v for k, v in settings.items() if v is not None}, set_ or (), val_every, val_samples,
                            held_out, epochs=epochs)
    print((out / "table.md").read_text(), end="")
    print(f"wrote {out}/table.md, table.json, curves.png ({_count(len(table['methods']), 'method')} x {_count(seeds, 'seed')})",
          file=sys.stderr)


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


def _after_stop(interrupts) -> None:
    """An unexpected error after a stop signal was raised is that stop's doing (it cut an import short, leaving a
    module half made): it ends as the stop, with one line and 128 + the signal's number."""
    signum = interrupts.raised()
    if signum is not None:
        import signal
        print(f"error: interrupted by {signal.Signals(signum).name}", file=sys.stderr)
        sys.exit(128 + signum)


def main(argv: Optional[list] = None) -> None:
    """Console entry point: user errors become one line on stderr and a non-zero exit, never a traceback;
    usage errors (click's too) are one line naming the command's help, exit 2; Ctrl-C exits 130."""
    try:
        _main(argv)
    except KeyboardInterrupt as stop:  # before the command could take it (its set-up's imports), or after
        _exit_stopped(stop)
    finally:
        if PROGRAM:  # the last line is out: a stop now must not turn the exit status into death by that signal
            interrupts.release()


def _command_path(argv: Optional[list]) -> str:
    """The command the words name, as `implicit-gon fit images`: click's parser errors (a flag missing its value)
    carry no context to say it."""
    cmd, path = typer.main.get_command(app), ["implicit-gon"]
    for word in sys.argv[1:] if argv is None else argv:
        cmd = getattr(cmd, "commands", {}).get(word)
        if cmd is None:
            break
        path.append(word)
    return " ".join(path)


def _repeated_flag(argv: Optional[list]) -> Optional[str]:
    """What is wrong if a flag is given twice: click keeps the last value and ignores the first, so `--lr 1e-3 ...
    --lr 1e-4` trained at 1e-4 without a word. Flags that take many values (`--set`, `--config`) may repeat."""
    cmd, words = typer.main.get_command(app), list(sys.argv[1:] if argv is None else argv)
    if {"-h", "--help"} & set(words):
        return None  # help is what was asked for
    while words and words[0] in getattr(cmd, "commands", {}):
        cmd = cmd.commands[words.pop(0)]
    opts = {name: p for p in getattr(cmd, "params", []) if getattr(p, "param_type_name", "") == "option"
            for name in p.opts + p.secondary_opts}
    seen, value_next = {}, False
    for word in words:
        if word == "--" and not value_next:  # the end of the flags (after a flag that takes a value, its value)
            break
        param = None if value_next else opts.get(word.split("=", 1)[0])
        value_next = param is not None and not param.is_flag and "=" not in word
        if param is None or param.multiple or param.count:
            continue
        flag = word.split("=", 1)[0]
        if param.name in seen and not (param.is_flag and flag == seen[param.name]):  # --quiet twice says one thing
            first = seen[param.name]
            return f"{flag} is given twice" if flag == first else f"{first} and {flag} are both given"
        seen[param.name] = flag
    return None


def _main(argv: Optional[list]) -> None:
    from implicit_gon.errors import GONError, Interrupted, UsageError, one_line
    usage, abort = _click_errors()
    interrupts.install()  # SIGTERM and SIGHUP unwind like Ctrl-C: temporary files go, a fit checkpoints
    repeated = _repeated_flag(argv)
    if repeated is not None:
        print(f"error: {repeated} (the last would silently win): give it once (see {_command_path(argv)} -h)",
              file=sys.stderr)
        sys.exit(2)
    try:
        try:
            rc = typer.main.get_command(app).main(args=argv, prog_name="implicit-gon", standalone_mode=False)
        finally:
            interrupts.settle()  # the process is ending: a further stop cannot cut its last line short
    except Interrupted as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(e.code)
    except GONError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        sys.exit(2 if isinstance(e, UsageError) else 1)
    except abort as e:  # a stop signal outside a command that can say more (click wraps it in its Abort)
        _exit_stopped(e.__cause__ if isinstance(e.__cause__, KeyboardInterrupt) else e)
    except usage as e:  # click's own (an unknown flag, a missing argument): one line like ours, and where to look
        ctx = getattr(e, "ctx", None)
        see = ctx.command_path if ctx is not None else _command_path(argv)
        print(f"error: {one_line(e.format_message()).rstrip('.')} (see {see} -h)", file=sys.stderr)
        sys.exit(e.exit_code)
    except OSError as e:
        if e.filename is None and not isinstance(e, (FileNotFoundError, PermissionError)):
            _after_stop(interrupts)
            raise  # not about a path the user gave: a bug to report with its traceback
        print(f"error: {one_line(str(e.filename)[:200])}: {e.strerror}", file=sys.stderr)
        sys.exit(1)
    except Exception:
        _after_stop(interrupts)
        raise  # a bug: reported with its traceback
    if isinstance(rc, int) and rc == 130:  # typer returns any KeyboardInterrupt as 130 when not standalone
        _after_stop(interrupts)  # a SIGTERM or SIGHUP: its own status and name
        print("error: interrupted by SIGINT", file=sys.stderr)
    if isinstance(rc, int) and rc != 0:
        sys.exit(rc)


if __name__ == "__main__":
    main()
