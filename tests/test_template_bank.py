"""The template bank: shape, serialization, precision, initialisation, and real tying.

The tying proof compares the bank with an independent reference: the per-use
kernels ``W_u`` materialised as separate ``tf.Variable``s and convolved with
``tf.nn.convolution`` (not ``keras.ops.conv``). The same loss through both gives
``dL/dW_u``; the bank's single variables must then have the chain rule's gradients
``dL/dT_j = sum_u alpha[u, j] dL/dW_u`` and ``dL/dalpha[u, j] = <dL/dW_u, T_j>``
(and the shared bias the sum of the per-use bias gradients).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import run_layer_test

from segtie.nn import TemplateBank

RTOL, ATOL = 1e-4, 1e-5
RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
X_3D = RNG.normal(size=(2, 4, 6, 4, 2)).astype("float32")
F = 4


@pytest.mark.parametrize("kwargs, x, sites, num_vars", [
    (dict(num_templates=2, num_uses=3), X, [{"use": u} for u in range(3)], 3),
    (dict(num_templates=1, use_bias=False), X, None, 2),
    (dict(num_templates=3, num_uses=2, spatial_dims=3), X_3D, [{"use": 0}, {"use": 1}], 3),
], ids=["2d-three-uses", "2d-one-template-no-bias", "3d-two-uses"])
def test_template_bank_layer(kwargs, x, sites, num_vars, tmp_path):
    layer = run_layer_test(TemplateBank, {"filters": F, **kwargs}, x, x.shape[:-1] + (F,),
                           tmp_path, call_kwargs=sites, expected_num_variables=num_vars,
                           expected_num_trainable=num_vars)
    j, u, d = kwargs["num_templates"], kwargs.get("num_uses", 1), kwargs.get("spatial_dims", 2)
    bias = F if kwargs.get("use_bias", True) else 0
    assert layer.count_params() == j * 3 ** d * x.shape[-1] * F + u * j + bias


def test_initialisation_gives_he_normal_kernels_that_start_distinct():
    c = 64
    layer = TemplateBank(64, num_templates=4, num_uses=3)
    layer.build((None, 8, 8, c))
    alpha = layer.coefficients.numpy()
    np.testing.assert_allclose(alpha @ alpha.T, np.eye(3), atol=1e-5)  # orthonormal rows
    kernels = [keras.ops.convert_to_numpy(layer.kernel_for(u)).ravel() for u in range(3)]
    he_std = np.sqrt(2.0 / (9 * c))  # he_normal: Var = 2 / fan_in, fan_in = 3 * 3 * C_in
    for kernel in kernels:
        assert abs(np.std(kernel) / he_std - 1.0) < 0.05  # 36,864 draws: ~0.4% error
    assert abs(np.corrcoef(kernels[0], kernels[1])[0, 1]) < 0.05  # uncorrelated uses
    more_uses = TemplateBank(4, num_templates=2, num_uses=5)
    more_uses.build((None, 8, 8, 3))
    np.testing.assert_allclose(np.linalg.norm(more_uses.coefficients.numpy(), axis=1), 1.0,
                               rtol=1e-6)
    one = TemplateBank(4, num_templates=1, num_uses=3)
    one.build((None, 8, 8, 3))
    np.testing.assert_allclose(np.abs(one.coefficients.numpy()), 1.0, rtol=1e-6)


def _reference(layer, x, weights):
    """The loss with the per-use kernels as separate variables, and its gradients."""
    kernels = [tf.Variable(keras.ops.convert_to_numpy(layer.kernel_for(u)))
               for u in range(layer.num_uses)]
    biases = [tf.Variable(layer.bias.numpy()) for _ in range(layer.num_uses)]
    # An explicit data_format: without it TF 2.21's eager Conv3D gradient fails.
    layout = "NHWC" if x.ndim == 4 else "NDHWC"
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum((tf.nn.convolution(x, k, padding="SAME", data_format=layout)
                                  + b) * w)
                   for k, b, w in zip(kernels, biases, weights))
    g_kernels, g_biases = tape.gradient(loss, [kernels, biases])
    return loss, np.stack([g.numpy() for g in g_kernels]), sum(g.numpy() for g in g_biases)


@pytest.mark.parametrize("num_templates, num_uses, x", [
    (2, 3, X), (3, 3, X), (1, 4, X), (2, 3, X_3D)], ids=["2d-J2", "2d-J3", "2d-J1", "3d-J2"])
def test_bank_gradient_is_the_chain_rule_over_independent_per_use_kernels(num_templates,
                                                                          num_uses, x):
    keras.utils.set_random_seed(1)
    layer = TemplateBank(F, num_templates=num_templates, num_uses=num_uses,
                         spatial_dims=x.ndim - 2)
    layer.build(x.shape)
    layer.bias.assign(RNG.normal(size=F).astype("float32"))
    weights = [RNG.normal(size=x.shape[:-1] + (F,)).astype("float32") for _ in range(num_uses)]
    variables = [layer.templates, layer.coefficients, layer.bias]
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(layer(x, use=u) * w) for u, w in enumerate(weights))
    g_templates, g_alpha, g_bias = (g.numpy() for g in tape.gradient(loss, variables))
    ref_loss, g_w, ref_bias = _reference(layer, x, weights)

    np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-5)
    alpha, templates = layer.coefficients.numpy(), layer.templates.numpy()
    np.testing.assert_allclose(g_templates, np.tensordot(alpha.T, g_w, axes=1),
                               rtol=RTOL, atol=ATOL)
    inner = (g_w.reshape(num_uses, -1).astype("float64")
             @ templates.reshape(num_templates, -1).T.astype("float64"))
    np.testing.assert_allclose(g_alpha, inner, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g_bias, ref_bias, rtol=RTOL, atol=ATOL)
    assert not np.allclose(g_w[0], g_w[1], atol=ATOL)  # the uses differ: the check bites


def test_one_sgd_step_updates_the_one_bank_that_every_use_reads():
    keras.utils.set_random_seed(2)
    layer = TemplateBank(F, num_templates=2, num_uses=3)
    layer.build(X.shape)
    before = [v.numpy() for v in layer.trainable_variables]
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(layer(X, use=u) ** 2) for u in range(3))
    grads = tape.gradient(loss, layer.trainable_variables)
    keras.optimizers.SGD(learning_rate=0.1).apply_gradients(zip(grads, layer.trainable_variables))
    for v, old, g in zip(layer.trainable_variables, before, grads):
        np.testing.assert_allclose(v.numpy(), old - 0.1 * g.numpy(), rtol=1e-5, atol=1e-7)
    mixed = np.tensordot(layer.coefficients.numpy()[2], layer.templates.numpy(), axes=1)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.kernel_for(2)), mixed,
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_templates=0), r"`num_templates` must be an integer >= 1, received 0"),
    (dict(num_templates=2, num_uses=0), r"`num_uses` must be an integer >= 1, received 0"),
    (dict(num_templates=2, kernel_size=2), r"`kernel_size` must be odd, received 2"),
    (dict(num_templates=2, spatial_dims=1), r"`spatial_dims` must be one of \[2, 3\]"),
])
def test_bad_arguments_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TemplateBank(F, **kwargs)


def test_a_use_outside_the_bank_is_refused():
    layer = TemplateBank(F, num_templates=2, num_uses=2)
    with pytest.raises(ValueError, match=r"`use` must be an integer in \[0, 2\), received 2"):
        layer(X, use=2)
