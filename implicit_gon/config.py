"""Typed configuration. Values flow from these dataclass defaults, to `configs/<signal>/<name>.yaml` (shipped
inside the package), to `--config` files layered on top, to CLI flags and `--set section.key=value`; the resolved
config is stored in every checkpoint so a run can be rendered or evaluated with nothing else.

Every value is checked here and nowhere else, whichever layer it came from: its type from the field's annotation,
its range from the field's metadata, and the rules that tie fields together in `check_rules`. Each field declares
itself with `param(default, ...)`; the metadata keys (META) are
- `min`, `max` (inclusive), `gt` (exclusive), `choices`, `pattern`: the values it takes;
- `signals`: the signals whose runs read it (default: all); a data field set for another signal, at any layer,
  would be stored and never used, so it is refused;
- `reads`: the kind of run that reads it, a decoder's name or a READERS entry (default: every run); given on the
  command line (a flag, --set) for another kind, it is refused (a plug-in decoder that reads it too says so in
  its DecoderSpec.reads);
- `resume`: `--resume` may change it: True for the schedule (steps, learning rate, ...), `"where"` for a field
  that says only where the run reads, runs and writes (data folder, device, logs, checkpoints), never what it
  trains (`compare --resume` reuses a finished run that differs in those alone); any other field defines the run;
- `flag`: its `fit` option (`--lr`, `--variational/--no-variational`), on the fit commands of `signals`, narrowed
  by `on`; `parse` turns the flag's text into the value (`--max-time 4m`).
The CLI's fit options, their help (the docstring under each field), `config show SIGNAL`, the refusals and the
fields --resume may change are all read from these declarations."""
from __future__ import annotations

import dataclasses
import math
import numbers
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from . import plugins, registry
from .errors import GONError, UsageError, natural_list

META = ("min", "max", "gt", "choices", "pattern", "signals", "reads", "resume", "flag", "on", "parse")


def param(default: Any = dataclasses.MISSING, *, factory: Callable[[], Any] | None = None, **meta) -> Any:
    """A config field declaring itself: its default (or `factory` for a list) and metadata (the keys of META)."""
    unknown = set(meta) - set(META)
    if unknown:
        raise TypeError(f"unknown config field metadata {sorted(unknown)} (known: {', '.join(META)})")
    if meta.get("resume", True) not in (True, "where", "guard"):
        raise TypeError(f"config field metadata resume={meta['resume']!r}: True, \"where\" or \"guard\"")
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """'240s', '4m', '2h', '1h30m', '1.5h' or a bare number of seconds -> seconds. One-line UsageError otherwise."""
    t = str(text).strip().lower()
    m = _DURATION.fullmatch(t)
    if t and m and any(m.groups()):
        h, mins, s = (float(g) if g else 0.0 for g in m.groups())
        return h * 3600 + mins * 60 + s
    try:
        value = float(t)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise UsageError(f"--max-time {text!r}: not a duration (e.g. 240s, 4m, 2h, 1h30m, or seconds)")
    return value


@dataclass
class ModelConfig:
    """The SIREN F(c ⊕ z) and its optional variational head."""

    latent_dim: int = param(32, min=1, max=65536, flag="--latent-dim")
    """Size of the latent z."""
    hidden: int = param(256, min=1, max=16384, reads="siren", flag="--hidden")
    """Width of every sine layer."""
    layers: int = param(4, min=1, max=64, reads="siren", flag="--layers")
    """Number of sine layers (the first, coordinate-and-latent layer included), before the linear output."""
    w0_first: float = param(30.0, gt=0, max=1e6, reads="siren", flag="--w0-first")
    """omega_0 of the first sine layer (SIREN uses 30 for images, thousands for audio)."""
    w0_hidden: float = param(30.0, gt=0, max=1e6, reads="siren")
    """omega_0 of the hidden sine layers."""
    w0_latent: float | None = param(None, gt=0, max=1e6, reads="siren")
    """omega_0 applied to the latent term W_z z of the first layer (None: w0_first, as one layer on c ⊕ z)."""
    first_init: str = param("concat", choices=("concat", "siren"), reads="siren")
    """First-layer init: `concat` U(±1/(d+K)) as one layer on c ⊕ z (the paper); `siren` U(±1/d) for W_c, as
    SIREN's first layer on coordinates alone (needed for audio's high frequencies), and U(±1/K) for W_z."""
    out_activation: str = param("sigmoid", choices=("sigmoid", "identity"), reads="siren")
    """Applied to F's output: `sigmoid` (values in [0, 1]) or `identity`."""
    zero_origin: bool = param(False, reads="siren")
    """Decode F(c ⊕ z) - F(c ⊕ 0), so the zero latent renders exactly zero (audio: silence, where a shared origin
    waveform repeated every hop would be a buzz at the window rate). Needs out_activation identity."""
    variational: bool = param(False, flag="--variational/--no-variational")
    """Add the variational head: linear mean and log-variance over z, reparameterised (noise in training, mean in eval)."""
    head_init_std: float = param(0.2, gt=0, max=100, reads="variational")
    """Posterior standard deviation the variational head starts with (its mean map starts as the identity)."""
    decoder: str = param("siren", choices=registry.Choices(lambda: registry.decoders()), flag="--decoder",
                         on=("images",))
    """F itself: `siren`, the implicit F(c ⊕ z) above; `conv`, the paper's convolutional GON: 4 ConvTranspose2d layers
    from z as a (K, 1, 1) map to a 28 or 32 px image, no coordinates (it renders only its training grid)."""
    conv_width: int = param(16, min=1, max=4096, reads="conv", flag="--conv-width", on=("images",))
    """Conv decoder: channels of its last hidden layer (ngf); the layers before it have 4x and 2x as many."""
    conv_activation: str = param("elu", choices=("elu", "relu", "leaky_relu", "silu", "gelu", "tanh"), reads="conv")
    """Conv decoder: the activation after each BatchNorm (the paper's ELU; its Fig. 3 compares others; the
    authors' script first used ReLU)."""


