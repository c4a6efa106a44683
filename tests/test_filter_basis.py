"""The shared filter basis layer and a block that uses it (the U-Net: test_filter_basis_unet).

The tying proof compares the layer with an independent reference built explicitly:
an *untied copy* in which every use ``u`` has its own ``tf.Variable`` copy ``B^(u)``
of the shared basis (and its own copy of the bias), convolved with
``tf.nn.convolution`` (not ``keras.ops.conv``). The same loss through both must give
the same value, and the shared basis's one gradient must be the sum of the copies'
gradients, ``dL/dB = sum_u dL/dB^(u)`` (the per-use ``unique`` and ``coefficients``
have the per-use gradients, the shared bias the sum).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from harness import run_layer_test

from segtie.nn import FilterBasis, RecurrentConvBlock

RTOL, ATOL = 1e-4, 1e-5
RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
X_3D = RNG.normal(size=(2, 4, 6, 4, 2)).astype("float32")
F = 6


@pytest.mark.parametrize("kwargs, x, sites, num_vars", [
    (dict(basis_size=2, num_uses=3), X, [{"use": u} for u in range(3)], 3),
    (dict(basis_size=2, num_uses=2, unique_size=1), X, [{"use": 0}, {"use": 1}], 4),
    (dict(basis_size=1, use_bias=False, factored=False), X, None, 2),
    (dict(basis_size=2, num_uses=2, unique_size=1, spatial_dims=3), X_3D,
     [{"use": 0}, {"use": 1}], 4),
], ids=["2d-three-uses", "2d-unique", "2d-composed-no-bias", "3d-unique"])
def test_filter_basis_layer(kwargs, x, sites, num_vars, tmp_path):
    layer = run_layer_test(FilterBasis, {"filters": F, **kwargs}, x, x.shape[:-1] + (F,),
                           tmp_path, call_kwargs=sites, expected_num_variables=num_vars,
                           expected_num_trainable=num_vars)
    s, r = kwargs["basis_size"], kwargs.get("unique_size", 0)
    u, k = kwargs.get("num_uses", 1), 3 ** kwargs.get("spatial_dims", 2)
    bias = F if kwargs.get("use_bias", True) else 0
    c = x.shape[-1]
    assert layer.count_params() == k * c * s + u * k * c * r + u * (s + r) * F + bias


def test_the_factored_and_composed_ways_compute_the_same_function():
    keras.utils.set_random_seed(3)
    factored = FilterBasis(F, basis_size=2, num_uses=2, unique_size=1, factored=True)
    composed = FilterBasis(F, basis_size=2, num_uses=2, unique_size=1, factored=False)
    factored.build(X.shape), composed.build(X.shape)
    composed.set_weights(factored.get_weights())
    for use in range(2):
        np.testing.assert_allclose(factored(X, use=use), composed(X, use=use),
                                   rtol=RTOL, atol=ATOL)
    # The default picks the cheaper way: (s + r)(9 C_in + F) < 9 C_in F.
    auto = [FilterBasis(16, basis_size=s) for s in (4, 15)]
    for layer in auto:
        layer.build((None, 8, 8, 16))
    assert [layer.runs_factored for layer in auto] == [True, False]  # 4*160 < 1296 < 15*160


def test_initialisation_gives_he_normal_kernels_that_start_uncorrelated():
    keras.utils.set_random_seed(4)
    c = 64
    layer = FilterBasis(256, basis_size=12, num_uses=3, unique_size=4)
    layer.build((None, 8, 8, c))
    kernels = [keras.ops.convert_to_numpy(layer.kernel_for(u)).ravel() for u in range(3)]
    he_std = np.sqrt(2.0 / (9 * c))  # he_normal: Var = 2 / fan_in, fan_in = 3 * 3 * C_in
    for kernel in kernels:
        assert abs(np.std(kernel) / he_std - 1.0) < 0.1  # 4,096 coefficients: ~2% error
    assert abs(np.corrcoef(kernels[0], kernels[1])[0, 1]) < 0.05


def _untied_reference(layer, x, weights):
    """The loss with every use's basis, unique filters, coefficients and bias as its own
    ``tf.Variable`` (copies of the layer's values), and the gradients of those copies."""
    copies = [dict(basis=tf.Variable(layer.basis.numpy()),
                   mix=tf.Variable(layer.coefficients.numpy()[u]),
                   bias=tf.Variable(layer.bias.numpy())) for u in range(layer.num_uses)]
    for u, copy in enumerate(copies if layer.unique_size else []):
        copy["unique"] = tf.Variable(layer.unique.numpy()[u])
    layout = "NHWC" if x.ndim == 4 else "NDHWC"  # explicit: TF 2.21's eager Conv3D grad
    ones = (1,) * (x.ndim - 2)

    def use(copy):
        maps = [tf.nn.convolution(x, copy["basis"], padding="SAME", data_format=layout)]
        if "unique" in copy:
            maps.append(tf.nn.convolution(x, copy["unique"], padding="SAME",
                                          data_format=layout))
        mix = tf.reshape(copy["mix"], ones + tuple(copy["mix"].shape))
        return tf.nn.convolution(tf.concat(maps, -1), mix, padding="SAME",
                                 data_format=layout) + copy["bias"]

    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(use(c) * w) for c, w in zip(copies, weights))
    grads = tape.gradient(loss, copies)
    return loss, [{k: g.numpy() for k, g in d.items()} for d in grads]


