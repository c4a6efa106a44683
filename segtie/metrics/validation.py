"""The Dice of validation, as a Keras metric on logits (what picks ``best.keras``).

Hard Dice of the thresholded sigmoid (one channel) or of the argmax (K channels),
per image, averaged over an epoch. The per-image rule is the evaluation's own,
:func:`segtie.metrics.overlap.dice_from_counts` run on ``keras.ops``, and images and
classes are averaged with :func:`segtie.metrics.overlap.mean_defined`, so on the
same images at the same resolution the ``val_dice`` logged during training equals
the evaluation's mean ``dice``:

* both masks empty: 1;
* reference empty, prediction not: NaN, left out of the means (not 0);
* otherwise ``2 TP / (2 TP + FP + FN)``.

Multi-class: per image, the mean over the foreground classes whose Dice is defined;
NaN when none is.
"""

from __future__ import annotations

import keras
from keras import ops

from segtie.losses.dice_ce import num_channels
from segtie.losses.multiclass import labels
from segtie.metrics.overlap import dice_from_counts, mean_defined

__all__ = ["DiceMetric", "hard_dice", "hard_dice_multiclass"]


def _counts(truth, pred, axes):
    """``(tp, fp, fn)`` float32 sums of 0/1 tensors over ``axes``."""
    tp = ops.sum(truth * pred, axis=axes)
    return tp, ops.sum(pred, axis=axes) - tp, ops.sum(truth, axis=axes) - tp


def hard_dice(y_true, logits, threshold=0.5):
    """Dice of the thresholded prediction per image (NaN for an empty reference).

    A pixel is predicted foreground when ``sigmoid(logit) > threshold``, as the
    evaluation does. The rule is :func:`~segtie.metrics.overlap.dice_from_counts`.

    Args:
        y_true: float reference masks in {0, 1} (values > 0.5 are foreground).
        logits: float logits before the sigmoid, any float dtype (cast to float32).
        threshold: float in [0, 1]. Default 0.5.

    Shapes:
        ``y_true``, ``logits``: ``(batch, H, W, 1)`` (any rank >= 2, the same).

    Returns:
        float32 ``(batch,)``: Dice in [0, 1]; 1 where reference and prediction are
        both empty; NaN where only the reference is empty.
    """
    truth = ops.cast(ops.convert_to_tensor(y_true) > 0.5, "float32")
    pred = ops.cast(ops.sigmoid(ops.cast(logits, "float32")) > threshold, "float32")
    axes = tuple(range(1, len(truth.shape)))
    return dice_from_counts(*_counts(truth, pred, axes), xp=ops)


def hard_dice_multiclass(y_true, logits):
    """Mean over foreground classes of the Dice of the argmax prediction, per image.

    Per image and class ``c`` (1..K-1), :func:`~segtie.metrics.overlap.dice_from_counts`
    of ``(G == c, argmax == c)``: 1 when the class is absent from both, NaN when it
    is absent from the reference only. The image's Dice is the mean of the defined
    class values (:func:`~segtie.metrics.overlap.mean_defined`), NaN if none is,
    exactly as :func:`segtie.evaluation.scoring.score_prediction`. With ``K = 2``
    this is the binary hard Dice of class 1.

    Args:
        y_true: integer labels in 0..K-1 (any numeric dtype).
        logits: float ``(batch, H, W, K)`` or, for volumes, ``(batch, D, H, W, K)``.

    Shapes:
        ``y_true``: ``(batch, H, W, 1)`` or ``(batch, H, W)`` (volumes alike).

    Returns:
        float32 ``(batch,)``.
    """
    logits = ops.cast(logits, "float32")
    num_classes, rank = int(logits.shape[-1]), len(logits.shape)
    truth = ops.one_hot(labels(y_true, rank), num_classes, dtype="float32")[..., 1:]
    pred = ops.one_hot(ops.argmax(logits, axis=-1), num_classes, dtype="float32")[..., 1:]
    axes = tuple(range(1, rank - 1))  # (H, W), or (D, H, W) for volumes
    per_class = dice_from_counts(*_counts(truth, pred, axes), xp=ops)  # (batch, K - 1)
    return mean_defined(per_class, axis=-1, xp=ops)


@keras.saving.register_keras_serializable(package="segtie")
class DiceMetric(keras.metrics.Metric):
    """Mean over images of the hard Dice, binary or multi-class, NaN images skipped.

    One logit channel: Dice of the thresholded sigmoid probabilities
    (:func:`hard_dice`). ``K > 1`` channels: per image, the mean over foreground
    classes of the Dice of the argmax prediction (:func:`hard_dice_multiclass`;
    ``threshold`` unused). This is the per-case mean Dice that papers report,
    accumulated over an epoch, equal to the evaluation's mean ``dice`` on the same
    images.

    An image whose Dice is NaN (reference empty, prediction not) is left out: it
    adds to neither the sum nor the count. When every image of the epoch was NaN
    the result is NaN. Keras' progress bar, ``CSVLogger`` and the MLflow callback
    log a NaN epoch as ``nan``, and :class:`segtie.training.callbacks.BestCheckpoint`
    never saves it (``nan > best`` is False). ``sample_weight`` is ignored.

    Args:
        threshold: float, probability threshold of the binary case. Default 0.5.
        name: str. Default ``"dice"`` (logged as ``dice`` and ``val_dice``).

    Shapes:
        ``y_true``: ``(batch, H, W, 1)``; ``y_pred`` (logits): ``(batch, H, W, C)``.
    """

    def __init__(self, threshold=0.5, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        if num_channels(y_pred) == 1:
            scores = hard_dice(y_true, y_pred, self.threshold)
        else:
            scores = hard_dice_multiclass(y_true, y_pred)
        defined = ops.logical_not(ops.isnan(scores))
        self.total.assign_add(ops.sum(ops.where(defined, scores, 0.0)))
        self.count.assign_add(ops.sum(ops.cast(defined, "float32")))

    def result(self):
        return ops.where(self.count > 0, self.total / ops.maximum(self.count, 1.0),
                         float("nan"))

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update(threshold=self.threshold)
        return config
