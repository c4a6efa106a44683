"""From probabilities to a prediction: threshold or argmax, largest component."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["largest_component", "predict_labels"]


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


def predict_labels(probabilities: np.ndarray, num_classes: int, threshold: float,
                   keep_largest: bool = False) -> np.ndarray:
    """The prediction of one case: thresholded (binary) or argmax (multi-class).

    Binary: foreground where the probability is strictly above ``threshold``.
    Multi-class: the most probable class (``threshold`` unused). ``keep_largest``
    keeps only the largest 8-connected component (of each class; removed pixels
    become background).

    Shapes:
        ``probabilities``: ``(H, W)`` binary, ``(H, W, K)`` multi-class. Returns
        ``(H, W)``: bool (binary) or int32 class indices.
    """
    if num_classes == 1:
        prediction = probabilities > threshold
        return largest_component(prediction) if keep_largest else prediction
    prediction = np.argmax(probabilities, axis=-1).astype(np.int32)
    if keep_largest:
        for c in range(1, num_classes):
            inside = prediction == c
            prediction[inside & ~largest_component(inside)] = 0
    return prediction
