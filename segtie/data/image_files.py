"""Decode image and mask files of the common formats into NumPy arrays.

Formats (by file suffix, case-insensitive): PNG, JPEG, TIFF (uncompressed, LZW,
Deflate, PackBits, ...), GIF (one frame), BMP; 8- or 16-bit; grayscale, RGB, RGBA
or palette. Readers: TIFF with ``tifffile`` and its codecs (``imagecodecs``, a
dependency: 16-bit colour LZW decodes exactly), falling back to Pillow when a codec
is missing (Pillow reads 8-bit and 16-bit grayscale ones, and 16-bit colour is
refused rather than cut to its high byte);
16-bit PNG with TensorFlow's PNG decoder (Pillow cuts 16-bit colour to 8 bits);
everything else with Pillow.

:func:`read_image` gives ``(H, W, 3)`` uint8 or uint16: grayscale is repeated over
three channels, alpha is dropped, palette images take their palette colours.
:func:`read_mask` gives the raw ``(H, W)`` values: palette indices for palette
images, the single channel otherwise (a colour mask must have equal channels).
Every file must hold one frame (an animated GIF or a multi-page TIFF is refused), and
an EXIF orientation is applied to images and masks alike, so that pixels are as a
viewer (and the annotator) saw them. JPEG is lossy, so a JPEG mask cannot hold exact
values: it is binarized
(:func:`binarize_jpeg_mask`: mean of the channels > :data:`JPEG_MASK_THRESHOLD`) and
flagged as such. Kvasir-SEG's JPEG masks go through the same function.
"""

from __future__ import annotations

import io
from pathlib import PurePath

import numpy as np
import tifffile
from PIL import Image, ImageOps, UnidentifiedImageError

__all__ = ["JPEG_MASK_THRESHOLD", "SUFFIXES", "LOSSY_SUFFIXES", "binarize_jpeg_mask",
           "read_image", "read_mask", "single_frame_upright", "to_uint8"]

JPEG_MASK_THRESHOLD = 127
"""A JPEG mask pixel is foreground when the mean of its channels exceeds this (0..255)."""

EXIF_ORIENTATION = 0x0112  # 1: stored as displayed

SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".gif", ".bmp")
LOSSY_SUFFIXES = (".jpg", ".jpeg")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _suffix(name: str) -> str:
    return PurePath(name).suffix.lower()


def single_frame_upright(image: Image.Image) -> Image.Image:
    """``image`` as displayed: one frame, its EXIF orientation applied.

    A camera's JPEG may be stored sideways with an EXIF ``Orientation`` tag that
    viewers (and the annotator drawing its mask) apply; the pixels are rotated here
    the same way (Pillow's ``ImageOps.exif_transpose``), for images and masks alike.

    Raises:
        ValueError: more than one frame (an animated GIF, a multi-page file): which
            frame is the image would be a guess.
    """
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise ValueError(f"holds {frames} frames (an animation or a multi-page file); "
                         f"expected a single image")
    image.load()
    if image.getexif().get(EXIF_ORIENTATION, 1) == 1:
        return image  # the same object: its stored bytes show these pixels
    return ImageOps.exif_transpose(image)


def _pil(data: bytes) -> Image.Image:
    return single_frame_upright(Image.open(io.BytesIO(data)))


def _tiff(data: bytes):
    """The first page as an array, or None when Pillow should read it instead."""
    with tifffile.TiffFile(io.BytesIO(data)) as tiff:
        full = sum(1 for page in tiff.pages if not page.is_reduced)  # thumbnails aside
        if full > 1:
            raise ValueError(f"holds {full} pages (a multi-page or volume TIFF); "
                             f"expected a single image")
        page = tiff.pages[0]
        orientation = page.tags.get(274)  # TIFF Orientation; 1 = rows top to bottom
        if orientation is not None and int(orientation.value) != 1:
            return None  # Pillow reads it, and single_frame_upright rotates it
        if page.photometric == tifffile.PHOTOMETRIC.PALETTE:
            return None  # Pillow applies the palette (images) or keeps indices
        try:
            return page.asarray()
        except (ValueError, KeyError, NotImplementedError) as err:
            if "imagecodecs" not in str(err):
                raise
            if page.bitspersample > 8 and page.samplesperpixel > 1:
                # Pillow would silently keep only the high byte of each sample.
                raise ValueError(f"{page.compression.name}-compressed 16-bit colour TIFF "
                                 f"needs the `imagecodecs` package (pip install "
                                 f"imagecodecs)") from err
            return None  # e.g. 8-bit or 16-bit gray LZW: Pillow decodes it exactly


def _png16(data: bytes):
    """A 16-bit PNG decoded by TensorFlow, or None for other PNGs."""
    if data[:8] != _PNG_SIGNATURE or len(data) < 26 or data[24] != 16:
        return None
    import tensorflow as tf  # only for 16-bit PNG; keeps the module light otherwise
    return tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()


