"""What a verb is, for the command line and the Python API alike.

A signal adapter (signals/base.py `SignalAdapter`) implements the verbs its signal supports and declares, per verb,
the options it reads and the outputs it writes (`Verb`). Both front ends call `run_verb`: the options are checked
once (implicit_gon/options.py), an option the run's signal does not read is refused (never ignored), and the
adapter's verb returns an `Output`: the value the API hands back (numpy arrays, or a documented type) and `save`,
which writes it where the CLI's --out (or the API's out=) names."""
from __future__ import annotations

import dataclasses
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .errors import GONError, UsageError, natural_list

VERBS = ("eval", "render", "encode", "decode", "sample", "interpolate", "export", "latents")
"""Every verb an adapter may implement (the CLI names `export` export-mesh)."""


@dataclass
class VerbOptions:
    """Every option a verb may take. An adapter reads only the ones its Verb declares; the CLI and the API refuse
    any other that is given (`given`)."""

    inputs: list | None = None
    """--input: files to encode (images: any number; audio: one clip; SDF: one mesh), or for the API arrays."""
    n: int | None = None
    """How many samples (render, eval, sample, latents)."""
    res: int | None = None
    """Output side in pixels (images), or the volume / picture side (SDF)."""
    split: str = "test"
    """Image runs: the dataset split the samples come from."""
    data_dir: Path | None = None
    """Image runs: the dataset's location (default: the run's)."""
    paths: list | None = None
    """eval: clips or meshes to score (default: the run's)."""
    compare: bool = False
    """Images: originals above their renderings; samples above their nearest training images."""
    index: int | None = None
    """SDF: a training shape."""
    sample_rate: int | None = None
    """Audio: output rate."""
    plot: Path | None = None
    """A picture beside the output (eval: reconstructions or spectrograms; audio render: spectrograms)."""
    hop: float | None = None
    """Audio render: seconds between the encoded windows."""
    mask: Path | None = None
    """Convert runs with a mask source: the pixels --input shows."""
    seconds: float | None = None
    """Audio sample: duration of each clip."""
    temperature: float = 1.0
    """sample: scale of the latent noise."""
    seed: int = 0
    """sample: seed of the latent noise."""
    pairs: int | None = None
    """Images interpolate: pairs of consecutive samples (default 4, or as many as the split holds)."""
    from_: Any = None
    """interpolate: first end (an index, a clip, a mesh)."""
    to: Any = None
    """interpolate: second end."""
    frames: int = 8
    """interpolate: frames per pair, ends included."""
    fps: int = 15
    """interpolate: video frame rate."""
    format: str | None = None
    """export: mesh format (ply, obj, glb, stl; default from the output name)."""
    original_units: bool = False
    """export: undo the normalisation into the unit sphere."""
    latents: Any = None
    """decode: latents (n, K)."""
    nrow: int | None = None
    """decode: images per row of the grid."""
    batch_size: int = 64
    """Samples encoded at once (latents do not depend on it)."""
    out: Path | None = None
    """Where the output goes, when the verb's result depends on it (a video or a picture, a file or a folder)."""
    given: frozenset = frozenset()
    """The options the caller gave (the others hold defaults)."""


OPTION_NAMES = frozenset(f.name for f in dataclasses.fields(VerbOptions)) - {"given", "out", "batch_size"}


@dataclass(frozen=True)
class Verb:
    """One verb of an adapter: the VerbOptions it reads and the files it writes."""

    options: frozenset = frozenset()
    """Names of the VerbOptions fields this verb reads for this signal; any other given is refused."""
    outputs: tuple = ()
    """Suffix tables (implicit_gon.media IMAGE, VIDEO, AUDIO, or {".npy": None}) the output may be named with."""
    folder: bool = False
    """The output may be a folder (no suffix): one file per item."""
    plot: dict | None = None
    """Suffixes --plot may name, where the verb draws one."""


def verb(*options: str, outputs: tuple = (), folder: bool = False, plot: dict | None = None) -> Verb:
    unknown = set(options) - OPTION_NAMES
    if unknown:
        raise ValueError(f"unknown verb options {sorted(unknown)}")
    return Verb(frozenset(options), outputs, folder, plot)


@dataclass
class Output:
    """What a verb made. `value`: what the Python API returns; `save(out)`: write it (the lines after 'wrote ')."""

    value: Any
    save: Callable[[Path], list[str]] | None = None
    notes: list[str] = field(default_factory=list)
    """Lines for the user beside the output (printed on stderr after it is written)."""

    def result(self) -> Any:
        """The value; a verb whose file output needs no picture (meshes into a folder) gives a function that
        makes it, called only here (by the API), never by the CLI."""
        return self.value() if callable(self.value) else self.value


