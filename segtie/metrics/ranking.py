"""Threshold-free metrics of foreground probabilities: ROC AUC and average precision.

Both rank the pixels inside the ROI by probability, as the vessel-segmentation
literature does (DRIVE, inside the field of view). Ties are handled exactly: the ROC
curve moves diagonally across a group of tied scores (AUC = the Mann-Whitney U
statistic with ties counted one half), and average precision steps only at distinct
scores, as scikit-learn's ``roc_auc_score`` and ``average_precision_score``.

Conventions: with no foreground pixel in the reference both are NaN (there is nothing
to rank, even if the prediction is empty too); with no background pixel AUC is NaN and
AP is 1.0.

References:
    Hanley & McNeil, "The meaning and use of the area under a receiver operating
    characteristic (ROC) curve", Radiology 143(1), 1982.
    scikit-learn ``average_precision_score``: AP = sum_n (R_n - R_{n-1}) P_n.
"""

from __future__ import annotations

import math
from typing import Optional

import numpy as np

from segtie.metrics._checks import check_mask, check_probabilities, check_roi


def _curve(y_true: np.ndarray, scores: np.ndarray):
    """Cumulative true and false positives at each distinct score, highest first."""
    order = np.argsort(-scores, kind="mergesort")
    scores, y_true = scores[order], y_true[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(scores)), scores.size - 1]
    tps = np.cumsum(y_true, dtype=np.int64)[last_of_group]
    fps = (last_of_group + 1) - tps
    return tps, fps


def ranking_metrics(y_true, probabilities, roi=None, *,
                    case_id: Optional[str] = None) -> dict[str, float]:
    """ROC AUC and average precision of ``probabilities`` against ``y_true``.

    Args:
        y_true: reference mask, boolean or 0/1.
        probabilities: foreground probabilities in [0, 1] (any monotone score works
            the same, but the range is checked to catch logits passed by mistake).
        roi: optional region of interest; only pixels inside it are ranked.
        case_id: optional name put in front of error messages.

    Shapes:
        ``y_true``, ``probabilities``, ``roi``: ``(height, width)``.

    Returns:
        ``{"auc", "ap"}`` as floats, with the conventions of the module docstring.

    Raises:
        ValueError: a bad mask, probabilities of another shape, NaN or outside [0, 1].
    """
    y_true = check_mask(y_true, "y_true", case_id)
    scores = check_probabilities(probabilities, y_true.shape, case_id)
    roi = check_roi(roi, y_true.shape, case_id)
    if roi is not None:
        y_true, scores = y_true[roi], scores[roi]
    y_true, scores = y_true.reshape(-1), scores.reshape(-1)
    num_pos = int(np.count_nonzero(y_true))
    num_neg = y_true.size - num_pos
    if num_pos == 0:
        return {"auc": math.nan, "ap": math.nan}
    tps, fps = _curve(y_true, scores)
    precision = tps / (tps + fps)
    recall_steps = np.diff(np.r_[0, tps]) / num_pos
    ap = float(np.sum(recall_steps * precision))
    if num_neg == 0:
        return {"auc": math.nan, "ap": ap}
    tpr, fpr = np.r_[0, tps] / num_pos, np.r_[0, fps] / num_neg
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return {"auc": auc, "ap": ap}


def auc(y_true, probabilities, roi=None, *, case_id: Optional[str] = None) -> float:
    """Area under the ROC curve (see :func:`ranking_metrics`)."""
    return ranking_metrics(y_true, probabilities, roi, case_id=case_id)["auc"]


def average_precision(y_true, probabilities, roi=None, *,
                      case_id: Optional[str] = None) -> float:
    """Average precision, the step-wise area under the precision-recall curve."""
    return ranking_metrics(y_true, probabilities, roi, case_id=case_id)["ap"]
