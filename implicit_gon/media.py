"""Pictures, videos and sound written in the format their file name asks for, atomically; output names are checked
before any work is done, so a wrong extension costs one line, not a render.

    check_out("r.jpg", IMAGE)            # raises GONError for an extension no library here writes
    save_grid(images, "r.jpg")           # (n, H, W, C) uint8: one image as is, more as a grid
    save_image(compare_grid([("original", a), ("one step", b)]), "cmp.png")   # labelled rows
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import GONError, UsageError
from .fsio import atomic_path, disk_full

IMAGE = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF"}
"""Still images, written by Pillow."""
VIDEO = {".mp4": "libx264", ".webm": "libvpx-vp9", ".gif": "GIF"}
"""Videos: mp4 and webm through the ffmpeg that imageio-ffmpeg ships, gif through Pillow."""
AUDIO = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
"""Sound files, written by soundfile (libsndfile)."""
VIDEO_SUFFIXES = tuple(VIDEO)


def check_out(path: str | Path, *kinds: dict, what: str = "--out", folder: bool = False) -> Path:
    """The output path if its extension is one of kinds' (or, with folder=True, no extension: a folder of files);
    else a one-line UsageError listing what is accepted."""
    path = Path(path)
    suffix = path.suffix.lower()
    if path.is_dir() and not folder:
        raise UsageError(f"{what} {path}: is a directory (name a file, e.g. {path / ('out' + sorted(kinds[0])[0])})")
    if any(suffix in k for k in kinds) or (folder and not suffix):
        return path
    accepted = sorted({s for k in kinds for s in k})
    alt = " or a folder (no extension)" if folder else ""
    raise UsageError(f"{what} {path}: cannot write {suffix or 'a file without extension'} here "
                     f"(use {', '.join(accepted)}{alt})")


def is_video(path: str | Path) -> bool:
    return Path(path).suffix.lower() in VIDEO


# -- still images ---------------------------------------------------------------------------------------------------
def make_grid(images: np.ndarray, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """(n, H, W, C) uint8 -> one (rows*(H+pad)+pad, cols*(W+pad)+pad, C) picture. Two-channel images (SmallNORB
    stereo pairs) are shown as their two channels side by side."""
    images = _displayable(images)
    n, h, w, c = images.shape
    cols = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad, c), 255, np.uint8)
    for i, im in enumerate(images):
        r, k = divmod(i, cols)
        out[pad + r * (h + pad):pad + r * (h + pad) + h, pad + k * (w + pad):pad + k * (w + pad) + w] = im
    return out


def _displayable(images: np.ndarray) -> np.ndarray:
    """Two-channel images (stereo pairs) as their channels side by side: (n, H, W, 2) -> (n, H, 2W, 1)."""
    if images.shape[-1] == 2:
        return np.concatenate([images[..., :1], images[..., 1:]], axis=2)
    return images


def save_image(pic: np.ndarray, path: str | Path) -> None:
    """One (H, W, C) uint8 picture, C in 1 or 3, in the format the extension names (PNG, JPEG, WebP, GIF)."""
    from PIL import Image

    path = check_out(path, IMAGE)
    pic = pic[..., 0] if pic.shape[-1] == 1 else pic
    fmt = IMAGE[path.suffix.lower()]
    opts = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(pic)).save(tmp, format=fmt, **opts)


def save_grid(images: np.ndarray, path: str | Path, nrow: int | None = None) -> None:
    """Save images (n, H, W, C) uint8: one image as it is, several as a grid with nrow columns (default: a
    square-ish grid). The format follows the extension: .png, .jpg, .webp or .gif."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    pic = images[0] if len(images) == 1 and images.shape[-1] != 2 else make_grid(images, nrow)
    save_image(pic, path)


# -- labelled comparison grids ----------------------------------------------------------------------------------------
def _font():
    from PIL import ImageFont
    return ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    from PIL import Image, ImageDraw
    box = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), text, font=_font())
    return box[2] - box[0], box[3] - box[1]


