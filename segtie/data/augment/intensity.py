"""Intensity augmentations: the image changes, the mask never does.

All functions take a float image in [0, 1] (the pipeline's), ``(height, width,
channels)``, a shape ``(2,)`` seed and the probability of applying the transform,
and return a float image of the same shape (the caller clips to [0, 1]). The same
draw applies to every channel. Parameters follow nnU-Net's default set (Isensee et
al., Nature Methods 2021), rescaled from z-scored to [0, 1] images where needed.
"""

from __future__ import annotations

import math

import tensorflow as tf

from segtie.data.augment.flips import draw
from segtie.data.augment.spatial import gaussian_filter

__all__ = ["random_brightness", "random_contrast", "random_gamma", "random_noise",
           "random_blur"]


def _uniform(seed, low, high):
    return tf.random.stateless_uniform([], seed=seed, minval=float(low), maxval=float(high))


def _apply(seed, prob, transform, image):
    seeds = tf.random.experimental.stateless_split(tf.convert_to_tensor(seed), num=2)
    return tf.cond(draw(seeds[0], prob), lambda: transform(seeds[1]), lambda: image)


def random_brightness(image: tf.Tensor, seed: tf.Tensor, prob: float,
                      factor_range) -> tf.Tensor:
    """Multiply the image by a factor uniform in ``factor_range`` (e.g. [0.75, 1.25])."""
    low, high = factor_range
    return _apply(seed, prob, lambda s: image * _uniform(s, low, high), image)


def random_contrast(image: tf.Tensor, seed: tf.Tensor, prob: float,
                    factor_range) -> tf.Tensor:
    """Scale deviations from the image mean by a factor uniform in ``factor_range``.

    The result is clipped to the image's own [min, max] (nnU-Net's
    ``preserve_range``).
    """
    low, high = factor_range

    def transform(s):
        mean = tf.reduce_mean(image)
        out = (image - mean) * _uniform(s, low, high) + mean
        return tf.clip_by_value(out, tf.reduce_min(image), tf.reduce_max(image))

    return _apply(seed, prob, transform, image)


def random_gamma(image: tf.Tensor, seed: tf.Tensor, prob: float, gamma_range) -> tf.Tensor:
    """Gamma correction ``x ** gamma`` of the image rescaled to its [min, max].

    As in nnU-Net, half of the draws take ``gamma`` uniform in ``[low, 1)`` and half
    in ``[1, high]`` (when ``low < 1``), so brightening and darkening are equally
    likely although the range is asymmetric.
    """
    low, high = (float(v) for v in gamma_range)

    def transform(s):
        seeds = tf.random.experimental.stateless_split(s, num=2)
        below = tf.random.stateless_uniform([], seed=seeds[0]) < 0.5
        gamma = tf.where(below & (low < 1.0), _uniform(seeds[1], low, min(1.0, high)),
                         _uniform(seeds[1], max(low, 1.0), high))
        lo, hi = tf.reduce_min(image), tf.reduce_max(image)
        span = tf.maximum(hi - lo, 1e-7)
        return lo + span * tf.pow((image - lo) / span, gamma)

    return _apply(seed, prob, transform, image)


def random_noise(image: tf.Tensor, seed: tf.Tensor, prob: float, max_std: float
                 ) -> tf.Tensor:
    """Add zero-mean Gaussian noise, standard deviation uniform in ``[0, max_std]``."""

    def transform(s):
        seeds = tf.random.experimental.stateless_split(s, num=2)
        std = _uniform(seeds[0], 0.0, max_std)
        return image + std * tf.random.stateless_normal(tf.shape(image), seed=seeds[1])

    return _apply(seed, prob, transform, image)


def random_blur(image: tf.Tensor, seed: tf.Tensor, prob: float, sigma_range) -> tf.Tensor:
    """Gaussian blur, sigma uniform in ``sigma_range`` pixels (mirrored borders)."""
    low, high = sigma_range
    radius = max(1, int(math.ceil(3.0 * float(high))))

    def transform(s):
        return gaussian_filter(image, _uniform(s, low, high), radius, mirror=True)

    return _apply(seed, prob, transform, image)
