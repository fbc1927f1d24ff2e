"""Audio adapter: clips cut into fixed-length windows; the coordinate is time in [-1, 1] over the window (sample
centres, as pixel centres for images), the value the amplitude of each channel.

Clips are read with soundfile (WAV, FLAC, OGG), mixed to mono unless more channels are asked for, and resampled
with soxr's band-limited resampler. Rendering evaluates F at any sample rate and joins overlapping windows with a
raised-cosine cross-fade, so the joins have no seams.
"""
from __future__ import annotations

import functools
import math
import os
import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
from implicit_gon.lazy import lazy_import

torch = lazy_import("torch")  # loaded on first use: `fit KIND -h` imports this module, not torch

from implicit_gon import limits
from implicit_gon.config import check_value, range_of
from implicit_gon.errors import DataError, GONError, UsageError
from implicit_gon.fsio import input_file
from implicit_gon.fsio import atomic_path

from implicit_gon.media import AUDIO
from implicit_gon.verbs import Output, VerbOptions, save_npy, verb

from .base import Batch, SignalAdapter, draw_subset, find_files, subset_size

EXTENSIONS = (".wav", ".flac", ".ogg", ".oga")


MAX_PEAK = 1000.0
"""Largest sample magnitude read (60 dB over full scale): float WAV/FLAC may exceed 1 by some headroom, never by
this much (a hostile check's clip with one 3e38 sample trained until its loss overflowed)."""
RATES = range_of("data.sample_rate")  # the rates a clip is read at, and read from
MAX_WINDOW = int(range_of("data.window")["max"] * RATES["max"])  # samples in a window


def find_clips(paths: list[str | Path]) -> list[Path]:
    """Files as given, and audio files found recursively in folders, in sorted order."""
    return find_files(paths, EXTENSIONS, "audio files")


def read_clip(path: Path, sample_rate: int, channels: int = 1, overlap: float = 1.0,
              latents: float = 0.0) -> np.ndarray:
    """(T, channels) float32 at sample_rate. What decoding, resampling, windows covering each sample `overlap`
    times and `latents` floats of latent per sample will take is estimated from the file's header and checked
    against the memory budget first (limits.check_audio_decode)."""
    import soundfile as sf
    import soxr
    try:
        check_value(sample_rate, int, RATES)  # what the config allows (0 was soxr's ValueError)
    except ValueError as e:
        raise UsageError(f"read_clip sample_rate = {sample_rate!r:.40}: {e}") from None
    try:  # one open file, not its name: libsndfile takes names as UTF-8 only (b'\\xff.wav' was a traceback)
        with open(input_file(path, "audio file"), "rb") as f:
            x, sr = _decode(f, str(path), functools.partial(limits.check_audio_decode, sr_out=sample_rate,
                                                            ch_out=channels, overlap=overlap, latents=latents))
    except (sf.LibsndfileError, RuntimeError, OSError) as e:
        why = re.sub(r"^Error opening <[^>]*>: ", "", str(e).splitlines()[0])  # libsndfile names the file object
        raise DataError(f"{path}: not a readable audio file ({why})") from None
    if x.size == 0:
        raise DataError(f"{path}: the clip is empty")
    if not np.isfinite(x).all():  # float WAV/FLAC can store them; one would turn every loss and latent into NaN
        bad = np.flatnonzero(~np.isfinite(x).all(1))
        raise DataError(f"{path}: {len(bad)} non-finite samples (NaN or inf), the first at sample {bad[0]}")
    peak = float(np.abs(x).max())
    if peak > MAX_PEAK:  # finite, but the loss of a 3e38 sample overflows: training then "diverges" for no reason
        raise DataError(f"{path}: samples reach {peak:.3g}, over {MAX_PEAK:g}x full scale (float audio lies in "
                        f"[-1, 1]): a corrupt or mis-scaled file")
    if channels == 1:
        x = x.mean(1, keepdims=True)
    elif x.shape[1] == 1:
        x = np.repeat(x, channels, 1)
    elif x.shape[1] != channels:
        raise DataError(f"{path}: has {x.shape[1]} channels, the run uses {channels}")
    if sr != sample_rate:
        x = soxr.resample(x, sr, sample_rate, quality="HQ").astype(np.float32)
    return x


UNKNOWN_FRAMES = 1 << 62
"""libsndfile's frame count for a clip whose header gives no length (SF_COUNT_MAX): a FLAC whose STREAMINFO says 0
samples, as a streamed encoder writes it, which the FLAC format allows."""
BLOCK = 1 << 16  # frames decoded at a time from such a clip