def compare_grid(rows: list[tuple[str, np.ndarray]], cols: int | None = None, pad: int = 2) -> np.ndarray:
    """Labelled rows of images side by side, e.g. [("original", a), ("reconstruction", b)] with a, b (n, H, W, C)
    uint8 of one size: sample i of every row lies in the same column. With more than `cols` samples the rows
    wrap into blocks (every block holds each labelled row). Labels are drawn with Pillow's default font in a
    column on the left. Returns (H', W', C) uint8."""
    from PIL import Image, ImageDraw

    arrs = [_displayable(np.asarray(a)) for _, a in rows]
    n, h, w, c = arrs[0].shape
    if any(a.shape != arrs[0].shape for a in arrs):
        raise ValueError(f"compare_grid: rows differ in shape {[a.shape for a in arrs]}")
    cols = min(n, cols or 8)
    blocks = int(np.ceil(n / cols))
    label_w = max(_text_size(t)[0] for t, _ in rows) + 2 * pad + 2
    row_h = max(h, _text_size("Ag")[1] + 2)
    out = np.full((blocks * len(rows) * (row_h + pad) + pad + (blocks - 1) * 2 * pad,
                   label_w + cols * (w + pad) + pad, c), 255, np.uint8)
    for i in range(n):
        b, k = divmod(i, cols)
        for r, a in enumerate(arrs):
            top = pad + (b * len(rows) + r) * (row_h + pad) + b * 2 * pad + (row_h - h) // 2
            left = label_w + pad + k * (w + pad)
            out[top:top + h, left:left + w] = a[i]
    canvas = Image.fromarray(out[..., 0] if c == 1 else out)
    draw = ImageDraw.Draw(canvas)
    for b in range(blocks):
        for r, (text, _) in enumerate(rows):
            top = pad + (b * len(rows) + r) * (row_h + pad) + b * 2 * pad
            draw.text((pad, top + (row_h - _text_size(text)[1]) // 2), text, fill=0, font=_font())
    pic = np.asarray(canvas)
    return pic[..., None] if pic.ndim == 2 else pic


# -- videos ----------------------------------------------------------------------------------------------------------
GIF_MAX_MS = 655_350  # a GIF frame's delay: 16 bits of centiseconds


def _gif_frames(frames: np.ndarray, fps: int, path: Path) -> tuple[list, list[float]]:
    """Pictures and their display times (ms): identical consecutive frames become one picture shown for their
    summed time (Pillow merges them itself, and overflowed the 16-bit delay: 1000 identical frames at 1 fps)."""
    from PIL import Image
    keep, durations = [], []
    for f in frames:
        if keep and np.array_equal(f, keep[-1]):
            durations[-1] += 1000 / fps
        else:
            keep.append(f)
            durations.append(1000 / fps)
    if max(durations) > GIF_MAX_MS:
        raise UsageError(f"{path}: {max(durations) / 1000:g} s of identical frames, more than the "
                         f"{GIF_MAX_MS / 1000:g} s a GIF can show one picture; use .mp4 or a higher --fps")
    return [Image.fromarray(f) for f in keep], durations


def write_video(frames: np.ndarray, path: str | Path, fps: int = 15) -> None:
    """frames (T, H, W, C) uint8 with C in 1 or 3 -> FILE.mp4, FILE.webm or FILE.gif."""
    import imageio.v2 as imageio

    path = check_out(path, VIDEO)
    frames = _displayable(frames)
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    codec = VIDEO[path.suffix.lower()]
    with atomic_path(path) as tmp:
        if codec == "GIF":  # Pillow directly: imageio's GIF writer retries a failed write (a full disk) in __del__
            pics, durations = _gif_frames(frames, fps, path)
            try:
                pics[0].save(tmp, format="GIF", save_all=True, append_images=pics[1:], duration=durations, loop=0)
            except OverflowError:  # frames that only Pillow's palette makes identical, merged past the limit
                raise UsageError(f"{path}: a GIF shows one picture for at most {GIF_MAX_MS / 1000:g} s; use .mp4 or "
                                 f"a higher --fps") from None
            return
        # even sizes suffice for yuv420p; macro_block_size=1 keeps the frames' exact size
        h, w = frames.shape[1:3]
        frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        imageio.mimwrite(tmp, list(frames), fps=fps, codec=codec, quality=8, macro_block_size=1,
                         ffmpeg_log_level="quiet", pixelformat="yuv420p")
        if tmp.stat().st_size == 0 or disk_full(tmp.parent):  # ffmpeg reports a failed write only in its log
            raise GONError(f"{path}: cannot write (ffmpeg could not write the video: "
                           f"{'no space left on device' if disk_full(tmp.parent) else 'nothing written'})")

# -- sound -----------------------------------------------------------------------------------------------------------
def write_audio(x, sample_rate: int, path: str | Path) -> None:
    """(T, C) float samples in [-1, 1] (clipped) -> FILE.wav / .flac (16-bit PCM) or .ogg (Vorbis)."""
    import soundfile as sf

    path = check_out(path, AUDIO)
    fmt, subtype = AUDIO[path.suffix.lower()]
    x = np.asarray(x, dtype=np.float32).clip(-1, 1)
    with atomic_path(path) as tmp:
        sf.write(str(tmp), x, sample_rate, subtype=subtype, format=fmt)


class Picture:
    """Images that a notebook shows inline (Jupyter calls _repr_png_): what `show` returns."""

    def __init__(self, pixels: np.ndarray):
        self.pixels = pixels  # (H, W, C) uint8, C 1 or 3

    def _repr_png_(self) -> bytes:
        import io

        from PIL import Image
        buf = io.BytesIO()
        p = self.pixels[..., 0] if self.pixels.shape[-1] == 1 else self.pixels
        Image.fromarray(p).save(buf, "PNG")
        return buf.getvalue()

    def save(self, path: str | Path) -> None:
        save_image(self.pixels, path)


def show(images: np.ndarray, nrow: int | None = None, scale: int = 1) -> Picture:
    """A notebook picture of images (n, H, W, C) or (H, W, C) uint8, as `render` returns them: a grid of nrow per
    row, each pixel enlarged `scale` times (nearest) so 8x8 digits are visible."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if not 1 <= scale <= 64:
        raise GONError(f"show: scale = {scale}: expected 1 to 64")
    big = images.repeat(scale, axis=1).repeat(scale, axis=2)
    return Picture(make_grid(big, nrow))
