"""The normalizations of segtie's blocks: fused batch norm, instance norm with its own gradient.

:func:`make_norm` builds the normalization a config's ``model.norm`` names. The
batch norm is :class:`FusedBatchNormalization`, a :class:`keras.layers.BatchNormalization`
whose training-mode forward pass is TensorFlow's fused kernel
(``FusedBatchNormV3``: one op forward, one op backward, oneDNN on CPU) instead of
Keras 3's composite of ``moments`` and ``batch_normalization`` (a dozen
element-wise and reduction ops each way). It computes the same function with the
same variables (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``) and the
same moving-average update, so checkpoints written with either load into the other.
Measured with ``benchmarks/bench_tying.py`` (2 CPU cores, 128x128, batch 8): the
tied U-Net's training step 1.7x faster than with Keras' batch norm.

The fused kernel returns the unbiased (Bessel-corrected) batch variance for the
moving average; Keras 3 averages the biased one, and so does this layer (it undoes
the correction), so both layers keep identical moving statistics.

The instance norm is :class:`InstanceNormalization`, a
:class:`keras.layers.GroupNormalization` with one channel per group whose pass, on
TensorFlow, is :func:`instance_norm`: ``tf.nn.moments`` over the spatial axes, one
scale and offset per sample and channel, and a closed-form backward pass; in training
with a static batch, :func:`instance_norm_per_sample` computes the same function with
TensorFlow's fused batch-norm kernel, once per sample (faster on CPU, 2026-12-03). Keras' own
group norm reshapes to 5-D groups and builds moments from a dozen ops whose
gradients add ``Tile``/``Mul``/``Sum`` chains; on the default recipe's model (2 CPU
cores) the normalization took 25% of a training step's op time that way (see
``benchmarks/profile_step.py``). The previous version ran TensorFlow's fused
batch-norm kernel on the map transposed to ``(1, H, W, N*C)``; its transposes made
it slower than Keras' own code on an AMD EPYC (``benchmarks/bench_norms.py``), and it
covered 2-D maps only. Same function up to float round-off (about 1e-6), same
variables (``gamma``, ``beta``), same config: a checkpoint of either loads into the
other.

References: Ioffe & Szegedy, "Batch Normalization", ICML 2015; Ulyanov et al.,
"Instance Normalization: The Missing Ingredient for Fast Stylization", 2016.
"""

from __future__ import annotations

import keras
from keras import layers

NORMS = ("batch", "instance", "none")
# The largest static batch that InstanceNormalization splits into one fused kernel per
# sample in training (instance_norm_per_sample); a larger one, or an unknown batch size,
# takes the closed form, whose op count does not grow with the batch.
MAX_FUSED_BATCH = 64


@keras.saving.register_keras_serializable(package="segtie")
class FusedBatchNormalization(layers.BatchNormalization):
    """:class:`keras.layers.BatchNormalization` with TensorFlow's fused kernel in training.

    Uses ``tf.compat.v1.nn.fused_batch_norm`` when training on the TensorFlow
    backend with a 4-D channels_last input ``(batch, height, width, channels)``,
    ``axis=-1``, no mask and no ``renorm``; every other case (inference included)
    is Keras' own code path. Inputs may be float32, float16 or bfloat16 (statistics
    in float32); the output has the layer's compute dtype.

    Same arguments, variables and errors as :class:`keras.layers.BatchNormalization`.
    """

    def _fused(self, inputs, training, mask) -> bool:
        return (bool(training) and self.trainable and mask is None and not self.renorm
                and not self.synchronized and keras.backend.backend() == "tensorflow"
                and len(inputs.shape) == 4 and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not self._fused(inputs, training, mask):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # only on the TensorFlow backend (checked above)

        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        x = inputs if inputs.dtype in (tf.float16, tf.bfloat16) else tf.cast(inputs, "float32")
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, is_training=True)
        count = tf.cast(tf.size(x) // channels, "float32")
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)  # biased, as Keras
        momentum = self.momentum
        self.moving_mean.assign(self.moving_mean * momentum + mean * (1.0 - momentum))
        self.moving_variance.assign(
            self.moving_variance * momentum + variance * (1.0 - momentum))
        return tf.cast(y, self.compute_dtype)


