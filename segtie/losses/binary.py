"""Binary losses from logits: soft Dice and binary cross-entropy, one value per image.

Every function takes ``(y_true, logits)``: ``y_true`` float ``(batch, H, W, 1)`` in
{0, 1}, ``logits`` float ``(batch, H, W, 1)`` before the sigmoid, and returns float32
``(batch,)``.

Soft Dice follows Milletari et al., "V-Net", 3DV 2016 (with the squared-free
denominator of Drozdzal et al. 2016 as used by nnU-Net):
``1 - (2 * sum(p * g) + eps) / (sum(p) + sum(g) + eps)`` per image.
"""

from __future__ import annotations

from keras import ops

from segtie.losses.multiclass import SMOOTH

__all__ = ["bce_loss", "soft_dice_loss"]


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
