"""Export-time forms of the normalizations: tying kept, LiteRT-friendly ops.

:func:`export_forms` is active while :func:`segtie.export.litert.convert_litert`
traces a model; it changes how two normalizations compute their inference output
(the same function, to float rounding; the layers and weights are untouched and
restored on exit):

**Batch norm of a tied kernel.** In inference a batch norm is ``y = x * scale +
offset`` per channel (``scale = gamma / sqrt(moving_variance + epsilon)``,
``offset = beta - moving_mean * scale``), and TensorFlow's LiteRT converter folds the
multiply into the preceding convolution's filter. When a tied kernel is followed by a
different batch norm at each use (``norm: batch`` with ``norm_per_iteration: true``,
or tied levels with ``norm_per_level: true``), every use would get its own folded
filter: the file would store the tied kernel once per use (measured: 13 filters
instead of 7 for tied levels and decoder, 2.06x the float32 weight bytes). The batch
norms of tied blocks therefore run as a 1x1 depthwise convolution with ``scale`` as
its filter, plus ``offset``: the converter does not fold a depthwise convolution into
a convolution, so the tied filter stays one buffer; each use pays one depthwise 1x1
op (``F`` weights). Other batch norms are folded as usual (free).

**Instance norm** (:class:`~segtie.nn.norms.InstanceNormalization` or Keras'
``GroupNormalization(groups=-1)`` of older checkpoints, ``norm: instance``). Training
runs it as a fused batch norm over a transposed tensor (two transposes a use), and
Keras' own form reshapes to 5-D groups ``(n, H, W, C, 1)``, whose ``MEAN``/``RESHAPE``
ops LiteRT's XNNPACK delegate does not take; the export form is the same moments on the 4-D
tensor (``MEAN`` over height and width, ``SQUARED_DIFFERENCE``), no reshape. Measured
on the Kvasir-SEG recipe's model (128x128, 1 thread, fastest of 20 calls on a shared
machine): 142 -> 68 ms per image in float32; 42 ``RESHAPE`` ops fewer.
"""

from __future__ import annotations

import contextlib

import keras
import tensorflow as tf

from segtie.nn.norms import FusedBatchNormalization, InstanceNormalization
from segtie.nn.recurrent_conv_block import RecurrentConvBlock

__all__ = ["export_forms", "tied_batch_norms"]

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
    scale = tf.math.rsqrt(tf.cast(layer.moving_variance, tf.float32) + layer.epsilon)
    if layer.scale:
        scale *= tf.cast(layer.gamma, tf.float32)
    offset = -tf.cast(layer.moving_mean, tf.float32) * scale
    if layer.center:
        offset += tf.cast(layer.beta, tf.float32)
    kernel = tf.cast(tf.reshape(scale, (1, 1, scale.shape[0], 1)), dtype)
    out = tf.nn.depthwise_conv2d(inputs, kernel, strides=[1, 1, 1, 1], padding="VALID")
    return out + tf.cast(offset, dtype)


def _instance_norm_4d(layer: keras.layers.GroupNormalization, inputs):
    """Keras' group-norm arithmetic with one channel per group, on the 4-D tensor."""
    x = tf.cast(inputs, tf.float32)
    mean, variance = tf.nn.moments(x, axes=[1, 2], keepdims=True)
    inv = tf.math.rsqrt(variance + layer.epsilon)
    if layer.scale:
        inv = inv * tf.cast(layer.gamma, tf.float32)
    offset = -mean * inv
    if layer.center:
        offset = offset + tf.cast(layer.beta, tf.float32)
    return tf.cast(x * inv + offset, layer.compute_dtype)


def _is_instance_norm(layer, inputs) -> bool:
    return (len(inputs.shape) == 4 and layer.axis in (-1, 3)
            and layer.groups == inputs.shape[-1])


@contextlib.contextmanager
def export_forms(model: keras.Model):
    """While active, ``model``'s normalizations compute their export forms (module doc).

    Only inference calls change (a batch norm with ``training`` false; instance norms
    have no training mode). Yields the number of batch norms of tied blocks changed.
    """
    norms = tied_batch_norms(model)
    batch_call = FusedBatchNormalization.call
    group_call = keras.layers.GroupNormalization.call
    instance_call = InstanceNormalization.call  # training's fused form: not a LiteRT op

    def batch_norm(self, inputs, training=None, mask=None):
        if (getattr(self, _MARK, False) and not training and len(inputs.shape) == 4
                and self.axis in (-1, 3)):
            return _depthwise_affine(self, inputs)
        return batch_call(self, inputs, training=training, mask=mask)

    def group_norm(self, inputs, training=None):  # InstanceNormalization takes `training`
        if _is_instance_norm(self, inputs):
            return _instance_norm_4d(self, inputs)
        return group_call(self, inputs)

    for layer in norms:
        object.__setattr__(layer, _MARK, True)
    FusedBatchNormalization.call = batch_norm
    keras.layers.GroupNormalization.call = group_norm
    InstanceNormalization.call = group_norm
    try:
        yield len(norms)
    finally:
        FusedBatchNormalization.call = batch_call
        keras.layers.GroupNormalization.call = group_call
        InstanceNormalization.call = instance_call
        for layer in norms:
            object.__delattr__(layer, _MARK)