@dataclass
class GONConfig:
    """The gradient-origin step and the training objective."""

    step_size: float = param(1.0 / 64, gt=0, reads="gon")
    """a in z = -a * grad_z0 L. The loss is summed per sample, so 1/64 is the paper's effective scale at batch 64."""
    inner_steps: int = param(1, min=1, max=1000)
    """Number of gradient steps from the origin (the paper's ablation uses more than one)."""
    origin_std: float = param(0.0, min=0, max=1e3, reads="gon")
    """Training only (the paper's Appendix C): each sample's step starts from its own z0 ~ N(0, origin_std^2 I),
    drawn from the step's seeded generator, instead of the origin; 0 (the paper's choice, which it found gives the
    lowest loss) is the origin. Encoding outside training (eval, encode, render, validation) always starts from the
    origin, so a latent never depends on a draw or on its batch; above 0 the step takes the general autograd path."""
    detach: bool = False
    """Detach the latent before the outer pass (first-order ablation; the paper trains through the step)."""
    loss: str = param("mse", choices=("mse", "l1", "bce", "clamped_l1"), flag="--loss")
    """Per-coordinate loss: `mse`, `l1`, `bce` or `clamped_l1` (DeepSDF's, for signed distances)."""
    clamp: float = param(0.1, gt=0)
    """Clamp distance for `clamped_l1`."""
    fast: bool = param(True, reads="siren")
    """Share F(c ⊕ 0) and its Jacobian over the batch (exact; SIREN only, other decoders always take the general
    autograd path); False uses plain autograd double backward."""
    likelihood: str = param("bernoulli", choices=("bernoulli", "gaussian"), reads="elbo")
    """Variational runs: `bernoulli` (binary cross-entropy) or `gaussian` (squared error with fixed sigma)."""
    sigma: float = param(0.1, gt=0, reads="elbo")
    """Standard deviation of the Gaussian likelihood."""
    beta: float = param(1.0, min=0, reads="elbo")
    """Weight of the KL term of the ELBO."""
    beta_warmup: int = param(0, min=0, reads="elbo")
    """Steps over which the KL weight ramps linearly from 0 to beta."""
    task: str = param("reconstruct", choices=("reconstruct", "classify", "joint", "convert"), flag="--task",
                      on=("images",))
    """Outer loss (Sec. 3.5): `reconstruct`; `classify`, cross-entropy of a linear layer on the latent (Eq. 13);
    `joint`, reconstruction plus class_weight x that cross-entropy; `convert`, the step encodes data.source, a view of
    the signal, and the outer loss is the whole signal."""
    class_weight: float = param(1.0, min=0.0, reads="joint", flag="--class-weight", on=("images",))
    """Weight of the cross-entropy in the `joint` task's outer loss (per sample, beside the summed reconstruction)."""


@dataclass
class MethodConfig:
    """How latents are found: the gradient origin, or a baseline of the paper's Table 1 and 2 (implicit_gon/methods)."""

    name: str = param("gon", choices=registry.Choices(registry.method_names), flag="--method", on=("images",))
    """`gon`, latents from the gradient step; `ae`, a conv encoder mirroring the conv decoder; `tied-ae`, that encoder
    sharing the decoder's weights; `glo`, one learned latent per training image (Bojanowski et al. 2018); `vae`, the
    ae encoder giving a mean and log-variance, trained on the ELBO."""
    glo_lr_mult: float = param(10.0, gt=0, max=1e6, reads="glo")
    """GLO: learning-rate multiplier of the per-image latents (each is updated only once an epoch)."""
    glo_encode_steps: int = param(100, min=1, max=100000, reads="glo")
    """GLO: Adam steps that fit a latent to an image it was not trained on (the decoder fixed), from the training
    latents' mean."""
    glo_encode_lr: float = param(0.05, gt=0, max=10, reads="glo")
    """GLO: Adam learning rate of that fit."""


