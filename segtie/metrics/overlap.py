"""Overlap metrics from the confusion counts: Dice, IoU, precision, recall, specificity,
accuracy.

Every function takes ``(y_true, y_pred)``, boolean or 0/1 arrays of shape
``(height, width)``, and an optional ``roi`` of the same shape: pixels outside it are
ignored (they count as neither positive nor negative). The empty-mask conventions are
the table of :mod:`segtie.metrics`: a zero denominator gives NaN, except that when
reference and prediction are both empty (inside the ROI) every metric is perfect (1.0),
and an empty reference makes every foreground metric NaN (the case has no object to
score; only specificity, a background metric, stays defined).

Dice has one definition, :func:`dice_from_counts`, written with array operations of a
module ``xp`` (``numpy`` or ``keras.ops``) so that the NumPy :func:`dice` of the
evaluation and the Keras validation metric (:mod:`segtie.metrics.validation`, what
picks ``best.keras``) compute the same number with the same empty-mask rule;
:func:`mean_defined` is the one mean over classes or images that skips NaN.

References:
    MONAI ``compute_confusion_matrix_metric`` (NaN for a zero denominator):
    https://docs.monai.io/en/stable/metrics.html
    Maier-Hein et al., "Metrics reloaded", Nature Methods 21, 2024.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Optional

import numpy as np

from segtie.metrics._checks import apply_roi


__all__ = ["Confusion", "accuracy", "confusion", "dice", "dice_from_counts", "iou",
           "mean_defined", "precision", "recall", "specificity"]


def dice_from_counts(tp, fp, fn, xp=np):
    """Dice from confusion counts, with the empty-mask rule of :mod:`segtie.metrics`.

    ============================  ==========================
    reference ``tp + fn``          Dice
    ============================  ==========================
    > 0                            ``2 TP / (2 TP + FP + FN)``
    0, prediction empty (FP = 0)   1 (perfect agreement)
    0, prediction not (FP > 0)     NaN (no object to score)
    ============================  ==========================

    Element-wise, so one call scores a batch of images, or of images and classes.
    The denominator is made safe (1 where the reference is empty) before dividing,
    so no 0 / 0 is ever computed, in either branch.

    Args:
        tp: true positive counts, array-like of numbers >= 0 (Python/NumPy ints or
            floats; float tensors for ``keras.ops``).
        fp: false positive counts, same shape (or broadcastable).
        fn: false negative counts, same shape (or broadcastable).
        xp: the array module, ``numpy`` (default) or ``keras.ops``; it must provide
            ``add``, ``multiply``, ``divide``, ``equal``, ``greater`` and ``where``.

    Shapes:
        ``tp``, ``fp``, ``fn``: any common shape ``S``, e.g. ``()``, ``(batch,)`` or
        ``(batch, classes)``. Returns shape ``S``.

    Returns:
        Dice in [0, 1] or NaN: a float64 NumPy array for ``numpy``, a float tensor
        (float32 from float32 counts) for ``keras.ops``.

    References:
        Dice, "Measures of the amount of ecologic association between species",
        Ecology 26(3), 1945. An empty reference is NaN as in MONAI's ``compute_dice``
        with ``ignore_empty=True`` (which makes two empty masks NaN too; here they
        score 1, as the table says); Maier-Hein et al., "Metrics reloaded", Nature
        Methods 21, 2024, on empty references.
    """
    two_tp = xp.multiply(2.0, tp)
    denominator = xp.add(xp.add(two_tp, fp), fn)
    reference_empty = xp.equal(xp.add(tp, fn), 0)
    safe = xp.where(reference_empty, 1.0, denominator)
    empty_value = xp.where(xp.greater(fp, 0), math.nan, 1.0)
    return xp.where(reference_empty, empty_value, xp.divide(two_tp, safe))


def mean_defined(values, axis=-1, xp=np):
    """Mean of ``values`` along ``axis`` over the entries that are not NaN.

    How one image's Dice is made of its classes' Dice (as the evaluation's
    :func:`segtie.evaluation.scoring.score_prediction`) and how the validation metric
    averages images: NaN entries (an empty reference, see :func:`dice_from_counts`)
    are left out, not counted as 0 or 1; when every entry is NaN the mean is NaN.

    Args:
        values: float array or tensor.
        axis: int, the axis to average over. Default -1.
        xp: ``numpy`` (default) or ``keras.ops``.

    Shapes:
        ``values``: any; returns ``values``' shape without ``axis``.

    Returns:
        The mean of the defined entries, NaN where there is none (float64 NumPy
        array; float32 tensor from float32 values with ``keras.ops``).
    """
    defined = xp.logical_not(xp.isnan(values))
    total = xp.sum(xp.where(defined, values, 0.0), axis=axis)
    count = xp.sum(xp.where(defined, 1.0, 0.0), axis=axis)
    safe = xp.where(xp.greater(count, 0), count, 1.0)
    return xp.where(xp.greater(count, 0), xp.divide(total, safe), math.nan)


class Confusion(NamedTuple):
    """Pixel counts of one case inside the ROI."""

    tp: int
    fp: int
    fn: int
    tn: int


def confusion(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> Confusion:
    """True/false positive/negative pixel counts inside ``roi``.

    Args:
        y_true: reference mask, boolean or 0/1.
        y_pred: predicted mask, boolean or 0/1.
        roi: optional region of interest, boolean or 0/1; ``None`` = whole image.
        case_id: optional name put in front of error messages.

    Shapes:
        ``y_true``, ``y_pred``, ``roi``: ``(height, width)``.

    Returns:
        A :class:`Confusion` of Python ints.

    Raises:
        ValueError: shapes differ, not 2-D, or values other than 0/1.
    """
    y_true, y_pred, roi = apply_roi(y_true, y_pred, roi, case_id)
    tp = int(np.count_nonzero(y_true & y_pred))
    fp = int(np.count_nonzero(y_pred)) - tp
    fn = int(np.count_nonzero(y_true)) - tp
    return Confusion(tp, fp, fn, int(np.count_nonzero(roi)) - tp - fp - fn)


def _ratio(num: int, den: int) -> float:
    return num / den if den else math.nan


def _reference_based(c: Confusion, value) -> float:
    """The conventions of foreground metrics: both empty -> 1, reference empty -> NaN."""
    if c.tp + c.fn == 0:
        return 1.0 if c.fp == 0 else math.nan
    return value()


def dice(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Dice similarity coefficient ``2 TP / (2 TP + FP + FN)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Dice in [0, 1], a Python float: 1.0 if both masks are empty, NaN if only
        ``y_true`` is empty (:func:`dice_from_counts`, the rule that the validation
        metric uses too).

    References:
        Dice, "Measures of the amount of ecologic association between species",
        Ecology 26(3), 1945.
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return float(dice_from_counts(c.tp, c.fp, c.fn))


def iou(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Intersection over union (Jaccard index) ``TP / (TP + FP + FN)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        IoU in [0, 1]; 1.0 if both masks are empty, NaN if only ``y_true`` is empty.

    References:
        Jaccard, "The distribution of the flora in the alpine zone", New Phytologist
        11(2), 1912.
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _reference_based(c, lambda: c.tp / (c.tp + c.fp + c.fn))


def precision(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Precision (positive predictive value) ``TP / (TP + FP)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Precision in [0, 1]; 1.0 if both masks are empty; NaN if only ``y_true`` is
        empty, and NaN if only ``y_pred`` is empty (0 / 0, as MONAI).
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _reference_based(c, lambda: _ratio(c.tp, c.tp + c.fp))


def recall(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Recall (sensitivity, true positive rate) ``TP / (TP + FN)``.

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Recall in [0, 1]; 1.0 if both masks are empty, NaN if only ``y_true`` is empty,
        0.0 if only ``y_pred`` is empty.
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _reference_based(c, lambda: c.tp / (c.tp + c.fn))


def specificity(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Specificity (true negative rate) ``TN / (TN + FP)``.

    Defined from the background, so it stays a number when the reference is empty
    (it is then one minus the false positive rate of the whole ROI).

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Specificity in [0, 1]; 1.0 if both masks are empty; NaN only when the
        reference covers the whole ROI (no negative pixel).
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    if c.tp + c.fn == 0 and c.fp == 0:
        return 1.0
    return _ratio(c.tn, c.tn + c.fp)


def accuracy(y_true, y_pred, roi=None, *, case_id: Optional[str] = None) -> float:
    """Pixel accuracy ``(TP + TN) / N``, ``N`` the number of pixels inside ``roi``.

    A background-dominated metric: on DRIVE (about 12% vessel pixels inside the field
    of view) predicting no vessel at all scores about 0.88, so report it beside Dice.
    It is always defined when the ROI has a pixel (1.0 for two empty masks).

    Args, Shapes, Raises: as :func:`confusion`.

    Returns:
        Accuracy in [0, 1]; NaN only for an empty ROI.

    References:
        Staal et al., "Ridge-based vessel segmentation in color images of the retina",
        IEEE TMI 2004 (accuracy inside the field of view).
    """
    c = confusion(y_true, y_pred, roi, case_id=case_id)
    return _ratio(c.tp + c.tn, c.tp + c.fp + c.fn + c.tn)
