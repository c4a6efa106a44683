"""Per-case rows of the evaluation report: binary, multi-class and second observer.

:func:`metric_names` lists a report's metrics in order, :func:`score_prediction`
scores a prediction (:func:`segtie.inference.predict_labels`) against the
reference and :func:`score_observer` scores a second human annotation the same way.
NumPy over :mod:`segtie.metrics`; no config or MLflow.

* **Binary** (one logit channel): :func:`segtie.metrics.score_case`; the names are
  :data:`~segtie.metrics.METRIC_NAMES`, with ``accuracy`` after ``specificity`` when
  asked for, then :data:`~segtie.metrics.RANKING_NAMES` with kept probabilities.
* **Multi-class** (``K > 1`` channels, argmax prediction): every foreground class
  ``c = 1..K-1`` scored one-vs-rest (:func:`segtie.metrics.score_classes`), in columns
  ``<metric>_class<c>``; ``dice`` is the mean of the case's class Dice scores, NaN
  (a class absent from the reference, present in the prediction) skipped, NaN if all
  are. AUC and AP use the class's softmax probability.
* **Second observer**: DRIVE's test set has a second manual annotation. Scoring it
  against the first, inside the same ROI and with the same spacing and tolerance as
  the model, gives the human reference that the literature reports beside a model
  (Staal et al. 2004: accuracy 0.947 inside the field of view). A human draws a
  binary map, so there is no AUC or AP.

References:
    Staal et al., "Ridge-based vessel segmentation in color images of the retina",
    IEEE TMI 2004.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from segtie import metrics

__all__ = ["class_names", "metric_names", "penalized_names", "score_observer",
           "score_prediction"]


def _binary_names(keep_probabilities: bool, accuracy: bool) -> tuple[str, ...]:
    names = list(metrics.METRIC_NAMES)
    if accuracy:
        names.insert(names.index("specificity") + 1, "accuracy")
    return tuple(names) + (metrics.RANKING_NAMES if keep_probabilities else ())


def class_names(names: Sequence[str], num_classes: int) -> tuple[str, ...]:
    """``<metric>_class<c>`` for every foreground class ``c``, class by class."""
    return tuple(f"{name}_class{c}" for c in range(1, num_classes) for name in names)


def metric_names(num_classes: int = 1, keep_probabilities: bool = False,
                 accuracy: bool = False) -> tuple[str, ...]:
    """The metrics of a report, in order (see the module docstring).

    Args:
        num_classes: logit channels of the model (1 = binary).
        keep_probabilities: add ``auc`` and ``ap``.
        accuracy: add ``accuracy`` after ``specificity``.

    Returns:
        Binary: e.g. ``("dice", "iou", ..., "nsd")``. Multi-class: ``("dice",
        "dice_class1", "iou_class1", ..., "nsd_class<K-1>")``.
    """
    names = _binary_names(keep_probabilities, accuracy)
    if num_classes == 1:
        return names
    return ("dice",) + class_names(names, num_classes)


def _check_labels(mask: np.ndarray, num_classes: int, case_id: str) -> np.ndarray:
    mask = np.asarray(mask)
    if not np.issubdtype(mask.dtype, np.integer):
        raise ValueError(f"Case {case_id!r}: a multi-class `mask` must hold integer class "
                         f"indices, received dtype {mask.dtype}")
    if mask.size and (mask.min() < 0 or mask.max() >= num_classes):
        bad = np.unique(mask[(mask < 0) | (mask >= num_classes)])[:5].tolist()
        raise ValueError(f"Case {case_id!r}: `mask` values must be class indices 0.."
                         f"{num_classes - 1} (`num_classes` = {num_classes}), received "
                         f"values such as {bad}")
    return mask


def _with_accuracy(scores: dict, y_true, y_pred, roi, case_id) -> dict:
    """``scores`` with ``accuracy`` inserted after ``specificity``."""
    out = {}
    for name, value in scores.items():
        out[name] = value
        if name == "specificity":
            out["accuracy"] = metrics.accuracy(y_true, y_pred, roi, case_id=case_id)
    return out


def score_prediction(mask: np.ndarray, prediction: np.ndarray, num_classes: int = 1, *,
                     probabilities: Optional[np.ndarray] = None,
                     spacing: Optional[Sequence[float]] = None, roi=None,
                     tolerance: float = 1.0, accuracy: bool = False,
                     case_id: Optional[str] = None) -> dict[str, float]:
    """All metrics of one case, as a flat row (see the module docstring).

    Args:
        mask: the reference: 0/1 (binary) or class indices 0..K-1.
        prediction: from :func:`segtie.inference.predict_labels`.
        num_classes: logit channels of the model (1 = binary).
        probabilities: kept probabilities for AUC and AP, or ``None``.
        spacing: ``(row, col)`` mm per pixel; ``None`` = pixels.
        roi: optional region of interest (e.g. DRIVE's field of view).
        tolerance: NSD tolerance in the distance unit.
        accuracy: add ``accuracy``.
        case_id: the case's name, put in error messages.

    Shapes:
        ``mask``, ``prediction``, ``roi``: ``(H, W)``; ``probabilities``: ``(H, W)``
        binary, ``(H, W, K)`` multi-class.

    Returns:
        ``{name: value}`` with the keys of :func:`metric_names`, in that order.

    Raises:
        ValueError: a binary mask not in {0, 1}, a multi-class mask with values
            outside 0..K-1, or as :func:`segtie.metrics.score_case`; the message
            names the case.
    """
    if num_classes == 1:
        scores = metrics.score_case(mask, prediction, spacing, probabilities=probabilities,
                                    roi=roi, tolerance=tolerance, case_id=case_id)
        return _with_accuracy(scores, mask, prediction, roi, case_id) if accuracy else scores
    mask = _check_labels(mask, num_classes, case_id)
    per_class = metrics.score_classes(mask, prediction, range(1, num_classes), spacing,
                                      probabilities=probabilities, roi=roi,
                                      tolerance=tolerance, case_id=case_id)
    row = {}
    for c, scores in per_class.items():
        if accuracy:
            scores = _with_accuracy(scores, mask == c, prediction == c, roi, case_id)
        row.update({f"{name}_class{c}": value for name, value in scores.items()})
    dices = np.array([s["dice"] for s in per_class.values()], dtype=np.float64)
    return {"dice": float(metrics.mean_defined(dices)), **row}  # as validation


def score_observer(mask: np.ndarray, mask2: np.ndarray, *,
                   spacing: Optional[Sequence[float]] = None, roi=None,
                   tolerance: float = 1.0, accuracy: bool = False,
                   case_id: Optional[str] = None) -> dict[str, float]:
    """A second annotation ``mask2`` scored against the reference ``mask``.

    Exactly as :func:`score_prediction` scores a binary prediction (same ROI, spacing
    and tolerance), without probabilities.

    Shapes:
        ``mask``, ``mask2``, ``roi``: ``(H, W)``, 0/1.

    Returns:
        ``{name: value}`` with the keys of ``metric_names(1, False, accuracy)``.

    Raises:
        ValueError: as :func:`segtie.metrics.score_case`, naming the case.
    """
    return score_prediction(mask, mask2, 1, spacing=spacing, roi=roi, tolerance=tolerance,
                            accuracy=accuracy,
                            case_id=None if case_id is None else f"{case_id} mask2")


def penalized_names(mask: np.ndarray, prediction: np.ndarray, num_classes: int = 1,
                    roi=None) -> list[str]:
    """The distance metrics of one case that took the missed-structure penalty.

    A structure is missed when the reference has it (inside ``roi``) and the
    prediction has none of it; its HD95 and ASSD are then
    :func:`segtie.metrics.missed_penalty` (see :mod:`segtie.metrics`).

    Shapes:
        ``mask``, ``prediction``, ``roi``: ``(H, W)``.

    Returns:
        Binary: ``["hd95", "assd"]`` or ``[]``; multi-class: ``hd95_class<c>``,
        ``assd_class<c>`` for every missed class ``c``.
    """
    inside = np.ones(np.shape(mask), bool) if roi is None else np.asarray(roi).astype(bool)
    mask, prediction = np.asarray(mask), np.asarray(prediction)
    if num_classes == 1:
        missed = (mask.astype(bool) & inside).any() and not (prediction.astype(bool)
                                                              & inside).any()
        return list(metrics.DISTANCE_NAMES) if missed else []
    out = []
    for c in range(1, num_classes):
        if ((mask == c) & inside).any() and not ((prediction == c) & inside).any():
            out += [f"{name}_class{c}" for name in metrics.DISTANCE_NAMES]
    return out
