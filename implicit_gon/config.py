"""Typed configuration. Values flow from these dataclass defaults, to `configs/*.yaml`, to CLI flags;
the resolved config is stored in every checkpoint so a run can be rendered or evaluated with nothing else."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import GONError


@dataclass
class ModelConfig:
    """The SIREN F(c ⊕ z) and its optional variational head."""

    latent_dim: int = 32
    """Size of the latent z."""
    hidden: int = 256
    """Width of every sine layer."""
    layers: int = 4
    """Number of sine layers (the first, coordinate-and-latent layer included), before the linear output."""
    w0_first: float = 30.0
    """omega_0 of the first sine layer (SIREN uses 30 for images, thousands for audio)."""
    w0_hidden: float = 30.0
    """omega_0 of the hidden sine layers."""
    w0_latent: float | None = None
    """omega_0 applied to the latent term W_z z of the first layer (None: w0_first, as one layer on c ⊕ z)."""
    first_init: str = "concat"
    """First-layer init: `concat` U(±1/(d+K)) as one layer on c ⊕ z (the paper); `siren` U(±1/d) for W_c, as
    SIREN's first layer on coordinates alone (needed for audio's high frequencies), and U(±1/K) for W_z."""
    out_activation: str = "sigmoid"
    """Applied to F's output: `sigmoid` (values in [0, 1]) or `identity`."""
    zero_origin: bool = False
    """Decode F(c ⊕ z) - F(c ⊕ 0), so the zero latent renders exactly zero (audio: silence, where a shared origin
    waveform repeated every hop would be a buzz at the window rate). Needs out_activation identity."""
    variational: bool = False
    """Add the variational head: linear mean and log-variance over z, reparameterised (noise in training, mean in eval)."""
    head_init_std: float = 0.2
    """Posterior standard deviation the variational head starts with (its mean map starts as the identity)."""


@dataclass
class GONConfig:
    """The gradient-origin step and the training objective."""

    step_size: float = 1.0 / 64
    """a in z = -a * grad_z0 L. The loss is summed per sample, so 1/64 is the paper's effective scale at batch 64."""
    inner_steps: int = 1
    """Number of gradient steps from the origin (the paper's ablation uses more than one)."""
    detach: bool = False
    """Detach the latent before the outer pass (first-order ablation; the paper trains through the step)."""
    loss: str = "mse"
    """Per-coordinate loss: `mse`, `l1`, `bce` or `clamped_l1` (DeepSDF's, for signed distances)."""
    clamp: float = 0.1
    """Clamp distance for `clamped_l1`."""
    fast: bool = True
    """Share F(c ⊕ 0) and its Jacobian over the batch (exact); False uses plain autograd double backward."""
    likelihood: str = "bernoulli"
    """Variational runs: `bernoulli` (binary cross-entropy) or `gaussian` (squared error with fixed sigma)."""
    sigma: float = 0.1
    """Standard deviation of the Gaussian likelihood."""
    beta: float = 1.0
    """Weight of the KL term of the ELBO."""
    beta_warmup: int = 0
    """Steps over which the KL weight ramps linearly from 0 to beta."""
    task: str = field(default="reconstruct", metadata={"choices": ("reconstruct", "classify", "joint", "convert")})
    """Outer loss (Sec. 3.5): `reconstruct`; `classify`, cross-entropy of a linear layer on the latent (Eq. 13);
    `joint`, reconstruction plus class_weight x that cross-entropy; `convert`, the step encodes data.source, a view of
    the signal, and the outer loss is the whole signal."""
    class_weight: float = field(default=1.0, metadata={"min": 0.0})
    """Weight of the cross-entropy in the `joint` task's outer loss (per sample, beside the summed reconstruction)."""


@dataclass
class TrainConfig:
    """Optimisation, Monte Carlo subsampling, logging and checkpoints."""

    steps: int = 2000
    """Number of optimiser steps."""
    batch_size: int = 64
    """Samples per step."""
    lr: float = 1e-4
    """Adam learning rate."""
    points: float = 1.0
    """Coordinates per sample per step: a fraction (<= 1) of all coordinates, or a count (> 1)."""
    seed: int = 0
    """Seed for initialisation, batch order and coordinate subsets; a run is reproducible from it."""
    device: str = "auto"
    """`auto`, `cpu` or `cuda`."""
    log_every: int = 10
    """Steps between rows of RUN/metrics.jsonl."""
    ckpt_every: int = 500
    """Steps between checkpoints (one is always written at the end)."""
    val_every: int = 0
    """Steps between held-out evaluations logged to metrics.jsonl (0: only at the end)."""
    val_samples: int = 256
    """Held-out samples used for those evaluations."""
    head_lr_mult: float = 30.0
    """Learning-rate multiplier of the variational head, so the posterior's scale keeps up with the KL term
    (an inference network that lags the decoder invites posterior collapse; He et al. 2019)."""
    grad_clip: float = 0.0
    """Clip the gradient norm to this value (0: off)."""
    tensorboard: bool = False
    """Also write TensorBoard scalars to RUN/tb (needs the `tensorboard` extra)."""
    classifier_lr_mult: float = field(default=30.0, metadata={"gt": 0.0})
    """Learning-rate multiplier of the classify and joint tasks' linear layer: the one-step latents are small
    (a x a gradient), so at F's rate the layer would need ~1e5 steps to reach logits of order one."""


