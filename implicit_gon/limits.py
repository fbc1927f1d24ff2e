"""Memory and work bounds, in one place, for every verb: estimates of what a command will allocate, checked
against the memory this process can have before anything is built, so a huge --res, --n or a model too large
for the machine is a one-line refusal rather than gigabytes of swap or an out-of-memory kill.

The budget is BUDGET_FRACTION of the least of: MemAvailable (/proc/meminfo, else sysconf), the cgroup's
memory.max minus its usage, and the address-space limit (RLIMIT_AS) minus what the process already maps.
IMPLICIT_GON_MEMORY (bytes, or with a K/M/G suffix) sets it explicitly."""
from __future__ import annotations

import os
import resource
from pathlib import Path

from .errors import GONError, UsageError, natural_list

BUDGET_FRACTION = 0.7
MAX_FRAMES = 3600  # frames per interpolated pair: 4 minutes at 15 fps
MAX_SAMPLES = 10000  # sample --n, render --n
F32 = 4


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _physical_available() -> int | None:
    avail = _meminfo("MemAvailable")
    if avail is None:
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    return avail


def _cgroup_available() -> int | None:
    try:
        cap = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        if cap == "max":
            return None
        return int(cap) - int(Path("/sys/fs/cgroup/memory.current").read_text())
    except (OSError, ValueError):
        return None


def _address_space_available() -> int | None:
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return soft - int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return soft


def _parse_bytes(text: str) -> int:
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    t = text.strip().upper().rstrip("B")
    try:
        return int(float(t[:-1]) * mult[t[-1]]) if t and t[-1] in mult else int(float(t))
    except (ValueError, OverflowError):
        raise GONError(f"IMPLICIT_GON_MEMORY={text!r}: expected bytes, e.g. 8G") from None


def budget() -> int:
    """Bytes a command may allocate."""
    if os.environ.get("IMPLICIT_GON_MEMORY"):
        return _parse_bytes(os.environ["IMPLICIT_GON_MEMORY"])
    found = [v for v in (_physical_available(), _cgroup_available(), _address_space_available()) if v is not None]
    return max(0, int(BUDGET_FRACTION * min(found))) if found else 1 << 62


