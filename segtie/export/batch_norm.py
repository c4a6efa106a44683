"""Keep a tied kernel stored once when its uses have their own batch norms.

In inference a batch norm is an affine map per channel, ``y = x * scale + offset``
(``scale = gamma / sqrt(moving_variance + epsilon)``, ``offset = beta - moving_mean *
scale``). TensorFlow's LiteRT converter folds such a multiply into the preceding
convolution's filter. When one tied kernel is followed by a different batch norm at
each use (``norm: batch`` with ``norm_per_iteration: true``, or tied levels with
``norm_per_level: true``), every use then gets its own folded filter: the file stores
the tied kernel once per use (measured: 13 filters instead of 7 for tied levels and
decoder, 2.06x the float32 weight bytes).

:func:`unfused_batch_norms` avoids the fold: while it is active, the batch norms of
the tied blocks of a model compute their inference affine map as a 1x1 depthwise
convolution with ``scale`` as its filter, plus ``offset``; the converter does not fold
a depthwise convolution into a convolution, so the tied filter stays one buffer, and
each use pays one depthwise 1x1 op (``F`` weights) instead. Same function, to float
rounding. Batch norms outside tied blocks, and every other normalization, are left
as they are (folding them is free and loses nothing).
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from segtie.nn.norms import FusedBatchNormalization
from segtie.nn.recurrent_conv_block import RecurrentConvBlock

__all__ = ["tied_batch_norms", "unfused_batch_norms"]

_MARK = "_segtie_export_unfused"


def tied_batch_norms(model: keras.Model) -> list:
    """The batch norms of blocks whose kernels are used more than once."""
    norms = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, RecurrentConvBlock) and (
                layer.num_uses > 1 or (layer.tied and layer.num_iterations > 1)):
            norms += [n for n in layer._flatten_layers(include_self=False)
                      if isinstance(n, FusedBatchNormalization)]
    return norms


def _depthwise_affine(layer: FusedBatchNormalization, inputs):
    """``inputs * scale + offset`` as a 1x1 depthwise convolution (channels last, 4-D)."""
    dtype = inputs.dtype
    variance = tf.cast(layer.moving_variance, tf.float32)
    scale = tf.math.rsqrt(variance + layer.epsilon)
    if layer.scale:
        scale *= tf.cast(layer.gamma, tf.float32)
    offset = -tf.cast(layer.moving_mean, tf.float32) * scale
    if layer.center:
        offset += tf.cast(layer.beta, tf.float32)
    channels = scale.shape[0]
    kernel = tf.cast(tf.reshape(scale, (1, 1, channels, 1)), dtype)
    out = tf.nn.depthwise_conv2d(inputs, kernel, strides=[1, 1, 1, 1], padding="VALID")
    return out + tf.cast(offset, dtype)


@contextlib.contextmanager
def unfused_batch_norms(model: keras.Model):
    """While active, the batch norms of ``model``'s tied blocks run as depthwise 1x1.

    Only inference calls (``training`` false) of 4-D channels-last inputs change; the
    layers are restored on exit. Yields the number of batch norms changed.
    """
    norms = tied_batch_norms(model)
    original = FusedBatchNormalization.call

    def call(self, inputs, training=None, mask=None):
        if (getattr(self, _MARK, False) and not training and len(inputs.shape) == 4
                and self.axis in (-1, 3)):
            return _depthwise_affine(self, inputs)
        return original(self, inputs, training=training, mask=mask)

    for layer in norms:
        object.__setattr__(layer, _MARK, True)
    FusedBatchNormalization.call = call
    try:
        yield len(norms)
    finally:
        FusedBatchNormalization.call = original
        for layer in norms:
            object.__delattr__(layer, _MARK)
