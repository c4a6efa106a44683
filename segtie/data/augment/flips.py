"""Exact spatial augmentations: flips and quarter turns (pixel permutations).

No interpolation, so any mask keeps its values and dtype exactly. Each function takes
``(image, mask, seed, prob)`` and applies the *same* draw to image and mask.

Rotation by a multiple of 90 degrees swaps height and width, which a fixed-size batch
cannot hold, so on non-square inputs :func:`random_rot90` only draws 0 or 180 degrees.
"""

from __future__ import annotations

import tensorflow as tf

__all__ = ["random_flip_left_right", "random_flip_up_down", "random_rot90", "draw"]


def draw(seed: tf.Tensor, prob: float) -> tf.Tensor:
    """A boolean scalar, True with probability ``prob``, fixed by ``seed``."""
    return tf.random.stateless_uniform([], seed=seed) < prob


def _flip(image, mask, seed, prob, axis):
    flip = draw(seed, prob)
    return (tf.cond(flip, lambda: tf.reverse(image, axis=[axis]), lambda: image),
            tf.cond(flip, lambda: tf.reverse(mask, axis=[axis]), lambda: mask))


def random_flip_left_right(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor,
                           prob: float = 0.5) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror image and mask along the width axis with probability ``prob``.

    Args:
        image: image tensor, any dtype.
        mask: mask tensor with the same height and width, any dtype.
        seed: shape ``(2,)`` int32/int64 seed of the stateless draw.
        prob: probability of the flip. Default 0.5.

    Shapes:
        ``image``: ``(height, width, channels)``; ``mask``: ``(height, width, 1)``.
        Outputs have the input shapes.

    Returns:
        ``(image, mask)``, both flipped or both unchanged.
    """
    return _flip(image, mask, seed, prob, axis=1)


def random_flip_up_down(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor,
                        prob: float = 0.5) -> tuple[tf.Tensor, tf.Tensor]:
    """Mirror image and mask along the height axis with probability ``prob``.

    Args, Shapes and Returns as :func:`random_flip_left_right`.
    """
    return _flip(image, mask, seed, prob, axis=0)


def random_rot90(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, prob: float = 1.0
                 ) -> tuple[tf.Tensor, tf.Tensor]:
    """With probability ``prob``, rotate image and mask by the same random quarter turns.

    When applied, ``k`` is uniform in {0, 1, 2, 3} quarter turns counter-clockwise on
    square inputs. On non-square inputs (decided from the static shape when known,
    else at run time) ``k`` is drawn from {0, 2}, so the output keeps the input's
    height and width.

    Args, Shapes and Returns as :func:`random_flip_left_right`; ``prob`` defaults
    to 1.0.
    """
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=2)
    k = tf.random.stateless_uniform([], seed=seeds[0], minval=0, maxval=4, dtype=tf.int32)
    height, width = image.shape[0], image.shape[1]
    if height is not None and width is not None:
        square = tf.constant(height == width)
    else:
        dynamic = tf.shape(image)
        square = tf.equal(dynamic[0], dynamic[1])
    k = tf.where(square, k, 2 * (k % 2))
    k = tf.where(draw(seeds[1], prob), k, 0)
    rotated_image, rotated_mask = tf.image.rot90(image, k), tf.image.rot90(mask, k)
    # rot90 with a tensor `k` forgets the static height and width; they are unchanged
    # for square inputs and for k in {0, 2}.
    rotated_image.set_shape(image.shape)
    rotated_mask.set_shape(mask.shape)
    return rotated_image, rotated_mask
