"""scikit-learn's bundled handwritten digits (1,797 images of 8x8, 17 grey levels): the embedded default dataset,
available offline. The first 1,500 are train, the remaining 297 test."""
from __future__ import annotations

import numpy as np

from .base import Located, Split

N_TRAIN = 1500


def _images() -> np.ndarray:
    from sklearn.datasets import load_digits
    x = load_digits().images  # (1797, 8, 8) floats in 0..16
    return np.round(x * (255 / 16)).astype(np.uint8)[..., None]


def _labels() -> np.ndarray:
    from sklearn.datasets import load_digits
    return load_digits().target.astype(np.int64)  # (1797,) the digit drawn


def locate() -> Located:
    return Located([], {"train": Split(N_TRAIN, lambda: iter([_images()[:N_TRAIN]]), lambda: _labels()[:N_TRAIN]),
                        "test": Split(1797 - N_TRAIN, lambda: iter([_images()[N_TRAIN:]]),
                                      lambda: _labels()[N_TRAIN:])},
                   classes=[str(d) for d in range(10)])