def instance_norm(x, gamma, beta, epsilon: float):
    """Instance norm of ``x`` with a hand-written backward pass (TensorFlow backend).

    Args:
        x: float32 tensor ``(batch, *spatial, channels)``, one or more spatial axes.
        gamma, beta: float32 tensors ``(channels,)``, the scale and the offset.
        epsilon: float added to the biased variance.

    Returns:
        ``y = gamma * (x - mean) / sqrt(variance + epsilon) + beta``, the statistics per
        sample and channel over the spatial axes; same shape and dtype as ``x``.

    The backward pass is the closed form of the normalisation's gradient (Ioffe &
    Szegedy, "Batch Normalization", ICML 2015, section 3, with per-sample statistics),
    written on the centred input ``c = x - mean`` that the forward pass keeps (in place
    of ``x``): with ``rstd = 1 / sqrt(variance + epsilon)`` and ``a = gamma * rstd``,
    ``dx = a * dy - c * (a * rstd**2 * mean(dy * c)) - a * mean(dy)``,
    ``dgamma = sum_b(n * rstd * mean(dy * c))``, ``dbeta = sum_b(n * mean(dy))``,
    means over the ``n`` spatial positions of each sample and channel. Every full-size
    pass but three reads or writes one tensor with a per-sample-and-channel factor:
    forward 6 passes, backward 7 (the form before 2026-12-03, on ``x``, took 5 + 11;
    autodiff of ``tf.nn.moments`` builds ``Tile``/``BroadcastTo`` chains besides).
    """
    import tensorflow as tf  # only on the TensorFlow backend (checked by the caller)

    spatial = list(range(1, len(x.shape) - 1))

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        mean = tf.reduce_mean(x, axis=spatial, keepdims=True)
        centred = x - mean
        variance = tf.reduce_mean(tf.square(centred), axis=spatial, keepdims=True)
        rstd = tf.math.rsqrt(variance + epsilon)
        scale = rstd * gamma
        y = centred * scale + beta

        def backward(dy):
            count = tf.cast(tf.reduce_prod(tf.shape(x)[1:-1]), x.dtype)
            mean_dy = tf.reduce_mean(dy, axis=spatial, keepdims=True)
            mean_dy_c = tf.reduce_mean(dy * centred, axis=spatial, keepdims=True)
            dx = scale * dy - centred * (scale * tf.square(rstd) * mean_dy_c) - scale * mean_dy
            dgamma = tf.reduce_sum(rstd * mean_dy_c, axis=[0] + spatial) * count
            dbeta = tf.reduce_sum(mean_dy, axis=[0] + spatial) * count
            return dx, dgamma, dbeta

        return y, backward

    return normalize(x, gamma, beta)


def instance_norm_per_sample(x, gamma, beta, epsilon: float):
    """Instance norm of ``x`` as one fused batch-norm kernel per sample (TensorFlow backend).

    Args:
        x: float32 tensor ``(batch, *spatial, channels)`` with a static ``batch``
            (an int, not ``None``) and one, two or three spatial axes.
        gamma, beta: float32 tensors ``(channels,)``, the scale and the offset.
        epsilon: float added to the biased variance.

    Returns:
        The same function as :func:`instance_norm` (up to float round-off, about
        1e-6): same shape and dtype as ``x``.

    A batch norm in training mode over a batch of one sample is that sample's instance
    norm, so each sample ``x[n]``, viewed as ``(1, prod(spatial[:-1]), spatial[-1],
    channels)`` (a free reshape), goes through TensorFlow's ``FusedBatchNormV3``
    (oneDNN on CPU: one op forward, one op backward, statistics and normalisation in
    two passes) and the results are concatenated. On 2 AMD EPYC cores
    (``benchmarks/bench_norms.py``) this is faster forward and backward than the
    closed form; it needs the batch size when the graph is built (the op count grows
    with it), so :class:`InstanceNormalization` takes it in training only.

    Raises:
        ValueError: the batch size of ``x`` is not static.
    """
    import tensorflow as tf  # only on the TensorFlow backend (checked by the caller)

    batch = x.shape[0]
    if batch is None:
        raise ValueError(f"instance_norm_per_sample needs a static batch size, received "
                         f"an input of shape {x.shape}")
    shape = tf.shape(x)
    rows = tf.reduce_prod(shape[1:-2])
    four_d = tf.reshape(x, tf.stack([batch, rows, shape[-2], shape[-1]]))
    parts = [tf.compat.v1.nn.fused_batch_norm(part, gamma, beta, epsilon=epsilon,
                                              is_training=True)[0]
             for part in tf.split(four_d, batch, axis=0)]
    return tf.reshape(tf.concat(parts, axis=0), shape)


