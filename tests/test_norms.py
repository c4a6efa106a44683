"""FusedBatchNormalization computes what keras.layers.BatchNormalization computes."""

import numpy as np
import pytest
import keras
import tensorflow as tf

from segtie.nn.norms import FusedBatchNormalization, make_norm


def _pair(channels=5, seed=0):
    """A Keras batch norm and a fused one with the same (non-trivial) weights."""
    rng = np.random.default_rng(seed)
    reference, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
    for layer in (reference, fused):
        layer.build((None, 6, 7, channels))
    weights = [rng.normal(1.0, 0.3, channels), rng.normal(0.0, 0.3, channels),
               rng.normal(0.0, 1.0, channels), rng.uniform(0.5, 2.0, channels)]
    for layer in (reference, fused):
        layer.set_weights([w.astype("float32") for w in weights])
    return reference, fused


def _inputs(shape=(3, 6, 7, 5), seed=1):
    return tf.constant(np.random.default_rng(seed).normal(2.0, 3.0, shape), tf.float32)


def test_training_output_moving_statistics_and_gradients_match_keras():
    reference, fused = _pair()
    x = _inputs()
    results = []
    for layer in (reference, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.sin(y))  # not a plain sum: its x-gradient is 0
        grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
        results.append([y, *grads, layer.moving_mean, layer.moving_variance])
    for want, got in zip(*results):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), rtol=1e-4, atol=1e-4)
    # the input gradient of a batch norm is not trivially zero here
    assert float(tf.reduce_max(tf.abs(results[1][1]))) > 1e-2


def test_moving_variance_is_the_biased_batch_variance_as_in_keras():
    _, fused = _pair()
    fused.momentum = 0.5  # a large step, so that n/(n-1) = 1.008 would show
    x = _inputs()
    before_mean, before_var = fused.moving_mean.numpy(), fused.moving_variance.numpy()
    fused(x, training=True)
    flat = x.numpy().reshape(-1, 5)
    np.testing.assert_allclose(fused.moving_mean.numpy(),
                               (before_mean + flat.mean(0)) / 2, rtol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(),
                               (before_var + flat.var(0)) / 2, rtol=1e-5)


def test_inference_uses_the_moving_statistics():
    reference, fused = _pair()
    x = _inputs()
    np.testing.assert_allclose(fused(x, training=False), reference(x, training=False),
                               rtol=1e-5, atol=1e-5)
    gamma, beta, mean, var = [w for w in fused.get_weights()]
    by_hand = (x.numpy() - mean) / np.sqrt(var + fused.epsilon) * gamma + beta
    np.testing.assert_allclose(fused(x, training=False), by_hand, rtol=1e-4, atol=1e-4)


def test_bfloat16_inputs_are_normalized_in_float32():
    fused = FusedBatchNormalization(dtype="mixed_bfloat16")
    x = tf.cast(_inputs(), tf.bfloat16)
    y = fused(x, training=True)
    assert y.dtype == tf.bfloat16 and fused.moving_mean.dtype == "float32"
    flat = tf.cast(y, tf.float32).numpy().reshape(-1, 5)
    np.testing.assert_allclose(flat.mean(0), 0.0, atol=0.05)
    np.testing.assert_allclose(flat.std(0), 1.0, atol=0.05)


def test_other_ranks_fall_back_to_keras():
    reference, fused = keras.layers.BatchNormalization(), FusedBatchNormalization()
    x = tf.constant(np.random.default_rng(2).normal(size=(4, 3)), tf.float32)
    np.testing.assert_allclose(fused(x, training=True), reference(x, training=True),
                               rtol=1e-5, atol=1e-5)


def test_make_norm_kinds_and_bad_kind():
    assert isinstance(make_norm("batch", "b"), FusedBatchNormalization)
    assert isinstance(make_norm("instance", "i"), keras.layers.GroupNormalization)
    assert isinstance(make_norm("none", "n"), keras.layers.Identity)
    with pytest.raises(ValueError, match="`norm` must be one of .*'group'"):
        make_norm("group", "g")
