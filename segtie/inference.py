"""Inference at the original resolution: resize or sliding window, mirroring TTA, LCC.

Two ways to bring a model trained at ``image_size`` to an image of any size:

* **resize** (default): the image is resized to ``image_size`` (as in training), the
  model gives logits, and the logits are resized bilinearly back to the original size
  before the sigmoid (nnU-Net v2 resamples logits before its softmax);
* **sliding window** (nnU-Net, MONAI ``SlidingWindowInferer``): the image, scaled to
  [0, 1] at its original resolution, is covered by ``window_size`` tiles whose starts
  are spread evenly with at least ``overlap`` between neighbours (nnU-Net's
  ``compute_steps_for_sliding_window``); an image smaller than the window is padded
  with zeros at the bottom and right. Tile logits are blended with a Gaussian
  importance map (sigma = ``sigma_scale`` x window side; nnU-Net and MONAI use 1/8)
  or uniformly, then divided by the summed weights. This suits a model trained on
  patches at the native resolution; a model trained on whole, downscaled frames (the
  Kvasir-SEG recipe) sees a different scale in each tile.

Mirroring test-time augmentation averages the *logits* of the input and its three
flips (left-right, up-down, both), each flipped back, as nnU-Net does.
:func:`largest_component` keeps only the largest 8-connected foreground component.
No config objects here: :class:`InferenceOptions` holds plain values.

References:
    Isensee et al., "nnU-Net: a self-configuring method for deep learning-based
    biomedical image segmentation", Nature Methods 18, 2021.
    MONAI ``monai.inferers.SlidingWindowInferer``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf
from scipy import ndimage

from segtie import pipeline

__all__ = ["InferenceOptions", "gaussian_importance_map", "window_starts",
           "sliding_window_logits", "predict_logits", "largest_component"]


@dataclasses.dataclass(frozen=True)
class InferenceOptions:
    """How to run a model on an image of any size (see the module docstring).

    Attributes:
        image_size: ``[H, W]`` the model was trained at (the resize path).
        sliding_window: tile the image at its original resolution instead.
        window_size: ``[h, w]`` of a tile; ``None`` = ``image_size``.
        overlap: minimum overlap between neighbouring tiles, in [0, 1).
        gaussian: Gaussian (True) or uniform (False) blending of tiles.
        sigma_scale: Gaussian sigma as a fraction of the window side.
        batch_size: tiles per model call.
        tta_mirror: average the logits of the four flips.
        num_classes: logit channels the model outputs (1 = binary, sigmoid; K > 1 =
            softmax over K classes).
    """

    image_size: Sequence[int]
    sliding_window: bool = False
    window_size: Optional[Sequence[int]] = None
    overlap: float = 0.5
    gaussian: bool = True
    sigma_scale: float = 0.125
    batch_size: int = 4
    tta_mirror: bool = False
    num_classes: int = 1

    def __post_init__(self):
        if not 0.0 <= self.overlap < 1.0:
            raise ValueError(f"`overlap` must be in [0, 1), received {self.overlap!r}")
        if self.batch_size < 1:
            raise ValueError(f"`batch_size` must be >= 1, received {self.batch_size!r}")
        if self.sigma_scale <= 0:
            raise ValueError(f"`sigma_scale` must be > 0, received {self.sigma_scale!r}")
        if self.num_classes < 1:
            raise ValueError(f"`num_classes` must be >= 1, received {self.num_classes!r}")

    @property
    def window(self) -> tuple[int, int]:
        size = self.window_size if self.window_size is not None else self.image_size
        return (int(size[0]), int(size[1]))


def gaussian_importance_map(window: Sequence[int], sigma_scale: float) -> np.ndarray:
    """Separable Gaussian weights of one tile, maximum 1, no zero.

    Shapes:
        Returns ``(window[0], window[1])`` float32.
    """
    axes = []
    for side in window:
        x = np.arange(side, dtype=np.float64) - (side - 1) / 2.0
        axes.append(np.exp(-0.5 * (x / (sigma_scale * side)) ** 2))
    weights = np.outer(axes[0], axes[1])
    weights /= weights.max()
    positive = weights[weights > 0]
    return np.maximum(weights, positive.min()).astype(np.float32)  # nnU-Net: no zero


def window_starts(size: int, window: int, overlap: float) -> list[int]:
    """Start offsets of tiles covering ``size`` pixels with at least ``overlap``.

    As nnU-Net: ``n = ceil((size - window) / (window * (1 - overlap))) + 1`` tiles,
    spread evenly from 0 to ``size - window``; one tile at 0 if ``size <= window``.
    """
    if size <= window:
        return [0]
    num = math.ceil((size - window) / (window * (1.0 - overlap))) + 1
    step = (size - window) / (num - 1)
    return [int(round(step * i)) for i in range(num)]


def _call(model, batch: np.ndarray, num_classes: int) -> np.ndarray:
    """Logits ``(n, h, w, num_classes)`` of a batch; Keras models via predict."""
    batch = np.asarray(batch, dtype=np.float32)
    if isinstance(model, keras.Model):
        logits = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    else:  # any callable with the Keras calling convention
        logits = np.asarray(model(batch, training=False), dtype=np.float32)
    if (logits.ndim != 4 or logits.shape[:3] != batch.shape[:3]
            or logits.shape[-1] != num_classes):
        raise ValueError(f"The model must output logits of shape (batch, height, width, "
                         f"{num_classes}) (`num_classes` = {num_classes}) for inputs "
                         f"{batch.shape}, received {logits.shape}")
    return logits


def sliding_window_logits(model, image: np.ndarray, options: InferenceOptions
                          ) -> np.ndarray:
    """Blended tile logits of an image in [0, 1] at its own resolution.

    Shapes:
        ``image``: ``(H0, W0, C)`` float32. Returns ``(H0, W0)`` float32 when
        ``options.num_classes == 1``, else ``(H0, W0, num_classes)``.
    """
    logits = _sliding_window(model, image, options)
    return logits[..., 0] if options.num_classes == 1 else logits


def _sliding_window(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """:func:`sliding_window_logits` with the channel axis always kept."""
    (wh, ww), (height, width) = options.window, image.shape[:2]
    padded = np.pad(image, ((0, max(0, wh - height)), (0, max(0, ww - width)), (0, 0)))
    weights = (gaussian_importance_map((wh, ww), options.sigma_scale) if options.gaussian
               else np.ones((wh, ww), np.float32))
    weights = weights[..., None]
    total = np.zeros(padded.shape[:2] + (options.num_classes,), np.float32)
    norm = np.zeros(padded.shape[:2] + (1,), np.float32)
    corners = [(r, c) for r in window_starts(padded.shape[0], wh, options.overlap)
               for c in window_starts(padded.shape[1], ww, options.overlap)]
    for i in range(0, len(corners), options.batch_size):
        chunk = corners[i:i + options.batch_size]
        tiles = np.zeros((options.batch_size, wh, ww, image.shape[-1]), np.float32)
        for j, (r, c) in enumerate(chunk):  # a full batch: one compiled shape
            tiles[j] = padded[r:r + wh, c:c + ww]
        for (r, c), logits in zip(chunk, _call(model, tiles, options.num_classes)):
            total[r:r + wh, c:c + ww] += logits * weights
            norm[r:r + wh, c:c + ww] += weights
    return (total / norm)[:height, :width]


def _resized_logits(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Logits ``(h, w, K)`` at ``image_size`` of the resized, scaled uint8 image."""
    inputs = pipeline.preprocess_image(image, list(options.image_size)).numpy()
    return _call(model, inputs[None], options.num_classes)[0]


