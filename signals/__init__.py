"""Signal adapters (images, audio, signed distance fields) and the image datasets they read."""
from __future__ import annotations

from .base import Batch, Signal
from .images import ImageSignal

SIGNALS = ("images", "audio", "sdf")


def image_signal(data, split: str = "train", res: int | None = None, channels: int | None = None,
                 progress: bool = True, notes: bool = True, labels: bool = False) -> ImageSignal:
    """An ImageSignal for one split of the dataset a DataConfig names (notes: print the dataset's notes, such as
    a test-only split, once per process; labels: with its class labels)."""
    from .datasets import load_images, load_labels

    images = load_images(data.dataset, split, data.data_dir, res or data.res, channels or data.channels,
                         data.cache_dir, data.download, data.camera, progress, notes=notes)
    lab, classes = None, None
    if labels:
        lab, classes = load_labels(data.dataset, split, data.data_dir, data.cache_dir, data.camera)
    if data.train_limit and split == "train":
        images = images[:data.train_limit]
        lab = None if lab is None else lab[:data.train_limit]
    return ImageSignal(images, f"{data.dataset}/{split}", lab, classes)


def task_signal(data, task: str, split: str = "train", res: int | None = None, channels: int | None = None,
                progress: bool = True, notes: bool = True):
    """The image signal a task trains and evaluates on: with labels for classify and joint, the view of each
    image (data.source) as where the step encodes for convert, the plain images otherwise."""
    sig = image_signal(data, split, res, channels, progress, notes, labels=task in ("classify", "joint"))
    if task in ("classify", "joint"):
        sig.encode_full = True  # the classifier sees test-time latents in training: `points` thins the outer loss
    if task != "convert":
        return sig
    from .views import ConvertSignal, view_of
    return ConvertSignal(sig, view_of(data))


__all__ = ["Batch", "Signal", "ImageSignal", "image_signal", "task_signal", "SIGNALS"]
