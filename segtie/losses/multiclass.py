"""Multi-class losses from softmax logits: the functional core.

Every function takes ``(y_true, logits)``: ``y_true`` class indices ``(batch, H, W, 1)``
(or ``(batch, H, W)``) in 0..K-1, any numeric dtype (cast to int32); ``logits`` float
``(batch, H, W, K)`` before the softmax, ``K >= 2``. Class 0 is the background: the
Dice terms average over the foreground classes 1..K-1 only (as nnU-Net's
``do_bg=False``), so a large background does not inflate the score. Each returns one
value per image, shape ``(batch,)``; the Keras wrapper is :class:`segtie.losses.DiceCELoss`.

References:
    Milletari et al., "V-Net", 3DV 2016 (soft Dice).
    Isensee et al., "nnU-Net", Nature Methods 2021 (Dice + CE, background excluded).
"""

from __future__ import annotations

from keras import ops

SMOOTH = 1e-5

__all__ = ["SMOOTH", "categorical_ce_loss", "labels", "soft_dice_multiclass_loss"]


def labels(y_true):
    """``(batch, H, W, 1)`` or ``(batch, H, W)`` -> int32 ``(batch, H, W)``."""
    if len(y_true.shape) == 4:
        y_true = y_true[..., 0]
    return ops.cast(y_true, "int32")


def soft_dice_multiclass_loss(y_true, logits, smooth=SMOOTH):
    """``1 -`` mean over foreground classes of the soft Dice, per image.

    Per image and class ``c``: ``(2 sum(p_c g_c) + smooth) / (sum(p_c) + sum(g_c) +
    smooth)`` with ``p`` the softmax probabilities and ``g`` the one-hot labels; then
    the mean over ``c = 1..K-1``. A class absent from both reference and prediction
    scores (nearly) 1.

    Args:
        y_true: integer labels ``(batch, H, W, 1)`` in 0..K-1.
        logits: float ``(batch, H, W, K)``, ``K >= 2``.
        smooth: float, added to numerator and denominator.

    Returns:
        float32 ``(batch,)``.
    """
    logits = ops.cast(logits, "float32")
    num_classes = int(logits.shape[-1])
    truth = ops.one_hot(labels(y_true), num_classes, dtype="float32")
    probs = ops.softmax(logits, axis=-1)
    inter = ops.sum(truth * probs, axis=(1, 2))  # (batch, K)
    denom = ops.sum(truth, axis=(1, 2)) + ops.sum(probs, axis=(1, 2))
    dice = (2.0 * inter + smooth) / (denom + smooth)
    return 1.0 - ops.mean(dice[:, 1:], axis=-1)


def categorical_ce_loss(y_true, logits):
    """Sparse categorical cross-entropy from logits, mean over pixels, per image.

    Args:
        y_true: integer labels ``(batch, H, W, 1)`` in 0..K-1.
        logits: float ``(batch, H, W, K)``.

    Returns:
        float32 ``(batch,)``: mean over pixels of ``-log softmax(logits)[label]``.
    """
    per_pixel = ops.sparse_categorical_crossentropy(
        labels(y_true), ops.cast(logits, "float32"), from_logits=True, axis=-1)
    return ops.mean(per_pixel, axis=(1, 2))
