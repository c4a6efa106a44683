"""Tying is real: one variable, one gradient (the sum over uses), one update, one save."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from segtie.nn.recurrent_conv_block import RecurrentConvBlock

IN_SHAPE = (2, 8, 8, 4)
F = 5


IN_SHAPE_3D = (2, 6, 8, 4, 4)  # (batch, D, H, W, C): spatial_dims=3


def _in_shape(spatial_dims):
    return IN_SHAPE if spatial_dims == 2 else IN_SHAPE_3D


def _block(num_iterations, tied=True, spatial_dims=2, **kwargs):
    block = RecurrentConvBlock(F, num_iterations=num_iterations, tied=tied,
                               spatial_dims=spatial_dims, **kwargs)
    block.build(_in_shape(spatial_dims))
    return block


def _untied_copy(tied_block):
    """An untied block whose every use starts from the tied block's weights."""
    untied = _block(tied_block.num_iterations, tied=False,
                    norm_per_iteration=tied_block.norm_per_iteration,
                    spatial_dims=tied_block.spatial_dims)
    untied.entry_conv.set_weights(tied_block.entry_conv.get_weights())
    untied.entry_norm.set_weights(tied_block.entry_norm.get_weights())
    for norm_u, norm_t in zip(untied.norms, tied_block.norms):
        norm_u.set_weights(norm_t.get_weights())
    for conv in untied.convs:
        conv.set_weights(tied_block.convs[0].get_weights())
    return untied


def _count(block):
    return sum(int(np.prod(w.shape)) for w in block.weights)


@pytest.mark.parametrize("spatial_dims, k", [(2, 9), (3, 27)])  # 3x3 and 3x3x3
@pytest.mark.parametrize("num_iterations", [1, 2, 3, 5])
def test_parameter_count_follows_formula_and_is_independent_of_iterations(num_iterations,
                                                                          spatial_dims, k):
    c_in = IN_SHAPE[-1]
    block = _block(num_iterations, spatial_dims=spatial_dims)
    expected = (k * c_in * F + F + 4 * F) + (k * F * F + F) + 4 * F
    assert _count(block) == expected
    per_iter = _block(num_iterations, norm_per_iteration=True, spatial_dims=spatial_dims)
    assert _count(per_iter) == expected + 4 * F * (num_iterations - 1)
    untied = _block(num_iterations, tied=False, spatial_dims=spatial_dims)
    assert _count(untied) == expected + (k * F * F + F) * (num_iterations - 1)


def test_tied_block_has_one_kernel_variable_used_by_every_iteration():
    block = _block(4)
    tied_vars = [w for w in block.weights if "tied_conv" in w.path]
    assert len(tied_vars) == 2  # one kernel, one bias
    assert all(block.conv_for(t) is block.convs[0] for t in range(4))


@pytest.mark.parametrize("norm_per_iteration, spatial_dims", [(False, 2), (True, 2), (False, 3)])
def test_tied_gradient_equals_sum_of_untied_per_use_gradients(norm_per_iteration, spatial_dims):
    tf.random.set_seed(0)
    shape = _in_shape(spatial_dims)
    x = tf.random.normal(shape)
    weights = tf.random.normal(shape[:-1] + (F,))
    tied = _block(3, norm_per_iteration=norm_per_iteration, spatial_dims=spatial_dims)
    untied = _untied_copy(tied)

    def grads(block, variables):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(block(x, training=True) * weights)
        return loss, tape.gradient(loss, variables)

    loss_t, (g_kernel, g_bias) = grads(tied, [tied.convs[0].kernel, tied.convs[0].bias])
    per_use = [v for conv in untied.convs for v in (conv.kernel, conv.bias)]
    loss_u, g_untied = grads(untied, per_use)
    np.testing.assert_allclose(loss_t.numpy(), loss_u.numpy(), rtol=1e-5)
    sum_kernel = sum(g.numpy() for g in g_untied[0::2])
    sum_bias = sum(g.numpy() for g in g_untied[1::2])
    np.testing.assert_allclose(g_kernel.numpy(), sum_kernel, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(g_bias.numpy(), sum_bias, rtol=1e-4, atol=1e-5)
    # The uses really differ: each per-use gradient is not the sum on its own.
    assert not np.allclose(g_untied[0].numpy(), sum_kernel, atol=1e-5)


def test_one_sgd_step_moves_the_single_kernel_by_the_summed_gradient():
    tf.random.set_seed(1)
    x = tf.random.normal(IN_SHAPE)
    tied = _block(3)
    untied = _untied_copy(tied)
    kernel0 = tied.convs[0].kernel.numpy()
    lr = 0.1
    opt = keras.optimizers.SGD(learning_rate=lr)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tied(x, training=False) ** 2)
    g = tape.gradient(loss, tied.trainable_variables)
    opt.apply_gradients(zip(g, tied.trainable_variables))
    with tf.GradientTape() as tape:
        loss_u = tf.reduce_sum(untied(x, training=False) ** 2)
    gu = tape.gradient(loss_u, [c.kernel for c in untied.convs])
    expected = kernel0 - lr * sum(gi.numpy() for gi in gu)
    np.testing.assert_allclose(tied.convs[0].kernel.numpy(), expected, rtol=1e-4, atol=1e-6)
    # Every use now reads the updated kernel.
    assert all(tied.conv_for(t).kernel is tied.convs[0].kernel for t in range(3))