class InstanceNormalization(layers.GroupNormalization):
    """Instance norm: ``GroupNormalization(groups=-1)`` with a hand-written backward pass.

    Each sample and channel of a channels_last ``(batch, height, width, channels)``
    (or ``(batch, depth, height, width, channels)``) input is normalised over its
    spatial axes (biased variance, ``epsilon`` added), then scaled by ``gamma`` and
    shifted by ``beta`` (one each per channel). On the TensorFlow backend with
    ``axis=-1`` it is :func:`instance_norm` (same function as Keras' group norm up to
    float round-off, about 1e-6, and a closed-form gradient that agrees with Keras'
    to about 1e-6); in training, with a static batch of at most
    :data:`MAX_FUSED_BATCH` samples (the training pipeline's batches when an epoch
    fills them, see :func:`segtie.data.pipeline.build_dataset`), it is
    :func:`instance_norm_per_sample`, the same function through TensorFlow's fused
    kernel; any other case is Keras' own code path. The function does not depend on
    the mode (no running statistics), only the kernels that compute it. Inputs may be
    float32, float16 or bfloat16 (statistics in float32); the output has the layer's
    compute dtype.

    Args:
        epsilon: float > 0, default 1e-3 (Keras' group norm default). Other
            arguments as :class:`keras.layers.GroupNormalization` (``groups`` is
            always -1).
    """

    def __init__(self, **kwargs):
        kwargs["groups"] = -1
        super().__init__(**kwargs)

    def _own_path(self, inputs) -> bool:
        return (keras.backend.backend() == "tensorflow" and len(inputs.shape) in (4, 5)
                and self.axis in (-1, len(inputs.shape) - 1))

    def call(self, inputs, training=None):
        if not self._own_path(inputs):
            return super().call(inputs)
        import tensorflow as tf  # only on the TensorFlow backend (checked above)

        channels = inputs.shape[-1]
        gamma = tf.cast(self.gamma, "float32") if self.scale else tf.ones([channels])
        beta = tf.cast(self.beta, "float32") if self.center else tf.zeros([channels])
        norm = (instance_norm_per_sample if training and inputs.shape[0] is not None
                and inputs.shape[0] <= MAX_FUSED_BATCH else instance_norm)
        y = norm(tf.cast(inputs, "float32"), gamma, beta, self.epsilon)
        return tf.cast(y, self.compute_dtype)


# Keras names the weights of a layer held in a list by its class name
# (saving_lib._save_container_state: to_snake_case(type(layer).__name__)), and the blocks
# keep their norms in lists. Answering to Keras' class name keeps the weight paths of
# keras.layers.GroupNormalization, so the checkpoints written with either class (every
# instance-norm checkpoint before this one existed) load into the other.
InstanceNormalization.__name__ = "GroupNormalization"
InstanceNormalization = keras.saving.register_keras_serializable(
    package="segtie", name="InstanceNormalization")(InstanceNormalization)


def make_norm(kind: str, name: str, dtype=None) -> layers.Layer:
    """A new normalization layer of ``kind`` for channels_last feature maps.

    Args:
        kind: ``"batch"`` (:class:`FusedBatchNormalization`, 4 weights per channel,
            2 trainable), ``"instance"`` (:class:`InstanceNormalization`: each
            sample and channel normalized over height and width, 2 weights per
            channel, no running statistics) or ``"none"`` (identity, no weights).
        name: the layer name.
        dtype: the layer's dtype policy (``None``: Keras' global policy).

    Raises:
        ValueError: ``kind`` is not one of :data:`NORMS`.
    """
    if kind == "batch":
        return FusedBatchNormalization(name=name, dtype=dtype)
    if kind == "instance":
        return InstanceNormalization(name=name, dtype=dtype)
    if kind == "none":
        return layers.Identity(name=name, dtype=dtype)
    raise ValueError(f"`norm` must be one of {list(NORMS)}, received {kind!r}")