@dataclass
class TrainConfig:
    """Optimisation, Monte Carlo subsampling, logging and checkpoints."""

    steps: int = param(2000, min=1, max=10**9, resume=True, flag="--steps")
    """Number of optimiser steps."""
    batch_size: int = param(64, min=1, max=1 << 20, resume=True, flag="--batch-size")
    """Samples per step."""
    lr: float = param(1e-4, gt=0, max=10, resume=True, flag="--lr")
    """Adam learning rate."""
    points: float = param(1.0, gt=0, resume=True, flag="--points")
    """Coordinates per sample per step: a fraction (<= 1) of all coordinates, or a count (> 1)."""
    seed: int = param(0, min=0, max=2**31 - 1, flag="--seed")
    """Seed for initialisation, batch order and coordinate subsets; a run is reproducible from it."""
    device: str = param("auto", pattern=r"auto|cpu|cuda(:\d+)?", resume="where", flag="--device")
    """`auto`, `cpu` or `cuda`."""
    log_every: int = param(10, min=1, resume="where")
    """Steps between rows of RUN/metrics.jsonl."""
    ckpt_every: int = param(500, min=1, resume="where", flag="--ckpt-every")
    """Steps between checkpoints (one is always written at the end)."""
    ckpt_minutes: float = param(10.0, min=0, max=10**6, resume="where")
    """Wall-clock minutes between checkpoints, besides every ckpt_every steps, so a long run is never more than
    this far from disk (0: steps only)."""
    keep: int = param(3, min=1, max=1000, resume="where")
    """Checkpoints kept on disk: RUN/checkpoint.safetensors (the last) and the keep - 1 before it as
    RUN/checkpoint-STEP.safetensors; RUN/best.safetensors is kept besides."""
    divergence_factor: float = param(10.0, min=0, max=1e9, resume="guard")
    """A step's loss above this many times the median of the recent ones (or a non-finite loss, always) is a
    divergence: training stops, or rolls back (on_divergence), and never checkpoints it (0: non-finite only)."""
    drift_factor: float = param(4.0, min=0, max=1e9, resume="guard")
    """A slow divergence, which no single step's jump shows: the median of the last 25 losses above this many times
    the lowest such median seen in the run (judged from step 25 on, after any KL warm-up) stops or rolls back like a
    jump (0: off). The window and the lowest median are kept in the checkpoint, so --resume judges as before."""
    grad_factor: float = param(100.0, min=0, max=1e9, resume="guard")
    """A blow-up the loss does not show: the median of the last 25 gradient norms (before train.grad_clip) above
    this many times the lowest such median seen in the run stops or rolls back like a jump (0: off; a non-finite
    gradient norm always counts, except under fp16's loss scaler). Why 100: CelebA's old config blew up this way
    (gradient norm 1.5e4 -> 6.6e8, the loss flat) and 100x stops it at step 113; healthy runs of every signal rose
    at most 6.5x (docs/robustness.md)."""
    on_divergence: str = param("stop", choices=("stop", "rollback"), resume="guard")
    """`stop`: exit 1 with one line, the last checkpoint kept as it was; `rollback`: reload the last checkpoint,
    halve the learning rate and go on (logged to metrics.jsonl as an `event: rollback` row)."""
    val_every: int = param(0, min=0, resume=True, flag="--val-every")
    """Steps between held-out evaluations logged to metrics.jsonl (0: only at the end)."""
    val_samples: int = param(256, min=1, resume=True)
    """Held-out samples used for those evaluations."""
    head_lr_mult: float = param(30.0, gt=0, max=1e6, reads="variational")
    """Learning-rate multiplier of the variational head, so the posterior's scale keeps up with the KL term
    (an inference network that lags the decoder invites posterior collapse; He et al. 2019)."""
    grad_clip: float = param(0.0, min=0, resume=True)
    """Clip the gradient norm to this value (0: off)."""
    tensorboard: bool = param(False, resume="where", flag="--tensorboard")
    """Also write TensorBoard scalars to RUN/tb (needs the `tensorboard` extra)."""
    precision: str = param("fp32", choices=("fp32", "bf16", "fp16", "auto"), resume=True, flag="--precision")
    """Training arithmetic: `fp32`, or autocast to `bf16` / `fp16` (float32 master weights, first layer and sine
    arguments in float32; fp16 adds a gradient scaler); `auto`: bf16 where the device has it natively and, on a
    CPU, a start-up probe finds it faster; else fp32 (decided when the run starts and kept by --resume). Evaluation
    and rendering always run in float32."""
    patience: int = param(0, min=0, resume=True, flag="--patience")
    """Held-out evaluations (every val_every steps) without improvement before training stops early (0: never)."""
    val_metric: str = param("auto", choices=registry.Choices(lambda: ("auto", *plugins.val_metrics())),
                            flag="--val-metric")
    """Held-out metric that picks RUN/best.safetensors and early stopping; `auto`: sse for images (bits_per_dim
    when variational), snr_db for audio, chamfer_x1e3 for SDF."""
    max_time: float = param(0.0, min=0, resume=True, flag="--max-time", parse=parse_duration)
    """Wall-clock budget of one `fit` (or `--resume`) in seconds, checked before each step (0: none); the flag also
    takes 240s, 4m, 2h, 1h30m. The run stops, checkpoints and stays resumable."""
    sampling: str = param("uniform", choices=("uniform", "stratified"))
    """How each step's Monte Carlo subset of coordinates is drawn: `uniform` (without replacement), or `stratified`,
    one pixel drawn uniformly in each b x b block of the grid (a jittered grid; images, with train.points = 1 / b^2
    for a whole b up to the resolution: 0.25 is 2 x 2 blocks; where b does not divide it, draws in the overhanging
    last blocks that land outside are dropped). Both are unbiased; stratified estimates have lower variance."""
    encode: str = param("subset", choices=("subset", "full"))
    """Where the gradient step encodes in training: `subset`, the outer loss's Monte Carlo points (the paper), or
    `full`, every pixel, as at test time, with train.points thinning only the outer loss (images; the shared origin
    makes the full-grid step cheap, and latents carry no Monte Carlo noise). The classify, joint and convert tasks
    always encode every pixel of what they encode."""
    schedule: str = param("constant", choices=("constant", "cosine"))
    """Learning-rate schedule over the run's budget (train.steps, or train.max_time when that ends first):
    `constant`, or `cosine` decay from lr to lr * final_lr."""
    warmup: int = param(0, min=0, max=10**9)
    """Steps of linear learning-rate warm-up from 0 (0: none)."""
    final_lr: float = param(0.0, min=0.0, max=1.0)
    """The cosine schedule's last learning rate, as a fraction of lr."""
    classifier_lr_mult: float = param(30.0, gt=0.0, reads="classifier")
    """Learning-rate multiplier of the classify and joint tasks' linear layer: the one-step latents are small
    (a x a gradient), so at F's rate the layer would need ~1e5 steps to reach logits of order one."""


@dataclass
class DataConfig:
    """Which signal and dataset, and how it is sampled."""

    signal: str = param("images", choices=registry.Choices(plugins.signal_kinds))
    """`images`, `audio` or `sdf` (or a kind a plug-in registers: implicit_gon/plugins.py)."""
    dataset: str = param("digits", pattern=r"[a-z0-9][a-z0-9-]*", signals=plugins.GivenAs("dataset"))
    """Image dataset name (see `implicit-gon dataset list`)."""
    data_dir: str | None = param(None, signals=plugins.GivenAs("dataset"), resume="where", flag="--data-dir")
    """Where the dataset's files are (or are downloaded to)."""
    paths: list[str] = param(factory=list, signals=plugins.GivenAs("files"))
    """Audio clips or meshes (files or folders, searched recursively)."""
    res: int | None = param(None, min=1, max=4096, signals=("images",), flag="--res")
    """Image side length; None uses the dataset's native resolution."""
    channels: int | None = param(None, min=1, max=8, signals=("images", "audio"), flag="--channels")
    """Image channels (1 or 3; SmallNORB's both cameras: 2), audio channels (1: mixed to mono, up to 8); None uses
    the data's own (audio: mono)."""
    camera: str = param("left", choices=("left", "right", "both"), signals=("images",), flag="--camera")
    """SmallNORB camera: `left`, `right` or `both` (two channels)."""
    download: bool = param(False, signals=("images",), resume="where", flag="--download")
    """Fetch the dataset when it is missing and a public download exists."""
    cache_dir: str | None = param(None, resume="where", flag="--cache-dir")
    """Where decoded caches and downloads go (default: $IMPLICIT_GON_CACHE, else $XDG_CACHE_HOME/implicit-gon, else
    ~/.cache/implicit-gon; never inside the data folder)."""
    train_limit: int | None = param(None, min=1, signals=("images",), flag="--train-limit")
    """Use at most this many training samples."""
    sample_rate: int = param(16000, min=100, max=384000, signals=("audio",), flag="--sample-rate")
    """Audio: rate the clips are resampled to."""
    window: float = param(0.25, gt=0, max=60, signals=("audio",), flag="--window")
    """Audio: window length in seconds."""
    hop: float | None = param(None, gt=0, max=60, signals=("audio",), flag="--hop")
    """Audio: hop between windows in seconds (None: half a window)."""
    oversample: int = param(1, min=1, max=16, signals=("audio",), flag="--oversample")
    """Audio: training draws time points from a grid this many times finer than the samples, valued by band-limited
    upsampling, so F learns the continuous band-limited signal that rendering at a higher rate evaluates."""
    sdf_samples: int = param(200000, min=16, max=10**8, signals=("sdf",), flag="--samples")
    """SDF: samples cached per mesh."""
    sdf_near_std: list[float] = param(factory=lambda: [0.01, 0.05], gt=0, max=1, signals=("sdf",))
    """SDF: standard deviations of the Gaussian offsets around surface samples."""
    sdf_uniform_frac: float = param(0.2, min=0, max=1, signals=("sdf",))
    """SDF: fraction of samples drawn uniformly in the cube."""
    val_paths: list[str] = param(factory=list, signals=plugins.GivenAs("files"))
    """Audio clips or meshes held out for validation (files or folders); empty: none, or every tenth of `paths`
    when validation is on (see `fit audio --val`)."""
    source: str = param("gray", choices=("gray", "low-res", "mask"), signals=("images",), reads="convert")
    """`convert` task: the view of an image the step encodes: `gray` (luminance), `low-res` (box-downsampled to
    source_res), `mask` (a random source_frac of the pixels)."""
    source_res: int = param(8, min=1, signals=("images",), reads="convert")
    """`convert` with source low-res: side of the box-downsampled source image."""
    source_frac: float = param(0.25, gt=0.0, max=1.0, signals=("images",), reads="convert")
    """`convert` with source mask: fraction of pixels the step sees (drawn at random per image and step)."""