def adapter_for(gon, verb_name: str):
    """The run's adapter (from the one registry, implicit_gon.plugins) if it implements verb_name."""
    from .plugins import signal_adapter
    adapter = signal_adapter(gon.meta.get("signal"))
    if verb_name not in adapter.verbs:
        have = ", ".join(v for v in VERBS if v in adapter.verbs)
        hint = getattr(adapter, "hints", {}).get(verb_name)
        raise UsageError(f"{verb_name} is not a verb of {adapter.noun} runs" + (f": {hint}" if hint else
                                                                                f" (its verbs: {have})"))
    return adapter


def refuse_unused(adapter, verb_name: str, given, flag: Callable[[str], str], label: str | None = None) -> None:
    """An option given for this verb that the run's signal does not read is a one-line error naming the signals
    that read it (flag(name): how the front end spells it; label: how it names the verb, default verb_name)."""
    from .plugins import signal_adapter, signal_kinds
    reads = adapter.verbs[verb_name].options
    for name in sorted(given):
        if name in OPTION_NAMES and name not in reads:
            users = []
            for kind in signal_kinds():
                other = signal_adapter(kind)
                if name in getattr(other.verbs.get(verb_name), "options", ()):
                    users.append(other.noun)
            only = f" (only for {natural_list(users)} runs)" if users else ""
            raise UsageError(f"{label or verb_name} {flag(name)}: not used for {adapter.noun} runs{only}")


def check_out(adapter, verb_name: str, out: Path | None, plot: Path | None = None) -> None:
    """Output names checked against what the verb writes for this signal, before any work."""
    from .media import check_out as check
    spec = adapter.verbs[verb_name]
    if out is not None and spec.outputs:
        check(out, *spec.outputs, folder=spec.folder)
    if plot is not None and spec.plot is not None:
        check(plot, spec.plot, what="--plot")


def run_verb(gon, verb_name: str, opts: VerbOptions, flag: Callable[[str], str] | None = None,
             before: Callable | None = None) -> Output:
    """The verb for the run's signal: options it does not read refused, output names checked, `before(gon)` (the
    CLI's sample --refit), then the work."""
    adapter = adapter_for(gon, verb_name)
    refuse_unused(adapter, verb_name, opts.given, flag or (lambda name: f"{name}="))
    check_out(adapter, verb_name, opts.out, opts.plot)
    if before is not None:
        before(gon)
    output = getattr(adapter, verb_name)(gon, opts)
    if verb_name == "eval":
        check_scores(output.value)
    else:
        check_finite(verb_name, output.value)
    return output


def check_finite(verb_name: str, value: Any) -> None:
    """A verb's array of numbers (latents, a waveform, distances) holds no NaN or infinity: finite weights so large
    that F or its gradient overflows gave `encode` NaN latents, written with exit 0."""
    import numpy as np
    if isinstance(value, np.ndarray) and value.dtype.kind in "fc" and not np.isfinite(value).all():
        raise GONError(f"{verb_name}: the result holds NaN or infinity: the model's outputs or their gradient "
                       f"overflow (its weights are finite but too large to evaluate)")


def check_scores(scores: Any, key: str = "") -> None:
    """eval's scores, every number in them finite: a NaN score (finite weights so large that F overflows) is no
    result, and exit 0 would report it as one."""
    if isinstance(scores, dict):
        for k, v in scores.items():
            check_scores(v, f"{key}.{k}" if key else str(k))
    elif isinstance(scores, (list, tuple)):
        for v in scores:
            check_scores(v, key)
    elif isinstance(scores, float) and not math.isfinite(scores):
        raise GONError(f"eval: the score {key} is {scores}: the model's outputs hold NaN or infinity (its weights "
                       f"are finite but too large to evaluate)")


def print_notes(notes: list[str]) -> None:
    for line in notes:
        print(line, file=sys.stderr)


def save_npy(z):
    """Output.save for latents: an .npy file, written atomically."""
    def save(out: Path) -> list[str]:
        import numpy as np

        from .fsio import atomic_path
        with atomic_path(out) as tmp:
            np.save(tmp, z)
        return [f"{out} {z.shape}"]
    return save


def read_latents(gon, z):
    """Latents given to decode: an .npy file (n, K) or (K,), or the .npz that `latents` writes, or an array
    (GON.check_latents), checked against the run's latent size: (n, K) float32 tensor."""
    import numpy as np
    import torch

    from . import limits
    from .errors import DataError
    from .fsio import input_file
    if not isinstance(z, (str, Path)):
        return gon.check_latents(z)
    K = gon.cfg.model.latent_dim
    path = input_file(z, "latents file")
    arr = limits.load_array(path, "latents", "latents")  # an .npz: what `latents --out X.npz` writes
    arr = arr[None] if arr.ndim == 1 else arr
    if arr.ndim != 2 or arr.shape[1] != K or len(arr) == 0 or not np.issubdtype(arr.dtype, np.number):
        raise DataError(f"{path}: latents of shape {tuple(arr.shape)} ({arr.dtype}); this run needs (n, {K})")
    if not np.isfinite(arr).all():
        raise DataError(f"{path}: latents hold NaN or infinite values")
    return torch.from_numpy(arr.astype(np.float32))