@pytest.mark.parametrize("unique_size, num_uses, x, factored", [
    (0, 3, X, True), (1, 3, X, True), (2, 2, X, False), (1, 2, X_3D, True)],
    ids=["2d-shared", "2d-unique", "2d-composed", "3d-unique"])
def test_basis_gradient_is_the_sum_over_an_untied_copy_per_use(unique_size, num_uses, x,
                                                               factored):
    keras.utils.set_random_seed(1)
    layer = FilterBasis(F, basis_size=2, num_uses=num_uses, unique_size=unique_size,
                        spatial_dims=x.ndim - 2, factored=factored)
    layer.build(x.shape)
    layer.bias.assign(RNG.normal(size=F).astype("float32"))
    weights = [RNG.normal(size=x.shape[:-1] + (F,)).astype("float32") for _ in range(num_uses)]
    variables = [layer.basis, layer.coefficients, layer.bias] + (
        [layer.unique] if unique_size else [])
    with tf.GradientTape() as tape:
        loss = sum(tf.reduce_sum(layer(x, use=u) * w) for u, w in enumerate(weights))
    g_basis, g_mix, g_bias, *g_unique = (g.numpy() for g in tape.gradient(loss, variables))
    ref_loss, per_use = _untied_reference(layer, x, weights)

    np.testing.assert_allclose(loss.numpy(), ref_loss.numpy(), rtol=1e-5)
    np.testing.assert_allclose(g_basis, sum(g["basis"] for g in per_use), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g_bias, sum(g["bias"] for g in per_use), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(g_mix, np.stack([g["mix"] for g in per_use]),
                               rtol=RTOL, atol=ATOL)
    if unique_size:
        np.testing.assert_allclose(g_unique[0], np.stack([g["unique"] for g in per_use]),
                                   rtol=RTOL, atol=ATOL)
    assert not np.allclose(per_use[0]["basis"], per_use[1]["basis"], atol=ATOL)  # it bites


@pytest.mark.parametrize("kwargs, message", [
    (dict(basis_size=0), r"`basis_size` must be an integer >= 1, received 0"),
    (dict(basis_size=2, unique_size=-1), r"`unique_size` must be an integer >= 0, received -1"),
    (dict(basis_size=2, num_uses=0), r"`num_uses` must be an integer >= 1, received 0"),
    (dict(basis_size=2, kernel_size=2), r"`kernel_size` must be odd, received 2"),
    (dict(basis_size=2, spatial_dims=1), r"`spatial_dims` must be one of \[2, 3\]"),
    (dict(basis_size=2, factored="yes"), r"`factored` must be None, True or False, received"),
    (dict(basis_size=2, orthogonality=-1.0), r"`orthogonality` must be a number >= 0, received"),
])
def test_bad_layer_arguments_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FilterBasis(F, **kwargs)


def _similarity_by_hand(basis, unique):
    """Kang et al.'s mean over the shared rows and each use's own block, with numpy."""
    s = basis.shape[-1]
    rows = [basis.reshape(-1, s).T] + [unique[u].reshape(-1, unique.shape[-1]).T
                                       for u in range(len(unique))]
    gram = np.concatenate(rows) @ np.concatenate(rows).T
    d = (gram - np.eye(len(gram))) ** 2
    total, count = d[:s].sum(), d[:s].size
    for u in range(len(unique)):
        r = unique.shape[-1]
        block = d[s + u * r:s + (u + 1) * r, s + u * r:s + (u + 1) * r]
        total, count = total + block.sum(), count + block.size
    return total / count


def test_the_orthogonality_regulariser_is_the_basis_similarity_once_per_forward_pass():
    lam, c = 10.0, X.shape[-1]
    layer = FilterBasis(F, basis_size=3, num_uses=2, unique_size=2, orthogonality=lam)
    layer(X, use=0)
    expected = _similarity_by_hand(layer.basis.numpy(), layer.unique.numpy())
    assert expected > 0.05  # he_normal filters are far from orthonormal
    np.testing.assert_allclose(float(layer.similarity()), expected, rtol=1e-5)

    # Orthonormal filters (rows of an orthogonal matrix, each use's own block too;
    # the cross terms between two uses' own filters are not counted): similarity 0.
    q = np.linalg.qr(RNG.normal(size=(9 * c, 9 * c)))[0].T
    layer.basis.assign(q[:3].T.reshape(3, 3, c, 3))
    layer.unique.assign(np.stack([q[3:5].T.reshape(3, 3, c, 2)] * 2))
    np.testing.assert_allclose(float(layer.similarity()), 0.0, atol=1e-10)

    # In fit, a pass calling both uses adds lambda * similarity to a zero task loss.
    fresh = FilterBasis(F, basis_size=3, num_uses=2, unique_size=2, orthogonality=lam)
    inputs = keras.Input(X.shape[1:])
    model = keras.Model(inputs, fresh(inputs, use=0) + fresh(inputs, use=1))
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss=lambda y, p: 0.0 * p)
    before = _similarity_by_hand(fresh.basis.numpy(), fresh.unique.numpy())
    loss = model.fit(X, np.zeros(X.shape[:-1] + (F,)), epochs=1, verbose=0).history["loss"]
    np.testing.assert_allclose(loss, [lam * before], rtol=1e-5)
    model(X, training=False)  # inference adds nothing
    assert model.losses == []