def _decode(f, name: str, check: Callable) -> tuple[np.ndarray, int]:
    """The open file's samples (T, C) float32 and rate, after `check`(name, frames, rate, channels) passes on the
    length its header declares, and again on each length reached where it is decoded block by block: a FLAC,
    whose header's length libsndfile trusts (one declaring 100 samples of 48,000 gave 100), or with none."""
    import soundfile as sf
    info = sf.info(f)
    f.seek(0)
    if not RATES["min"] <= info.samplerate <= RATES["max"]:  # 32 KB at 1 Hz is 4.4 hours at 16 kHz
        raise DataError(f"{name}: a sample rate of {info.samplerate:,} Hz (audio is read at {RATES['min']:,} to "
                        f"{RATES['max']:,} Hz)")
    sized = info.frames < UNKNOWN_FRAMES
    if sized:
        check(name, info.frames, info.samplerate, info.channels)
    stream = _flac_without_length(f, name)
    if sized and stream is None:
        return sf.read(f, dtype="float32", always_2d=True)
    grown = functools.partial(check, f"{name} (read so far)" if sized else f"{name} (no length in its header; read "
                              f"so far)", sr_in=info.samplerate, ch_in=info.channels)
    x = _read_blocks(stream or f, name, lambda n: grown(frames=n))
    if sized and len(x) != info.frames:
        raise DataError(f"{name}: the header declares {info.frames:,} samples; the stream holds {len(x):,} (truncated "
                        f"or corrupt)")
    return x, info.samplerate


def _flac_without_length(f, name: str):
    """A FLAC's bytes with STREAMINFO's sample count cleared (as a streamed encoder leaves it), so the whole stream
    is decoded whatever the header says; None for other files. The bytes are counted in the memory budget."""
    import io
    at = _flac_start(f.read(10))
    f.seek(at)
    head = f.read(26)
    f.seek(0)
    if head[:4] != b"fLaC" or len(head) < 26 or head[4] & 0x7F != 0:  # STREAMINFO is the first block
        return None
    limits.check(f"{name}: the FLAC file", os.fstat(f.fileno()).st_size, "use a shorter clip")
    data = bytearray(f.read())
    f.seek(0)
    data[at + 21] &= 0xF0  # 36 bits at bytes 21-25 of the stream: the low 4 bits of 21, then 22-25
    data[at + 22:at + 26] = bytes(4)
    return io.BytesIO(bytes(data))


def _flac_start(head: bytes) -> int:
    """Where a FLAC stream starts: after an ID3v2 tag (libsndfile skips one; its size is 4 x 7 bits at bytes 6-9,
    plus a 10-byte footer when flag 0x10 is set), else at 0."""
    if len(head) < 10 or head[:3] != b"ID3":
        return 0
    size = (head[6] & 0x7F) << 21 | (head[7] & 0x7F) << 14 | (head[8] & 0x7F) << 7 | head[9] & 0x7F
    return 10 + size + (10 if head[5] & 0x10 else 0)


def _read_blocks(f, name: str, check: Callable[[int], None]) -> np.ndarray:
    """A clip decoded BLOCK frames at a time, (T, C) float32, `check`ing the memory it will need at each length
    reached, so a clip that never ends is refused within the budget; a decoding error part way is one line, not a
    clip cut short. Through libsndfile's own read: soundfile's moves the position to the end it believes after each
    block (2^63 frames where the length is unknown), which fails."""
    import soundfile as sf
    parts, n = [], 0
    with sf.SoundFile(f) as snd:
        buf = np.empty((BLOCK, snd.channels), np.float32)
        ptr = sf._ffi.cast("float *", buf.ctypes.data)
        while (k := sf._snd.sf_readf_float(snd._file, ptr, BLOCK)) > 0:
            n += k
            if sf._snd.sf_error(snd._file):  # set by the read that stopped short; the next clears it
                why = sf._ffi.string(sf._snd.sf_strerror(snd._file)).decode(errors="replace")
                raise DataError(f"{name}: decoding stopped after {n:,} samples ({why}): truncated or corrupt")
            check(n)
            parts.append(buf[:k].copy())
    return np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)


def window_starts(n_samples: int, length: int, hop: int) -> list[int]:
    """Starts of windows that cover every sample: every hop, plus one flush with the end."""
    if n_samples < length:
        return []
    starts = list(range(0, n_samples - length + 1, hop))
    if starts[-1] + length < n_samples:
        starts.append(n_samples - length)
    return starts


def window_coord(pos: torch.Tensor, n: int) -> torch.Tensor:
    """The one time convention: position pos (in input samples, 0 = the first) in an n-sample window -> its
    coordinate in [-1, 1], the sample centres spread evenly: (M,) -> (M, 1)."""
    return ((pos.double() + 0.5) / n * 2 - 1).float()[:, None]


