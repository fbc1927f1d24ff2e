"""The Signal protocol: all the engine knows of a modality is batches of (coords, values)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from implicit_gon.lazy import lazy_import

torch = lazy_import("torch")  # loaded on first use: `fit KIND -h` imports this module, not torch


@dataclass
class Batch:
    """One training or evaluation batch."""

    coords: torch.Tensor
    """(N, d) shared by the whole batch, or (B, N, d) per sample; every coordinate lies in [-1, 1]^d (audio's
    points between samples, past the last sample centre, by less than one sample)."""
    values: torch.Tensor
    """(B, N, C) target values at those coordinates."""
    scale: float = 1.0
    """N_total / N: a per-sample sum over these N coordinates times scale is an unbiased estimate of the full sum."""
    query: Batch | None = None
    """Where the outer loss is measured when that differs from where the step encodes (None: the same points).
    Audio's oversampled training encodes the samples, as rendering does, and fits F between them."""
    labels: torch.Tensor | None = None
    """(B,) int64 class indices, for signals read with labels (classification)."""
    index: torch.Tensor | None = None
    """(B,) int64 positions of the samples in their split (image signals): GLO's per-image latents are looked up by it."""


@runtime_checkable
class Signal(Protocol):
    """A dataset of signals seen as functions from coordinates to values."""

    kind: str  # "images", "audio" or "sdf"
    coord_dim: int  # d
    out_dim: int  # C

    def __len__(self) -> int: ...

    def batch(self, idx: torch.Tensor, points: float, generator: torch.Generator, device) -> Batch:
        """Samples idx on a Monte Carlo subset of coordinates: a fraction (<= 1) or a count (> 1)."""

    def full(self, idx: torch.Tensor, device) -> Batch:
        """Samples idx on all their coordinates, for encoding and evaluation. Its scale defines the signal's
        integral (1 for grids, where it is the sum; 1 / N for SDF samples, where it is the mean), and every
        subsampled batch has scale * N equal to it, so both estimate the same integral."""

    def meta(self) -> dict[str, Any]:
        """What a checkpoint must remember to rebuild coordinates and outputs later (JSON-serialisable)."""


def to_device(t: torch.Tensor, device) -> torch.Tensor:
    """A host tensor on the training device: through pinned memory, non-blocking, when that is a GPU, so the copy
    overlaps the work already queued there."""
    device = torch.device(device)
    if device.type == "cuda" and t.device.type == "cpu":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def subset_size(total: int, points: float) -> int:
    """Coordinates to draw: `points` <= 1 is a fraction of total, > 1 a count (train.points: above 0, checked with
    the config); at least 1, at most total."""
    n = round(points * total) if points <= 1 else int(points)
    return max(1, min(total, n))


def draw_subset(total: int, points: float, generator: torch.Generator) -> tuple[torch.Tensor | None, float]:
    """Indices of a uniform subset without replacement (None: all) and the unbiasing scale total / n."""
    n = subset_size(total, points)
    if n == total:
        return None, 1.0
    return torch.randperm(total, generator=generator)[:n], total / n


def find_files(paths, extensions: tuple[str, ...], what: str) -> list:
    """Files as given, plus the files with these extensions found recursively in folders (sorted per folder).
    A missing path or a folder without any is a DataError naming it."""
    from pathlib import Path

    from implicit_gon.errors import DataError

    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in extensions and f.is_file())
            if not found:
                raise DataError(f"{p}: no {what} ({', '.join(extensions)}) in this folder")
            out += found
        else:
            from implicit_gon.fsio import input_file
            out.append(input_file(p))  # a missing path, a FIFO or a device: one precise line
    if not out:
        raise DataError(f"no {what} given")
    return out


