"""Training augmentation: image and mask transformed together, stateless and seeded.

:func:`augment` applies the suite configured in :class:`segtie.config.AugmentConfig`,
each transform with its own probability (0 switches it off and builds no op at all):

1. rotation, scaling, elastic deformation: one resampling (:mod:`.spatial`), the
   image bilinear and the mask nearest-neighbour, so masks keep their label values;
2. left-right and up-down flips, quarter turns: exact pixel permutations
   (:mod:`.flips`);
3. Gaussian noise, Gaussian blur, brightness, contrast, gamma: the image only
   (:mod:`.intensity`), then clipped to [0, 1].

The functions are stateless: the same seed gives the same output, and they run
inside ``tf.data.Dataset.map``; the pipeline draws one seed per example (see
:func:`segtie.data.pipeline.build_dataset`). Each step has a fixed sub-seed of ``seed``,
so changing one probability does not change the draws of the others.

Volumes ``(D, H, W, C)`` have their own entry point with the same config,
:func:`segtie.data.augment.volume.augment_volume` (rotations and scaling in
:mod:`.affine3d`, through SciPy).

Defaults (``AugmentConfig()``) keep the original behaviour: flips and quarter turns
only. The nnU-Net-like suite used by ``benchmarks/bench_pipeline.py`` is
:data:`NNUNET_LIKE`.

References:
    Isensee et al., "nnU-Net: a self-configuring method for deep learning-based
    biomedical image segmentation", Nature Methods 2021.
"""

from __future__ import annotations

import tensorflow as tf

from segtie.data.augment.flips import random_flip_left_right, random_flip_up_down, random_rot90
from segtie.data.augment.intensity import (random_blur, random_brightness, random_contrast,
                                      random_gamma, random_noise)
from segtie.data.augment.spatial import random_spatial, warp

__all__ = ["augment", "NNUNET_LIKE", "random_flip_left_right", "random_flip_up_down",
           "random_rot90", "random_spatial", "warp", "random_brightness",
           "random_contrast", "random_gamma", "random_noise", "random_blur"]

# AugmentConfig values of an nnU-Net-like suite (nnU-Net v2's 2D defaults, plus
# quarter turns and elastic deformation); use as AugmentConfig(**NNUNET_LIKE).
NNUNET_LIKE = {
    "flip_prob": 0.5, "rotate90_prob": 1.0, "rotate_prob": 0.2, "rotate_max_degrees": 180.0,
    "scale_prob": 0.2, "scale_range": [0.7, 1.4], "elastic_prob": 0.2,
    "noise_prob": 0.1, "blur_prob": 0.2, "brightness_prob": 0.15, "contrast_prob": 0.15,
    "gamma_prob": 0.3,
}

_INTENSITY = ("noise_prob", "blur_prob", "brightness_prob", "contrast_prob", "gamma_prob")


def augment(image: tf.Tensor, mask: tf.Tensor, seed: tf.Tensor, config
            ) -> tuple[tf.Tensor, tf.Tensor]:
    """Apply the augmentations configured in ``config`` to image and mask together.

    Args:
        image: image tensor; float in [0, 1] when an intensity transform is enabled,
            else any real dtype.
        mask: mask tensor with the same height and width, any dtype (binary or
            integer labels); its values are only ever moved, never blended.
        seed: shape ``(2,)`` int32/int64 seed.
        config: a :class:`segtie.config.AugmentConfig`.

    Shapes:
        ``image``: ``(height, width, channels)``; ``mask``: ``(height, width, 1)``.
        Outputs have the input shapes.

    Returns:
        The transformed ``(image, mask)`` as tensors of the input dtypes.

    Raises:
        TypeError: an intensity transform is enabled and ``image`` is not float.
    """
    image, mask = tf.convert_to_tensor(image), tf.convert_to_tensor(mask)
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=9)
    if config.rotate_prob > 0 or config.scale_prob > 0 or config.elastic_prob > 0:
        image, mask = random_spatial(image, mask, seeds[0], config)
    if config.flip and config.flip_prob > 0:
        image, mask = random_flip_left_right(image, mask, seeds[1], config.flip_prob)
        image, mask = random_flip_up_down(image, mask, seeds[2], config.flip_prob)
    if config.rotate90 and config.rotate90_prob > 0:
        image, mask = random_rot90(image, mask, seeds[3], config.rotate90_prob)
    if any(getattr(config, name) > 0 for name in _INTENSITY):
        if not image.dtype.is_floating:
            raise TypeError(f"Intensity augmentation needs a float image in [0, 1], "
                            f"received dtype {image.dtype.name}")
        image = _intensity(image, seeds[4:], config)
    return image, mask


def _intensity(image: tf.Tensor, seeds: tf.Tensor, config) -> tf.Tensor:
    """Noise, blur, brightness, contrast, gamma (nnU-Net's order), then clip."""
    if config.noise_prob > 0:
        image = random_noise(image, seeds[0], config.noise_prob, config.noise_std)
    if config.blur_prob > 0:
        image = random_blur(image, seeds[1], config.blur_prob, config.blur_sigma_range)
    if config.brightness_prob > 0:
        image = random_brightness(image, seeds[2], config.brightness_prob,
                                  config.brightness_range)
    if config.contrast_prob > 0:
        image = random_contrast(image, seeds[3], config.contrast_prob,
                                config.contrast_range)
    if config.gamma_prob > 0:
        image = random_gamma(image, seeds[4], config.gamma_prob, config.gamma_range)
    return tf.clip_by_value(image, 0.0, 1.0)