def _decode(data: bytes, name: str, *, palette_as_rgb: bool):
    """``(array, pil_mode or None)``; the array as stored (see module doc)."""
    suffix = _suffix(name)
    if suffix not in SUFFIXES:
        raise ValueError(f"unsupported file type {suffix!r}; expected one of {SUFFIXES}")
    array = _tiff(data) if suffix in (".tif", ".tiff") else None
    if array is None and suffix == ".png":
        array = _png16(data)
    if array is not None:
        return array, None
    image = _pil(data)
    if image.mode in ("P", "PA"):
        image = image.convert("RGB") if palette_as_rgb else image.convert("P")
    elif image.mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        image = image.convert("RGB")
    elif image.mode == "1":
        image = image.convert("L") if palette_as_rgb else image
    return np.asarray(image), image.mode


def _decode_or_raise(data: bytes, name: str, *, palette_as_rgb: bool) -> np.ndarray:
    """:func:`_decode`'s array; every decoder failure becomes one ``ValueError``."""
    try:
        return _decode(data, name, palette_as_rgb=palette_as_rgb)[0]
    except UnidentifiedImageError:
        raise ValueError(f"cannot decode: not a readable {_suffix(name)} file") from None
    except ValueError:
        raise
    except Exception as err:  # decoders raise many types for corrupt files
        raise ValueError(f"cannot decode: {type(err).__name__}: {err}") from err


def _integer(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.bool_:
        return array.astype(np.uint8)
    if array.dtype.kind in "iu" and array.size and (array.min() < 0 or array.max() > 65535):
        raise ValueError(f"values {array.min()}..{array.max()} do not fit 8 or 16 bits")
    if array.dtype.kind not in "iu":
        raise ValueError(f"pixel type {array.dtype} is not supported; expected 8- or "
                         f"16-bit integers")
    return array.astype(np.uint16) if array.dtype.itemsize > 1 else array.astype(np.uint8)


def read_image(data: bytes, name: str) -> np.ndarray:
    """Decode an image file into ``(H, W, 3)`` uint8 or uint16 (see module doc).

    Args:
        data: the file's bytes.
        name: its file name (the suffix selects the reader; used in messages).

    Raises:
        ValueError: an unsupported or undecodable file, an unsupported pixel type,
            or a channel count other than 1 to 4.
    """
    array = _decode_or_raise(data, name, palette_as_rgb=True)
    array = _integer(array)
    if array.ndim == 2:
        array = array[..., None]
    channels = array.shape[-1] if array.ndim == 3 else 0
    if channels not in (1, 2, 3, 4):
        raise ValueError(f"expected a grayscale, RGB or RGBA image, received shape "
                         f"{array.shape}")
    if channels in (1, 2):  # gray (+ alpha)
        return np.repeat(array[..., :1], 3, axis=-1)
    return np.ascontiguousarray(array[..., :3])


def binarize_jpeg_mask(mask: np.ndarray) -> np.ndarray:
    """Binarize a JPEG-compressed mask: mean over channels > :data:`JPEG_MASK_THRESHOLD`.

    JPEG spreads the values of a {0, 255} mask around both ends (and mixes the
    channels), so a mid-scale threshold on the channel mean recovers the drawn mask.

    Shapes:
        ``mask``: ``(height, width)`` or ``(height, width, channels)``, any numeric
        dtype on the 0..255 scale. Returns ``(height, width)`` uint8 in {0, 1}.
    """
    mask = np.asarray(mask, dtype=np.float32)
    if mask.ndim == 3:
        mask = mask.mean(axis=-1)
    return (mask > JPEG_MASK_THRESHOLD).astype(np.uint8)


def read_mask(data: bytes, name: str) -> tuple[np.ndarray, bool]:
    """Decode a mask file into its raw ``(H, W)`` values (see module doc).

    Args:
        data: the file's bytes.
        name: its file name (the suffix selects the reader; used in messages).

    Returns:
        ``(values, lossy)``: uint8 or uint16 raw values (palette indices for palette
        images), and whether the file was a JPEG, in which case the values are already
        binarized to {0, 1}.

    Raises:
        ValueError: an unsupported or undecodable file, an unsupported pixel type, or
            a colour mask whose channels differ.
    """
    array = _decode_or_raise(data, name, palette_as_rgb=False)
    if _suffix(name) in LOSSY_SUFFIXES:
        return binarize_jpeg_mask(array), True
    array = _integer(array)
    if array.ndim == 3:
        colour = array[..., :3] if array.shape[-1] >= 3 else array[..., :1]
        if not (colour == colour[..., :1]).all():
            raise ValueError("colour mask with differing channels; save masks as "
                             "single-channel label images or palette images")
        array = colour[..., 0]
    if array.ndim != 2:
        raise ValueError(f"expected a 2-D mask, received shape {array.shape}")
    return array, False


def to_uint8(image: np.ndarray, max_value: float) -> np.ndarray:
    """Map an image to uint8: 8-bit as is, 16-bit scaled linearly by ``255 / max_value``.

    Args:
        image: uint8 or uint16 ``(H, W, C)``.
        max_value: the value mapped to 255 for 16-bit images (e.g. the largest value
            of all 16-bit images of a dataset); ignored for uint8.

    Returns:
        uint8 ``(H, W, C)``, rounded and clipped to [0, 255].
    """
    if image.dtype == np.uint8:
        return image
    scaled = image.astype(np.float64) * (255.0 / max(float(max_value), 1.0))
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
