"""Videos (mp4 through the ffmpeg that imageio-ffmpeg ships, gif through Pillow), written atomically."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import GONError
from .fsio import atomic_path

VIDEO_SUFFIXES = (".mp4", ".gif")


def write_video(frames: np.ndarray, path: str | Path, fps: int = 15) -> None:
    """frames (T, H, W, C) uint8 with C in 1 or 3 -> FILE.mp4 or FILE.gif."""
    import imageio.v2 as imageio

    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise GONError(f"{path}: unsupported video format (use .mp4 or .gif)")
    if frames.shape[-1] == 1:
        frames = np.repeat(frames, 3, axis=-1)
    with atomic_path(path) as tmp:
        if path.suffix.lower() == ".mp4":
            # even sizes suffice for yuv420p; macro_block_size=1 keeps the frames' exact size
            h, w = frames.shape[1:3]
            frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            imageio.mimwrite(tmp, list(frames), fps=fps, codec="libx264", quality=8, macro_block_size=1,
                             ffmpeg_log_level="error", pixelformat="yuv420p")
        else:
            imageio.mimwrite(tmp, list(frames), duration=1000 / fps, loop=0)