def human(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def check(what: str, nbytes: float, hint: str = "") -> None:
    """Refuse with one line when `what` would need more than the budget."""
    b = budget()
    if nbytes > b:
        raise GONError(f"{what} needs about {human(nbytes)} of memory, more than the {human(b)} available"
                       + (f" ({hint})" if hint else ""))


# -- the estimates ---------------------------------------------------------------------------------------------------
def model_parameters(model_cfg, coord_dim: int, out_dim: int, res: int | None = None) -> int:
    """Parameters of the decoder a config describes (the SIREN, or the conv GON at res px, 32 if unknown), counted
    on torch's meta device (nothing is allocated)."""
    import torch

    from .registry import decoder
    spec = decoder(model_cfg.decoder)
    if spec.grid_sizes is not None and res not in spec.grid_sizes:
        res = max(spec.grid_sizes)  # a grid-only decoder's largest plan
    with torch.device("meta"):
        model = spec.build({"coord_dim": coord_dim, "out_dim": out_dim, "res": res}, model_cfg)
        return sum(p.numel() for p in model.parameters())


def check_model(model_cfg, coord_dim: int = 3, out_dim: int = 3, training: bool = False,
                res: int | None = None) -> None:
    """Weights (and for training their gradients and Adam's two moments) must fit."""
    from .config import decoder_sizes
    from .registry import decoder
    n = model_parameters(model_cfg, coord_dim, out_dim, res)
    copies = 4 if training else 1
    shape = decoder(model_cfg.decoder).size(model_cfg)
    check(f"a model of {n:,} parameters ({shape})" + (" with its gradients and Adam state" if training else ""),
          n * F32 * copies, f"lower {natural_list([*decoder_sizes(model_cfg.decoder), 'model.latent_dim'], 'or')}")


def check_image_output(n: int, res: int, channels: int, what: str = "render",
                       hint: str = "lower --res or --n") -> None:
    """n images decoded on a res x res grid: the coordinates, the float output and its uint8 picture and grid."""
    pixels = res * res
    check(f"{what} of {n} x {res}x{res} images", pixels * (4 * F32 + n * channels * (F32 + 2)), hint)


def check_audio_render(n_in: int, sr_in: int, sr_out: int, channels: int, length: int, hop: int,
                       clips: int = 1, held: float = 0.0) -> None:
    """`clips` clips of n_in samples each rendered at sr_out: overlap-added windows (each output sample rendered by
    length / hop windows), their weights and indices, the output and the WAV written from it; `held` bytes are
    kept meanwhile (the input's windows and their latents, when a clip given is rendered)."""
    n_out = n_in * sr_out / max(1, sr_in)
    overlap = max(1.0, length / max(1, hop))
    what = f"{clips} clips of " if clips > 1 else ""
    check(f"rendering {what}{n_out / max(1, sr_out):.1f} s at {sr_out} Hz",
          n_out * (overlap * (channels * F32 + 16) + 4 * channels * F32 + 8) * max(1, clips) + held,
          "lower --sample-rate, --n or --seconds, or render a shorter clip")


def check_audio_decode(name: str, frames: int, sr_in: int, ch_in: int, sr_out: int, ch_out: int,
                       overlap: float = 1.0, latents: float = 0.0) -> None:
    """A clip whose header declares `frames` frames of ch_in channels at sr_in, decoded to float32, mixed to
    ch_out channels, resampled to sr_out and cut into windows that cover each sample `overlap` times, with
    `latents` floats of latent per output sample (a verb that encodes every window keeps a K-float latent per
    hop): checked from the header, before anything is decoded (a 40 KB WAV declaring 1 Hz becomes gigabytes)."""
    n_out = frames * sr_out / max(1, sr_in)
    need = frames * ch_in * F32 * 2 + n_out * F32 * (ch_out * (3 + max(1.0, overlap)) + latents)
    check(f"{name}: {frames:,} frames at {sr_in} Hz, resampled to {sr_out} Hz ({n_out / max(1, sr_out):,.0f} s)",
          need, "use a shorter clip")


def check_volume(res: int, n: int = 1) -> None:
    """n volumes on a res^3 grid (each a network pass per slab, so their count is bounded like --n), or marching
    cubes over one: the float volumes and skimage's working copies."""
    if n > MAX_SAMPLES:
        raise GONError(f"{n} volumes: at most {MAX_SAMPLES:,} in one call (each is its own pass over the grid)")
    check(f"{n} x {res}^3 volume(s)", float(res) ** 3 * F32 * (n + 2), "lower --res")


MAX_TRACE_RES = 4096
"""Side of a sphere-traced SDF picture at most: each ray costs a network pass per marching step, so 10,000 px a side
(10^8 rays) would run for hours on a CPU, however little memory it takes."""


MAX_TRACE_RAYS = 16 * MAX_TRACE_RES ** 2
"""Rays of one call at most (sixteen of the largest pictures): 1,000 interpolation frames at 256 px are 6.6e7."""


def check_sphere_trace(res: int, frames: int = 1) -> None:
    """Sphere-traced pictures: per ray about twenty floats of state, and frames of uint8 RGB kept for a video; in
    all at most MAX_TRACE_RAYS rays (render(z) of 100,000 latents at 64 px was 4e8 rays, hours of a CPU)."""
    if res > MAX_TRACE_RES:  # the fixed limits first: they hold on any machine (a usage error), memory after
        raise UsageError(f"--res {res}: sphere-traced SDF pictures are at most {MAX_TRACE_RES} pixels a side (each "
                         f"ray costs a network pass per step); export-mesh gives the surface at any resolution")
    if frames * res * res > MAX_TRACE_RAYS:
        raise UsageError(f"{frames} sphere-traced {res}x{res} pictures: more than {MAX_TRACE_RAYS:,} rays in all "
                         f"(each ray costs a network pass per step); lower --res or draw fewer")
    check(f"{frames} sphere-traced {res}x{res} picture(s)", res * res * (20 * F32 + 3 * frames), "lower --res")


ENCODE_FLOATS_PER_UNIT = 8  # floats kept per point and hidden unit of a layer while encoding (forward + its gradient)


def encode_batch(gon, requested: int) -> int:
    """The largest batch, up to `requested`, whose one-step encoding fits the budget. Latents do not depend on the
    batch size, so a smaller batch changes only the time taken, never a result."""
    m = gon.meta
    points = {"images": m.get("res", 1) ** 2, "audio": m.get("length", 1)}.get(m["signal"], 16384)  # sdf: ENCODE_POINTS
    per_sample = points * gon.cfg.model.hidden * gon.cfg.model.layers * ENCODE_FLOATS_PER_UNIT * F32
    check(f"encoding one sample of {points} points", per_sample, "the model is too large for this machine")
    return int(min(requested, max(1, budget() // per_sample)))


TRAIN_FLOATS_PER_UNIT = 6  # measured ~3 per point and hidden unit of a layer for a step through the origin step (x2)


def check_training(cfg, signal) -> None:
    """One training step: activations of the batch through the origin step and its double backward."""
    import torch

    from .device import make_generator
    b = signal.batch(torch.tensor([0]), cfg.train.points, make_generator(0), "cpu")  # one sample's coordinates
    if cfg.train.points > 1 and b.values.shape[1] < cfg.train.points:  # said, not refused: SDF's default 4096
        from .progress import say  # points meets a smaller --samples, and all of them is what the user then wants
        say(f"note: train.points = {cfg.train.points:g} is more than the {b.values.shape[1]} coordinates a sample "
            f"has: each step uses all of them")
    points = b.values.shape[1] + (b.query.values.shape[1] if b.query is not None else 0)
    batch = min(cfg.train.batch_size, len(signal))
    units = batch * points * cfg.model.hidden * cfg.model.layers
    check(f"a training step of {batch} samples x {points} points", units * TRAIN_FLOATS_PER_UNIT * F32,
          "lower --batch-size or --points")


# -- arrays read from .npy / .npz files: the header's shape and dtype are checked before the data is read -------------
def load_array(path, member: str, what: str = "array"):
    """A numeric array from a .npy file, or from member `member` of an .npz, whose declared shape and dtype (the
    .npy header) are checked against the file's size and the memory budget before its data is read, so a 1 KB file
    declaring (10^9, 32), or an .npz expanding to gigabytes, is one line. Raises DataError."""
    import os
    import tokenize
    import zipfile

    from .errors import DataError
    try:
        with open(path, "rb") as f:
            if f.read(4).startswith(b"PK"):  # an .npz is a zip of .npy files
                f.seek(0)
                with zipfile.ZipFile(f) as zf:
                    return _npz_member(zf, path, member, what)
            f.seek(0)
            return _read_npy(f, f"{path}", os.fstat(f.fileno()).st_size, what)
    except DataError:
        raise
    except GONError:
        raise
    except (SyntaxError, tokenize.TokenError):  # numpy tokenizes the header's dict: a malformed one raises these
        raise DataError(f"{path}: not a readable .npy/.npz {what} (its header does not parse)") from None
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile, KeyError) as e:
        raise DataError(f"{path}: not a readable .npy/.npz {what} ({str(e).splitlines()[0][:120]})") from None


def _npz_member(zf, path, member: str, what: str):
    from .errors import DataError
    names = [n for n in zf.namelist() if n.endswith(".npy")]
    if member + ".npy" not in names:
        have = ", ".join(n[:-4] for n in names[:10]) or "none"
        raise DataError(f"{path}: an .npz without a '{member}' array (it has {have})")
    info = zf.getinfo(member + ".npy")
    check(f"{path}: its '{member}' array ({info.file_size:,} bytes uncompressed)", info.file_size)
    with zf.open(info) as m:
        return _read_npy(m, f"{path}[{member}]", info.file_size, what)


def _read_npy(f, name: str, size: int, what: str):
    """The array of an open .npy stream of `size` bytes in all: header first, then exactly its declared bytes."""
    import numpy as np
    from numpy.lib import format as npf

    from .errors import DataError
    start = f.tell()
    version = npf.read_magic(f)
    reader = npf.read_array_header_1_0 if version == (1, 0) else npf.read_array_header_2_0
    if version not in ((1, 0), (2, 0)):
        raise DataError(f"{name}: .npy format version {version} is not supported")
    shape, fortran, dtype = reader(f)
    if dtype.hasobject or dtype.kind not in "biuf":
        raise DataError(f"{name}: {what} of dtype {dtype} (expected numbers)")
    if any(type(d) is not int or d < 0 for d in shape):  # (True, 32) passed numpy's reader, then broke reshape
        raise DataError(f"{name}: its header declares shape {tuple(shape)}, not sizes of 0 or more")
    count = 1
    for d in shape:
        count *= d
    nbytes = count * dtype.itemsize
    check(f"{name}: a {what} of shape {tuple(shape)} ({dtype})", nbytes * 2)
    if nbytes > size - (f.tell() - start):
        raise DataError(f"{name}: its header declares shape {tuple(shape)} ({dtype}, {nbytes:,} bytes), more than "
                        f"the file holds")
    data = f.read(nbytes)
    if len(data) != nbytes:
        raise DataError(f"{name}: truncated ({len(data):,} of {nbytes:,} bytes)")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran else "C")
