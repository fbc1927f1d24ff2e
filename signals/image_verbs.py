"""The image adapter's verbs: eval, render, encode, decode, sample, interpolate and latents for image runs (the CLI
and the Python API both reach them through the registry). Values returned are uint8 pictures (n, H, W, C)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
from implicit_gon.lazy import lazy_import

torch = lazy_import("torch")  # loaded on first use: `fit KIND -h` imports this module, not torch

from implicit_gon.errors import GONError, UsageError
from implicit_gon.fitting import FitOption
from implicit_gon.media import IMAGE, VIDEO
from implicit_gon.verbs import Output, VerbOptions, save_npy, verb

from . import images
from .base import SignalAdapter

PLOT_MAX = 16
"""Images drawn by `eval --plot`: the first ones evaluated."""
RENDER_N, SAMPLE_N, PAIRS = 16, 64, 4
"""Defaults: images rendered, samples drawn, pairs interpolated."""
POLARITY_GAP = 0.25
"""render --input warns when an input's mean brightness and the training images' lie this far on opposite sides
of mid-grey (a black-on-white drawing given to a run trained on white-on-black digits)."""


def _has(inputs) -> bool:
    """Whether inputs were given: files, or an array of images. An array counts even when empty, so that its
    shape is reported ("no pixels") rather than said to be missing."""
    return inputs is not None and (hasattr(inputs, "shape") or len(inputs) > 0)


def training_brightness(gon) -> float | None:
    """The training images' mean brightness in [0, 1]: the run's meta, else computed from the training split when
    it can be read (runs fitted before it was stored), else None."""
    mean = gon.meta.get("mean_brightness")
    if mean is not None:
        return mean
    try:
        return images.mean_brightness(image_split(gon, "train").images)
    except GONError:
        return None  # the training data moved: nothing to compare with


def _opposite(a: float, b: float) -> bool:
    """Two mean brightnesses on opposite sides of mid-grey, each at least POLARITY_GAP from it."""
    return (a - 0.5) * (b - 0.5) < 0 and min(abs(a - 0.5), abs(b - 0.5)) >= POLARITY_GAP


def _inverted(path) -> str:
    p = Path(path)
    return str(p.with_name(f"{p.stem}-inverted{p.suffix}"))


def _tone(mean: float) -> str:
    return "light" if mean > 0.5 else "dark"


def image_split(gon, split: str, data_dir=None):
    """The run's dataset split at its training resolution (another data_dir may be given). Dataset notes were
    printed when the run was fitted; they are not repeated here. A verb reads the files its fit fetched and never
    downloads (offline, a run trained with --download tried the network at every eval and render)."""
    data = dataclasses.replace(gon.cfg.data, data_dir=str(data_dir) if data_dir else gon.cfg.data.data_dir,
                               download=False)
    if not data_dir and data.data_dir and not Path(data.data_dir).is_dir():  # the run's data moved or went
        raise GONError(f"{data.data_dir}: data directory not found (the run reads its {split} images from where "
                       f"it was trained: give --data-dir where they are now, or --input FILES to render; sample "
                       f"needs no data)")
    return images.task_signal(data, gon.cfg.gon.task, split, gon.meta["res"], gon.meta["channels"], notes=False)


def count(opts: VerbOptions, name: str, default: int, have: int, noun: str, where: str, notes: list) -> int:
    """How many of the `have` items `where` holds to use: the one asked for (option `name`) or the default. More
    pairs than exist, given explicitly, are a one-line error; a default count (or --n) above what exists is cut to
    it with a note, never silently."""
    asked = getattr(opts, name)
    want = asked if asked is not None else default
    if want <= have:
        return want
    if name in opts.given and name != "n":
        raise UsageError(f"--{name} {want}: {where} has {have} {noun}")
    notes.append(f"note: {want} {noun} asked for, but {where} has {have}: using {have}")
    return have


def _save_grid(pics: np.ndarray, nrow: int | None = None):
    from implicit_gon.media import save_grid
    return lambda out: save_grid(pics, out, nrow)


def _grid_res(gon, verb: str, res: int | None, default: int) -> int:
    """The output side: res, or the default; a conv decoder renders only its training grid."""
    r = gon.meta["res"]
    if getattr(gon.model, "grid_only", False):
        if res is not None and res != r:
            from implicit_gon.conv import off_grid
            raise off_grid(r, f"{verb} --res {res}" if verb else f"res {res}")
        return r
    return res or default


class ImageAdapter(SignalAdapter):
    kind, noun, metric, arrays = "images", "image", "sse", True
    verbs = {
        "eval": verb("n", "split", "data_dir", "plot", "compare", plot=IMAGE),
        "render": verb("n", "split", "data_dir", "inputs", "compare", "res", "mask", outputs=(IMAGE,)),
        "encode": verb("inputs", outputs=({".npy": None},)),
        "decode": verb("latents", "res", "nrow", outputs=(IMAGE,)),
        "sample": verb("n", "res", "compare", "temperature", "seed", outputs=(IMAGE,)),
        "interpolate": verb("pairs", "from_", "to", "frames", "res", "split", "data_dir", "fps",
                            outputs=(IMAGE, VIDEO)),
        "latents": verb("split", "data_dir", "n", outputs=({".png": "PNG", ".pdf": "PDF", ".svg": "SVG"},
                                                           {".npz": None})),
    }
    hints = {"export": "export-mesh needs an SDF run"}
    coord_dim = 2
    meta_rules = {"res": (int, 1, 1 << 16), "channels": (int, 1, 3), "mean_brightness": (float, 0, 1)}
    optional_meta = frozenset({"mean_brightness"})  # fits since issue 24 store it
    val_metrics = {"sse": False, "psnr": True, "bits_per_dim": False}
    fit_data, dataset = "dataset", "digits"
    fit_help = "Train an implicit GON (or, with --decoder conv, the convolutional one) on an image dataset."
    fit_options = (FitOption("source", "convert: the view the step encodes: gray, low-res:N or mask:P."),)

    task_signal = staticmethod(images.task_signal)  # the image signal of a DataConfig (compare trains on it)

    def fit_flags(self, options: dict) -> dict:
        """--source low-res:8 sets data.source and its size."""
        from .views import parse_view
        return parse_view(options["source"]) if options.get("source") else {}

    def fit_signals(self, cfg):
        """The task's training split, and its test split where the dataset has one."""
        from implicit_gon.errors import DataError
        train = images.task_signal(cfg.data, cfg.gon.task, "train")
        try:
            return train, images.task_signal(cfg.data, cfg.gon.task, "test")
        except DataError:
            return train, None

    def signal_for_run(self, gon, paths=None):
        return image_split(gon, "train")

    def describe(self, meta: dict) -> str:
        return f"{meta.get('name', 'images')} {meta['res']}x{meta['res']}x{meta['channels']}"

    # -- eval ---------------------------------------------------------------------------------------------------
    def eval(self, gon, opts: VerbOptions) -> Output:
        """Held-out scores of the first n images of the split, each encoded in one step: a dict (sse, psnr, n,
        split); with plot, the first PLOT_MAX reconstructions (under their originals with compare)."""
        from implicit_gon.train import evaluate
        if opts.compare and opts.plot is None:
            raise UsageError("eval --compare lays the originals above the reconstructions of --plot: give --plot FILE "
                             "too")
        sig = image_split(gon, opts.split, opts.data_dir)
        notes: list[str] = []
        idx = torch.arange(count(opts, "n", len(sig), len(sig), "images", f"the {opts.split} split", notes))
        res = evaluate(gon, sig, idx, opts.batch_size)
        res["split"] = opts.split

        def save(plot: Path) -> list[str]:
            self._plot_reconstructions(gon, sig, idx[:PLOT_MAX], opts.compare, plot)
            return [f"{plot} ({min(PLOT_MAX, res['n'])} reconstructions" +
                    (" below their originals)" if opts.compare else ")")]
        return Output(res, save if opts.plot else None, notes)

    @staticmethod
    def _plot_reconstructions(gon, sig, idx, compare: bool, path: Path) -> None:
        """Images idx of sig encoded in one step and rendered at the training resolution; with compare, under them."""
        from implicit_gon.media import save_grid, save_image
        rec = images.render(gon, gon.encode_signal(sig, idx), gon.meta["res"])
        if compare:
            save_image(images.comparison(sig.images[idx.numpy()], rec, "one step"), path)
        else:
            save_grid(rec, path)

    # -- render, encode, decode ------------------------------------------------------------------------------------
    def render(self, gon, opts: VerbOptions) -> Output:
        """The first n images of a split (or the files or arrays in inputs) encoded in one step and rendered at
        res (default 256): (n, res, res, C) uint8; convert runs: rows of source, conversion and target."""
        from implicit_gon import limits
        res = _grid_res(gon, "render", opts.res, 256)
        convert = gon.cfg.gon.task == "convert"
        if convert and (_has(opts.inputs) or opts.mask is not None):
            return self._render_input(gon, opts, res)
        if opts.mask is not None:
            raise UsageError(f"render --mask: only for convert runs with a mask source (this run's task is "
                             f"{gon.cfg.gon.task})")
        n = opts.n if opts.n is not None else RENDER_N
        limits.check_image_output((len(opts.inputs) if _has(opts.inputs) else n) * (2 if opts.compare else 1), res,
                                  gon.meta["channels"])
        notes: list[str] = []
        if _has(opts.inputs):
            for name in ("n", "split", "data_dir"):
                if name in opts.given:
                    raise UsageError(f"render --{name.replace('_', '-')}: chooses dataset images; not used with "
                                     "--input")
            sig = images.ImageSignal(self.read_inputs(gon, opts.inputs), "input")
            notes += self.polarity_notes(gon, sig.images, opts.inputs)
            idx = torch.arange(len(sig))
        else:
            sig = image_split(gon, opts.split, opts.data_dir)
            if convert:
                return self._render_comparison(gon, sig, opts, res)
            idx = torch.arange(count(opts, "n", RENDER_N, len(sig), "images", f"the {opts.split} split", notes))
        pics = images.render(gon, gon.encode_signal(sig, idx), res)
        note = f"{len(idx)} x {res}x{res}" + (", originals above" if opts.compare else "")

        def save(out: Path) -> list[str]:
            from implicit_gon.media import save_grid, save_image
            if opts.compare:
                save_image(images.comparison(sig.images[idx.numpy()], pics, f"one step, {res}px"), out)
            else:
                save_grid(pics, out)
            return [f"{out} ({note})"]
        return Output(pics, save, notes)

    @staticmethod
    def read_inputs(gon, inputs) -> np.ndarray:
        """Image files, or arrays (B, H, W, C) / (B, H, W), at the run's resolution: (B, res, res, C) uint8."""
        res, ch = gon.meta["res"], gon.meta["channels"]
        if isinstance(inputs, (list, tuple)) and inputs and isinstance(inputs[0], (str, Path)):
            return images.read_images(inputs, res, ch)
        return images.as_uint8_images(inputs, res, ch)

    @staticmethod
    def polarity_notes(gon, pics: np.ndarray, inputs) -> list[str]:
        """One hint per input that is mostly light where the training images are mostly dark, or the reverse
        (means POLARITY_GAP or more from mid-grey, on opposite sides): the run would render it as something it never
        saw. The training mean is the run's meta (fits since issue 24), else the training split's, else no hint."""
        ref = training_brightness(gon)
        out = []
        for k, a in enumerate(pics):
            mean = float(a.mean()) / 255
            if ref is None or not _opposite(mean, ref):
                continue
            file = isinstance(inputs, (list, tuple)) and isinstance(inputs[k], (str, Path))
            name, how = (inputs[k], f"e.g. magick {inputs[k]} -negate {_inverted(inputs[k])}") if file else \
                (f"input {k}", "255 - pixels")
            out.append(f"warning: {name}: the input is mostly {_tone(mean)} (mean {mean:.2f}) while the training "
                       f"images are mostly {_tone(ref)} (mean {ref:.2f}): invert it? ({how})")
        return out

    def _render_input(self, gon, opts: VerbOptions, res: int) -> Output:
        """Convert runs: one image encoded from its source view (through mask if given), rendered at res."""
        from .views import ConvertSignal, as_run_signal, load_mask, render_conversion
        if not _has(opts.inputs):
            raise UsageError("--mask needs --input IMAGE (the image whose pixels it selects)")
        if len(opts.inputs) > 1:
            raise UsageError(f"render --input: a convert run renders one image at a time ({len(opts.inputs)} given)")
        a = self.read_inputs(gon, opts.inputs[:1])
        m = load_mask(opts.mask, gon.meta["res"]) if opts.mask is not None else None
        sig = as_run_signal(gon, images.ImageSignal(a), m)
        pic = render_conversion(gon, sig, [0], res) if isinstance(sig, ConvertSignal) else \
            images.render(gon, gon.encode_signal(sig), res)
        return Output(pic, lambda out: (images.save_png(pic, out), [f"{out} ({res}x{res} from {opts.inputs[0]})"])[1])

    @staticmethod
    def _render_comparison(gon, sig, opts: VerbOptions, res: int) -> Output:
        from .views import comparison
        notes: list[str] = []
        n = count(opts, "n", RENDER_N, len(sig), "images", f"the {opts.split} split", notes)
        pics = comparison(gon, sig, n, res)
        note = f"rows: {gon.cfg.data.source} source's naive reconstruction, conversion, target; {n} x {res}x{res}"
        return Output(pics, lambda out: (images.save_png(pics, out, nrow=n), [f"{out} ({note})"])[1], notes)

    def encode(self, gon, opts: VerbOptions) -> Output:
        """Latents of image files or arrays, one gradient step each: (n, K) float32."""
        from .views import as_run_signal
        if not _has(opts.inputs):
            raise GONError("encode needs images: files, or an array (B, H, W, C)")
        sig = as_run_signal(gon, images.ImageSignal(self.read_inputs(gon, opts.inputs), "input"))
        z = gon.encode_signal(sig, batch_size=opts.batch_size).cpu().numpy()
        return Output(z, save_npy(z))

    def decode(self, gon, opts: VerbOptions) -> Output:
        """Latents (n, K) (an array, or an .npy / .npz file) rendered at res (default the training resolution;
        above it, super-resolution): (n, res, res, C) uint8."""
        from implicit_gon import limits
        from implicit_gon.options import api_res
        from implicit_gon.verbs import read_latents
        train_res = gon.meta["res"]
        res = _grid_res(gon, "", api_res(opts.res, train_res), train_res)  # CLI decode, or GON.render(z)
        z = read_latents(gon, opts.latents)
        limits.check_image_output(len(z), res, gon.meta["channels"])  # the memory check, before decoding
        pics = images.render(gon, z, res)
        return Output(pics, lambda out: (_save_grid(pics, opts.nrow)(out), [f"{out} ({len(pics)} x {res}x{res})"])[1])

    # -- generation ---------------------------------------------------------------------------------------------
    def sample(self, gon, opts: VerbOptions) -> Output:
        """n samples (default 64) at res (default the training one): (n, res, res, C) uint8; with compare, the
        picture written shows each above its nearest training image."""
        from implicit_gon import limits
        from implicit_gon.device import make_generator
        n, res = opts.n or SAMPLE_N, _grid_res(gon, "sample", opts.res, gon.meta["res"])
        limits.check_image_output(n * (2 if opts.compare else 1), res, gon.meta["channels"], "sample")
        z = gon.sample_latents(n, make_generator(opts.seed), opts.temperature)
        pics = images.render_prior(gon, z, res)
        note = f"{n} samples, {res}x{res}" + (", nearest training images below" if opts.compare else "")
        out_notes: list[str] = []

        def save(out: Path) -> list[str]:
            if opts.compare:
                out_notes.append(self._nearest_training(gon, z, pics, out))
            else:
                _save_grid(pics)(out)
            return [f"{out} ({note})"]
        return Output(pics, save, out_notes)

    @staticmethod
    def _nearest_training(gon, z, pics, out: Path) -> str:
        """Samples above the training images nearest to them at the training resolution (the note to print)."""
        from implicit_gon.media import compare_grid, save_image
        train = image_split(gon, "train").images
        r = gon.meta["res"]
        small = pics if pics.shape[1] == r else images.render_prior(gon, z, r)
        idx, mse = images.nearest(train, small)
        save_image(compare_grid([("sample", pics), ("nearest training",
                                                    images.upscale_nearest(train[idx], pics.shape[1]))]), out)
        return f"nearest training images: mean squared distance {mse.mean():.4g} per value (values in [0, 1])"

    def interpolate(self, gon, opts: VerbOptions) -> Output:
        """Spherical interpolation between pairs of encoded images (indices into the split: from_ and to, or the
        pairs 0-1, 2-3, ...): (pairs * frames, res, res, C) uint8; a video where out names one."""
        from implicit_gon import limits
        from implicit_gon.media import is_video
        from implicit_gon.metrics import slerp
        res, frames = _grid_res(gon, "interpolate", opts.res, gon.meta["res"]), opts.frames
        if "fps" in opts.given and opts.out is not None and not is_video(opts.out):
            raise UsageError(f"interpolate --fps: {opts.out} is not a video (.mp4, .webm, .gif), so it has no frame "
                             "rate")
        if (opts.from_ is None) != (opts.to is None):
            raise UsageError("give both --from and --to, or neither")
        limits.check_image_output((1 if opts.from_ is not None else (opts.pairs or PAIRS)) * frames, res,
                                  gon.meta["channels"], "interpolate", "lower --res, --frames or --pairs")
        sig = image_split(gon, opts.split, opts.data_dir)
        notes: list[str] = []
        ends = self._ends(opts, len(sig), notes)
        z = gon.encode_signal(sig, torch.tensor([k for e in ends for k in e])).cpu()
        t = torch.linspace(0, 1, frames)
        path = torch.cat([slerp(z[2 * p], z[2 * p + 1], t) for p in range(len(ends))])  # (pairs * frames, K)
        pics = images.render(gon, path, res)

        def save(out: Path) -> list[str]:
            from implicit_gon.media import save_grid, write_video
            if is_video(out):
                write_video(pics, out, opts.fps)
            else:
                save_grid(pics, out, nrow=frames)
            return [f"{out} ({len(ends)} pairs x {frames} frames, {res}x{res})"]
        return Output(pics, save, notes)

    @staticmethod
    def _ends(opts: VerbOptions, have: int, notes: list) -> list[tuple[int, int]]:
        """The (from, to) index pairs: the ones given, or consecutive pairs of the split (as many as it holds)."""
        if opts.from_ is not None:
            if not (str(opts.from_).isdigit() and str(opts.to).isdigit()):
                raise UsageError(f"--from {opts.from_} --to {opts.to}: for an image run these are indices into the "
                                 f"{opts.split} split")
            ends = [(int(opts.from_), int(opts.to))]
        else:
            if have < 2:
                raise GONError(f"interpolate: the {opts.split} split holds {have} image(s); a pair needs 2")
            pairs = count(opts, "pairs", PAIRS, have // 2, "pairs", f"the {opts.split} split ({have} images)", notes)
            ends = [(2 * i, 2 * i + 1) for i in range(pairs)]
        for i, j in ends:
            for k in (i, j):
                if not 0 <= k < have:
                    raise UsageError(f"index {k}: out of range for the {opts.split} split ({have} samples)")
        return ends

    # -- latents --------------------------------------------------------------------------------------------------
    def latents(self, gon, opts: VerbOptions) -> Output:
        """Latents of the split's first n images (n, K) float32, with class labels where the dataset has them;
        `save` draws them (2-D, or a PCA projection) or writes an .npz."""
        from . import latent_plot
        sig = image_split(gon, opts.split, opts.data_dir)
        notes: list[str] = []
        idx = torch.arange(count(opts, "n", len(sig), len(sig), "images", f"the {opts.split} split", notes))
        z = gon.encode_signal(sig, idx, opts.batch_size).cpu()
        labels, classes = latent_plot.labels_for(gon, opts.split, opts.data_dir)
        labels = None if labels is None else labels[:len(idx)]

        def save(out: Path) -> list[str]:
            title = f"{gon.cfg.data.dataset} {opts.split}: {len(idx)} latents of {gon.run.name if gon.run else 'the run'} ({gon.cfg.gon.task})"
            latent_plot.write(z, labels, classes, out, title)
            return [f"{out} ({len(idx)} latents of dimension {z.shape[1]})"]
        return Output(z.numpy(), save, notes)


ADAPTER = ImageAdapter()
