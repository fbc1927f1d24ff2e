"""Images as 8-bit pixels, whatever their file stores. PIL's own conversion to 'L' or 'RGB' clips 16-bit and
32-bit values at 255 (a 16-bit PNG turns almost all white, a float TIFF in [0, 1] all black), so high-bit-depth
images are scaled by their real range here, or refused with one line where that range is not defined."""
from __future__ import annotations

import warnings

import numpy as np
from PIL import Image, UnidentifiedImageError

from implicit_gon.errors import DataError

PIXEL_LIMIT = 64_000_000
"""Largest image we decode: 64 megapixels (8000x8000). PIL's MAX_IMAGE_PIXELS is set to it, so a larger image is
refused from its header, before any pixel is decoded (PIL's own default only warns below 179 megapixels)."""
Image.MAX_IMAGE_PIXELS = PIXEL_LIMIT

SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


def open_image(path_or_file, name) -> Image.Image:
    """Decode an image fully (so truncation shows here, with the file's name) into an 8-bit PIL mode."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path_or_file) as im:
                _check_size(im, name)
                im.load()
                return to_8bit(upright(im), name)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(f"{name}: the image is larger than the {PIXEL_LIMIT // 1_000_000}-megapixel limit") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
        raise DataError(f"{name}: not a readable image ({e})") from None


ORIENTATION = 0x0112  # the EXIF tag a camera sets instead of rotating the pixels


def upright(im: Image.Image) -> Image.Image:
    """The image as it is meant to be seen: EXIF orientation applied (a phone photo taken upright stores its
    pixels sideways), so it is not encoded rotated or mirrored."""
    from PIL import ImageOps
    if im.getexif().get(ORIENTATION, 1) in (None, 1):
        return im
    return ImageOps.exif_transpose(im)


def _check_size(im: Image.Image, name) -> None:
    check_pixels(name, *im.size)


def check_pixels(name, w: int, h: int) -> None:
    """An image's size, a file's or an array's: at least one pixel and at most PIXEL_LIMIT."""
    if w * h > PIXEL_LIMIT:
        raise DataError(f"{name}: {w}x{h} pixels is over the {PIXEL_LIMIT // 1_000_000}-megapixel limit")
    if w < 1 or h < 1:
        raise DataError(f"{name}: the image has no pixels ({w}x{h})")


def to_8bit(im: Image.Image, name) -> Image.Image:
    """16-bit images divided by 257 (65535 -> 255); float images in [0, 1] times 255; 32-bit integer images and
    floats outside [0, 1] refused, since their brightness range is not defined. Other modes are returned as they
    are (PIL converts those correctly)."""
    if im.mode in SIXTEEN_BIT or (im.mode == "I" and im.format in ("PNG", "PPM")):  # 16-bit PNGs (older Pillow)
        # and PGMs of maxval above 255 open as I
        return _from_array(np.asarray(im).astype(np.float64) / 257, name, 0, 255)
    if im.mode == "I":
        a = np.asarray(im)
        raise DataError(f"{name}: 32-bit integer pixels (values {a.min()}..{a.max()}) have no defined brightness "
                        f"range; save the image with 8 or 16 bits")
    if im.mode == "F":
        return _from_array(np.asarray(im, dtype=np.float64) * 255, name, 0, 255, scale=255)
    return im


def _from_array(a: np.ndarray, name, lo: float, hi: float, scale: float = 1) -> Image.Image:
    """(H, W) values expected in [lo, hi] -> an 'L' image; non-finite or out-of-range values are refused."""
    if not np.isfinite(a).all():
        raise DataError(f"{name}: the image has non-finite pixel values (NaN or inf)")
    if a.min() < lo or a.max() > hi:
        raise DataError(f"{name}: floating-point pixels in [{a.min() / scale:g}, {a.max() / scale:g}]; "
                        f"expected values in [0, 1]")
    return Image.fromarray(np.round(a).astype(np.uint8))
