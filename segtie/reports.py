"""Evaluation reports: per-case CSV, summary JSON, overlay PNGs, box plot, table.

Plain writers with no TensorFlow, config or MLflow: :func:`save_overlay_grid` is used
both by evaluation and by training (validation overlays). The box plot uses
matplotlib's non-interactive Agg backend.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw
from skimage import color, io, segmentation, transform

logger = logging.getLogger(__name__)

PER_CASE_COLUMNS = ("id", "dice", "iou", "hd95", "height", "width")
TRUE_COLOR = (0.0, 1.0, 0.0)  # ground truth: green
PRED_COLOR = (1.0, 0.0, 0.0)  # prediction: red
_TITLE_HEIGHT = 14  # pixels of the strip holding a row's title
_OVERLAY_ALPHA = 0.3
THUMBNAIL_HEIGHT = 256  # rows of the best/median/worst grid, as save_overlay_grid


def write_per_case_csv(rows: Sequence[dict], path: str | Path,
                       columns: Optional[Sequence[str]] = None) -> Path:
    """Write one row per case with ``columns`` (default :data:`PER_CASE_COLUMNS`).

    NaN is written as ``nan`` (``float("nan")`` and pandas read it back as NaN);
    floats are written with ``repr`` precision, so values read back exactly.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns or PER_CASE_COLUMNS),
                                extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def _json_safe(value):
    """NaN and infinities -> None (strict JSON has no NaN); NumPy scalars -> Python."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_summary_json(summary: dict, path: str | Path) -> Path:
    """Write ``summary`` as indented strict JSON; NaN becomes ``null``.

    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_json_safe(summary), indent=2, allow_nan=False) + "\n")
    return path


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


def _as_mask(mask: np.ndarray, shape: tuple, name: str, index: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    if mask.shape != shape:
        raise ValueError(f"Overlay row {index}: {name} must have the image's shape {shape}, "
                         f"received {mask.shape}")
    return mask > 0.5


def _overlay(image: np.ndarray, mask: np.ndarray, rgb: tuple) -> np.ndarray:
    """Fill ``mask`` translucently in ``rgb`` and draw its boundary."""
    if mask.any():
        image = color.label2rgb(mask.astype(np.int32), image=image, colors=[rgb],
                                alpha=_OVERLAY_ALPHA, bg_label=0, image_alpha=1.0)
    return segmentation.mark_boundaries(image, mask.astype(np.int32), color=rgb,
                                        mode="inner")


def _row(image, mask, prediction, height: int, index: int) -> np.ndarray:
    """image | ground truth overlay | prediction overlay, resized to ``height``."""
    image = _as_rgb_float(image, index)
    shape = image.shape[:2]
    mask = _as_mask(mask, shape, "mask", index)
    prediction = _as_mask(prediction, shape, "prediction", index)
    width = max(1, round(shape[1] * height / shape[0]))
    image = transform.resize(image, (height, width), order=1, anti_aliasing=True)
    mask = transform.resize(mask, (height, width), order=0, anti_aliasing=False) > 0.5
    prediction = transform.resize(prediction, (height, width), order=0,
                                  anti_aliasing=False) > 0.5
    return np.concatenate(
        [image, _overlay(image, mask, TRUE_COLOR), _overlay(image, prediction, PRED_COLOR)],
        axis=1)


def _title_strip(title: str, width: int) -> np.ndarray:
    strip = Image.new("RGB", (width, _TITLE_HEIGHT))
    ImageDraw.Draw(strip).text((2, 1), title, fill=(255, 255, 255))
    return np.asarray(strip, dtype=np.float64) / 255.0


def save_overlay_grid(images: Sequence[np.ndarray], masks: Sequence[np.ndarray],
                      predictions: Sequence[np.ndarray], path: str | Path,
                      titles: Optional[Sequence[str]] = None,
                      row_height: int = 256) -> Path:
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
    rows = [_row(im, m, p, row_height, i)
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
              height: int = THUMBNAIL_HEIGHT) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A small copy of one case to draw later: ``(image uint8, mask, prediction)``.

    Resized to ``height`` rows keeping the aspect ratio (image bilinear with
    anti-aliasing, masks nearest neighbour), so keeping every case's thumbnail until
    the cases are ranked costs about ``height**2 * 5`` bytes per case.
    """
    image = _as_rgb_float(image, 0)
    shape = image.shape[:2]
    width = max(1, round(shape[1] * height / shape[0]))
    small = transform.resize(image, (height, width), order=1, anti_aliasing=True)
    masks = [transform.resize(_as_mask(m, shape, name, 0), (height, width), order=0,
                              anti_aliasing=False) > 0.5
             for m, name in ((mask, "mask"), (prediction, "prediction"))]
    return (np.clip(small * 255.0 + 0.5, 0, 255).astype(np.uint8), *masks)


def save_thumbnail_grid(thumbnails: Sequence[tuple], path: str | Path,
                        titles: Optional[Sequence[str]] = None) -> Path:
    """:func:`save_overlay_grid` of :func:`thumbnail` tuples, one row each."""
    images, masks, predictions = zip(*thumbnails)
    return save_overlay_grid(images, masks, predictions, path, titles=titles,
                             row_height=max(t[0].shape[0] for t in thumbnails))


def save_boxplot(values: dict[str, Sequence[float]], path: str | Path,
                 title: str = "") -> Path:
    """A box plot (with the points) of per-case values, one box per key; NaN dropped.

    Returns:
        The PNG path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    names = list(values)
    data = [[v for v in values[n] if not math.isnan(v)] for n in names]
    fig, ax = plt.subplots(figsize=(1.5 + 1.5 * len(names), 4))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(names) + 1),
                  [f"{n}\n(n={len(d)})" for n, d in zip(names, data)])
    for i, d in enumerate(data, start=1):
        jitter = np.random.default_rng(i).uniform(-0.12, 0.12, len(d))
        ax.plot(i + jitter, d, ".", alpha=0.4, color="tab:blue")
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def format_table(summary: dict, names: Sequence[str]) -> str:
    """The summary as a fixed-width text table: one row per metric in ``names``."""
    ci = any("ci_low" in summary[n] for n in names)
    head = f"{'metric':<12}{'mean':>9}{'median':>9}{'std':>9}"
    level = summary.get("confidence_level") or 0.95
    head += f"{format(100 * level, 'g') + '% CI of mean':>24}" if ci else ""
    lines = [head + f"{'n':>6}{'NaN':>5}"]
    for name in names:
        s = summary[name]
        line = f"{name:<12}{s['mean']:>9.4f}{s['median']:>9.4f}{s['std']:>9.4f}"
        if ci:
            interval = "[{:.4f}, {:.4f}]".format(s["ci_low"], s["ci_high"])
            line += f"{interval:>24}"
        lines.append(line + f"{s['count']:>6}{s['num_nan']:>5}")
    return "\n".join(lines)