def test_num_iterations_one_is_two_plain_convolutions():
    block = _block(1)
    convs = [w for w in block.weights if w.path.endswith("kernel")]
    assert [tuple(w.shape) for w in convs] == [(3, 3, IN_SHAPE[-1], F), (3, 3, F, F)]


def test_3d_block_has_one_3x3x3_kernel_and_keeps_the_volume_shape():
    block = _block(4, spatial_dims=3)
    convs = [w for w in block.weights if w.path.endswith("kernel")]
    assert [tuple(w.shape) for w in convs] == [(3, 3, 3, 4, F), (3, 3, 3, F, F)]
    out = block(tf.random.normal(IN_SHAPE_3D, seed=5))
    assert tuple(out.shape) == IN_SHAPE_3D[:-1] + (F,)
    with pytest.raises(ValueError, match=r"`spatial_dims` must be one of \[2, 3\], received 1"):
        RecurrentConvBlock(F, spatial_dims=1)


def test_config_round_trip():
    block = RecurrentConvBlock(7, num_iterations=3, norm="none", norm_per_iteration=True,
                               tied=False, dropout=0.1, num_uses=3, norm_per_use=True,
                               recompute=True, spatial_dims=3, num_templates=0, name="b")
    clone = RecurrentConvBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()


@pytest.mark.parametrize("kwargs, key", [({"num_iterations": 0}, "num_iterations"),
                                         ({"num_uses": 0}, "num_uses"),
                                         ({"filters": 0}, "filters"),
                                         ({"norm": "group"}, "norm")])
def test_bad_arguments_name_the_key(kwargs, key):
    args = {"filters": F, **kwargs}
    with pytest.raises(ValueError, match=f"`{key}`"):
        RecurrentConvBlock(**args)


@pytest.mark.parametrize("norm_per_iteration", [False, True])
def test_norm_per_use_multiplies_only_the_norms(norm_per_iteration):
    one = _block(3, norm_per_iteration=norm_per_iteration)
    shared = _block(3, norm_per_iteration=norm_per_iteration, num_uses=4)
    per_use = _block(3, norm_per_iteration=norm_per_iteration, num_uses=4, norm_per_use=True)
    norms = 4 * F * (1 + (3 if norm_per_iteration else 1))
    assert _count(shared) == _count(one)
    assert _count(per_use) == _count(one) + 3 * norms
    convs = [w for w in per_use.weights if w.path.endswith("kernel")]
    assert len(convs) == 2  # entry and tied kernel, shared by the 4 uses


def test_each_use_reads_its_own_norm_and_the_shared_kernel():
    block = _block(2, num_uses=2, norm_per_use=True)
    x = tf.random.normal(IN_SHAPE, seed=3)
    np.testing.assert_allclose(block(x, use=0), block(x, use=1))  # same initial norms
    entry_norm, _ = block.norms_for(1)
    entry_norm.gamma.assign(2.0 * entry_norm.gamma)
    assert not np.allclose(block(x, use=0), block(x, use=1))
    assert block.norms_for(0)[0] is block.entry_norm
    with pytest.raises(ValueError, match=r"`use` must be an integer in \[0, 2\), received 2"):
        block(x, use=2)


