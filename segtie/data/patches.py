"""Random training patches with foreground oversampling (nnU-Net style).

A patch is a ``patch_size`` crop of an image and its mask, at the same place. With
probability ``foreground_prob`` the patch is centred on a foreground pixel (mask
> 0) drawn uniformly, shifted as needed to stay inside the image; otherwise, or when
the mask has no foreground, its corner is uniform over all positions. For thin
structures such as retinal vessels this keeps patches informative; nnU-Net uses a
foreground fraction of 0.33.

References:
    Isensee et al., "nnU-Net", Nature Methods 2021 (``oversample_foreground_percent``).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

__all__ = ["random_patch"]


def _corner(size, patch, uniform_seed, centre, use_centre):
    """The patch's first index along one axis (uniform, or around ``centre``)."""
    uniform = tf.random.stateless_uniform([], seed=uniform_seed, minval=0,
                                          maxval=size - patch + 1, dtype=tf.int32)
    around = tf.clip_by_value(centre - patch // 2, 0, size - patch)
    return tf.where(use_centre, around, uniform)


def random_patch(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor,
                 patch_size: Sequence[int], foreground_prob: float
                 ) -> tuple[tf.Tensor, tf.Tensor]:
    """Crop the same random patch from image and mask (2-D images or 3-D volumes).

    Args:
        image: ``(H, W, C)`` or ``(D, H, W, C)`` tensor, any dtype.
        mask: ``(H, W, 1)`` or ``(D, H, W, 1)`` tensor, foreground where > 0, any dtype.
        seed: shape ``(2,)`` integer seed of the stateless draws.
        patch_size: ``[height, width]`` (``[depth, height, width]``) of the patch, at
            most the image's; one side per spatial axis.
        foreground_prob: probability in [0, 1] of centring on a foreground pixel.

    Shapes:
        Returns ``(*patch_size, C)`` and ``(*patch_size, 1)``.

    Returns:
        ``(image_patch, mask_patch)`` with the input dtypes.

    Raises:
        ValueError: ``patch_size`` does not have one side per spatial axis.
    """
    patch = [int(s) for s in patch_size]
    image, mask = tf.convert_to_tensor(image), tf.convert_to_tensor(mask)
    dims = len(patch)
    if image.shape.rank != dims + 1:
        raise ValueError(f"`patch_size` {patch} must have one side per spatial axis of the "
                         f"image, received an image of shape {tuple(image.shape)}")
    sides = tf.shape(image)[:dims]
    tf.debugging.assert_greater_equal(
        sides, tf.constant(patch), message=f"`patch_size` {patch} is larger than the image")
    # Sub-seeds: one per axis for the uniform corner, then the centre and the coin
    # (2-D keeps the draws of earlier versions: axes 0, 1, centre 2, coin 3).
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed),
                                                   num=dims + 2)
    foreground = tf.cast(tf.where(mask[..., 0] > 0), tf.int32)  # (N, dims)
    count = tf.shape(foreground)[0]
    index = tf.random.stateless_uniform([], seed=seeds[dims], minval=0,
                                        maxval=tf.maximum(count, 1), dtype=tf.int32)
    # A dummy row keeps the gather valid when there is no foreground (then unused).
    centre = tf.concat([foreground, tf.zeros([1, dims], tf.int32)], axis=0)[index]
    use_centre = (count > 0) & (tf.random.stateless_uniform([], seed=seeds[dims + 1])
                                < foreground_prob)
    corner = tf.stack([_corner(sides[a], patch[a], seeds[a], centre[a], use_centre)
                       for a in range(dims)])
    begin = tf.concat([corner, [0]], axis=0)
    image_patch = tf.slice(image, begin, patch + [-1])
    mask_patch = tf.slice(mask, begin, patch + [-1])
    image_patch.set_shape(patch + [image.shape[-1]])
    mask_patch.set_shape(patch + [mask.shape[-1]])
    return image_patch, mask_patch
