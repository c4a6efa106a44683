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
    """Crop the same random patch from image and mask.

    Args:
        image: ``(H, W, C)`` tensor, any dtype.
        mask: ``(H, W, 1)`` tensor, foreground where > 0, any dtype.
        seed: shape ``(2,)`` integer seed of the stateless draws.
        patch_size: ``[height, width]`` of the patch, at most ``(H, W)``.
        foreground_prob: probability in [0, 1] of centring on a foreground pixel.

    Shapes:
        Returns ``(patch_h, patch_w, C)`` and ``(patch_h, patch_w, 1)``.

    Returns:
        ``(image_patch, mask_patch)`` with the input dtypes.
    """
    patch_h, patch_w = (int(s) for s in patch_size)
    image, mask = tf.convert_to_tensor(image), tf.convert_to_tensor(mask)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    tf.debugging.assert_greater_equal(
        tf.stack([height, width]), tf.constant([patch_h, patch_w]),
        message=f"`patch_size` {[patch_h, patch_w]} is larger than the image")
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=4)
    foreground = tf.cast(tf.where(mask[..., 0] > 0), tf.int32)  # (N, 2)
    count = tf.shape(foreground)[0]
    index = tf.random.stateless_uniform([], seed=seeds[2], minval=0,
                                        maxval=tf.maximum(count, 1), dtype=tf.int32)
    # A dummy row keeps the gather valid when there is no foreground (then unused).
    centre = tf.concat([foreground, tf.zeros([1, 2], tf.int32)], axis=0)[index]
    use_centre = (count > 0) & (tf.random.stateless_uniform([], seed=seeds[3])
                                < foreground_prob)
    top = _corner(height, patch_h, seeds[0], centre[0], use_centre)
    left = _corner(width, patch_w, seeds[1], centre[1], use_centre)
    image_patch = image[top:top + patch_h, left:left + patch_w]
    mask_patch = mask[top:top + patch_h, left:left + patch_w]
    image_patch.set_shape([patch_h, patch_w, image.shape[-1]])
    mask_patch.set_shape([patch_h, patch_w, mask.shape[-1]])
    return image_patch, mask_patch
