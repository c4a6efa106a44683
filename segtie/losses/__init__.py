"""Losses from logits: binary and multi-class soft Dice + cross-entropy.

A functional core (:mod:`~segtie.losses.binary`, :mod:`~segtie.losses.multiclass`:
one value per image) and the Keras loss that training compiles
(:class:`DiceCELoss`, in :mod:`~segtie.losses.dice_ce`). A new loss goes beside
them as a function of ``(y_true, logits)`` plus, if training should use it, a
branch of :class:`DiceCELoss` or a new registered Keras loss. The Dice *metric* of
validation is :class:`segtie.metrics.validation.DiceMetric`.
"""

from segtie.losses.binary import bce_loss, soft_dice_loss
from segtie.losses.dice_ce import DiceBCELoss, DiceCELoss
from segtie.losses.multiclass import SMOOTH, categorical_ce_loss, soft_dice_multiclass_loss

__all__ = ["SMOOTH", "DiceBCELoss", "DiceCELoss", "bce_loss", "categorical_ce_loss",
           "soft_dice_loss", "soft_dice_multiclass_loss"]