@dataclass
class DataConfig:
    """Which signal and dataset, and how it is sampled."""

    signal: str = "images"
    """`images`, `audio` or `sdf`."""
    dataset: str = "digits"
    """Image dataset name (see `implicit-gon dataset list`)."""
    data_dir: str | None = None
    """Where the dataset's files are (or are downloaded to)."""
    paths: list[str] = field(default_factory=list)
    """Audio clips or meshes (files or folders, searched recursively)."""
    res: int | None = None
    """Image side length; None uses the dataset's native resolution."""
    channels: int | None = None
    """Image channels (1 or 3); None uses the dataset's own."""
    camera: str = "left"
    """SmallNORB camera: `left`, `right` or `both` (two channels)."""
    download: bool = False
    """Fetch the dataset when it is missing and a public download exists."""
    cache_dir: str | None = None
    """Where decoded caches and downloads go (default: beside the data, else ~/.cache/implicit-gon)."""
    train_limit: int | None = None
    """Use at most this many training samples."""
    sample_rate: int = 16000
    """Audio: rate the clips are resampled to."""
    window: float = 0.25
    """Audio: window length in seconds."""
    hop: float | None = None
    """Audio: hop between windows in seconds (None: half a window)."""
    oversample: int = 1
    """Audio: training draws time points from a grid this many times finer than the samples, valued by band-limited
    upsampling, so F learns the continuous band-limited signal that rendering at a higher rate evaluates."""
    sdf_samples: int = 200000
    """SDF: samples cached per mesh."""
    sdf_near_std: list[float] = field(default_factory=lambda: [0.01, 0.05])
    """SDF: standard deviations of the Gaussian offsets around surface samples."""
    sdf_uniform_frac: float = 0.2
    """SDF: fraction of samples drawn uniformly in the cube."""
    source: str = field(default="gray", metadata={"choices": ("gray", "low-res", "mask")})
    """`convert` task: the view of an image the step encodes: `gray` (luminance), `low-res` (box-downsampled to
    source_res), `mask` (a random source_frac of the pixels)."""
    source_res: int = field(default=8, metadata={"min": 1})
    """`convert` with source low-res: side of the box-downsampled source image."""
    source_frac: float = field(default=0.25, metadata={"gt": 0.0, "max": 1.0})
    """`convert` with source mask: fraction of pixels the step sees (drawn at random per image and step)."""


@dataclass
class Config:
    """Everything a run needs; stored with each checkpoint."""

    model: ModelConfig = field(default_factory=ModelConfig)
    gon: GONConfig = field(default_factory=GONConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        return merge(cls(), d)


def merge(cfg: Config, overrides: dict[str, Any], source: str = "config") -> Config:
    """Return a copy of cfg with nested overrides applied; unknown sections or keys are errors."""
    out = {}
    for f in dataclasses.fields(cfg):
        section = getattr(cfg, f.name)
        values = dataclasses.asdict(section)
        for key, val in (overrides.get(f.name) or {}).items():
            if key not in values:
                raise GONError(f"{source}: unknown key {f.name}.{key}")
            values[key] = val
        out[f.name] = type(section)(**values)
    unknown = set(overrides) - set(out)
    if unknown:
        raise GONError(f"{source}: unknown section(s) {sorted(unknown)}")
    return Config(**out)


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise GONError(f"{path}: config file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise GONError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise GONError(f"{path}: expected a mapping of sections (model, gon, train, data)")
    return data


CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"


def default_config_path(signal: str, name: str) -> Path | None:
    """configs/<signal>/<name>.yaml, if the project ships one."""
    p = CONFIG_ROOT / signal / f"{name}.yaml"
    return p if p.is_file() else None


def resolve(signal: str, name: str, config_file: str | None, flags: dict[str, Any]) -> Config:
    """Defaults -> configs/<signal>/<name>.yaml (or --config FILE) -> flags (dotted keys, None means unset).
    The YAML's optional `variational:` section (same sections inside) applies on top when the run is variational."""
    cfg, extra = Config(), {}
    path = Path(config_file) if config_file else default_config_path(signal, name)
    if path is not None:
        data = load_yaml(path)
        extra = data.pop("variational", None) or {}
        cfg = merge(cfg, data, source=str(path))
    nested = _nest(flags)
    with_extra = merge(cfg, extra, source=f"{path}: variational")  # checked even when it does not apply
    if nested.get("model", {}).get("variational", cfg.model.variational):
        cfg = with_extra
    return merge(cfg, nested, source="command line")


def _nest(flags: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """{"train.lr": 1e-3} -> {"train": {"lr": 1e-3}}, dropping unset (None) values."""
    nested: dict[str, dict[str, Any]] = {}
    for dotted, val in flags.items():
        if val is not None:
            section, key = dotted.split(".")
            nested.setdefault(section, {})[key] = val
    return nested
