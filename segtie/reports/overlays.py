"""Overlay pictures: image | ground truth | prediction, binary masks or label maps.

:func:`save_overlay_grid` is used by evaluation (per-case overlays, best/median/worst)
and by training (validation overlays). Binary masks are drawn in one colour each
(ground truth green, prediction red); label maps (``multiclass=True``) in one colour
per class (:data:`CLASS_COLORS`, class ``c`` in colour ``c - 1``), the same in both
columns so that they compare at a glance. No TensorFlow, config or MLflow here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw
from skimage import color, io, segmentation, transform

logger = logging.getLogger(__name__)

__all__ = ["CLASS_COLORS", "PRED_COLOR", "THUMBNAIL_HEIGHT", "TRUE_COLOR",
           "save_overlay_grid", "save_thumbnail_grid", "thumbnail"]

TRUE_COLOR = (0.0, 1.0, 0.0)  # ground truth: green
PRED_COLOR = (1.0, 0.0, 0.0)  # prediction: red
CLASS_COLORS = ((0.12, 0.47, 0.71), (1.0, 0.5, 0.05), (0.17, 0.63, 0.17),
                (0.84, 0.15, 0.16), (0.58, 0.4, 0.74), (0.55, 0.34, 0.29),
                (0.89, 0.47, 0.76), (0.5, 0.5, 0.5), (0.74, 0.74, 0.13),
                (0.09, 0.75, 0.81))  # tab10; class c > 10 reuses colour (c - 1) % 10
_TITLE_HEIGHT = 14  # pixels of the strip holding a row's title
_OVERLAY_ALPHA = 0.3
THUMBNAIL_HEIGHT = 256  # rows of the best/median/worst grid, as save_overlay_grid


def _as_rgb_float(image: np.ndarray, index: int) -> np.ndarray:
    """uint8 or float [0, 1] image, gray or RGB -> float64 RGB in [0, 1]."""
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        image = color.gray2rgb(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Overlay row {index}: image must have shape (height, width, 3), "
                         f"(height, width, 1) or (height, width), received {image.shape}")
    if image.dtype == np.uint8:
        return image.astype(np.float64) / 255.0
    return np.clip(image.astype(np.float64), 0.0, 1.0)


def _as_mask(mask: np.ndarray, shape: tuple, name: str, index: int,
             multiclass: bool = False) -> np.ndarray:
    """Binary: a boolean mask (values > 0.5); ``multiclass``: int32 labels."""
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != shape:
        raise ValueError(f"Overlay row {index}: {name} must have the image's shape {shape}, "
                         f"received {mask.shape}")
    return np.rint(mask).astype(np.int32) if multiclass else mask > 0.5


def _resize_mask(mask: np.ndarray, size: tuple, multiclass: bool) -> np.ndarray:
    """Nearest-neighbour resize of a boolean mask or a label map."""
    resized = transform.resize(mask, size, order=0, anti_aliasing=False,
                               preserve_range=True)
    return np.rint(resized).astype(np.int32) if multiclass else resized > 0.5


def _overlay(image: np.ndarray, mask: np.ndarray, rgb: tuple) -> np.ndarray:
    """Fill ``mask`` translucently in ``rgb`` and draw its boundary."""
    if mask.any():
        image = color.label2rgb(mask.astype(np.int32), image=image, colors=[rgb],
                                alpha=_OVERLAY_ALPHA, bg_label=0, image_alpha=1.0)
    return segmentation.mark_boundaries(image, mask.astype(np.int32), color=rgb,
                                        mode="inner")


def _overlay_labels(image: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Fill each class translucently in its colour on a grey copy; draw its boundary."""
    out = color.gray2rgb(color.rgb2gray(image))
    for label in np.unique(labels[labels > 0]):
        rgb = np.asarray(CLASS_COLORS[(label - 1) % len(CLASS_COLORS)])
        inside = labels == label
        out[inside] = (1 - _OVERLAY_ALPHA) * out[inside] + _OVERLAY_ALPHA * rgb
        out = segmentation.mark_boundaries(out, inside.astype(np.int32), color=tuple(rgb),
                                           mode="inner")
    return out


def _row(image, mask, prediction, height: int, index: int,
         multiclass: bool = False) -> np.ndarray:
    """image | ground truth overlay | prediction overlay, resized to ``height``."""
    image = _as_rgb_float(image, index)
    shape = image.shape[:2]
    mask = _as_mask(mask, shape, "mask", index, multiclass)
    prediction = _as_mask(prediction, shape, "prediction", index, multiclass)
    width = max(1, round(shape[1] * height / shape[0]))
    image = transform.resize(image, (height, width), order=1, anti_aliasing=True)
    mask = _resize_mask(mask, (height, width), multiclass)
    prediction = _resize_mask(prediction, (height, width), multiclass)
    if multiclass:
        drawn = [_overlay_labels(image, mask), _overlay_labels(image, prediction)]
    else:
        drawn = [_overlay(image, mask, TRUE_COLOR), _overlay(image, prediction, PRED_COLOR)]
    return np.concatenate([image, *drawn], axis=1)


