"""Binary losses from logits: soft Dice and binary cross-entropy, one value per image.

Every function takes ``(y_true, logits)``: ``y_true`` float ``(batch, H, W, 1)`` in
{0, 1}, ``logits`` float ``(batch, H, W, 1)`` before the sigmoid, and returns float32
``(batch,)``.

Soft Dice follows Milletari et al., "V-Net", 3DV 2016 (with the squared-free
denominator of Drozdzal et al. 2016 as used by nnU-Net):
``1 - (2 * sum(p * g) + eps) / (sum(p) + sum(g) + eps)`` per image whose reference
has foreground, and 0 for an image whose reference is empty (see
:func:`soft_dice_loss`).
"""

from __future__ import annotations

from keras import ops

from segtie.losses.multiclass import SMOOTH

__all__ = ["bce_loss", "soft_dice_loss"]


def soft_dice_loss(y_true, logits, smooth=SMOOTH):
    """Soft Dice loss per image: ``1 - soft Dice``, 0 for an empty reference.

    With ``p = sigmoid(logits)`` and ``g = y_true``, per image:

    * reference with foreground (``sum(g) > 0``): ``1 - (2 sum(p g) + smooth) /
      (sum(p) + sum(g) + smooth)``, in [0, 1);
    * empty reference (``sum(g) = 0``): 0, whatever the prediction, with a zero
      gradient. Such an image has no defined Dice (the metrics call it NaN, see
      :mod:`segtie.metrics`), so the Dice term has nothing to say about it; the
      cross-entropy term of :class:`segtie.losses.DiceCELoss` alone scores it and
      penalises its false positives.

    Smoothing-only implementations (``smooth`` in numerator and denominator, and
    nothing else) score an empty reference ``1 - smooth / (sum(p) + smooth)``: about
    1 for any realistic prediction, since ``sum(p)`` over thousands of pixels dwarfs
    ``smooth = 1e-5`` even for a confident, correct empty prediction (64x64 pixels at
    logit -10 give ``sum(p) = 0.19`` and a loss of 0.99995). Every background-only
    image or patch then adds a near-maximal loss that falls only once ``sum(p)``
    drops below ``smooth`` (logits near -20 on every pixel): pressure towards
    over-confidence, not towards a correct answer. nnU-Net's soft Dice is
    smoothing-only too, but with ``batch_dice`` (its 2-D default) it sums over the
    batch, so an empty image joins the batch's foreground instead of scoring alone;
    here each image keeps its own Dice, as the metrics do, and an empty reference is
    excluded explicitly. The denominator is replaced by 1 where the reference is
    empty before dividing, so no branch of the ``where`` divides by 0 and gradients
    stay finite.

    Args:
        y_true: float in {0, 1}.
        logits: float, before the sigmoid (any float dtype; computed in float32).
        smooth: float >= 0, added to numerator and denominator of an image with
            foreground. Default :data:`segtie.losses.SMOOTH`. It no longer decides
            the empty case.

    Shapes:
        ``y_true``, ``logits``: ``(batch, H, W, C)``; the sums run over ``H, W, C``.

    Returns:
        float32 ``(batch,)``.

    References:
        Milletari et al., "V-Net", 3DV 2016 (soft Dice loss).
        Isensee et al., "nnU-Net", Nature Methods 18, 2021 (Dice + CE).
    """
    y_true = ops.cast(y_true, "float32")
    probs = ops.sigmoid(ops.cast(logits, "float32"))
    axes = tuple(range(1, len(y_true.shape)))
    reference = ops.sum(y_true, axis=axes)
    inter = ops.sum(y_true * probs, axis=axes)
    denom = reference + ops.sum(probs, axis=axes) + smooth
    present = reference > 0
    safe = ops.where(present, denom, 1.0)  # before dividing: no 0 / 0 in either branch
    return ops.where(present, 1.0 - (2.0 * inter + smooth) / safe, 0.0)


def bce_loss(y_true, logits):
    """Binary cross-entropy from logits, mean over pixels, shape ``(batch,)``."""
    y_true = ops.cast(y_true, "float32")
    per_pixel = ops.binary_crossentropy(y_true, ops.cast(logits, "float32"), from_logits=True)
    return ops.mean(per_pixel, axis=tuple(range(1, len(y_true.shape))))
