"""Signal adapters (images, audio, signed distance fields) and the image datasets they read."""
from __future__ import annotations

from .base import Batch, Signal
from .images import ImageSignal

SIGNALS = ("images", "audio", "sdf")


def image_signal(data, split: str = "train", res: int | None = None, channels: int | None = None,
                 progress: bool = True, notes: bool = True) -> ImageSignal:
    """An ImageSignal for one split of the dataset a DataConfig names (notes: print the dataset's notes, such as
    a test-only split, once per process)."""
    from .datasets import load_images

    images = load_images(data.dataset, split, data.data_dir, res or data.res, channels or data.channels,
                         data.cache_dir, data.download, data.camera, progress, notes=notes)
    if data.train_limit and split == "train":
        images = images[:data.train_limit]
    return ImageSignal(images, f"{data.dataset}/{split}")


__all__ = ["Batch", "Signal", "ImageSignal", "image_signal", "SIGNALS"]
