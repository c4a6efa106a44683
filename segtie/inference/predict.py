"""The one prediction path: a uint8 image of any size -> logits or probabilities.

Resize (as in training) or sliding window, optional mirroring and transposing TTA
(with both, the logits of the eight symmetries of the square are averaged); see
:mod:`segtie.inference`.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import tensorflow as tf

from segtie.data.preprocess import preprocess_image
from segtie.inference.options import InferenceOptions
from segtie.inference.sliding_window import _sliding_window, call_model

__all__ = ["predict_logits", "predict_probabilities"]


def _resized_logits(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Logits ``(h, w, K)`` at ``image_size`` of the resized, scaled uint8 image."""
    inputs = preprocess_image(image, list(options.image_size)).numpy()
    return call_model(model, inputs[None], options.num_classes)[0]


def _mirrored_logits(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Logits ``(H0, W0, K)`` of a checked uint8 image: resize or sliding window, with
    the four flips averaged when ``options.tta_mirror``."""
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
    return logits


def predict_logits(model, image: np.ndarray, options: InferenceOptions) -> np.ndarray:
    """Logits of one uint8 image at its original size.

    Args:
        model: a Keras model mapping ``(n, h, w, 3)`` float32 in [0, 1] to logits
            ``(n, h, w, options.num_classes)``.
        image: the original image, uint8.
        options: how to run the model (:class:`InferenceOptions`); with
            ``tta_transpose`` the mean of the image's logits and those of the image with
            height and width swapped (swapped back), each mirrored with ``tta_mirror``.

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
    logits = _mirrored_logits(model, image, options)
    if options.tta_transpose:  # the transposed image, its logits transposed back
        swapped = np.ascontiguousarray(np.swapaxes(image, 0, 1))
        logits = (logits + np.swapaxes(_mirrored_logits(model, swapped, options), 0, 1)) / 2
    if options.num_classes == 1:
        logits = logits[..., 0]
    return np.ascontiguousarray(logits, dtype=np.float32)


def predict_probabilities(model, image: np.ndarray, image_size: Sequence[int],
                          options: Optional[InferenceOptions] = None) -> np.ndarray:
    """Class probabilities of one image at its original size.

    With the default ``options`` the image is preprocessed with
    :func:`segtie.data.preprocess.preprocess_image` (resized to ``image_size``, scaled to
    [0, 1]), the model gives logits at ``image_size``, and the *logits* are resized
    bilinearly to the original size before the sigmoid (softmax over the channels
    for ``options.num_classes > 1``), as nnU-Net v2. Resizing a thresholded mask
    instead would give blocky edges; resizing probabilities gives a softer edge than
    the model's. ``options`` selects sliding-window inference, mirroring TTA and the
    number of classes (:func:`predict_logits`).

    Args:
        model: a Keras model mapping ``(n, H, W, 3)`` float32 to logits
            ``(n, H, W, options.num_classes)``.
        image: the original image, uint8.
        image_size: ``[H, W]`` the model was trained at.
        options: inference options; ``None`` = resize, no TTA. Its ``image_size``
            is replaced by ``image_size``.

    Shapes:
        ``image``: ``(H0, W0, 3)``. Returns ``(H0, W0)`` (foreground probability)
        for one class, ``(H0, W0, K)`` (summing to 1 over the classes) for ``K > 1``.

    Returns:
        float32 probabilities in [0, 1] at the original size.

    Raises:
        ValueError: ``image`` is not ``(H0, W0, 3)`` or the model output is not
            ``num_classes``-channel logits of its input's size.
        TypeError: ``image`` is not uint8.
    """
    options = options or InferenceOptions(image_size=image_size)
    if list(options.image_size) != list(image_size):
        options = dataclasses.replace(options, image_size=list(image_size))
    logits = predict_logits(model, image, options).astype(np.float64)
    if options.num_classes == 1:
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)
