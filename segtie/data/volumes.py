"""Volumes to a fixed size: centred zero padding or cropping (TensorFlow only).

Training and validation batches need one shape. A volume is brought to
``data.image_size`` (``[D, H, W]``) by padding each axis symmetrically with zeros
(the mean of a z-scored volume; label 0 for masks), the extra voxel of an odd
difference after the volume, or by cropping the centre where it is larger. Voxels
are never resampled, so the spacing is unchanged. Evaluation uses the volumes at
their own size (sliding-window inference).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["fit_volume"]


def fit_volume(volume, size: Sequence[int]) -> tf.Tensor:
    """Pad with zeros, or crop, the centre of ``volume`` to ``size`` (module doc).

    Args:
        volume: ``(D0, H0, W0, C)`` tensor, any dtype.
        size: ``[D, H, W]``, positive ints.

    Shapes:
        Returns ``(D, H, W, C)``.

    Raises:
        ValueError: ``size`` is not three positive ints or ``volume`` is not rank 4.
    """
    size = [int(s) for s in size]
    volume = tf.convert_to_tensor(volume)
    if len(size) != 3 or min(size) < 1 or volume.shape.rank != 4:
        raise ValueError(f"`size` must be [depth, height, width] of positive ints and the "
                         f"volume (D, H, W, C), received size={size!r}, volume shape "
                         f"{tuple(volume.shape)}")
    shape = tf.shape(volume)[:3]
    target = tf.constant(size)
    excess = tf.maximum(shape - target, 0)
    start = excess // 2
    cropped = tf.slice(volume, tf.concat([start, [0]], 0),
                       tf.concat([tf.minimum(shape, target), [-1]], 0))
    missing = tf.maximum(target - tf.shape(cropped)[:3], 0)
    before = missing // 2
    paddings = tf.concat([tf.stack([before, missing - before], axis=1), [[0, 0]]], 0)
    fitted = tf.pad(cropped, paddings)
    fitted.set_shape(size + [volume.shape[-1]])
    return fitted
