"""Losses and the training-time Dice metric: functional core + Keras wrappers.

All functions take ``(y_true, logits)``: ``y_true`` float ``(batch, H, W, 1)`` in
{0, 1}, ``logits`` float ``(batch, H, W, 1)`` before the sigmoid.

Soft Dice follows Milletari et al., "V-Net", 3DV 2016 (with the squared-free
denominator of Drozdzal et al. 2016 as used by nnU-Net):
``1 - (2 * sum(p * g) + eps) / (sum(p) + sum(g) + eps)`` per image, averaged over
the batch.
"""

from __future__ import annotations

import keras
from keras import ops

SMOOTH = 1e-5


def soft_dice_loss(y_true, logits, smooth=SMOOTH):
    """Soft Dice loss per image, shape ``(batch,)``.

    Args:
        y_true: float ``(batch, H, W, C)`` in {0, 1}.
        logits: float ``(batch, H, W, C)``.
        smooth: float, added to numerator and denominator (an empty reference with an
            empty prediction then scores loss 0).

    Returns:
        float32 ``(batch,)``: ``1 - Dice`` of the sigmoid probabilities.
    """
    y_true = ops.cast(y_true, "float32")
    probs = ops.sigmoid(ops.cast(logits, "float32"))
    axes = tuple(range(1, len(y_true.shape)))
    inter = ops.sum(y_true * probs, axis=axes)
    denom = ops.sum(y_true, axis=axes) + ops.sum(probs, axis=axes)
    return 1.0 - (2.0 * inter + smooth) / (denom + smooth)


def bce_loss(y_true, logits):
    """Binary cross-entropy from logits, mean over pixels, shape ``(batch,)``."""
    y_true = ops.cast(y_true, "float32")
    per_pixel = ops.binary_crossentropy(y_true, ops.cast(logits, "float32"), from_logits=True)
    return ops.mean(per_pixel, axis=tuple(range(1, len(y_true.shape))))


@keras.saving.register_keras_serializable(package="segtie")
class DiceBCELoss(keras.losses.Loss):
    """``dice_weight * soft Dice + bce_weight * BCE``, from logits.

    Args:
        dice_weight: float >= 0.
        bce_weight: float >= 0.

    Raises:
        ValueError: a negative weight, or both zero.
    """

    def __init__(self, dice_weight=1.0, bce_weight=1.0, name="dice_bce", **kwargs):
        super().__init__(name=name, **kwargs)
        if dice_weight < 0 or bce_weight < 0 or dice_weight + bce_weight == 0:
            raise ValueError("`dice_weight` and `bce_weight` must be >= 0 and not both 0, "
                             f"received {dice_weight!r} and {bce_weight!r}")
        self.dice_weight = float(dice_weight)
        self.bce_weight = float(bce_weight)

    def call(self, y_true, y_pred):
        return (self.dice_weight * soft_dice_loss(y_true, y_pred)
                + self.bce_weight * bce_loss(y_true, y_pred))

    def get_config(self):
        config = super().get_config()
        config.update(dice_weight=self.dice_weight, bce_weight=self.bce_weight)
        return config


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


@keras.saving.register_keras_serializable(package="segtie")
class DiceMetric(keras.metrics.Metric):
    """Mean over images of the hard Dice (threshold on sigmoid probabilities).

    This is the per-case mean Dice that papers report, accumulated over an epoch.
    """

    def __init__(self, threshold=0.5, name="dice", **kwargs):
        super().__init__(name=name, **kwargs)
        self.threshold = float(threshold)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        scores = hard_dice(y_true, y_pred, self.threshold)
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
