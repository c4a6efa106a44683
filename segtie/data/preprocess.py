"""The one resize-and-scale of images and masks, shared by the pipeline and inference.

Normalization: pixel values are divided by 255, so images are float32 in [0, 1]; no
mean/std standardization (the models' first layers learn it).
Resizing: images bilinearly with antialiasing (no aliasing when shrinking large
frames); masks with nearest neighbour, so they stay exactly binary (or keep their
class indices). The aspect ratio is not kept: every image is stretched to
``image_size``. TensorFlow only: no TFDS, no config.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["check_size", "preprocess_image", "preprocess_mask"]


def check_size(image_size: Sequence[int]) -> list[int]:
    """``image_size`` as ``[height, width]`` ints; ``ValueError`` unless two positive ints."""
    size = [int(s) for s in image_size]
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"`image_size` must be [height, width] of two positive integers, "
                         f"received {list(image_size)!r}")
    return size


def preprocess_image(image, image_size: Sequence[int]) -> tf.Tensor:
    """Resize an image to ``image_size`` and scale it to [0, 1].

    Args:
        image: uint8 image (a tensor or array), one or a batch.
        image_size: ``[height, width]`` of the output.

    Shapes:
        ``image``: ``(H0, W0, 3)`` or ``(batch, H0, W0, 3)``. Returns ``(H, W, 3)`` or
        ``(batch, H, W, 3)`` with ``(H, W) = image_size``.

    Returns:
        float32 tensor in [0, 1]: bilinear resize with antialiasing, then ``/ 255``.

    Raises:
        TypeError: ``image`` is not uint8.
        ValueError: ``image`` is not of rank 3 or 4 with 3 channels, or ``image_size``
            is not two positive integers.
    """
    size = check_size(image_size)
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise TypeError(f"`image` must be uint8 in [0, 255], received dtype "
                        f"{image.dtype.name}")
    if image.shape.rank not in (3, 4) or image.shape[-1] != 3:
        raise ValueError(f"`image` must have shape (height, width, 3) or (batch, height, "
                         f"width, 3), received {tuple(image.shape)}")
    resized = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear",
                              antialias=True)
    return tf.clip_by_value(resized / 255.0, 0.0, 1.0)


def preprocess_mask(mask, image_size: Sequence[int], dtype=tf.float32) -> tf.Tensor:
    """Resize a mask to ``image_size`` with nearest neighbour, as ``dtype``.

    Shapes:
        ``mask``: ``(H0, W0, 1)`` or ``(batch, H0, W0, 1)``, values {0, 1} or class
        indices. Returns ``(H, W, 1)`` or ``(batch, H, W, 1)`` with the same values.

    Args:
        dtype: output dtype; float32 (default) for binary masks, int32 for class
            indices.

    Raises:
        ValueError: ``image_size`` is not two positive integers.
    """
    size = check_size(image_size)
    resized = tf.image.resize(tf.convert_to_tensor(mask), size, method="nearest")
    return tf.cast(resized, dtype)
