"""Losses and the training-time Dice metric: functional core + Keras wrappers.

All functions take ``(y_true, logits)``. Binary: ``y_true`` float ``(batch, H, W, 1)``
in {0, 1}, ``logits`` float ``(batch, H, W, 1)`` before the sigmoid. Multi-class
(:mod:`segtie.losses_multiclass`): ``y_true`` integer class indices ``(batch, H, W,
1)`` in 0..K-1, ``logits`` ``(batch, H, W, K)`` before the softmax.
:class:`DiceCELoss` and :class:`DiceMetric` choose from the logits' channel count
(1: sigmoid, K > 1: softmax), so one training loop serves both.

Soft Dice follows Milletari et al., "V-Net", 3DV 2016 (with the squared-free
denominator of Drozdzal et al. 2016 as used by nnU-Net):
``1 - (2 * sum(p * g) + eps) / (sum(p) + sum(g) + eps)`` per image, averaged over
the batch.
"""

from __future__ import annotations

import keras
from keras import ops

from segtie.losses_multiclass import (SMOOTH, categorical_ce_loss, hard_dice_multiclass,
                                      soft_dice_multiclass_loss)

__all__ = ["DiceBCELoss", "DiceCELoss", "DiceMetric", "bce_loss", "categorical_ce_loss",
           "hard_dice", "hard_dice_multiclass", "soft_dice_loss",
           "soft_dice_multiclass_loss"]


def _num_channels(logits) -> int:
    """The static channel count of ``logits`` (raises if it is unknown)."""
    channels = logits.shape[-1]
    if channels is None:
        raise ValueError(f"`logits` must have a known number of channels, received shape "
                         f"{tuple(logits.shape)}")
    return int(channels)


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
class DiceCELoss(keras.losses.Loss):
    """``dice_weight * soft Dice + ce_weight * cross-entropy``, binary or multi-class.

    The logits' channel count chooses: one channel gives exactly
    :class:`DiceBCELoss` (sigmoid soft Dice + binary cross-entropy, float labels in
    {0, 1}); ``K > 1`` channels give the mean over foreground classes of the softmax
    soft Dice (:func:`soft_dice_multiclass_loss`) + sparse categorical cross-entropy
    (:func:`categorical_ce_loss`), integer labels in 0..K-1.

    Args:
        dice_weight: float >= 0.
        ce_weight: float >= 0 (``train.bce_weight`` in the config).

    Shapes:
        ``y_true``: ``(batch, H, W, 1)``; ``y_pred`` (logits): ``(batch, H, W, C)``.

    Raises:
        ValueError: a negative weight, or both zero; logits without a static channel
            count.
    """

    def __init__(self, dice_weight=1.0, ce_weight=1.0, name="dice_ce", **kwargs):
        super().__init__(name=name, **kwargs)
        if dice_weight < 0 or ce_weight < 0 or dice_weight + ce_weight == 0:
            raise ValueError("`dice_weight` and `ce_weight` must be >= 0 and not both 0, "
                             f"received {dice_weight!r} and {ce_weight!r}")
        self.dice_weight = float(dice_weight)
        self.ce_weight = float(ce_weight)

    def call(self, y_true, y_pred):
        if _num_channels(y_pred) == 1:
            return (self.dice_weight * soft_dice_loss(y_true, y_pred)
                    + self.ce_weight * bce_loss(y_true, y_pred))
        return (self.dice_weight * soft_dice_multiclass_loss(y_true, y_pred)
                + self.ce_weight * categorical_ce_loss(y_true, y_pred))

    def get_config(self):
        config = super().get_config()
        config.update(dice_weight=self.dice_weight, ce_weight=self.ce_weight)
        return config


@keras.saving.register_keras_serializable(package="segtie")
class DiceBCELoss(DiceCELoss):
    """``dice_weight * soft Dice + bce_weight * BCE``, from logits (binary only).

    Training compiles :class:`DiceCELoss`, which equals this for one logit channel;
    this class stays so that checkpoints compiled with it still load.

    Args:
        dice_weight: float >= 0.
        bce_weight: float >= 0.

    Raises:
        ValueError: a negative weight, or both zero.
    """

    def __init__(self, dice_weight=1.0, bce_weight=1.0, name="dice_bce", **kwargs):
        super().__init__(dice_weight, bce_weight, name=name, **kwargs)
        self.bce_weight = self.ce_weight

    def get_config(self):
        config = super().get_config()
        config["bce_weight"] = config.pop("ce_weight")
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
        if _num_channels(y_pred) == 1:
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
