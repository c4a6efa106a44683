"""The fused norms compute what Keras' own layers compute.

FusedBatchNormalization against keras.layers.BatchNormalization; InstanceNormalization
against keras.layers.GroupNormalization(groups=-1) and the formula in NumPy.
"""

import numpy as np
import pytest
import keras
import tensorflow as tf

from segtie.nn.norms import (FusedBatchNormalization, InstanceNormalization, instance_norm,
                             instance_norm_per_sample,
                             make_norm)


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
    assert isinstance(make_norm("instance", "i"), InstanceNormalization)
    assert isinstance(make_norm("none", "n"), keras.layers.Identity)
    with pytest.raises(ValueError, match="`norm` must be one of .*'group'"):
        make_norm("group", "g")


def _instance_pair(channels=5, seed=0, spatial_dims=2):
    """Keras' instance norm and segtie's with the same (non-trivial) gamma and beta."""
    rng = np.random.default_rng(seed)
    reference, fused = keras.layers.GroupNormalization(groups=-1), InstanceNormalization()
    weights = [rng.normal(1.0, 0.5, channels).astype("float32"),
               rng.normal(0.0, 0.5, channels).astype("float32")]
    for layer in (reference, fused):
        layer.build((None,) * (1 + spatial_dims) + (channels,))
        layer.set_weights(weights)
    return reference, fused, weights


def test_instance_norm_is_the_formula_and_keras_group_norm():
    reference, fused, (gamma, beta) = _instance_pair()
    x = np.random.default_rng(1).normal(2.0, 3.0, size=(3, 9, 7, 5)).astype("float32")
    mean = x.mean(axis=(1, 2), keepdims=True)
    variance = x.var(axis=(1, 2), keepdims=True)  # biased, per sample and channel
    by_hand = (x - mean) / np.sqrt(variance + 1e-3) * gamma + beta
    np.testing.assert_allclose(fused(x), by_hand, rtol=1e-5, atol=2e-5)
    np.testing.assert_allclose(fused(x), reference(x), rtol=1e-5, atol=2e-5)
    # each sample is normalised on its own: changing sample 0 leaves sample 1 alone
    x2 = x.copy()
    x2[0] *= 10.0
    np.testing.assert_allclose(fused(x2)[1], fused(x)[1], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(2, 6, 10, 4), (2, 5, 6, 7, 4)], ids=["2d", "3d"])
def test_instance_norm_gradients_match_keras(shape):
    """The closed-form backward pass against autodiff of Keras' group norm (2-D and 3-D)."""
    reference, fused, _ = _instance_pair(channels=4, seed=3, spatial_dims=len(shape) - 2)
    x = tf.constant(np.random.default_rng(4).normal(2.0, 3.0, size=shape), tf.float32)
    np.testing.assert_allclose(fused(x), reference(x), rtol=1e-5, atol=2e-5)

    def gradients(layer):
        with tf.GradientTape() as tape:
            tape.watch(x)
            loss = tf.reduce_sum(tf.sin(layer(x)) * tf.range(4, dtype=tf.float32))
        return tape.gradient(loss, [x, layer.gamma, layer.beta])

    for ours, keras_grad in zip(gradients(fused), gradients(reference)):
        np.testing.assert_allclose(ours, keras_grad, rtol=1e-4, atol=1e-4)