def time_grid(n: int) -> torch.Tensor:
    """Sample centres of an n-sample window in [-1, 1]: (n, 1)."""
    return window_coord(torch.arange(n), n)


def fine_grid(n: int, U: int) -> torch.Tensor:
    """A grid U times finer than time_grid(n), at input-sample positions j / U: (n U, 1); every U-th point is
    a sample centre."""
    return window_coord(torch.arange(n * U, dtype=torch.float64) / U, n)


def crossfade_weight(u: torch.Tensor) -> torch.Tensor:
    """Raised-cosine weight over a window's position u in (0, 1), never 0 so a lone window keeps its values."""
    return torch.sin(math.pi * u).square().clamp_min(1e-4)


def join_windows(render: Callable[[list[int], torch.Tensor], torch.Tensor], starts: list[int], length: int,
                 n_samples: int, sr_in: int, sr_out: int) -> torch.Tensor:
    """Overlap-add windows rendered at sr_out into one (T_out, C) signal of the clip's duration.

    render(ws, t) gives windows ws' values at window coordinates t (M, 1): (len(ws), M, C). Output sample m is at
    time m / sr_out; within the window starting at sample s (at sr_in) it has coordinate
    ((m/sr_out - s/sr_in) sr_in + 0.5)/L*2-1, which reproduces the training coordinates exactly when
    sr_out == sr_in. Windows whose output samples fall at the same coordinates (all of them for an integer rate
    ratio) are rendered in one call."""
    n_out = round(n_samples * sr_out / sr_in)
    groups: dict[tuple[int, int], tuple[torch.Tensor, list[int], list[int]]] = {}
    for w, s in enumerate(starts):
        lo = math.ceil(s * sr_out / sr_in - 1e-9)
        hi = min(n_out, math.ceil((s + length) * sr_out / sr_in - 1e-9))
        if hi <= lo:  # a window shorter than one output sample (a very low output rate): its neighbours cover it
            continue
        pos = (torch.arange(lo, hi, dtype=torch.float64) / sr_out - s / sr_in) * sr_in  # input samples, [0, L)
        key = (hi - lo, round(float(pos[0]) * 1e6))  # same count and offset: the same coordinates
        _, ws, los = groups.setdefault(key, (pos, [], []))
        ws.append(w)
        los.append(lo)
    acc = wsum = None
    for pos, ws, los in groups.values():
        vals = render(ws, window_coord(pos, length))  # (G, M, C)
        if acc is None:
            acc, wsum = torch.zeros(n_out, vals.shape[-1]), torch.zeros(n_out, 1)
        wt = crossfade_weight(((pos + 0.5) / length).float())[:, None]  # (M, 1)
        at = (torch.tensor(los)[:, None] + torch.arange(len(pos))).flatten()  # (G M,) output samples
        acc.index_add_(0, at, (wt * vals).flatten(0, 1))
        wsum.index_add_(0, at, wt.expand(len(ws), -1, -1).flatten(0, 1))
    return acc / wsum.clamp_min(1e-12)


