"""Sliding-window inference with Gaussian blending (nnU-Net, MONAI).

References:
    Isensee et al., "nnU-Net", Nature Methods 18, 2021 (step and importance map).
    MONAI ``monai.inferers.SlidingWindowInferer``.
"""

from __future__ import annotations

import math
from typing import Sequence

import keras
import numpy as np
from scipy import signal

from segtie.inference.options import InferenceOptions

__all__ = ["call_model", "gaussian_importance_map", "sliding_window_logits", "window_starts"]


def gaussian_importance_map(window: Sequence[int], sigma_scale: float) -> np.ndarray:
    """Separable Gaussian weights of one tile, maximum 1, no zero (nnU-Net's map).

    The product of ``scipy.signal.windows.gaussian`` windows with standard deviation
    ``sigma_scale * side`` along each axis, scaled to a maximum of 1; weights that
    underflow to 0 are raised to the smallest positive one (as nnU-Net does).

    Shapes:
        Returns ``(window[0], window[1])`` float32.
    """
    rows, cols = (signal.windows.gaussian(side, sigma_scale * side) for side in window)
    weights = np.outer(rows, cols)
    weights /= weights.max()
    positive = weights[weights > 0]
    return np.maximum(weights, positive.min()).astype(np.float32)


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


def call_model(model, batch: np.ndarray, num_classes: int) -> np.ndarray:
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
        for (r, c), logits in zip(chunk, call_model(model, tiles, options.num_classes)):
            total[r:r + wh, c:c + ww] += logits * weights
            norm[r:r + wh, c:c + ww] += weights
    return (total / norm)[:height, :width]
