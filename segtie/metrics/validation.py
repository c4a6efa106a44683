"""The Dice of validation, as a Keras metric on logits (what picks ``best.keras``).

Hard Dice of the thresholded sigmoid (one channel) or of the argmax (K channels),
per image, averaged over an epoch. It follows the conventions of :mod:`segtie.metrics`
so that the ``val_dice`` logged during training and the evaluation's ``dice`` agree.
"""

from __future__ import annotations

import keras
from keras import ops

from segtie.losses.dice_ce import num_channels
from segtie.losses.multiclass import labels

__all__ = ["DiceMetric", "hard_dice", "hard_dice_multiclass"]


def hard_dice(y_true, logits, threshold=0.5):
    """Dice of the thresholded prediction per image, shape ``(batch,)``.

    An image whose reference and prediction are both empty scores 1.
    """
    y_true = ops.cast(y_true > 0.5, "float32")
    pred = ops.cast(ops.sigmoid(ops.cast(logits, "float32")) > threshold, "float32")
    axes = tuple(range(1, len(y_true.shape)))
    inter = ops.sum(y_true * pred, axis=axes)
    denom = ops.sum(y_true, axis=axes) + ops.sum(pred, axis=axes)
    return ops.where(denom > 0, 2.0 * inter / ops.maximum(denom, 1.0), 1.0)


def hard_dice_multiclass(y_true, logits):
    """Mean over foreground classes of the Dice of the argmax prediction, per image.

    Per image and class ``c`` (1..K-1): ``2 |P_c & G_c| / (|P_c| + |G_c|)``, 1 when the
    class is absent from both (the binary :func:`segtie.losses.hard_dice`
    convention); then the mean over classes. With ``K = 2`` this is the binary hard
    Dice of class 1.

    Args:
        y_true: integer labels ``(batch, H, W, 1)`` in 0..K-1.
        logits: float ``(batch, H, W, K)``.

    Returns:
        float32 ``(batch,)``.
    """
    logits = ops.cast(logits, "float32")
    num_classes = int(logits.shape[-1])
    truth = ops.one_hot(labels(y_true), num_classes, dtype="float32")[..., 1:]
    pred = ops.one_hot(ops.argmax(logits, axis=-1), num_classes, dtype="float32")[..., 1:]
    inter = ops.sum(truth * pred, axis=(1, 2))  # (batch, K - 1)
    denom = ops.sum(truth, axis=(1, 2)) + ops.sum(pred, axis=(1, 2))
    dice = ops.where(denom > 0, 2.0 * inter / ops.maximum(denom, 1.0), 1.0)
    return ops.mean(dice, axis=-1)


@keras.saving.register_keras_serializable(package="segtie")
class DiceMetric(keras.metrics.Metric):
    """Mean over images of the hard Dice, binary or multi-class.

    One logit channel: Dice of the thresholded sigmoid probabilities
    (:func:`hard_dice`). ``K > 1`` channels: per image, the mean over foreground
    classes of the Dice of the argmax prediction (:func:`hard_dice_multiclass`;
    ``threshold`` unused). This is the per-case mean Dice that papers report,
    accumulated over an epoch.
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
        self.total.assign_add(ops.sum(scores))
        self.count.assign_add(ops.cast(ops.shape(scores)[0], "float32"))

    def result(self):
        return self.total / ops.maximum(self.count, 1.0)

    def reset_state(self):
        self.total.assign(0.0)
        self.count.assign(0.0)

    def get_config(self):
        config = super().get_config()
        config.update(threshold=self.threshold)
        return config
