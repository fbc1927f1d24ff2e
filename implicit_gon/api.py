"""The Python API: the CLI's verbs, one call each, for every signal (they run the same adapter code).

    from implicit_gon import GON, save_grid
    gon = GON.load("runs/mnist")               # a run that `implicit-gon fit` or implicit_gon.fit() trained
    z = gon.encode(["a.png", "b.png"])         # or an array (B, H, W, C): one gradient step each, (B, K) numpy
    pics = gon.render(z, res=256)              # (B, 256, 256, C) uint8 at any resolution
    save_grid(pics, "grid.png")                # .png, .jpg, .webp or .gif
    pics = gon.sample(16, seed=0)              # (16, H, W, C) uint8
    frames = gon.interpolate(0, 1, frames=8, out="morph.mp4")  # (8, H, W, C) uint8, and a video
    clip = GON.load("runs/speech").render(inputs="a.wav", sample_rate=48000)  # (T, C) float32, audio runs
    mesh = gon.mesh(index=0, res=128)          # SDF runs: a trimesh.Trimesh (out="a.ply" writes it)
    sdf = gon.volume(gon.encode("a.obj"), 64)  # SDF runs: (1, 64, 64, 64) float32 signed distances

Every verb also takes out=PATH, written as the CLI writes it, and the options of the CLI verb (`sample_rate`,
`index`, `compare`, ...); an option the run's signal does not read is refused. Lower level: gon.encode_batch(batch)
and gon.decode(z, coords), F(c ⊕ z) on any coordinates in chunks, (B, M, C), return torch tensors.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import checkpoint, limits, registry
from .config import Config, trains_elbo
from .device import resolve_device
from .errors import GONError, UsageError, indefinite, natural_list
from .fsio import as_path, path_list
from .metrics import bits_per_dim, fit_gaussian, psnr_from_mse, slerp  # noqa: F401 (re-exported)
from .plugins import signal_adapter
from .step import gon_latents

# hidden activations of one decode chunk stay near this many floats (B * points * hidden)
DECODE_BUDGET = 1 << 23
# how to refit a run's latent Gaussian, for messages read from the CLI and from Python alike
REFIT = "`implicit-gon sample RUN --refit` (in Python, gon.refit_gaussian())"
# the CLI's flags whose keyword is not the flag's own name (`from` is a Python keyword)
CLI_NAMES = {"data": ("--data", "paths"), "input": ("--input", "inputs"), "from": ("--from", "from_")}


class GON:
    """A GON: its decoder (the SIREN or the conv GON), its resolved config, what it was trained on and where it runs."""

    def __init__(self, cfg: Config, meta: dict[str, Any], device: str | torch.device = "cpu"):
        self.cfg, self.meta = cfg, dict(meta)
        limits.check_model(cfg.model, meta["coord_dim"], meta["out_dim"], res=meta.get("res"))  # before allocating
        self.device = _device(device)
        self.model = make_decoder(cfg, meta)
        from . import methods  # methods and tasks use this module's helpers: imported when first needed
        from .tasks import attach_heads
        attach_heads(self.model, cfg, self.meta)
        methods.attach(self.model, cfg, self.meta)
        self.model.to(self.device)
        self.step = 0
        self.gaussian: tuple[torch.Tensor, torch.Tensor] | None = None  # (mean (K,), covariance (K, K))
        self.last_validation: dict[str, Any] = {}  # held-out scores at the end of the last training
        self.train_state: dict[str, Any] = {}  # what --resume needs besides weights: early stopping, elapsed time
        self.stop_reason: str | None = None  # why the last training stopped before train.steps, if it did
        self.run: Path | None = None  # the run directory it was loaded from
        self.checkpoint_name: str | None = None  # and the checkpoint file (checkpoint.safetensors, best, ...)

    # -- persistence -----------------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"config": self.cfg.to_dict(), "meta": self.meta, "step": self.step, "train_state": self.train_state}

    def save(self, run: str | Path, optimizer_state: dict | None = None, name: str = checkpoint.CKPT) -> Path:
        extra = {}
        if self.gaussian is not None:
            extra = {"gauss_mean": self.gaussian[0], "gauss_cov": self.gaussian[1]}
        return checkpoint.save(run, self.model, self.info(), optimizer_state, extra, name, self.cfg.train.keep)

    @classmethod
    def load(cls, run: str | Path, device: str | torch.device = "auto", with_optimizer: bool = False,
             which: str = "last", name: str | None = None):
        """The run's last checkpoint, or with which="best" its best.safetensors (the best held-out score), or the
        file `name` in the run (an earlier checkpoint-STEP.safetensors, train.keep)."""
        _check_which("GON.load", which)
        if name is not None and (not isinstance(name, str) or Path(name).name != name):
            raise UsageError(f"GON.load name = {name!r:.60}: a file name in the run (checkpoint-STEP.safetensors)")
        name = name or (checkpoint.BEST if which == "best" else checkpoint.CKPT)
        info, state, opt, extra = checkpoint.load(run, name)
        gon = cls(Config.from_dict(info["config"], str(run)), info["meta"], device)
        try:
            gon.model.load_state_dict(state)
        except RuntimeError as e:
            raise GONError(f"{run}: checkpoint weights do not match its config ({str(e).splitlines()[0]})") from None
        gon.step, gon.run, gon.checkpoint_name = int(info.get("step", 0)), Path(run), name
        gon.train_state = dict(info.get("train_state") or {})
        if "gauss_mean" in extra:
            K = gon.cfg.model.latent_dim
            if extra["gauss_mean"].shape != (K,) or extra.get("gauss_cov", torch.empty(0)).shape != (K, K):
                raise GONError(f"{run}: the checkpoint's latent Gaussian does not match latent_dim {K}")
            gon.gaussian = (extra["gauss_mean"], extra["gauss_cov"])
        return (gon, opt) if with_optimizer else gon

    def __repr__(self) -> str:
        m, mc = self.meta, self.cfg.model
        try:
            what = signal_adapter(m.get("signal")).describe(m)
        except GONError:  # no adapter registered for it
            what = str(m.get("signal"))
        kind = "variational GON" if mc.variational else "GON"
        if self.cfg.method.name != "gon":
            kind = self.cfg.method.name
        net = registry.decoder(mc.decoder).size(mc)  # "SIREN 4x256", "conv width 16", a plug-in's own
        return f"<{kind}: {what}, latent {mc.latent_dim}, {net}, step {self.step}, {self.device}>"

    # -- the model as a representation --------------------------------------------------------------------------
    def encode_batch(self, batch) -> torch.Tensor:
        """Latents of a signals Batch in one gradient step from the origin (no training graph): (B, K) tensor on
        self.device."""
        from . import methods
        from .tasks import inner_loss
        self.model.eval()
        if self.cfg.method.name != "gon":  # a baseline's encoder (ae, tied-ae, vae) or latent fit (glo)
            return methods.encode(self, batch).detach()
        with torch.enable_grad():
            z = gon_latents(self.model, batch.coords, batch.values, self.cfg.gon, batch.scale, create_graph=False,
                            inner_loss=inner_loss(self.model, self.cfg))
        return z.detach()

    def encode_signal(self, signal, idx=None, batch_size: int = 64) -> torch.Tensor:
        """Latents of samples idx (default: all) of a Signal on their full coordinate sets: (n, K)."""
        from . import options
        batch_size = options.check("encode", "GON.encode_signal", batch_size=batch_size).get("batch_size", 64)
        idx = torch.arange(len(signal)) if idx is None else torch.as_tensor(idx)
        out = [self.encode_batch(signal.full(idx[i:i + batch_size], self.device))
               for i in range(0, len(idx), batch_size)]
        return torch.cat(out) if out else torch.empty(0, self.cfg.model.latent_dim, device=self.device)

    # -- the verbs, for every signal ----------------------------------------------------------------------------
    def encode(self, inputs=None, batch_size: int = 64, out=None, **options) -> np.ndarray:
        """Latents in one gradient step each, (n, K) float32. Images: files, or an array or tensor (B, H, W, C) or
        (B, H, W), uint8 or floats in [0, 1], brought to the run's resolution; audio: a clip file, (W, K) the
        latents of its windows (every eighth of a window, as render encodes them); SDF: a mesh file, or index= a
        training shape, (1, K). A signals Batch gives its latents on its own coordinates."""
        if hasattr(inputs, "coords"):
            from .verbs import check_finite
            z = self.encode_batch(inputs).cpu().numpy()
            check_finite("GON.encode", z)
            return z
        return self.run_verb("encode", out, inputs=inputs, batch_size=batch_size, **options)

    def encode_images(self, images, batch_size: int = 64) -> np.ndarray:
        """encode() for an image run: (B, K) float32."""
        if self.meta.get("signal") != "images":
            raise GONError(f"GON.encode_images needs an image run (this one is {self.meta.get('signal')}): use "
                           f"GON.encode")
        return self.encode(images, batch_size)

    def render(self, z=None, res: int | None = None, out=None, **options) -> np.ndarray:
        """With latents z (n, K) or (K,): decoded at res. Images: (n, res, res, C) uint8 (default the training
        resolution; above it, super-resolution); SDF: shaded pictures (n, res, res, 3) uint8 (default 256).
        Without z, the CLI's render: images: the first n of a split, or inputs=files or an array, (n, res, res,
        C) uint8 (default 256); audio: inputs=a clip at sample_rate (default the run's), (T, C) float32; SDF:
        index= a training shape or inputs= a mesh, (1, res, res, 3) uint8."""
        if z is not None:
            self._refuse_render_options(options)
            return self.run_verb("decode", out, latents=z, res=res, **options)
        return self.run_verb("render", out, **({"res": res} if res is not None else {}), **options)

    def _refuse_render_options(self, options: dict) -> None:
        """render(z, index=0): an option of render without z that decoding latents has no use for."""
        from .verbs import adapter_for
        verbs = adapter_for(self, "decode").verbs
        for key in options:
            if key not in verbs["decode"].options and key in getattr(verbs.get("render"), "options", ()):
                raise UsageError(f"GON.render {key}=: not used with latents z (render without z takes it)")

    def sample(self, n: int | None = None, out=None, **options) -> np.ndarray:
        """n samples (seed=, temperature=): images (n, res, res, C) uint8 (res default the training one); audio
        (n, T, C) float32 clips of `seconds` (default 1 clip of 2 s); SDF shaded pictures (n, 160, 160, 3) uint8
        (with out= a folder, one mesh each)."""
        return self.run_verb("sample", out, **({"n": n} if n is not None else {}), **options)

    def interpolate(self, a=None, b=None, frames: int = 8, out=None, **options) -> np.ndarray:
        """Spherical interpolation from a to b in `frames` steps, ends included. Images: a, b test indices (default
        the pairs 0-1, 2-3, ... `pairs=`), (pairs * frames, res, res, C) uint8; audio: two clips, (frames, T, C)
        float32; SDF: training indices or meshes, (frames, res, res, 3) uint8 pictures. out= a .mp4, .webm or
        .gif writes a video (images, SDF)."""
        ends = {"from_": a, "to": b} if a is not None or b is not None else {}
        return self.run_verb("interpolate", out, frames=frames, **ends, **options)

    def evaluate(self, **options) -> dict:
        """The CLI's eval: held-out scores as a dict (images: sse, psnr on the test split; audio: snr_db, psnr;
        SDF: chamfer_x1e3, iou per shape and averaged); plot= writes its picture."""
        plot = options.get("plot")
        return self.run_verb("eval", plot, **options)

    def mesh(self, index: int | None = None, res: int = 256, out=None, **options):
        """SDF runs: marching cubes over the field of training shape `index` (or inputs= a mesh), a
        trimesh.Trimesh (original_units=True: in the mesh's own units); out= writes .ply, .obj, .glb or .stl."""
        return self.run_verb("export", out, **({"index": index} if index is not None else {}), res=res, **options)

    def volume(self, z, res: int = 128) -> np.ndarray:
        """SDF runs: the signed distances of latents z (n, K) on a res^3 grid over [-1, 1]^3: (n, res, res, res)
        float32."""
        from .verbs import adapter_for
        return adapter_for(self, "export").volume(self, z, res)

    def run_verb(self, name: str, out=None, **options) -> Any:
        """Any verb of the run's adapter by name, with the CLI's options as keywords (checked as the CLI checks
        them; one the run's signal does not read is refused); out= writes the output. Returns the verb's value."""
        from . import options as checks
        from . import rundir
        from .verbs import OPTION_NAMES, VerbOptions, adapter_for, print_notes, refuse_unused, run_verb
        method = "GON." + {"export": "mesh", "decode": "render", "eval": "evaluate"}.get(name, name)  # for messages
        unknown = sorted(set(options) - OPTION_NAMES - {"batch_size"})
        if unknown:
            cli = CLI_NAMES.get(unknown[0])  # a flag whose keyword is spelled otherwise: say which
            raise UsageError(f"{method}: no option {unknown[0]!r} " + (f"(the CLI's {cli[0]} is {cli[1]}=)" if cli else
                             f"(options: {', '.join(sorted(OPTION_NAMES))})"))
        given = {k: v for k, v in options.items() if v is not None}
        adapter = adapter_for(self, name)
        if "inputs" in given:  # every verb: one file given as a path is a list of it, as the CLI's --input makes
            given["inputs"] = _listed(given["inputs"], adapter, f"{method} inputs")
        if "paths" in given:  # evaluate(paths="a.wav") is one file (iterated, 'a' was "file not found")
            given["paths"] = path_list(given["paths"], f"{method} paths")
            if not given["paths"]:  # [] scored the run's own data as if none were given
                raise UsageError(f"{method} paths = []: give at least one file, or leave paths out for the run's own")
        refuse_unused(adapter, name, given, lambda key: f"{key}=", label=method)  # before checking its value
        own = {"res"} if name == "decode" else set()  # decode checks its res itself (`render res = ...`)
        given.update(checks.check({"export": "export-mesh"}.get(name, name), method,  # typed as the CLI's options
                                  **{k: v for k, v in given.items() if k in checks.RULES and k not in own}))
        if "batch_size" in given:
            given["batch_size"] = limits.encode_batch(self, given["batch_size"])
        out = as_path(out, f"{method} out") if out is not None else None
        opts = VerbOptions(**given, out=out if name != "eval" else None, given=frozenset(given))
        output = run_verb(self, name, opts)
        if out is not None and output.save is not None:
            with rundir.writing_into(out):
                output.save(out)
        print_notes(output.notes)
        return output.result()

    def check_latents(self, z, finite: bool = True) -> torch.Tensor:
        """Latents given to the API as (B, K) or (K,), checked: K is the run's latent size, B >= 1, every value
        finite (a NaN latent renders a NaN picture silently; decode leaves that to its caller, which reports NaN
        scores). (B, K) float32."""
        K = self.cfg.model.latent_dim
        dtype = getattr(z, "dtype", None)  # a complex array lost its imaginary parts with only torch's warning
        if getattr(dtype, "is_complex", False) or getattr(dtype, "kind", "f") not in "biuf":
            raise GONError(f"latents of dtype {dtype}: expected real numbers")
        try:
            z = torch.as_tensor(z, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError) as e:
            raise GONError(f"latents: not an array of numbers ({str(e).splitlines()[0][:80]})") from None
        z = z[None] if z.ndim == 1 else z
        if z.ndim != 2 or z.shape[1] != K or len(z) == 0:
            raise GONError(f"latents of shape {tuple(z.shape)}: this run needs (n, {K}) or ({K},) with n >= 1")
        if finite and not torch.isfinite(z).all():
            raise GONError("latents hold NaN or infinite values")
        return z

    @torch.no_grad()
    def decode(self, z: torch.Tensor, coords: torch.Tensor, out_device="cpu") -> torch.Tensor:
        """F(c ⊕ z) with the head's mean: z (B, K), coords (M, d) -> (B, M, C), evaluated in chunks of
        coordinates so memory stays bounded for any output resolution."""
        z = self.check_latents(z, finite=False).to(self.device)
        return self._chunked(lambda c: self.model(c, z)[0], len(z), coords, _device(out_device, "GON.decode out_device"))

    @torch.no_grad()
    def _chunked(self, f, n: int, coords: torch.Tensor, out_device) -> torch.Tensor:
        """f(coords chunk (m, d)) -> (n, m, C) over coords (M, d) in chunks sized to DECODE_BUDGET: (n, M, C)."""
        self.model.eval()
        coords = self._check_coords(coords, n)
        chunk = max(1, DECODE_BUDGET // (max(1, n) * self.cfg.model.hidden))
        if getattr(self.model, "grid_only", False):
            chunk = len(coords)  # a conv decoder renders its whole grid at once
        out = torch.empty(n, len(coords), self.meta["out_dim"], device=out_device)
        for s in range(0, len(coords), chunk):
            out[:, s:s + chunk] = f(coords[s:s + chunk].to(self.device)).to(out_device)
        if not torch.isfinite(out).all():  # finite weights so large that F overflows: no picture or score to give
            raise GONError("the model's outputs hold NaN or infinity: its weights (finite) or these latents are "
                           "too large to evaluate")
        return out

    def _check_coords(self, coords, n: int) -> torch.Tensor:
        """Coordinates (M, d) as F takes them, and the (n, M, C) output within the memory budget: a wrong shape was
        a matmul's RuntimeError, 10^9 coordinates an allocator's."""
        d = self.meta["coord_dim"]
        if not isinstance(coords, torch.Tensor) or coords.dim() != 2 or coords.shape[1] != d or not len(coords):
            shape = tuple(coords.shape) if hasattr(coords, "shape") else type(coords).__name__
            raise UsageError(f"GON.decode coords of shape {shape}: this run needs a tensor (M, {d}) with M >= 1")
        if not coords.is_floating_point() or coords.is_meta or not torch.isfinite(coords).all():
            raise UsageError(f"GON.decode coords of dtype {coords.dtype} on {coords.device}: they must be finite "
                             f"real numbers in memory (a float tensor)")
        limits.check(f"GON.decode: {n:,} latents at {len(coords):,} coordinates",
                     n * len(coords) * self.meta["out_dim"] * limits.F32, "decode fewer coordinates at a time")
        return coords.float()

    # -- generation -------------------------------------------------------------------------------------------
    @property
    def samples_prior(self) -> bool:
        """Whether samples come from the prior N(0, I) (a variational GON, a VAE), not the fitted Gaussian."""
        return trains_elbo(self.cfg)

    def sample_latents(self, n: int, generator: torch.Generator, temperature: float = 1.0) -> torch.Tensor:
        """Latents to decode: from the prior N(0, I) through the head's mean map for a variational run, else
        from the Gaussian fitted to the training latents (the paper's early-stop sampling). (n, K) on CPU."""
        K = self.cfg.model.latent_dim
        eps = torch.randn(n, K, generator=generator) * temperature
        if self.samples_prior:
            return eps  # a variational GON's decode() feeds z through head.mu; a VAE decodes it as it is
        if self.gaussian is None:
            raise GONError(f"this run has no fitted latent Gaussian: refit it with {REFIT}")
        mean, cov = (t.double() for t in self.gaussian)
        if not (torch.isfinite(mean).all() and torch.isfinite(cov).all()):
            raise GONError(f"this run's latent Gaussian is not finite (NaN or inf latents): refit it with {REFIT}, "
                           "or retrain")
        try:
            L = torch.linalg.cholesky(cov + 1e-8 * torch.eye(K, dtype=cov.dtype))  # jitter: a rank-deficient fit
        except torch.linalg.LinAlgError:
            raise GONError("this run's latent Gaussian has no valid covariance (not positive definite): refit it "
                           f"with {REFIT}") from None
        return (mean + eps.double() @ L.T).float()

    def decode_prior(self, eps: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """Decode z' directly (skipping the head): samples from the prior of a variational run."""
        eps = eps.to(self.device)
        return self._chunked(lambda c: self.model.after_head(c, eps), len(eps), coords, "cpu")

    def generate(self, n: int, coords: torch.Tensor, generator: torch.Generator, temperature: float = 1.0):
        """n samples decoded on coords: (n, M, C)."""
        z = self.sample_latents(n, generator, temperature)
        return self.decode_prior(z, coords) if self.model.head is not None else self.decode(z, coords)

    def refit_gaussian(self, which: str | None = None) -> None:
        """Recompute the latent Gaussian from the run's training data (its adapter's signal_for_run) and store it
        with the checkpoint it was loaded from (`sample --refit`), keeping the Adam state so the run can resume.
        which ("last" or "best"), if given, must be the checkpoint this GON holds: it is saved back there only."""
        from . import rundir
        name = self._refit_target(which)
        with rundir.locked(self.run):  # a `fit` of this run must not be writing it meanwhile
            self.fit_gaussian(signal_adapter(self.meta["signal"]).signal_for_run(self))
            if name == checkpoint.BEST:
                self.save(self.run, name=checkpoint.BEST)
                return
            _, _, opt_state, _ = checkpoint.load(self.run)
            self.save(self.run, opt_state)

    def _refit_target(self, which: str | None) -> str:
        """The checkpoint refit_gaussian writes: the one this GON was loaded from, if it is the last or the best
        (the last weights saved as best.safetensors replaced the real best, or made one that was never scored)."""
        if self.samples_prior:
            raise UsageError(f"sample --refit (refit_gaussian): {self.run} samples from its prior N(0, I), not from a "
                             f"fitted Gaussian")
        if self.run is None:
            raise GONError("refit_gaussian: this GON was not loaded from a run (GON.load)")
        if which is not None:
            _check_which("GON.refit_gaussian", which)
            want = checkpoint.BEST if which == "best" else checkpoint.CKPT
            if want != self.checkpoint_name:
                raise UsageError(f"GON.refit_gaussian which = {which!r}: this GON holds {self.checkpoint_name}, not "
                                 f"{want} (GON.load(run, which={which!r}) first)")
        if self.checkpoint_name not in (checkpoint.CKPT, checkpoint.BEST):
            raise UsageError(f"GON.refit_gaussian: this GON holds {self.checkpoint_name}, an earlier checkpoint; "
                             f"refit the run's last or best (GON.load(run) or GON.load(run, which='best'))")
        return self.checkpoint_name

    def fit_gaussian(self, signal, max_samples: int = 10000, batch_size: int = 64) -> None:
        """Fit mean and full covariance to the latents of (up to max_samples of) the training data."""
        from . import methods
        n = min(len(signal), max_samples)
        idx = torch.linspace(0, len(signal) - 1, n).round().long() if n < len(signal) else None
        z = methods.training_latents(self, signal, idx)  # glo: its learned latents; None: encode them
        if z is None:
            z = self.encode_signal(signal, idx, batch_size)
        self.gaussian = fit_gaussian(z.double().cpu())


def make_decoder(cfg: Config, meta: dict[str, Any]) -> torch.nn.Module:
    """F for the run: the SIREN F(c ⊕ z), or the conv decoder (images at the run's resolution)."""
    spec = registry.decoder(cfg.model.decoder)
    if spec.signals is not None and meta.get("signal") not in spec.signals:
        raise GONError(f"model.decoder {spec.name} renders {natural_list(spec.signals, 'or')} only (this run's signal is "
                       f"{meta.get('signal')})")
    return spec.build(meta, cfg.model)


def _listed(inputs, adapter, what: str):
    """Files given as a path or a list of them: a list. An array or tensor passes as it is where the adapter reads
    arrays (images); elsewhere it is one line (a numpy error inside the audio adapter, once)."""
    if not hasattr(inputs, "shape"):
        return path_list(inputs, what)
    if not adapter.arrays:  # an argument of the wrong kind, as path_list's refusals are
        raise UsageError(f"{what}: an array of shape {tuple(inputs.shape)}: {indefinite(adapter.noun + ' run')} "
                         f"reads {adapter.file} files ({' '.join(adapter.extensions)})")
    return inputs


def _check_which(method: str, which: str) -> None:
    """The checkpoint a method reads or writes: the run's last, or its best (best.safetensors)."""
    if which not in ("last", "best"):
        raise UsageError(f"{method} which = {which!r:.40}: 'last' or 'best'")


def _device(device, what: str | None = None) -> torch.device:
    """A device given to the API: `auto|cpu|cuda[:N]` (checked as --device is) or a torch.device. what: the
    argument to name in a refusal, where it is not --device (GON.load's device= is: the CLI passes it)."""
    if isinstance(device, str):
        try:
            return resolve_device(device)
        except UsageError as e:
            if what is None:
                raise
            raise UsageError(f"{what} = {device!r:.40}: {str(e).split(': ', 1)[1]}") from None
    if isinstance(device, torch.device) and device.type in ("cpu", "cuda"):
        return device
    raise UsageError(f"{what or 'GON device'} = {device!r:.40}: give 'auto', 'cpu', 'cuda' or 'cuda:N' (or a "
                     f"torch.device)")