def test_a_use_outside_the_basis_is_refused():
    layer = FilterBasis(F, basis_size=2, num_uses=2)
    with pytest.raises(ValueError, match=r"`use` must be an integer in \[0, 2\), received 2"):
        layer(X, use=2)


def test_a_block_with_a_basis_shares_it_across_sites_and_iterations(tmp_path):
    kwargs = dict(filters=F, num_iterations=2, norm="instance", num_uses=2, basis_size=2,
                  basis_unique=1)
    # entry conv (2) + entry norm (2) + one shared norm (2) + basis, unique, mix, bias (4)
    block = run_layer_test(RecurrentConvBlock, kwargs, X, X.shape[:-1] + (F,), tmp_path,
                           call_kwargs=[{"use": 0}, {"use": 1}], expected_num_variables=10,
                           expected_num_trainable=10)
    assert block.basis.num_uses == 4 and block.bank_use(1, 1) == 3  # 2 sites x 2 iterations
    k, c, s, r, uses = 9, X.shape[-1], 2, 1, 4
    entry, norms = k * c * F + F, 2 * (2 * F)
    basis = k * F * s + uses * (k * F * r + (s + r) * F) + F
    assert block.count_params() == entry + norms + basis
    with pytest.raises(ValueError, match=r"filter basis .* `block.basis`"):
        block.conv_for(0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(basis_size=2, tied=False), r"`basis_size` >= 1 .* needs `tied=True`"),
    (dict(basis_size=2, num_templates=2), r"`basis_size` >= 1 .* `num_templates=0`"),
    (dict(basis_unique=1), r"`basis_unique` = 1 .* needs `basis_size` >= 1"),
    (dict(basis_orthogonality=1.0), r"`basis_orthogonality` = 1.0 .* needs `basis_size` >= 1"),
    (dict(basis_size=-1), r"`basis_size` must be an integer >= 0, received -1"),
])
def test_bad_block_arguments_name_the_key(kwargs, message):
    with pytest.raises(ValueError, match=message):
        RecurrentConvBlock(F, **kwargs)
