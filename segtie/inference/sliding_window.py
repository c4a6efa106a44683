"""Sliding-window inference with Gaussian blending (nnU-Net, MONAI), 2-D or 3-D.

An image ``(H0, W0, C)`` is tiled with ``(h, w)`` windows, a volume ``(D0, H0, W0, C)``
with ``(d, h, w)`` windows: the same code, one loop over every axis.

References:
    Isensee et al., "nnU-Net", Nature Methods 18, 2021 (step and importance map).
    MONAI ``monai.inferers.SlidingWindowInferer``.
"""

from __future__ import annotations

import functools
import itertools
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
        Returns ``tuple(window)`` float32 (2 or 3 axes).
    """
    axes = [signal.windows.gaussian(side, sigma_scale * side) for side in window]
    weights = functools.reduce(np.multiply.outer, axes)
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
    """Logits ``(n, h, w, num_classes)`` (``(n, d, h, w, K)`` for volumes) of a batch;
    Keras models via predict."""
    batch = np.asarray(batch, dtype=np.float32)
    if isinstance(model, keras.Model):
        logits = np.asarray(model.predict_on_batch(batch), dtype=np.float32)
    else:  # any callable with the Keras calling convention
        logits = np.asarray(model(batch, training=False), dtype=np.float32)
    if (logits.ndim != batch.ndim or logits.shape[:-1] != batch.shape[:-1]
            or logits.shape[-1] != num_classes):
        raise ValueError(f"The model must output logits of shape (batch, *spatial, "
                         f"{num_classes}) (`num_classes` = {num_classes}) for inputs "
                         f"{batch.shape}, received {logits.shape}")
    return logits


def sliding_window_logits(model, image: np.ndarray, options: InferenceOptions
                          ) -> np.ndarray:
    """Blended tile logits of an image in [0, 1] (or a z-scored volume) at its own
    resolution.

    Shapes:
        ``image``: ``(H0, W0, C)`` float32, or ``(D0, H0, W0, C)`` with a 3-side
        ``options.window``. Returns the spatial shape (``(H0, W0)`` float32) when
        ``options.num_classes == 1``, else ``(..., num_classes)``.

    Raises:
        ValueError: the window does not have one side per spatial axis of ``image``.
    """
    logits = _sliding_window(model, image, options)
    return logits[..., 0] if options.num_classes == 1 else logits


def _sliding_window(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """:func:`sliding_window_logits` with the channel axis always kept."""
    window, shape = options.window, image.shape[:-1]
    if len(window) != len(shape):
        raise ValueError(f"The sliding window {list(window)} must have one side per spatial "
                         f"axis of the image, received an image of shape {image.shape}")
    padded = np.pad(image, [(0, max(0, w - s)) for w, s in zip(window, shape)] + [(0, 0)])
    weights = (gaussian_importance_map(window, options.sigma_scale) if options.gaussian
               else np.ones(window, np.float32))
    weights = weights[..., None]
    total = np.zeros(padded.shape[:-1] + (options.num_classes,), np.float32)
    norm = np.zeros(padded.shape[:-1] + (1,), np.float32)
    corners = list(itertools.product(*(window_starts(side, w, options.overlap)
                                       for side, w in zip(padded.shape[:-1], window))))
    for i in range(0, len(corners), options.batch_size):
        chunk = corners[i:i + options.batch_size]
        tiles = np.zeros((options.batch_size, *window, image.shape[-1]), np.float32)
        places = [tuple(slice(c, c + w) for c, w in zip(corner, window)) for corner in chunk]
        for j, place in enumerate(places):  # a full batch: one compiled shape
            tiles[j] = padded[place]
        for place, logits in zip(places, call_model(model, tiles, options.num_classes)):
            total[place] += logits * weights
            norm[place] += weights
    return (total / norm)[tuple(slice(0, s) for s in shape)]