class SignalAdapter:
    """What every signal adapter provides, beside its Signal class: loading a run's data, its description, its
    held-out metric, and the verbs it supports. Each verb is a method taking (gon, VerbOptions) and returning an
    implicit_gon.verbs.Output whose `value` is what the Python API returns (numpy arrays, or a type the verb's
    docstring names); `verbs` declares, per verb, the options it reads and the outputs it writes. An adapter
    registers itself with `signals.register(kind, adapter)` (or a "module:attribute" path, imported on first use),
    and then every verb it declares works from the CLI (`implicit-gon VERB RUN`) and the API (`GON.load(RUN)`)."""

    kind: str = ""
    """The run's meta["signal"]."""
    noun: str = ""
    """How messages name its runs ("image", "audio", "SDF")."""
    arrays: bool = False
    """Whether the Python API takes its inputs= as an array (images); for the others an array is one line (the
    API's run_verb), since they read files."""
    metric: str = ""
    """The held-out metric best.safetensors and --patience follow by default."""
    verbs: dict = {}
    """Verb name -> implicit_gon.verbs.Verb: the options it reads and what it writes."""
    hints: dict = {}
    """Verb name -> what to use instead, for verbs this signal does not have."""
    coord_dim: int = 0
    """d, the dimension of its coordinates."""
    meta_rules: dict = {}
    """What a run's meta holds for this signal, checked when a checkpoint is read: key -> (type, min, max), the
    bounds on the value, or on the length of a list or string (meta.coord_dim, out_dim are checked for every
    signal)."""

    val_metrics: dict = {}
    """The held-out metrics its validation reports: name -> whether higher is better (train.val_metric's values)."""

    fit_data: str = ""
    """How `implicit-gon fit KIND` is given its data: "dataset", a dataset's name (--dataset; data.dataset,
    data.data_dir), or "files" (arguments or --data, and --val: data.paths, data.val_paths); "" (no fit command:
    train it from Python, implicit_gon.fit). The fit command is built from these declarations."""
    fit_help: str = ""
    """The fit command's help."""
    fit_options: tuple = ()
    """Options of its own on the fit command (implicit_gon.fitting.FitOption), turned into settings by fit_flags."""
    dataset: str = ""
    """A dataset signal's default dataset (its config configs/KIND/NAME.yaml)."""
    configs: dict | None = None
    """Its configs by name, as a config file's sections, for an adapter outside this package; None: those shipped,
    configs/KIND/NAME.yaml (a files signal's config is `default`)."""
    file: str = ""
    """One of its files, as help names it ("clip", "mesh")."""
    files: str = ""
    """What its runs are trained on, when that is files given to `fit` ("clips", "meshes"); "" for a dataset."""
    extensions: tuple = ()
    """Those files' extensions (folders are searched for them)."""
    file_uses: tuple = ("", "")
    """What numbers a run's (training files, files eval scores), for `dataset info RUN`."""

    def find(self, paths) -> list:
        """Its files under paths (files as given, folders searched recursively), in the order a run holds them."""
        return find_files(paths, self.extensions, self.files)

    optional_meta: frozenset = frozenset()
    """meta_rules keys that runs fitted before the key existed lack: checked only where present."""

    def check_meta(self, meta: dict, source: str) -> None:
        """A checkpoint's meta for this signal, each entry checked: a one-line GONError naming source."""
        from implicit_gon.errors import GONError
        for key, (tp, lo, hi) in self.meta_rules.items():
            v = meta.get(key)
            if v is None and key in self.optional_meta:
                continue
            size = len(v) if isinstance(v, (list, str)) else v
            typed = isinstance(v, (int, float)) if tp is float else isinstance(v, tp)
            if isinstance(v, bool) or not typed or not lo <= size <= hi:
                what = {list: "a list of", str: "a string of", float: "a number"}.get(tp, "an integer")
                raise GONError(f"{source}: meta.{key} = {v!r:.40}: must be {what} {lo}..{hi}")

    def fit_flags(self, options: dict) -> dict:
        """Its fit_options' values ({name: value or None}) as settings ({"section.key": value})."""
        return {}

    def fit_signals(self, cfg) -> tuple[Signal, Signal | None]:
        """A new or resumed run's (training data, held-out data or None), from its config."""
        raise NotImplementedError

    def signal_for_run(self, gon, paths=None) -> Signal:
        """The run's training data (or the files given), windowed or sampled as in training."""
        raise NotImplementedError

    def describe(self, meta: dict) -> str:
        """The run's data in a few words, for GON's repr."""
        return str(meta.get("signal"))