def predict_logits(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Logits of one uint8 image at its original size.

    Args:
        model: a Keras model mapping ``(n, h, w, 3)`` float32 in [0, 1] to logits
            ``(n, h, w, options.num_classes)``.
        image: the original image, uint8.
        options: how to run the model (:class:`InferenceOptions`).

    Shapes:
        ``image``: ``(H0, W0, 3)``. Returns ``(H0, W0)`` float32 (foreground logits)
        when ``options.num_classes == 1``, else ``(H0, W0, num_classes)``.

    Raises:
        ValueError: ``image`` is not ``(H0, W0, 3)`` or the model output is not
            ``num_classes``-channel logits of its input's size.
        TypeError: ``image`` is not uint8.
    """
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"`image` must have shape (height, width, 3), received "
                         f"{image.shape}")
    if image.dtype != np.uint8:
        raise TypeError(f"`image` must be uint8 in [0, 255], received dtype {image.dtype}")
    if options.sliding_window:
        scaled = image.astype(np.float32) / 255.0
        run = lambda x: _sliding_window(model, x, options)  # noqa: E731
    else:
        scaled = image
        run = lambda x: _resized_logits(model, x, options)  # noqa: E731
    if options.tta_mirror:
        flips = ((), (1,), (0,), (0, 1))  # none, left-right, up-down, both
        logits = sum(np.flip(run(np.flip(scaled, axes) if axes else scaled), axes)
                     if axes else run(scaled) for axes in flips) / len(flips)
    else:
        logits = run(scaled)
    if not options.sliding_window:
        height, width = image.shape[:2]
        logits = tf.image.resize(logits[None], (height, width),
                                 method="bilinear")[0].numpy()
    if options.num_classes == 1:
        logits = logits[..., 0]
    return np.ascontiguousarray(logits, dtype=np.float32)


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep only the largest 8-connected foreground component (ties: the first).

    Shapes:
        ``mask``: ``(H, W)`` boolean or 0/1. Returns ``(H, W)`` bool.
    """
    mask = np.asarray(mask).astype(bool)
    labels, num = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if num <= 1:
        return mask
    sizes = np.bincount(labels.ravel())[1:]
    return labels == (int(np.argmax(sizes)) + 1)