class AudioSignal:
    """Windows of audio clips as a Signal."""

    kind = "audio"
    coord_dim = 1

    def __init__(self, clips: list[np.ndarray], sample_rate: int, window: float, hop: float | None,
                 names: list[str] | None = None, oversample: int = 1):
        self.sample_rate, self.oversample = sample_rate, max(1, int(oversample))
        self.length = max(2, round(window * sample_rate))
        self.hop = max(1, round((hop if hop else window / 2) * sample_rate))
        self.names = names or [f"clip{i}" for i in range(len(clips))]
        wins, self.index = [], []  # index: (clip, start) per window
        for c, x in enumerate(clips):
            starts = window_starts(len(x), self.length, self.hop)
            if not starts:
                raise DataError(f"{self.names[c]}: {len(x):,} samples ({len(x) / sample_rate:.3g} s) are shorter than "
                                f"one window ({window:g} s): give a longer clip, or fit with a shorter --window")
            wins += [x[s:s + self.length] for s in starts]
            self.index += [(c, s) for s in starts]
        self.windows = torch.from_numpy(np.stack(wins))  # (n, L, C)
        self.out_dim = self.windows.shape[-1]
        self.clip_lengths = [len(x) for x in clips]
        self._grid = time_grid(self.length)
        self._fine, self._fine_grid = self._oversampled(clips), fine_grid(self.length, self.oversample)

    def _oversampled(self, clips) -> torch.Tensor | None:
        """Windows of the band-limited (soxr) upsampling of each clip by self.oversample: (n, L U, C), or None."""
        U = self.oversample
        if U == 1:
            return None
        import soxr
        fine = [soxr.resample(x, self.sample_rate, self.sample_rate * U, quality="VHQ").astype(np.float32)
                for x in clips]
        L = self.length * U
        return torch.from_numpy(np.stack([fine[c][s * U:s * U + L] for c, s in self.index]))

    def __len__(self) -> int:
        return len(self.windows)

    def batch(self, idx, points, generator, device) -> Batch:
        sub, scale = draw_subset(self.length, points, generator)
        values, coords = self.windows[idx], self._grid
        if sub is not None:
            values, coords = values[:, sub], coords[sub]
        return Batch(coords.to(device), values.to(device), scale, self._between(idx, points, generator, device))

    def _between(self, idx, points, generator, device) -> Batch | None:
        """The outer loss's points when oversampling: as many, anywhere on the U-times finer grid, so F is fitted
        in continuous time while the step encodes the samples, as it does when a clip is rendered."""
        if self._fine is None:
            return None
        n = subset_size(self.length, points)
        sub = torch.randperm(self._fine.shape[1], generator=generator)[:n]
        return Batch(self._fine_grid[sub].to(device), self._fine[idx][:, sub].to(device), self.length / n)

    def full(self, idx, device) -> Batch:
        return Batch(self._grid.to(device), self.windows[idx].to(device), 1.0)

    def meta(self) -> dict[str, Any]:
        return {"signal": "audio", "sample_rate": self.sample_rate, "length": self.length, "hop": self.hop,
                "channels": self.out_dim}

    def validate(self, gon, n: int, batch_size: int = 64) -> dict[str, Any]:
        """Held-out scores during training (train.val_samples = n): SNR and PSNR of n windows spread evenly over
        the clips, each encoded in one step."""
        idx = torch.linspace(0, len(self) - 1, n).round().long() if n < len(self) else None
        return evaluate(gon, self, batch_size, idx)

    def clip_windows(self, clip: int) -> tuple[torch.Tensor, list[int]]:
        """Indices and starts of one clip's windows."""
        idx = [i for i, (c, _) in enumerate(self.index) if c == clip]
        return torch.tensor(idx), [self.index[i][1] for i in idx]


def load_signal(paths, data, latent_dim: int = 0) -> AudioSignal:
    """An AudioSignal of every clip under paths, with the DataConfig's rate, window and hop; latent_dim: a verb
    will hold a latent of that size for every window (twice, as it gathers them), counted in the memory check."""
    files = find_clips(paths)
    channels = data.channels or 1
    hop = data.hop or data.window / 2
    U = max(1, data.oversample)
    overlap = data.window / hop * (1 + 2 * U if U > 1 else 1)  # the windows, and oversampled ones if any
    latents = 2 * latent_dim / max(1.0, hop * data.sample_rate)  # floats per sample
    clips = [read_clip(f, data.sample_rate, channels, overlap, latents) for f in files]
    return AudioSignal(clips, data.sample_rate, data.window, data.hop, [str(f) for f in files], data.oversample)


RENDER_OVERLAP = 8
"""Windows covering each sample when a clip is rendered: every window's error is partly its own, so averaging
several (raised-cosine weighted) lowers the noise floor and the buzz at the hop rate that a 50% overlap leaves."""


def signal_for_run(gon, paths, hop: float | None = None) -> AudioSignal:
    """The clips given (default: the run's training clips) windowed as in training, or with another hop (s)."""
    import dataclasses
    m = gon.meta
    data = dataclasses.replace(gon.cfg.data, sample_rate=m["sample_rate"], channels=m["channels"], oversample=1)
    data.window, data.hop = m["length"] / m["sample_rate"], hop or m["hop"] / m["sample_rate"]
    return load_signal(paths or gon.cfg.data.paths, data, gon.cfg.model.latent_dim)


def signal_for_render(gon, paths, hop: float | None = None) -> AudioSignal:
    """The clips windowed for rendering: hop (s), by default a window / RENDER_OVERLAP."""
    window = gon.meta["length"] / gon.meta["sample_rate"]
    if hop is not None and not 0 < hop <= window:
        raise UsageError(f"--hop {hop}: must be above 0 and at most the run's window ({window} s)")
    return signal_for_run(gon, paths, hop or window / RENDER_OVERLAP)