def test_instance_norm_gradient_is_exact_for_a_large_mean_and_unknown_sizes():
    """dx against the float64 closed form where the mean dwarfs the spread (100 vs 0.5).

    Reference: Ioffe & Szegedy 2015, section 3, per sample and channel:
    dx = gamma / sigma * (dy - mean(dy) - x_hat * mean(dy * x_hat)), computed here in
    float64 NumPy; the layer runs in float32 inside a tf.function with unknown sizes.
    """
    rng = np.random.default_rng(11)
    x = rng.normal(100.0, 0.5, size=(2, 6, 5, 3))
    dy = rng.normal(size=x.shape)
    gamma, beta = np.array([0.5, 2.0, -1.0]), np.array([0.1, 0.0, 0.3])
    mean, var = x.mean(axis=(1, 2), keepdims=True), x.var(axis=(1, 2), keepdims=True)
    x_hat = (x - mean) / np.sqrt(var + 1e-3)
    dx = gamma / np.sqrt(var + 1e-3) * (dy - dy.mean(axis=(1, 2), keepdims=True)
                                        - x_hat * (dy * x_hat).mean(axis=(1, 2), keepdims=True))

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3])] * 2)
    def gradients(x32, dy32):
        g, b = tf.constant(gamma, tf.float32), tf.constant(beta, tf.float32)
        with tf.GradientTape() as tape:
            tape.watch([x32, g, b])
            y = instance_norm(x32, g, b, 1e-3)
        return tape.gradient(y, [x32, g, b], output_gradients=dy32)

    ours = gradients(tf.constant(x, tf.float32), tf.constant(dy, tf.float32))
    scale = np.abs(dx).max()
    np.testing.assert_allclose(ours[0], dx, atol=2e-4 * scale)
    np.testing.assert_allclose(ours[1], (dy * x_hat).sum(axis=(0, 1, 2)), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(ours[2], dy.sum(axis=(0, 1, 2)), rtol=1e-5, atol=1e-4)


def test_instance_norm_takes_unknown_sizes_and_16_bit_compute():
    reference, fused, _ = _instance_pair(channels=3)
    traced = tf.function(fused, input_signature=[tf.TensorSpec([None, None, None, 3])])
    for shape in [(1, 5, 8, 3), (4, 16, 2, 3)]:
        x = np.random.default_rng(shape[0]).normal(size=shape).astype("float32")
        np.testing.assert_allclose(traced(x), reference(x), rtol=1e-5, atol=2e-5)
        assert traced(x).shape == shape
    half = InstanceNormalization(dtype="mixed_bfloat16")
    half.build((None, None, None, 3))
    half.set_weights(fused.get_weights())
    x = np.random.default_rng(9).normal(size=(2, 8, 8, 3)).astype("float32")
    out = half(x)
    assert out.dtype == tf.bfloat16
    np.testing.assert_allclose(tf.cast(out, tf.float32), reference(x), atol=0.05)


def test_instance_norm_round_trips_and_takes_keras_group_norm_weights(tmp_path):
    """A .keras file keeps the class; Keras' group-norm weights carry over as they are."""
    reference, _, _ = _instance_pair(channels=3)
    inputs = keras.Input((None, None, 3))
    new = keras.Model(inputs, InstanceNormalization()(inputs))
    new.set_weights(reference.get_weights())  # gamma, beta: the same variables
    x = np.random.default_rng(5).normal(size=(2, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(new(x), reference(x), rtol=1e-5, atol=2e-5)
    new.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras", safe_mode=True)
    assert type(loaded.layers[-1]) is InstanceNormalization
    assert loaded.layers[-1].groups == 3  # one channel per group, as Keras resolves -1
    np.testing.assert_array_equal(loaded(x), new(x))


def test_checkpoints_written_with_keras_group_norm_load_and_agree(tmp_path, monkeypatch):
    """Every instance-norm .keras file from before InstanceNormalization loads as it was."""
    from segtie.nn import build_unet, recurrent_conv_block

    def keras_norm(kind, name, dtype=None):  # what make_norm("instance") used to build
        return keras.layers.GroupNormalization(groups=-1, name=name, dtype=dtype)

    arguments = dict(in_channels=3, num_classes=1, base_filters=4, depth=2,
                     num_iterations=2, norm="instance")
    keras.utils.set_random_seed(0)
    with monkeypatch.context() as patch:
        patch.setattr(recurrent_conv_block, "make_norm", keras_norm)
        old = build_unet(**arguments)
    old.save(tmp_path / "old.keras")
    old.save_weights(tmp_path / "old.weights.h5")
    x = np.random.default_rng(6).random((2, 16, 16, 3), dtype=np.float32)
    loaded = keras.saving.load_model(tmp_path / "old.keras", safe_mode=True)
    assert any(type(layer) is InstanceNormalization
               for layer in loaded._flatten_layers(include_self=False, recursive=True))
    np.testing.assert_allclose(loaded(x), old(x), rtol=1e-4, atol=1e-5)
    fresh = build_unet(**arguments)
    fresh.load_weights(tmp_path / "old.weights.h5")
    np.testing.assert_allclose(fresh(x), old(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("shape", [(3, 6, 10, 4), (2, 5, 6, 7, 4)], ids=["2d", "3d"])
def test_per_sample_fused_kernel_is_the_closed_form_with_its_gradients(shape):
    """instance_norm_per_sample against instance_norm: outputs and all three gradients."""
    rng = np.random.default_rng(21)
    x = tf.constant(rng.normal(2.0, 3.0, size=shape), tf.float32)
    dy = tf.constant(rng.normal(size=shape), tf.float32)
    gamma = tf.constant(rng.normal(1.0, 0.5, 4), tf.float32)
    beta = tf.constant(rng.normal(0.0, 0.5, 4), tf.float32)

    def both(norm):
        with tf.GradientTape() as tape:
            tape.watch([x, gamma, beta])
            y = norm(x, gamma, beta, 1e-3)
        return [y] + tape.gradient(y, [x, gamma, beta], output_gradients=dy)

    for ours, closed in zip(both(instance_norm_per_sample), both(instance_norm)):
        np.testing.assert_allclose(ours, closed, rtol=1e-4, atol=1e-4)


def test_per_sample_fused_kernel_needs_a_static_batch():
    traced = tf.function(lambda x: instance_norm_per_sample(x, tf.ones([3]), tf.zeros([3]), 1e-3),
                         input_signature=[tf.TensorSpec([None, 4, 4, 3])])
    with pytest.raises(ValueError, match="static batch size.*None, 4, 4, 3"):
        traced.get_concrete_function()


def _op_types(layer, signature, training):
    graph = tf.function(lambda x: layer(x, training=training)).get_concrete_function(
        tf.TensorSpec(signature)).graph
    return {op.type for op in graph.get_operations()}


def test_instance_norm_takes_the_fused_kernel_in_training_with_a_static_batch_only():
    """Training with a known batch: FusedBatchNormV3; inference (export's graph) or an
    unknown batch: the closed form, no fused kernel. The same values either way."""
    reference, fused, _ = _instance_pair(channels=3)
    assert "FusedBatchNormV3" in _op_types(fused, [4, 8, 8, 3], training=True)
    assert "FusedBatchNormV3" not in _op_types(fused, [4, 8, 8, 3], training=False)
    assert "FusedBatchNormV3" not in _op_types(fused, [None, 8, 8, 3], training=True)
    x = np.random.default_rng(8).normal(1.0, 2.0, size=(4, 8, 8, 3)).astype("float32")
    np.testing.assert_allclose(fused(x, training=True), reference(x), rtol=1e-5, atol=2e-5)