def _title_strip(title: str, width: int) -> np.ndarray:
    strip = Image.new("RGB", (width, _TITLE_HEIGHT))
    ImageDraw.Draw(strip).text((2, 1), title, fill=(255, 255, 255))
    return np.asarray(strip, dtype=np.float64) / 255.0


def save_overlay_grid(images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                      predictions: Sequence[np.ndarray], path: str | Path,
                      titles: Optional[Sequence[str]] = None,
                      row_height: int = 256, multiclass: bool = False) -> Path:
    """Save one PNG with a row per case: image | ground truth | prediction.

    The ground truth is drawn in green and the prediction in red, each as a
    translucent fill with its boundary on a grey copy of the image (the colours stay
    visible on reddish endoscopy frames); the first column keeps the original colours.
    Every row is resized to ``row_height`` keeping its aspect ratio (images bilinearly
    with anti-aliasing, masks by nearest neighbour) and padded with black on the right
    to the widest row, so cases of different sizes fit one grid. A title, if given, is
    written above its row.

    Args:
        images: per case, uint8 or float in [0, 1]; RGB, one channel or gray.
        masks: per case, ground truth, 0/1 or boolean (values > 0.5 are foreground).
        predictions: per case, predicted mask, 0/1 or boolean.
        path: PNG file to write; parent folders are created.
        titles: optional text per case (e.g. case id and Dice).
        row_height: height in pixels of each row's images.
        multiclass: masks and predictions are label maps (class indices), drawn one
            colour per class (:data:`CLASS_COLORS`); default False (binary).

    Shapes:
        ``images[i]``: ``(H_i, W_i, 3)``, ``(H_i, W_i, 1)`` or ``(H_i, W_i)``;
        ``masks[i]``, ``predictions[i]``: ``(H_i, W_i)`` or ``(H_i, W_i, 1)``.

    Returns:
        The path written.

    Raises:
        ValueError: no case, sequences of different lengths, a mask whose shape is not
            its image's, or ``row_height < 1``.
    """
    images, masks, predictions = list(images), list(masks), list(predictions)
    titles = list(titles) if titles is not None else None
    lengths = {len(images), len(masks), len(predictions)} | (
        {len(titles)} if titles is not None else set())
    if len(lengths) != 1 or not images:
        raise ValueError(
            "save_overlay_grid needs the same, non-zero number of images, masks, "
            f"predictions (and titles), received {len(images)}, {len(masks)}, "
            f"{len(predictions)}" + (f", {len(titles)}" if titles is not None else ""))
    if row_height < 1:
        raise ValueError(f"`row_height` must be >= 1, received {row_height}")
    rows = [_row(im, m, p, row_height, i, multiclass)
            for i, (im, m, p) in enumerate(zip(images, masks, predictions))]
    width = max(r.shape[1] for r in rows)
    blocks = []
    for i, row in enumerate(rows):
        if titles is not None:
            blocks.append(_title_strip(str(titles[i]), width))
        blocks.append(np.pad(row, ((0, 0), (0, width - row.shape[1]), (0, 0))))
    grid = np.clip(np.concatenate(blocks, axis=0) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    io.imsave(path, grid, check_contrast=False)
    logger.debug("Wrote overlay grid of %d cases to %s", len(rows), path)
    return path


def thumbnail(image: np.ndarray, mask: np.ndarray, prediction: np.ndarray,
              height: int = THUMBNAIL_HEIGHT, multiclass: bool = False
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small copy of one case to draw later: ``(image uint8, mask, prediction)``.

    Resized to ``height`` rows keeping the aspect ratio (image bilinear with
    anti-aliasing, masks nearest neighbour), so keeping every case's thumbnail until
    the cases are ranked costs about ``height**2 * 5`` bytes per case (more for label
    maps, kept as int32 with ``multiclass``).
    """
    image = _as_rgb_float(image, 0)
    shape = image.shape[:2]
    width = max(1, round(shape[1] * height / shape[0]))
    small = transform.resize(image, (height, width), order=1, anti_aliasing=True)
    masks = [_resize_mask(_as_mask(m, shape, name, 0, multiclass), (height, width),
                          multiclass)
             for m, name in ((mask, "mask"), (prediction, "prediction"))]
    return (np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8), *masks)


def save_thumbnail_grid(thumbnails: Sequence[tuple], path: str | Path,
                        titles: Optional[Sequence[str]] = None,
                        multiclass: bool = False) -> Path:
    """:func:`save_overlay_grid` of :func:`thumbnail` tuples, one row each."""
    images, masks, predictions = zip(*thumbnails)
    return save_overlay_grid(images, masks, predictions, path, titles=titles,
                             row_height=max(t[0].shape[0] for t in thumbnails),
                             multiclass=multiclass)
