"""Scores pooled over every pixel of a split, as the retinal-vessel literature reports them.

:mod:`segtie.evaluation.evaluator` reports the mean over cases (each image scored on
its own, then averaged: nnU-Net's and MONAI's convention, and the one segtie's goals
are stated in). Most DRIVE papers instead put the pixels of all test images (inside
the field of view) into one pool and score it once: F1 from the summed confusion
counts, and one ROC AUC over all pixels ranked together (retina-unet, R2U-Net,
IterNet). Kovács & Fazekas call the two aggregations "mean of ratios" and "ratio of
means" and show that papers mixing them are not comparable; the pooled block lets a
user compare with the published figures in their own terms. Neither is the other:
an image with few vessels weighs one twentieth in the mean and its share of pixels
in the pool.

:class:`PooledScores` accumulates one case at a time: the confusion counts (four
integers) always, and, for AUC/AP, every ROI pixel's probability (float32) and
reference (bool), 5 bytes per pixel (DRIVE's 20 test images: about 23 MB). Binary
models only. The metric rules are :mod:`segtie.metrics`' own, applied to the pool as
one image, so the empty-mask conventions are the same.

References:
    Kovács & Fazekas, "A new baseline for retinal vessel segmentation: Numerical
    identification and correction of methodological inconsistencies affecting 100+
    papers", Medical Image Analysis 75, 2022 (mean of ratios vs ratio of means).
    Alom et al., "Recurrent Residual U-Net for Medical Image Segmentation", Journal of
    Medical Imaging 6(1), 2019 (R2U-Net); Li et al., "IterNet: Retinal Image
    Segmentation Utilizing Structural Redundancy in Vessel Networks", WACV 2020.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

from segtie import metrics
from segtie.evaluation import scoring
from segtie.metrics import Confusion

__all__ = ["PooledScores"]

SURFACE_NAMES = ("hd95", "assd", "nsd")  # per-case distances: no pooled form


class PooledScores:
    """Confusion counts (and, optionally, ranked pixels) summed over the cases of a split.

    Args:
        keep_probabilities: also pool every ROI pixel for ``auc`` and ``ap``.
        accuracy: also report ``accuracy``.

    Example::

        pool = PooledScores(keep_probabilities=True, accuracy=True)
        for mask, prediction, probabilities, fov in cases:
            pool.add(mask, prediction, probabilities, roi=fov)
        pool.result()  # {"dice": ..., "iou": ..., ..., "auc": ..., "ap": ...}
    """

    def __init__(self, keep_probabilities: bool = False, accuracy: bool = False):
        self.keep_probabilities = bool(keep_probabilities)
        self.accuracy = bool(accuracy)
        self.counts = Confusion(0, 0, 0, 0)
        self.num_cases = 0
        self._truth: list[np.ndarray] = []
        self._scores: list[np.ndarray] = []

    def names(self) -> tuple[str, ...]:
        """The pooled metrics, in report order: the overlap metrics (no distances:
        a surface distance has no pooled form), ``accuracy``, ``auc`` and ``ap``."""
        return tuple(n for n in scoring.metric_names(1, self.keep_probabilities, self.accuracy)
                     if n not in SURFACE_NAMES)

    def add(self, mask, prediction, probabilities=None, roi=None, *,
            case_id: Optional[str] = None) -> None:
        """Add one case.

        Args:
            mask: reference, 0/1 or boolean, ``(H, W)``.
            prediction: thresholded prediction, 0/1 or boolean, ``(H, W)``.
            probabilities: foreground probabilities in [0, 1], ``(H, W)``; needed when
                ``keep_probabilities``.
            roi: optional region of interest, ``(H, W)``; only its pixels are pooled.
            case_id: the case's name, put in error messages.

        Raises:
            ValueError: as :func:`segtie.metrics.confusion` and
                :func:`segtie.metrics.ranking_metrics` (the message names the case), or
                no ``probabilities`` while ``keep_probabilities``.
        """
        c = metrics.confusion(mask, prediction, roi, case_id=case_id)
        self.counts = Confusion(*(a + b for a, b in zip(self.counts, c)))
        self.num_cases += 1
        if not self.keep_probabilities:
            return
        if probabilities is None:
            raise ValueError(f"Case {case_id!r}: pooled AUC/AP need the case's "
                             "probabilities (keep_probabilities is on)")
        truth = np.asarray(mask).astype(bool)
        scores = np.asarray(probabilities, dtype=np.float32)
        inside = np.ones(truth.shape, bool) if roi is None else np.asarray(roi).astype(bool)
        if scores.shape != truth.shape:
            raise ValueError(f"Case {case_id!r}: probabilities {scores.shape} must have "
                             f"the mask's shape {truth.shape}")
        if not np.all((scores >= 0) & (scores <= 1)):  # NaN fails too
            raise ValueError(f"Case {case_id!r}: probabilities must be in [0, 1] (not "
                             "logits, not NaN)")
        self._truth.append(truth[inside])
        self._scores.append(scores[inside])

    def result(self) -> dict:
        """``{name: value}`` over the pool, the keys of :meth:`names`, plus
        ``num_cases`` and ``num_pixels`` (ROI pixels pooled).

        Raises:
            ValueError: no case was added.
        """
        if not self.num_cases:
            raise ValueError("PooledScores: no case was added")
        tp, fp, fn, tn = self.counts
        # The pool as one image of one row: the same rules (and empty-mask conventions)
        # as a case's score.
        truth = np.zeros((1, tp + fp + fn + tn), bool)
        pred = np.zeros_like(truth)
        truth[0, :tp + fn] = True
        pred[0, :tp] = True
        pred[0, tp + fn:tp + fn + fp] = True
        out = {name: float(getattr(metrics, name)(truth, pred))
               for name in self.names() if name not in metrics.RANKING_NAMES}
        if self.keep_probabilities:
            y = np.concatenate(self._truth)[None]
            s = np.concatenate(self._scores)[None]
            out.update(metrics.ranking_metrics(y, s))
        return {**out, "num_cases": self.num_cases, "num_pixels": int(tp + fp + fn + tn)}