def test_recompute_gives_the_same_outputs_and_gradients():
    x = tf.random.normal(IN_SHAPE, seed=4)
    plain = _block(3)
    recomputed = _block(3, recompute=True)
    recomputed.set_weights(plain.get_weights())
    grads = []
    for block in (plain, recomputed):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(block(x, training=True) ** 2)
        grads.append(tape.gradient(loss, block.trainable_variables))
    for g_plain, g_recomputed in zip(*grads):
        np.testing.assert_allclose(g_plain.numpy(), g_recomputed.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("spatial_dims, k", [(2, 9), (3, 27)])
@pytest.mark.parametrize("num_iterations, num_uses, num_templates", [(2, 1, 1), (3, 1, 2),
                                                                     (2, 3, 4)])
def test_bank_block_parameter_count_follows_formula(num_iterations, num_uses, num_templates,
                                                    spatial_dims, k):
    block = _block(num_iterations, spatial_dims=spatial_dims, num_uses=num_uses,
                   num_templates=num_templates)
    c_in, uses = IN_SHAPE[-1], num_uses * num_iterations
    bank = num_templates * k * F * F + uses * num_templates + F
    assert _count(block) == (k * c_in * F + F + 4 * F) + bank + 4 * F
    assert block.convs == [] and block.bank.num_uses == uses
    paths = [w.path for w in block.weights]
    assert [p for p in paths if "template_bank" in p] == [
        f"{block.name}/template_bank/{v}" for v in ("templates", "coefficients", "bias")]


def test_one_template_with_unit_coefficients_is_the_tied_block():
    x = tf.random.normal(IN_SHAPE, seed=6)
    tied = _block(3, norm="instance")
    bank = _block(3, norm="instance", num_templates=1)
    bank.entry_conv.set_weights(tied.entry_conv.get_weights())
    kernel, bias = tied.convs[0].get_weights()
    bank.bank.set_weights([kernel[None], np.ones((3, 1), "float32"), bias])
    np.testing.assert_allclose(bank(x), tied(x), rtol=1e-5, atol=1e-6)
    # A scale per use: the instance norm after the use divides it out (up to its
    # epsilon); only a sign would change the output. Without a norm it is a real dial.
    bank.bank.coefficients.assign([[1.0], [0.5], [2.0]])
    np.testing.assert_allclose(bank(x), tied(x), atol=1e-2 * float(np.max(np.abs(tied(x)))))
    bank.bank.coefficients.assign([[1.0], [-1.0], [1.0]])
    assert not np.allclose(bank(x), tied(x), atol=0.1)
    plain = _block(3, norm="none", num_templates=1)
    y = plain(x)
    plain.bank.coefficients.assign(2.0 * plain.bank.coefficients)
    assert not np.allclose(plain(x), y, atol=0.1)


def test_bank_block_site_and_iteration_pick_their_own_use():
    block = _block(2, num_uses=2, num_templates=3, norm="none")
    assert [block.bank_use(s, t) for s in range(2) for t in range(2)] == [0, 1, 2, 3]
    x = tf.random.normal(IN_SHAPE, seed=7)
    assert not np.allclose(block(x, use=0), block(x, use=1), atol=1e-4)  # distinct kernels
    block.bank.coefficients.assign(np.tile(block.bank.coefficients.numpy()[:2], (2, 1)))
    np.testing.assert_allclose(block(x, use=0), block(x, use=1), rtol=1e-6)
    with pytest.raises(ValueError, match=r"mixes its kernels from a template bank"):
        block.conv_for(0)


def test_a_bank_needs_the_tied_block():
    with pytest.raises(ValueError, match=r"`num_templates` >= 1 .* needs `tied=True`, received "
                                         r"num_templates=2 with tied=False"):
        RecurrentConvBlock(F, num_templates=2, tied=False)
    with pytest.raises(ValueError, match=r"`num_templates` must be an integer >= 0"):
        RecurrentConvBlock(F, num_templates=-1)
