"""Multi-class losses from softmax logits: the functional core.

Every function takes ``(y_true, logits)``: ``y_true`` class indices ``(batch, H, W, 1)``
(or ``(batch, H, W)``) in 0..K-1, any numeric dtype (cast to int32); ``logits`` float
``(batch, H, W, K)`` before the softmax, ``K >= 2``. Class 0 is the background: the
Dice terms average over the foreground classes 1..K-1 only (as nnU-Net's
``do_bg=False``), so a large background does not inflate the score, and over the
classes present in the image's reference only (an absent class has no defined Dice;
see :func:`soft_dice_multiclass_loss`). Each returns one
value per image, shape ``(batch,)``; the Keras wrapper is :class:`segtie.losses.DiceCELoss`.

References:
    Milletari et al., "V-Net", 3DV 2016 (soft Dice).
    Isensee et al., "nnU-Net", Nature Methods 2021 (Dice + CE, background excluded).
"""

from __future__ import annotations

from keras import ops

SMOOTH = 1e-5

__all__ = ["SMOOTH", "categorical_ce_loss", "labels", "soft_dice_multiclass_loss"]


def labels(y_true, rank=4):
    """``(batch, *spatial, 1)`` or ``(batch, *spatial)`` -> int32 ``(batch, *spatial)``.

    ``rank`` is the logits' rank (4 for images, 5 for volumes): labels of that rank
    carry a trailing channel, which is dropped.
    """
    if len(y_true.shape) == rank:
        y_true = y_true[..., 0]
    return ops.cast(y_true, "int32")


def soft_dice_multiclass_loss(y_true, logits, smooth=SMOOTH):
    """``1 -`` mean over the foreground classes present in the reference of the soft Dice.

    Per image and class ``c``, with ``p`` the softmax probabilities and ``g`` the
    one-hot labels: ``D_c = (2 sum(p_c g_c) + smooth) / (sum(p_c) + sum(g_c) +
    smooth)``. The loss of an image is ``1 - mean(D_c)`` over the foreground classes
    ``c = 1..K-1`` with ``sum(g_c) > 0``, and 0 (zero gradient) for an image whose
    reference has no foreground class at all.

    A class absent from the reference has no defined Dice (NaN in the metrics, see
    :mod:`segtie.metrics`), so it is left out of the mean rather than counted; its
    false positives are the cross-entropy's to penalise (:class:`DiceCELoss`). A
    smoothing-only version would score such a class ``smooth / (sum(p_c) +
    smooth)``, about 0 (a loss term near 1) even when the prediction is correctly
    empty, since ``sum(p_c)`` over all pixels is far larger than ``smooth``.
    Denominators are replaced by 1 where the reference is empty before dividing,
    so every branch of the ``where`` is finite and so are the gradients.

    Args:
        y_true: integer labels in 0..K-1 (any numeric dtype).
        logits: float, ``K >= 2``.
        smooth: float >= 0, added to numerator and denominator of a present class.

    Shapes:
        ``y_true``: ``(batch, H, W, 1)`` or ``(batch, H, W)``; ``logits``:
        ``(batch, H, W, K)``; volumes alike with ``(D, H, W)`` for ``(H, W)``.

    Returns:
        float32 ``(batch,)``, in [0, 1).

    References:
        Milletari et al., "V-Net", 3DV 2016 (soft Dice).
        Isensee et al., "nnU-Net", Nature Methods 18, 2021 (Dice + CE, background
        excluded).
    """
    logits = ops.cast(logits, "float32")
    num_classes, rank = int(logits.shape[-1]), len(logits.shape)
    truth = ops.one_hot(labels(y_true, rank), num_classes, dtype="float32")[..., 1:]
    probs = ops.softmax(logits, axis=-1)[..., 1:]
    axes = tuple(range(1, rank - 1))  # the spatial axes: (H, W) or (D, H, W)
    reference = ops.sum(truth, axis=axes)  # (batch, K - 1)
    inter = ops.sum(truth * probs, axis=axes)
    denom = reference + ops.sum(probs, axis=axes) + smooth
    present = reference > 0
    dice = (2.0 * inter + smooth) / ops.where(present, denom, 1.0)
    count = ops.sum(ops.cast(present, "float32"), axis=-1)
    total = ops.sum(ops.where(present, dice, 0.0), axis=-1)
    return ops.where(count > 0, 1.0 - total / ops.maximum(count, 1.0), 0.0)


def categorical_ce_loss(y_true, logits):
    """Sparse categorical cross-entropy from logits, mean over pixels, per image.

    Args:
        y_true: integer labels ``(batch, H, W, 1)`` in 0..K-1.
        logits: float ``(batch, H, W, K)``.

    Returns:
        float32 ``(batch,)``: mean over pixels of ``-log softmax(logits)[label]``.
    """
    rank = len(logits.shape)
    per_pixel = ops.sparse_categorical_crossentropy(
        labels(y_true, rank), ops.cast(logits, "float32"), from_logits=True, axis=-1)
    return ops.mean(per_pixel, axis=tuple(range(1, rank - 1)))