@dataclass
class Config:
    """Everything a run needs; stored with each checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    gon: GONConfig = field(default_factory=GONConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    method: MethodConfig = field(default_factory=MethodConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> "Config":
        """A config from its dict (a checkpoint's), checked like any other layer."""
        return check_rules(merge(cls(), d, source), source)


def merge(cfg: Config, overrides: dict[str, Any], source: str = "config") -> Config:
    """Return a copy of cfg with nested overrides applied, each value checked; unknown sections or keys are errors."""
    if not isinstance(overrides, dict):
        raise GONError(f"{source}: expected a mapping of sections ({', '.join(sections())})")
    out = {}
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        values = dataclasses.asdict(section)
        given = overrides.get(f.name) or {}
        if not isinstance(given, dict):
            raise GONError(f"{source}: section {f.name} must be a mapping of keys to values, got {given!r:.60}")
        for key, val in given.items():
            if key not in values:
                raise GONError(f"{source}: unknown key {f.name}.{key}")
            values[key] = check_field(type(section), key, val, source)
        out[f.name] = type(section)(**values)
    unknown = set(overrides) - set(out)
    if unknown:
        raise GONError(f"{source}: unknown section(s) {sorted(unknown)}")
    return Config(**out)


def check_field(section_type: type, key: str, val: Any, source: str) -> Any:
    """The value of section.key, checked against the field's type and metadata and normalised (an integral
    float becomes an int, a numeric string a float: YAML reads `1e-4` as a string). One-line GONError if wrong."""
    f = {f.name: f for f in dataclasses.fields(section_type)}[key]
    section = next(name for name, cls in sections().items() if cls is section_type)
    where = f"{source}: {section}.{key} = {_short(val)}"
    tp = typing.get_type_hints(section_type)[key]
    try:
        return check_value(val, tp, f.metadata)
    except ValueError as e:
        raise GONError(f"{where}: {e}") from None


def check_value(val: Any, tp: Any, meta: dict) -> Any:
    """val as type tp takes it (an integral float or a numpy integer becomes an int, a numeric string a float),
    every item within meta's range (min, max, gt, choices, pattern); a ValueError says what is wrong. Config
    fields and the verbs' options (implicit_gon/options.py) are both checked by it."""
    val = _check_type(val, tp)
    for item in (val if isinstance(val, list) else [val]):
        if item is not None:
            check_range(item, meta)
    return val


def _short(val: Any) -> str:
    text = repr(val)
    return text if len(text) <= 40 else text[:37] + "..."


def _check_type(val: Any, tp: Any) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if val is None and type(None) in args:
            return None
        return _check_type(val, next(a for a in args if a is not type(None)))
    if origin is list:
        if not isinstance(val, list):
            raise ValueError("must be a list")
        return [_check_type(v, args[0]) for v in val]
    if tp is bool:
        if not isinstance(val, bool):
            raise ValueError("must be true or false")
        return val
    if tp is int:
        if isinstance(val, float) and math.isfinite(val) and val == int(val):
            return int(val)
        if isinstance(val, bool) or not isinstance(val, numbers.Integral):
            raise ValueError("must be an integer")
        return int(val)
    if tp is float:
        return _to_float(val)
    if tp is str:
        if not isinstance(val, str):
            raise ValueError("must be a string")
        return val
    raise TypeError(f"unsupported config type {tp}")


def _to_float(val: Any) -> float:
    if isinstance(val, str):
        try:
            val = float(val)
        except ValueError:
            raise ValueError("must be a number") from None
    if isinstance(val, bool) or not isinstance(val, numbers.Real):
        raise ValueError("must be a number")
    if not math.isfinite(val):
        raise ValueError("must be a finite number")
    return float(val)


def check_range(val: Any, meta: dict) -> None:
    if "choices" in meta and val not in meta["choices"]:
        raise ValueError(f"choose one of {natural_list(meta['choices'], 'or')}")
    if "pattern" in meta and not re.fullmatch(meta["pattern"], val):
        raise ValueError(f"must match {meta['pattern']}")
    if "min" in meta and val < meta["min"]:
        raise ValueError(f"must be at least {meta['min']}")
    if "gt" in meta and val <= meta["gt"]:
        raise ValueError(f"must be greater than {meta['gt']}")
    if "max" in meta and val > meta["max"]:
        raise ValueError(f"must be at most {meta['max']}")


def sections() -> dict[str, type]:
    """{"model": ModelConfig, ...}: Config's sections in their order."""
    return {f.name: f.default_factory for f in dataclasses.fields(Config)}


def fields() -> Iterator[tuple[str, dataclasses.Field]]:
    """("section.key", field) of every config field, in declaration order."""
    for name, cls in sections().items():
        for f in dataclasses.fields(cls):
            yield f"{name}.{f.name}", f


def field_of(key: str) -> tuple[dataclasses.Field, Any]:
    """The field `section.key` and its type."""
    section, name = key.split(".")
    cls = sections()[section]
    return next(f for f in dataclasses.fields(cls) if f.name == name), typing.get_type_hints(cls)[name]


RANGE = ("min", "max", "gt", "choices", "pattern")


def range_of(key: str) -> dict[str, Any]:
    """The values field `section.key` takes (its range metadata), for an option that takes them outside a config."""
    meta = field_of(key)[0].metadata
    return {k: meta[k] for k in RANGE if k in meta}


def read_by(f: dataclasses.Field, signal: str) -> bool:
    """Whether runs of `signal` read field f (metadata `signals`; default: every signal, a plug-in's included)."""
    return signal in f.metadata.get("signals", (signal,))


def offers(f: dataclasses.Field, signal: str) -> bool:
    """Whether `fit SIGNAL` offers f's flag: the signal reads f, and the flag's `on` (if any) names it."""
    return "flag" in f.metadata and read_by(f, signal) and signal in f.metadata.get("on", (signal,))


def flag_keys(signal: str | None = None) -> dict[str, str]:
    """{"--lr": "train.lr", ...}: the fit flags that set fields (for one signal: those its fit command offers)."""
    return {f.metadata["flag"].split("/")[0]: key for key, f in fields()
            if "flag" in f.metadata and (signal is None or offers(f, signal))}


def signal_keys(signal: str) -> list[str]:
    """The fields a run of this signal can read (metadata `signals`; a decoder's own fields where that decoder
    renders the signal): what `config show SIGNAL` prints."""
    def renders(f: dataclasses.Field) -> bool:
        spec = registry.decoders().get(f.metadata.get("reads"))
        return spec is None or spec.signals is None or signal in spec.signals
    return [key for key, f in fields() if read_by(f, signal) and renders(f)]


def trains_elbo(cfg: Config) -> bool:
    """A variational GON or the VAE baseline: trained on the ELBO, scored in bits/dim, sampled from N(0, I)."""
    return cfg.model.variational or cfg.method.name == "vae"


@dataclass(frozen=True)
class Reader:
    """A kind of run that reads some fields (their metadata `reads`); other runs would store them and never use
    them, so they are refused."""

    applies: Callable[[Config], bool]
    what: str
    """What its fields are, as a refusal names them."""
    why: Callable[[Config], str]
    """Why a run of another kind does not read them."""
    who: str = ""
    """Who reads them, for a data field refused at any layer (`data.source ... is for the convert task`)."""


READERS = {
    "gon": Reader(lambda c: c.method.name == "gon", "a gradient-step setting",
                  lambda c: f"method.name {c.method.name} has no gradient step"),
    "glo": Reader(lambda c: c.method.name == "glo", "a GLO setting", lambda c: f"this run's method is {c.method.name}"),
    "elbo": Reader(trains_elbo, "an ELBO setting",
                   lambda c: "this run is not variational (--variational, or method.name vae)"),
    "variational": Reader(lambda c: c.model.variational, "the variational head's setting",
                          lambda c: "this run has no variational head"),
    "classifier": Reader(lambda c: c.gon.task in ("classify", "joint"), "the classifier's setting",
                         lambda c: f"gon.task {c.gon.task} has no classifier"),
    "joint": Reader(lambda c: c.gon.task == "joint", "the joint task's setting",
                    lambda c: f"gon.task {c.gon.task} weighs no cross-entropy beside the reconstruction"),
    "convert": Reader(lambda c: c.gon.task == "convert", "a convert-task setting",
                      lambda c: f"gon.task {c.gon.task} encodes no view", "the convert task"),
}
"""The kinds of run a field's `reads` names, besides the decoders (a decoder's name is a kind too: `reads="conv"`)."""


def reader(name: str) -> Reader:
    """READERS[name], or the runs of decoder `name`."""
    if name in READERS:
        return READERS[name]
    return Reader(lambda c: c.model.decoder == name, f"a {name} decoder setting",
                  lambda c: f"this run's decoder is {c.model.decoder}")


def reads(f: dataclasses.Field, cfg: Config) -> bool:
    """Whether cfg's run reads field f (its signal is one of f's, and it is of the kind f's `reads` names, or its
    decoder states f among the fields it reads: DecoderSpec.reads)."""
    if not read_by(f, cfg.data.signal):
        return False
    return "reads" not in f.metadata or reader(f.metadata["reads"]).applies(cfg) or f in decoder_fields(
        cfg.model.decoder)


def decoder_fields(name: str) -> list[dataclasses.Field]:
    """The fields decoder `name` reads: those declared for it (`reads=name`) and those its spec names."""
    spec = registry.decoders().get(name)
    named = [field_of(key)[0] for key in (spec.reads if spec is not None else ())]
    return [f for _, f in fields() if f.metadata.get("reads") == name] + named


def decoder_sizes(name: str) -> list[str]:
    """The integer model fields of decoder `name` (its width, depth): what a refusal of its size says to lower."""
    return [key for key, f in fields() if key.startswith("model.") and f in decoder_fields(name)
            and typing.get_type_hints(ModelConfig)[f.name] is int]


def _check_data_fields(cfg: Config, source: str) -> None:
    """Data fields the run's signal (or task) does not read must keep their defaults."""
    d, default = cfg.data, DataConfig()
    for f in dataclasses.fields(DataConfig):
        if getattr(d, f.name) == getattr(default, f.name) or reads(f, cfg):
            continue
        users = f.metadata.get("signals", (d.signal,))
        what = reader(f.metadata["reads"]).who if d.signal in users else f"{natural_list(users)} runs"
        raise GONError(f"{source}: data.{f.name} = {_short(getattr(d, f.name))} is for {what}; this {d.signal} run "
                       f"({cfg.gon.task}) would ignore it")


def given_keys(flags: dict[str, Any] | None, sets=()) -> dict[str, str]:
    """The dotted keys a command line gave, each with how it was given: flags that are set (`--conv-width`, the
    field's flag), then every --set (`--set model.conv_width`)."""
    names = {key: flag for flag, key in flag_keys().items()}
    given = {k: names.get(k, "--" + k.split(".")[1].replace("_", "-")) for k, v in (flags or {}).items()
             if v is not None}
    return {**given, **{k: f"--set {k}" for k in parse_sets(sets or ())}}


def unread_keys(cfg: Config, given) -> dict[str, str]:
    """Of the keys the user gave (given_keys), those this run would never read (metadata `reads`), each with why."""
    out = {}
    for key, f in fields():
        if key in given and "reads" in f.metadata and not reads(f, cfg):
            r = reader(f.metadata["reads"])
            out[key] = f"{r.what} ({key}); {r.why(cfg)}, so it would be ignored"
    return out


def check_given_keys(cfg: Config, given) -> None:
    """Refuse keys the user gave that this run would never read. Config files are not checked: a dataset's file
    sets the SIREN's shape, and its conv: section the conv decoder's."""
    unread = unread_keys(cfg, given)
    if unread:
        k = next(iter(unread))
        raise UsageError(f"{given[k]}: {unread[k]}")


def strata_block(points: float) -> int | None:
    """b such that points = 1 / b^2 (stratified sampling's block side), or None when there is no such whole b."""
    if not 0 < points <= 1:
        return None
    b = round((1 / points) ** 0.5)
    return b if abs(b * b * points - 1) < 5e-3 else None  # 0.111 means 1/9: the draw is exactly one per block


def _check_strata(points: float, d: DataConfig, source: str) -> None:
    if d.signal != "images":
        raise GONError(f"{source}: train.sampling = stratified is for image grids (this run is {d.signal}); use "
                       f"train.sampling uniform")
    b = strata_block(points)
    if b is None:
        raise GONError(f"{source}: train.points = {points:g}: stratified sampling draws one pixel per b x b block, so "
                       f"points must be 1 / b^2 (0.25, 0.111, 0.0625, ...), or set train.sampling=uniform")
    if d.res is not None and b > d.res:
        raise GONError(f"{source}: train.points = {points:g} is {b} x {b} blocks, larger than the image (data.res = "
                       f"{d.res}); raise train.points or set train.sampling=uniform")


def check_rules(cfg: Config, source: str = "config") -> Config:
    """The rules that tie fields together (each field alone was checked by check_field)."""
    m, d = cfg.model, cfg.data
    _check_data_fields(cfg, source)
    if m.zero_origin and m.out_activation != "identity":
        raise GONError(f"{source}: model.zero_origin needs model.out_activation identity (a sigmoid's zero is not 0)")
    if d.hop is not None and d.hop > d.window:
        raise GONError(f"{source}: data.hop = {d.hop} is longer than data.window = {d.window} (samples would be skipped)")
    if d.signal == "images" and d.channels is not None and d.channels > 3:
        raise GONError(f"{source}: data.channels = {d.channels}: images have 1 (gray) or 3 (RGB) channels")
    if d.signal == "images" and d.channels == 2 and d.camera != "both":
        raise GONError(f"{source}: data.channels = 2 is only for smallnorb's --camera both")
    t = cfg.train
    if t.points > 1 and t.points != int(t.points):
        raise GONError(f"{source}: train.points = {t.points}: above 1 it is a count of coordinates, a whole number "
                       f"(a fraction of them is at most 1)")
    if t.sampling == "stratified":
        _check_strata(t.points, d, source)
    for key in ("divergence_factor", "drift_factor", "grad_factor"):  # 1x (or less) its own median is no rise
        if 0 < getattr(t, key) <= 1:
            raise GONError(f"{source}: train.{key} = {getattr(t, key):g}: must be above 1 (a multiple of a recent "
                           f"median), or 0 (off)")
    if t.final_lr and t.schedule != "cosine":
        raise GONError(f"{source}: train.final_lr = {t.final_lr:g} is the cosine schedule's last rate; this run's "
                       f"train.schedule is {t.schedule} (set train.schedule=cosine)")
    if t.encode == "full" and d.signal != "images":
        raise GONError(f"{source}: train.encode = full is for image runs (this one is {d.signal}); use train.encode "
                       f"subset")
    if t.patience and not t.val_every:
        raise GONError(f"{source}: train.patience = {t.patience} needs train.val_every > 0 (--val-every N: how often "
                       f"the held-out data are evaluated)")
    if t.val_metric != "auto" and t.val_metric not in plugins.val_metrics(d.signal):  # as its adapter states them
        raise GONError(f"{source}: train.val_metric = {t.val_metric} is not reported for {d.signal} runs (choose "
                       f"{natural_list(plugins.val_metrics(d.signal), 'or')})")
    if t.val_metric == "bits_per_dim" and not trains_elbo(cfg):
        raise GONError(f"{source}: train.val_metric = bits_per_dim needs a variational run (--variational)")
    _check_decoder_rules(cfg, source)
    return cfg


def _check_decoder_rules(cfg: Config, source: str) -> None:
    """The conv decoder, the baseline methods and the gradient step's settings: what each can be combined with."""
    m, d, g, meth = cfg.model, cfg.data, cfg.gon, cfg.method.name
    if g.origin_std and g.task != "reconstruct":
        raise GONError(f"{source}: gon.origin_std = {g.origin_std:g} is for gon.task reconstruct (this run's task "
                       f"is {g.task})")
    spec = registry.decoder(m.decoder)
    if spec.signals is not None and d.signal not in spec.signals:
        raise GONError(f"{source}: model.decoder = {m.decoder} renders {natural_list(spec.signals, 'or')} only (this run's "
                       f"signal is {d.signal})")
    if spec.grid_sizes is not None:
        if d.res is not None and d.res not in spec.grid_sizes:
            raise GONError(f"{source}: model.decoder = {m.decoder} needs data.res "
                           f"{natural_list(spec.grid_sizes, 'or')} (given {d.res})")
        if g.task == "convert":
            raise GONError(f"{source}: gon.task = convert needs coordinates (model.decoder siren)")
    runs_with = registry.method_decoders(meth)
    if m.decoder not in runs_with:
        raise GONError(f"{source}: method.name = {meth} needs model.decoder {natural_list(runs_with, 'or')} (its encoder "
                       f"mirrors the conv decoder)")
    whole = any(s.whole_images for s in registry.methods().values() if s.method_name == meth)
    if whole and cfg.train.points != 1:
        raise GONError(f"{source}: train.points = {cfg.train.points:g}: method.name = {meth}'s encoder reads whole "
                       f"images; use train.points 1")
    if meth != "gon":
        if g.task != "reconstruct":
            raise GONError(f"{source}: gon.task = {g.task} needs method.name gon (the {meth} baseline reconstructs)")
        if g.detach or g.inner_steps != 1 or cfg.train.encode != "subset":
            raise GONError(f"{source}: gon.detach, gon.inner_steps and train.encode are gradient-origin settings; "
                           f"method.name = {meth} has no gradient step")
        if m.variational:
            raise GONError(f"{source}: model.variational is the variational GON's head; method.name = {meth} "
                           + ("is variational itself: leave out --variational" if meth == "vae" else
                              "has none (method.name vae is the variational baseline)"))


MAX_YAML_BYTES = 1 << 20


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's where PyYAML has it: a 700 kB file in 1 s, not 9
MAX_YAML_DEPTH = 32  # a config is 2 deep; yaml's composer recurses per level (5,000 gave a RecursionError)


def parse_yaml(text: str, source: str) -> Any:
    """yaml.safe_load that refuses anchors and aliases (a 500-byte file of nested aliases expands to gigabytes),
    nesting deeper than MAX_YAML_DEPTH, and integers longer than Python converts: each one line."""
    source = source if len(source) <= 120 else source[:117] + "..."
    try:
        depth = 0
        for event in yaml.parse(text, Loader=_LOADER):  # before composing: the composer recurses per level
            if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
                raise GONError(f"{source}: YAML anchors and aliases are not accepted in configs")
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > MAX_YAML_DEPTH:
                raise GONError(f"{source}: YAML nested more than {MAX_YAML_DEPTH} deep")
        loader = _LOADER(text)
        try:
            node = loader.get_single_node()
            _check_tree(node, source)
            return loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        if "exceeded maximum nesting depth" in str(e):  # libyaml stops at 1,000 levels before the check above
            raise GONError(f"{source}: YAML nested more than {MAX_YAML_DEPTH} deep") from None
        raise GONError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    except ValueError as e:  # a number Python will not convert that _check_tree did not foresee
        raise GONError(f"{source}: {str(e).split(';')[0]}") from None


def _check_tree(node, source: str) -> None:
    """Refuse what safe_load would take silently or fail on: a key given twice in one mapping (YAML keeps the
    last), an integer of more digits than Python converts (named by its key)."""
    limit, stack = sys.get_int_max_str_digits(), [(node, None)]
    while stack:
        n, key = stack.pop()
        if isinstance(n, yaml.MappingNode):
            seen: set = set()
            for k, v in n.value:
                name = k.value if isinstance(k, yaml.ScalarNode) else None  # a [list] as a key: unhashable, and
                if name is not None and name in seen:  # no config's (constructing the mapping refuses it)
                    raise GONError(f"{source}: key {name!r:.60} is given twice in one mapping (YAML would keep "
                                   f"the last silently)")
                seen.add(name)
                stack += [(k, key), (v, key if name is None else name)]
        elif isinstance(n, yaml.SequenceNode):
            stack += [(v, key) for v in n.value]
        elif isinstance(n, yaml.ScalarNode) and n.tag.endswith(":int") and len(n.value) > limit:
            raise GONError(f"{source}: {key!s:.60}: an integer of {len(n.value):,} digits (at most {limit:,})")


def load_yaml(path: str | Path) -> dict[str, Any]:
    from .fsio import input_file
    path = input_file(path, "config file")  # a directory, FIFO or device named as such
    if path.stat().st_size > MAX_YAML_BYTES:
        raise GONError(f"{path}: config file larger than {MAX_YAML_BYTES} bytes")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise GONError(f"{path}: config file is not UTF-8 text") from None
    data = parse_yaml(text, str(path)) or {}
    if not isinstance(data, dict):
        raise GONError(f"{path}: expected a mapping of sections ({', '.join(sections())})")
    return data


def config_root():
    """The shipped configs: package data of the installed package, or configs/ beside it in a source checkout."""
    import importlib.resources
    try:
        return importlib.resources.files("implicit_gon.configs")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "configs"


def default_config_path(signal: str, name: str) -> Path:
    """The shipped configs/<signal>/<name>.yaml; a missing one is an error, never a silent fall-back to defaults."""
    p = config_root() / signal / f"{name}.yaml"
    if not p.is_file():
        raise GONError(f"unknown dataset {name!r}: no config {signal}/{name}.yaml is shipped (`implicit-gon dataset "
                       f"list` names the datasets)")
    return Path(str(p))


def default_layer(signal: str, name: str) -> tuple[str, dict, dict[str, dict]]:
    """The first layer of a run's config (source, sections, overlays): config `name` of the signal's adapter where
    it brings its own (`configs`: an adapter outside this package), else the shipped configs/<signal>/<name>.yaml."""
    own = getattr(plugins.signal_adapter(signal), "configs", None) if signal in plugins.signal_kinds() else None
    if own is None:
        path = default_config_path(signal, name)
        return (str(path), *split_overlays(load_yaml(path), str(path)))
    if name not in own:
        raise GONError(f"unknown config {name!r} of {signal} runs (its adapter has {', '.join(own) or 'none'})")
    source = f"{signal} adapter's config {name}"
    return (source, *split_overlays(dict(own[name]), source))


def parse_sets(sets: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """--set section.key=value (value read as YAML: 3, 1e-4, true, [0.01, 0.05]) -> {"section.key": value}."""
    out = {}
    for item in sets:
        key, eq, text = item.partition("=")
        if not eq or key.count(".") != 1 or not all(key.split(".")):
            raise UsageError(f"--set {item}: expected section.key=value (e.g. train.log_every=5)")
        if key in out:  # the last would silently win, as a YAML file's repeated key would (refused there too)
            raise UsageError(f"--set {key} is given twice (in Python, twice in sets=): give it once")
        out[key] = parse_yaml(text, f"--set {item}")
    return out


OVERLAYS = ("conv", "variational")
"""A config file's optional sections, named after the kind of run they are for (a decoder, a READERS entry),
applied right after the rest of that file when the run is of that kind, in this order (a conv run's settings,
then a variational run's)."""


def overlays(cfg: "Config") -> tuple[str, ...]:
    """The overlay sections that apply to cfg's run."""
    return tuple(k for k in OVERLAYS if reader(k).applies(cfg))


def split_overlays(data: dict, source: str) -> tuple[dict, dict[str, dict]]:
    """A config file's data -> (its plain sections, {overlay name: its sections})."""
    extras = {}
    for name in OVERLAYS:
        extra = data.pop(name, None)
        extra = {} if extra is None else extra
        if not isinstance(extra, dict):
            raise GONError(f"{source}: {name}: a section of sections (e.g. `{name}: {{train: {{lr: 0.001}}}}`), "
                           f"got {extra!r}")
        model = extra.get("model") or {}
        if isinstance(model, dict) and {"decoder", "variational"} & set(model):
            raise GONError(f"{source}: {name}: sets model.{sorted({'decoder', 'variational'} & set(model))[0]}, "
                           f"which decides which sections apply; set it outside the {name}: section")
        extras[name] = extra
    return data, extras


def apply_layer(cfg: "Config", data: dict, extras: dict[str, dict], source: str, kinds) -> "Config":
    """cfg with one config file on top, and those of its overlay sections named in kinds."""
    cfg = merge(cfg, data, source)
    for name in OVERLAYS:
        if name in kinds:
            cfg = merge(cfg, extras[name], f"{source}: {name}")
    return cfg


def resolve(signal: str, name: str, config_files: str | Path | list | None = None,
            flags: dict[str, Any] | None = None, sets: list[str] | tuple[str, ...] = ()) -> Config:
    """Defaults -> configs/<signal>/<name>.yaml -> each --config file in turn -> flags (dotted keys, None means
    unset) -> --set. A layer's `conv:` and `variational:` sections (the same sections inside) apply right after
    that layer when the resolved run has the conv decoder or is variational."""
    from .fsio import path_list
    files = path_list(config_files or [], "config_files")
    if flags is not None and not isinstance(flags, dict):
        raise UsageError(f"flags = {flags!r:.60}: give a dict of dotted settings ({{'train.lr': 1e-4}})")
    if isinstance(sets, str):  # a string would be iterated one character at a time
        raise UsageError(f"sets = {sets!r:.60}: give a list of 'section.key=value' strings")
    layers = [_as_usage(default_layer, signal, name)]  # an unknown dataset name is the caller's
    layers += [(str(path), *split_overlays(load_yaml(path), str(path))) for path in map(Path, files)]
    cli = _as_usage(_command_line, flags, sets)

    def build(kinds, cli=cli) -> Config:
        cfg = Config()
        for source, data, extras in layers:
            cfg = apply_layer(cfg, data, extras, source, kinds)
        return _as_usage(merge, cfg, cli, "command line")

    for kind in OVERLAYS:  # every section is checked, even where it does not apply
        build((kind,))
    return _checked(lambda given: build(overlays(build((), given)), given), cli)


def _command_line(flags: dict[str, Any] | None, sets) -> dict[str, dict[str, Any]]:
    """Flags (dotted keys, None: unset) then --set, as one nested layer."""
    cli = _nest(flags or {})
    for dotted, val in parse_sets(sets).items():
        section, key = dotted.split(".")
        if cli.get(section, {}).get(key) is not None:  # --set would silently win over the flag
            raise UsageError(f"--set {dotted}: {dotted} is given by its flag too (in Python, in flags= and in sets=): "
                             f"give it once")
        cli.setdefault(section, {})[key] = val
    return cli


def _as_usage(fn, *args):
    """fn(*args), its GONError a UsageError: a value given on the command line is a usage error (exit 2)."""
    try:
        return fn(*args)
    except UsageError:
        raise
    except GONError as e:
        raise UsageError(str(e)) from None


def _checked(build, cli: dict) -> Config:
    """check_rules on build(cli), the config with the command line's layer `cli` on top. Settings that conflict are
    the command line's fault (a UsageError, exit 2) when the layers below it agree (build({}) passes)."""
    try:
        return check_rules(build(cli), "config")
    except GONError as e:
        if cli and _agrees(build):
            raise UsageError(str(e)) from None
        raise


def _agrees(build) -> bool:
    try:
        check_rules(build({}), "config")
        return True
    except GONError:
        return False


def _nest(flags: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"train.lr": 1e-3} -> {"train": {"lr": 1e-3}}, dropping unset (None) values."""
    nested: dict[str, dict[str, Any]] = {}
    for dotted, val in flags.items():
        if val is not None:
            section, key = dotted.split(".")
            nested.setdefault(section, {})[key] = val
    return nested


def to_yaml(cfg: Config, keys: list[str] | None = None) -> str:
    """The resolved config as YAML, sections in their usual order (only `keys`, "section.key", when given)."""
    d = cfg.to_dict()
    if keys is not None:
        d = {s: {k: v for k, v in vals.items() if f"{s}.{k}" in keys} for s, vals in d.items()}
    return yaml.safe_dump(d, sort_keys=False, default_flow_style=None, width=110)


def where_keys() -> frozenset[str]:
    """Fields that say where a run reads, runs and writes, not what it trains (metadata `resume="where"`)."""
    return frozenset(key for key, f in fields() if f.metadata.get("resume") == "where")


def guard_keys() -> frozenset[str]:
    """Fields that decide only when the divergence guard acts (metadata `resume="guard"`): a run in which the guard
    never acted (no rollback) is the same run whatever they were."""
    return frozenset(key for key, f in fields() if f.metadata.get("resume") == "guard")


def resumable() -> frozenset[str]:
    """Fields a resumed run may change (metadata `resume`: its schedule, where its data is); every other one
    defines the model, the objective or the data, so changing it on --resume would silently make another run under
    the same name."""
    return frozenset(key for key, f in fields() if f.metadata.get("resume"))


def resume_config(cfg: Config, config_files: str | Path | list | None, flags: dict[str, Any],
                  sets: list[str] | tuple[str, ...] = ()) -> tuple[Config, dict[str, list]]:
    """A resumed run's config: its own, with --config files, flags and --set on top, checked like any other layer.
    Returns (config, {"section.key": [old, new]} of what changed); a change outside resumable() is a one-line error."""
    from .fsio import path_list
    base = cfg  # the run's own config with the --config files on top: the layers below the command line
    for path in map(Path, path_list(config_files or [], "config_files")):
        base = apply_layer(base, *split_overlays(load_yaml(path), str(path)), str(path), overlays(cfg))
    cli = _as_usage(_command_line, flags, sets)
    new = _checked(lambda given: _as_usage(merge, base, given, "command line"), cli)
    check_given_keys(new, given_keys(flags, sets))  # as for a new run: a setting the run would not read, even unchanged
    old_d, new_d = cfg.to_dict(), new.to_dict()
    changed = {f"{s}.{k}": [old_d[s][k], v] for s in new_d for k, v in new_d[s].items() if old_d[s][k] != v}
    fixed = [k for k in changed if k not in resumable()]
    if fixed:
        k = fixed[0]
        raise UsageError(f"--resume: {k} cannot change when a run is resumed (the run has {_short(changed[k][0])}, "
                         f"given {_short(changed[k][1])}); start a new run with another --out")
    return new, changed