# -- metrics, rendering, output ---------------------------------------------------------------------------------
def snr_psnr(pred: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """SNR (dB): signal energy over error energy, pooled over all samples; PSNR (dB) with peak 1 (full scale)."""
    err = (pred - target).square().sum().item()
    sig = target.square().sum().item()
    mse = err / target.numel()
    return {"snr_db": 10 * math.log10(max(sig, 1e-20) / max(err, 1e-20)),
            "psnr": 10 * math.log10(1 / max(mse, 1e-20))}


def _stft(x: np.ndarray, sr: int, seconds: float = 0.032) -> tuple[np.ndarray, np.ndarray]:
    """Complex STFT with a Hann window of fixed duration (so bins are the same Hz at any rate): (F, T), freqs."""
    from scipy.signal import stft
    n = int(round(seconds * sr))
    f, _, X = stft(x, fs=sr, window="hann", nperseg=n, noverlap=3 * n // 4, boundary=None, padded=False)
    return X, f  # scipy divides by the window's sum: the same waveform at any rate has the same magnitudes


def spectral_match(orig: np.ndarray, sr_o: int, other: np.ndarray, sr_x: int,
                   edges=(0, 2000, 4000, 6000, 7600), floor_db: float = -80.0) -> dict[str, list[float]]:
    """How well `other` (any rate) matches `orig` per frequency band: log-spectral distance (dB RMS between
    log-magnitude spectrograms, floored floor_db below orig's peak) and band SNR (dB, complex STFTs, so phase counts).
    Bands above either signal's Nyquist are left out; the default top edge stops 5% short of 8 kHz, the transition
    band where band-limited resamplers (soxr included) roll off."""
    A, f = _stft(orig, sr_o)
    B, g = _stft(other, sr_x)
    T = min(A.shape[1], B.shape[1])
    keep = np.isin(np.round(g, 6), np.round(f, 6))
    A, B = A[:, :T], B[keep][:, :T]
    floor = 20 * np.log10(np.abs(A).max() + 1e-12) + floor_db
    la, lb = (np.maximum(20 * np.log10(np.abs(M) + 1e-12), floor) for M in (A, B))
    out: dict[str, list[float]] = {"band_hz": [], "lsd_db": [], "snr_db": []}
    for lo, hi in zip(edges[:-1], edges[1:]):
        rows = (f >= lo) & (f < hi)
        if hi > min(sr_o, sr_x) / 2 + 1 or not rows.any():
            continue
        err = (np.abs(A[rows] - B[rows]) ** 2).sum()
        out["band_hz"].append([lo, hi])
        out["lsd_db"].append(float(np.sqrt(((la[rows] - lb[rows]) ** 2).mean())))
        out["snr_db"].append(float(10 * np.log10((np.abs(A[rows]) ** 2).sum() / max(err, 1e-20))))
    return out


def evaluate(gon, sig: AudioSignal, batch_size: int = 64, idx: torch.Tensor | None = None) -> dict[str, Any]:
    """Encode every window (or windows idx) in one step; score the reconstructed windows against the originals."""
    idx = torch.arange(len(sig)) if idx is None else idx
    preds = []
    for s in range(0, len(idx), batch_size):
        b = sig.full(idx[s:s + batch_size], gon.device)
        preds.append(gon.decode(gon.encode_batch(b), b.coords))
    out = snr_psnr(torch.cat(preds), sig.windows[idx])
    return {"n": len(idx), "clips": len(sig.clip_lengths), **out}


def render_clip(gon, sig: AudioSignal, clip: int, sr_out: int) -> torch.Tensor:
    """Encode every window of one clip and render the clip at sr_out: (T_out, C)."""
    from implicit_gon import limits
    idx, starts = sig.clip_windows(clip)
    held = sig.windows.numel() * limits.F32 + len(idx) * gon.cfg.model.latent_dim * limits.F32 * 2  # windows, z
    limits.check_audio_render(sig.clip_lengths[clip], sig.sample_rate, sr_out, sig.out_dim, sig.length, sig.hop,
                              held=held)
    z = gon.encode_signal(sig, idx)
    return join_windows(lambda ws, t: gon.decode(z[ws], t), starts, sig.length, sig.clip_lengths[clip],
                        sig.sample_rate, sr_out)


def write_wav(x: torch.Tensor | np.ndarray, sample_rate: int, path) -> None:
    """(T, C) samples -> WAV, FLAC or OGG by the file's extension (implicit_gon.media.write_audio)."""
    from implicit_gon.media import write_audio
    write_audio(x, sample_rate, path)


def plot_spectrograms(pairs: list[tuple[str, np.ndarray, int]], path) -> None:
    """Stacked log-magnitude spectrograms (title, mono signal, rate), written atomically as PNG. Every panel shows
    the band all of them have (up to the lowest Nyquist frequency) on one colour scale, so they compare directly."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    top = min(sr for _, _, sr in pairs) / 2
    fig, axes = plt.subplots(len(pairs), 1, figsize=(10, 2.6 * len(pairs)), squeeze=False)
    images = []
    for ax, (title, x, sr) in zip(axes[:, 0], pairs):
        with np.errstate(divide="ignore"):  # digital silence has -inf dB; it is drawn at the bottom of the scale
            # ~21 ms frames at any rate, so panels at different rates have the same time-frequency resolution;
            # the density is per Hz, so levels agree across rates too
            nfft = 1 << round(math.log2(sr * 0.0213))
            spec, *_, im = ax.specgram(x, NFFT=nfft, Fs=sr, noverlap=nfft * 3 // 4, cmap="magma", scale="dB")
        images.append((im, spec))
        ax.set_ylim(0, top)
        ax.set_title(title)
        ax.set_ylabel("Hz")
    peak = 10 * np.log10(images[0][1].max() + 1e-30)  # the first panel (the original) sets the scale: 100 dB
    for im, _ in images:
        im.set_clim(peak - 100, peak)
    axes[-1, 0].set_xlabel("seconds")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)


SEQUENCE_GAP = 0.25
"""Seconds of silence between the clips or frames that `sample` and `interpolate` write into one WAV."""
SAMPLE_SECONDS = 2.0
"""Duration of a sampled clip when `sample --seconds` is not given."""


def check_clip_out(out) -> Path:
    """Where sample and interpolate write: a .wav, .flac or .ogg file (the clips in sequence) or a folder (a
    suffix-less name, one WAV each). Checked before any work."""
    from implicit_gon.media import AUDIO
    out = Path(out)
    if out.suffix and out.suffix.lower() not in AUDIO:
        raise DataError(f"{out}: audio output is {', '.join(AUDIO)}: name such a file, or a folder (no suffix) "
                        f"for one WAV each")
    if not out.suffix and out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a folder")
    return out


def write_clips(clips: list[torch.Tensor], sample_rate: int, out: Path, stem: str) -> str:
    """Clips (T, C) into one WAV, SEQUENCE_GAP s of silence between them, or into out/stem_000.wav, ...;
    returns what was written, for the CLI's 'wrote' line."""
    if out.suffix:
        gap = torch.zeros(round(SEQUENCE_GAP * sample_rate), clips[0].shape[1])
        parts = [x for c in clips for x in (c, gap)][:-1]
        write_wav(torch.cat(parts), sample_rate, out)
        apart = f", {SEQUENCE_GAP} s apart" if len(clips) > 1 else ""
        return f"{out} ({len(clips)} x {len(clips[0]) / sample_rate:.3f} s{apart})"
    out.mkdir(parents=True, exist_ok=True)
    for k, c in enumerate(clips):
        write_wav(c, sample_rate, out / f"{stem}_{k:03d}.wav")
    drop_stale(out, stem, len(clips))
    return f"{out}/{stem}_*.wav ({len(clips)} x {len(clips[0]) / sample_rate:.3f} s)"


def drop_stale(out: Path, stem: str, n: int) -> None:
    """Remove out/stem_NNN.wav numbered n and above: frames of an earlier, longer morph or sample in the same
    folder, which would otherwise sit among the new ones. Only our own numbered names are touched."""
    import re
    own = re.compile(re.escape(stem) + r"_(\d{3,})\.wav")
    for p in out.iterdir():
        m = own.fullmatch(p.name)
        if m and int(m.group(1)) >= n and p.is_file() and not p.is_symlink():
            p.unlink()


def sample_clips(gon, n: int, generator, temperature: float, seconds: float | None = None) -> list[torch.Tensor]:
    """n clips (T, C) of `seconds` each: a latent per training-hop window (half a window), each drawn independently
    from the prior (variational) or the fitted Gaussian, rendered and cross-faded as `render` joins windows.
    Independent windows are not a coherent clip: the result is a texture of the training windows' timbres that
    changes every hop, with no phrase or pitch contour."""
    sr, L, hop = gon.meta["sample_rate"], gon.meta["length"], gon.meta["hop"]
    T = round(seconds * sr) if seconds else max(round(SAMPLE_SECONDS * sr), L)  # the default: at least one window
    if T < L:  # a clip is whole windows: a shorter one was lengthened silently
        raise UsageError(f"sample --seconds {seconds:g}: shorter than one window of this run ({L / sr:g} s)")
    limits.check_audio_render(T, sr, sr, gon.meta["channels"], L, hop, clips=2 * n)  # kept, then joined into one
    starts = window_starts(T, L, hop)
    z = gon.sample_latents(n * len(starts), generator, temperature).reshape(n, len(starts), -1)  # (n, W, K)
    decode = gon.decode_prior if gon.model.head is not None else gon.decode  # prior samples skip the head
    return [join_windows(lambda ws, t, zc=zc: decode(zc[ws], t), starts, L, T, sr, sr) for zc in z]


def pair_signal(gon, a, b) -> AudioSignal:
    """Clips a and b cut to the shorter one's duration, windowed as `render` windows them (every eighth of a
    window), so both have the same window starts."""
    m = gon.meta
    if a is None or b is None:
        raise UsageError("audio interpolation needs --from CLIP_A --to CLIP_B")
    for p in (a, b):
        input_file(p, "audio file")
    overlap = RENDER_OVERLAP * 2  # the windows of both clips, every eighth of a window
    clips = [read_clip(Path(p), m["sample_rate"], m["channels"], overlap) for p in (a, b)]
    n = min(map(len, clips))
    window = m["length"] / m["sample_rate"]
    return AudioSignal([c[:n] for c in clips], m["sample_rate"], window, window / RENDER_OVERLAP, [str(a), str(b)])


def interpolate_clips(gon, a, b, frames: int) -> list[torch.Tensor]:
    """Morph clip a into clip b, whole clips: both cut to the shorter one's duration; every window's latent is
    slerped between the two clips' latents of that window, and each frame (T, C) is rendered with `render`'s
    cross-fade. Frame 0 is clip a as `render` gives it, the last frame clip b."""
    from implicit_gon.metrics import slerp
    sig = pair_signal(gon, a, b)
    ia, starts = sig.clip_windows(0)
    ib, _ = sig.clip_windows(1)
    z = gon.encode_signal(sig, torch.cat([ia, ib])).cpu()
    za, zb = z[:len(ia)], z[len(ia):]
    n = sig.clip_lengths[0]
    limits.check_audio_render(n, sig.sample_rate, sig.sample_rate, sig.out_dim, sig.length, sig.hop,
                              clips=2 * frames)  # every frame kept, then joined into one WAV
    t = torch.linspace(0, 1, frames)
    path = torch.stack([slerp(za[w], zb[w], t) for w in range(len(ia))], 1)  # (frames, W, K)
    return [join_windows(lambda ws, tt, zf=zf: gon.decode(zf[ws], tt), starts, sig.length, n, sig.sample_rate,
                         sig.sample_rate) for zf in path]


def clip_samples(sig: AudioSignal, clip: int) -> torch.Tensor:
    """The clip as the signal holds it (resampled, windowed), re-joined from its windows."""
    idx, starts = sig.clip_windows(clip)
    n = sig.clip_lengths[clip]
    out = torch.zeros(n, sig.out_dim)
    for i, s in zip(idx.tolist(), starts):
        out[s:s + sig.length] = sig.windows[i]
    return out


# -- the verbs --------------------------------------------------------------------------------------------------
class AudioAdapter(SignalAdapter):
    """Audio verbs. Clips are (T, C) float32 arrays at the rate named; several clips of one length (n, T, C)."""

    kind, noun, metric = "audio", "audio", "snr_db"
    verbs = {
        "eval": verb("paths", "plot", plot={".png": "PNG"}),
        "render": verb("inputs", "sample_rate", "plot", "hop", outputs=(AUDIO,), plot={".png": "PNG"}),
        "encode": verb("inputs", outputs=({".npy": None},)),
        "sample": verb("n", "seconds", "temperature", "seed", outputs=(AUDIO,), folder=True),
        "interpolate": verb("from_", "to", "frames", outputs=(AUDIO,), folder=True),
    }
    hints = {"decode": "audio latents are per window; render a clip with render --input CLIP",
             "export": "export-mesh needs an SDF run", "latents": "latents takes image runs"}
    coord_dim, file, files, extensions, file_uses = 1, "clip", "clips", EXTENSIONS, ("", "eval's clip_names")
    find = staticmethod(find_clips)
    val_metrics = {"psnr": True, "snr_db": True}
    fit_data, fit_help = "files", "Train a GON over windows of audio clips."

    def fit_signals(self, cfg) -> tuple[AudioSignal, AudioSignal | None]:
        """Windows of the clips; the held-out ones are encoded and scored on their samples only."""
        import dataclasses
        held = dataclasses.replace(cfg.data, oversample=1)
        return (load_signal(cfg.data.paths, cfg.data),
                load_signal(cfg.data.val_paths, held) if cfg.data.val_paths else None)
    # the config's own ranges: a run's rate above data.sample_rate's 384,000 (a crafted 10**7) made render --input
    # of a 1 s clip take 48 s and 1.3 GB; a window is at most data.window's 60 s at that rate
    meta_rules = {"sample_rate": (int, RATES["min"], RATES["max"]),
                  "length": (int, 2, MAX_WINDOW), "hop": (int, 1, MAX_WINDOW), "channels": (int, 1, 64)}

    def signal_for_run(self, gon, paths=None) -> AudioSignal:
        return signal_for_run(gon, paths)

    def describe(self, meta: dict) -> str:
        return f"audio {meta['sample_rate']} Hz, {meta['length']}-sample windows"

    def eval(self, gon, opts: VerbOptions) -> Output:
        """SNR and PSNR of every window of the clips given, else of the run's held-out clips when it has them, else
        of its training clips, each encoded in one step: a dict that says which (`scored`) and names them with their
        indices in the order the run holds them (`clip_names`); with plot, spectrograms of the first clip and its
        reconstruction."""
        held = list(gon.cfg.data.val_paths)
        scored = "the clips given" if opts.paths else "held-out clips" if held else \
            "training clips (this run holds none out)"
        sig = signal_for_run(gon, opts.paths or held or None)
        res = {"scored": scored, **evaluate(gon, sig, opts.batch_size)}
        res["clip_names"] = ", ".join(f"{i}: {Path(n).name}" for i, n in enumerate(sig.names))

        def save(plot: Path) -> list[str]:  # the first clip as `render` writes it
            rsig = signal_for_render(gon, [sig.names[0]])
            x = render_clip(gon, rsig, 0, sig.sample_rate)
            orig = clip_samples(sig, 0)
            plot_spectrograms([(f"original: {Path(sig.names[0]).name}", orig[:, 0].numpy(), sig.sample_rate),
                               ("reconstruction (one gradient step per window)", x[:, 0].numpy(), sig.sample_rate)],
                              plot)
            return [f"{plot} (spectrograms)"]
        return Output(res, save if opts.plot else None)

    def render(self, gon, opts: VerbOptions) -> Output:
        """Every window of a clip (inputs: one file) encoded in one step and rendered at sample_rate (default the
        run's; above it: super-resolution), of the clip's duration: (T, C) float32."""
        clip = _one(opts.inputs, "audio render needs --input CLIP", "render --input: an audio run renders one file at a time")
        sig = signal_for_render(gon, [clip], opts.hop)
        sr = opts.sample_rate or sig.sample_rate
        x = render_clip(gon, sig, 0, sr)

        def save(out: Path) -> list[str]:
            write_wav(x, sr, out)
            if opts.plot is None:
                return [f"{out} ({sr} Hz)"]
            plot_spectrograms([(f"original: {Path(clip).name}", clip_samples(sig, 0)[:, 0].numpy(), sig.sample_rate),
                               (f"rendered at {sr} Hz", x[:, 0].numpy(), sr)], opts.plot)
            return [f"{out} ({sr} Hz)", f"{opts.plot} (spectrograms)"]
        return Output(x.numpy(), save)

    def encode(self, gon, opts: VerbOptions) -> Output:
        """Latents of a clip's windows (every eighth of a window, as render encodes them): (W, K) float32."""
        clip = _one(opts.inputs, "audio encode needs a clip", "an audio run encodes one clip at a time")
        z = gon.encode_signal(signal_for_render(gon, [clip]), batch_size=opts.batch_size).cpu().numpy()
        return Output(z, save_npy(z))

    def sample(self, gon, opts: VerbOptions) -> Output:
        """n clips (default 1) of `seconds` (default 2): (n, T, C) float32; written as one file, the clips in
        sequence, or one WAV each into a folder."""
        from implicit_gon.device import make_generator
        if opts.out is not None:
            check_clip_out(opts.out)
        clips = sample_clips(gon, opts.n or 1, make_generator(opts.seed), opts.temperature, opts.seconds)
        return Output(torch.stack(clips).numpy(), lambda out: [write_clips(clips, gon.meta["sample_rate"],
                                                                           check_clip_out(out), "sample")])

    def interpolate(self, gon, opts: VerbOptions) -> Output:
        """Clip from_ morphed into clip to in `frames` steps: (frames, T, C) float32."""
        if opts.out is not None:
            check_clip_out(opts.out)
        clips = interpolate_clips(gon, opts.from_, opts.to, opts.frames)
        return Output(torch.stack(clips).numpy(), lambda out: [write_clips(clips, gon.meta["sample_rate"],
                                                                           check_clip_out(out), "frame")])


def _one(inputs, missing: str, several: str):
    """The one clip a verb takes: none or several is a wrong command line."""
    if not inputs:
        raise UsageError(missing)
    if len(inputs) > 1:
        raise UsageError(f"{several} ({len(inputs)} given)")
    return inputs[0]


ADAPTER = AudioAdapter()
