"""Training augmentation: image and mask transformed together, stateless and seeded.

Every function takes an ``image``, a ``mask`` and a ``seed`` (a shape ``(2,)`` integer
tensor, as ``tf.random.stateless_*`` ops expect) and applies the *same* random
transform to both, so the mask stays aligned with the image pixel for pixel. Only
exact pixel permutations are used (flips and quarter turns): no interpolation, so a
binary mask stays binary and keeps its dtype. Being stateless, the functions run
inside ``tf.data.Dataset.map`` and give the same output for the same seed; the
pipeline draws one seed per example from ``tf.data.Dataset.random`` (see
:func:`segtie.pipeline.build_dataset`).

Rotation by a multiple of 90 degrees swaps height and width, which a fixed-size batch
cannot hold, so on non-square inputs :func:`random_rot90` only draws 0 or 180 degrees.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["augment", "random_flip_left_right", "random_flip_up_down", "random_rot90"]


def _coin(seed: tf.Tensor) -> tf.Tensor:
    """A boolean scalar, True with probability 1/2, fixed by ``seed``."""
    return tf.random.stateless_uniform([], seed=seed) < 0.5


def random_flip_left_right(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor
                           ) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror image and mask along the width axis with probability 1/2.

    Args:
        image: image tensor, any dtype.
        mask: mask tensor with the same height and width, any dtype.
        seed: shape ``(2,)`` int32/int64 seed of the stateless draw.

    Shapes:
        ``image``: ``(height, width, channels)``; ``mask``: ``(height, width, 1)``.
        Outputs have the input shapes.

    Returns:
        ``(image, mask)``, both flipped or both unchanged.
    """
    flip = _coin(seed)
    return (tf.cond(flip, lambda: tf.reverse(image, axis=[1]), lambda: image),
            tf.cond(flip, lambda: tf.reverse(mask, axis=[1]), lambda: mask))


def random_flip_up_down(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor
                        ) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror image and mask along the height axis with probability 1/2.

    Args, Shapes and Returns as :func:`random_flip_left_right`.
    """
    flip = _coin(seed)
    return (tf.cond(flip, lambda: tf.reverse(image, axis=[0]), lambda: image),
            tf.cond(flip, lambda: tf.reverse(mask, axis=[0]), lambda: mask))


def random_rot90(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor
                 ) -> tuple[tf.Tensor, tf.Tensor]:
    """Rotate image and mask by the same random multiple of 90 degrees.

    On square inputs ``k`` is uniform in {0, 1, 2, 3} quarter turns counter-clockwise.
    On non-square inputs (decided from the static shape when known, else at run time)
    ``k`` is drawn from {0, 2}, so the output keeps the input's height and width.

    Args, Shapes and Returns as :func:`random_flip_left_right`.
    """
    k = tf.random.stateless_uniform([], seed=seed, minval=0, maxval=4, dtype=tf.int32)
    height, width = image.shape[0], image.shape[1]
    if height is not None and width is not None:
        square = tf.constant(height == width)
    else:
        dynamic = tf.shape(image)
        square = tf.equal(dynamic[0], dynamic[1])
    k = tf.where(square, k, 2 * (k % 2))
    rotated_image, rotated_mask = tf.image.rot90(image, k), tf.image.rot90(mask, k)
    # rot90 with a tensor `k` forgets the static height and width; they are unchanged
    # for square inputs and for k in {0, 2}.
    rotated_image.set_shape(image.shape)
    rotated_mask.set_shape(mask.shape)
    return rotated_image, rotated_mask


def augment(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, config
            ) -> tuple[tf.Tensor, tf.Tensor]:
    """Apply the augmentations enabled in ``config`` to image and mask together.

    Order: left-right flip, up-down flip (both when ``config.flip``), then a quarter
    turn (when ``config.rotate90``). Each step uses its own sub-seed of ``seed``, so
    turning one flag off does not change the draws of the others.

    Args:
        image: image tensor, any dtype.
        mask: mask tensor with the same height and width, any dtype.
        seed: shape ``(2,)`` int32/int64 seed.
        config: a :class:`segtie.config.AugmentConfig` (``flip``, ``rotate90``).

    Shapes:
        ``image``: ``(height, width, channels)``; ``mask``: ``(height, width, 1)``.
        Outputs have the input shapes.

    Returns:
        The transformed ``(image, mask)`` as tensors of the input dtypes.
    """
    image, mask = tf.convert_to_tensor(image), tf.convert_to_tensor(mask)
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=3)
    if config.flip:
        image, mask = random_flip_left_right(image, mask, seeds[0])
        image, mask = random_flip_up_down(image, mask, seeds[1])
    if config.rotate90:
        image, mask = random_rot90(image, mask, seeds[2])
    return image, mask
