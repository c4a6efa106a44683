"""The training loss: Dice + cross-entropy, binary or multi-class, as a Keras loss.

:class:`DiceCELoss` chooses from the logits' channel count (1: sigmoid, K > 1:
softmax), so one training loop serves both; :class:`DiceBCELoss` is its binary
special case, kept so that checkpoints compiled with it still load.
"""

from __future__ import annotations

import keras

from segtie.losses.binary import bce_loss, soft_dice_loss
from segtie.losses.multiclass import categorical_ce_loss, soft_dice_multiclass_loss

__all__ = ["DiceBCELoss", "DiceCELoss", "num_channels"]


def num_channels(logits) -> int:
    """The static channel count of ``logits`` (raises if it is unknown)."""
    channels = logits.shape[-1]
    if channels is None:
        raise ValueError(f"`logits` must have a known number of channels, received shape "
                         f"{tuple(logits.shape)}")
    return int(channels)


@keras.saving.register_keras_serializable(package="segtie")
class DiceCELoss(keras.losses.Loss):
    """``dice_weight * soft Dice + ce_weight * cross-entropy``, binary or multi-class.

    The logits' channel count chooses: one channel gives exactly
    :class:`DiceBCELoss` (sigmoid soft Dice + binary cross-entropy, float labels in
    {0, 1}); ``K > 1`` channels give the mean over foreground classes of the softmax
    soft Dice (:func:`soft_dice_multiclass_loss`) + sparse categorical cross-entropy
    (:func:`categorical_ce_loss`), integer labels in 0..K-1.

    Empty references: an image (binary) or class (multi-class) without foreground in
    the reference has no Dice term (0, see :func:`soft_dice_loss`), so the
    cross-entropy alone scores it; its false positives are penalised there. Every
    value and gradient is finite.

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
        if num_channels(y_pred) == 1:
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
