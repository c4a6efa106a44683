"""The proof that tying is real, for a tied model and an untied copy of the same graph.

The untied copy is built by the same code with tying switched off, so it computes the
same function with one layer per *use*. Tracing both models
(:func:`segtie.nn.profile.trace_uses`) lists their layer calls in the same order,
which pairs every use of a tied layer with the untied layer that does that use.
Then, with the untied layers starting from the tied weights:

- the outputs agree;
- the gradient of every tied variable equals the sum of the gradients of its untied
  copies (to float tolerance), and the copies' gradients differ from each other;
- after one SGD step on the tied model, each tied variable moved by ``-lr`` times
  that sum, and an untied copy given the updated weights at every use computes
  what the tied model computes, so every use sees the updated kernel.

A template-bank model (``num_templates``) is checked against the untied model whose
every per-use kernel is set to that use's mixed kernel (:func:`assert_bank_is_real`);
a filter-basis model (``basis_size``) pairs its uses the same way
(:func:`bank_copies`; the checks are in ``test_filter_basis.py``).
"""

import keras
import numpy as np
import tensorflow as tf

from segtie.nn import FilterBasis, TemplateBank, profile
from segtie.nn.dims import CONV_CLASSES

RTOL, ATOL = 1e-4, 1e-5


def copies_of(tied, untied, image_size):
    """``{id(tied layer): (tied layer, [distinct untied layers that do its uses])}``."""
    uses_t = [u for u in profile.trace_uses(tied, image_size) if u.leaf and u.layer.weights]
    uses_u = [u for u in profile.trace_uses(untied, image_size) if u.leaf and u.layer.weights]
    assert len(uses_t) == len(uses_u), "the two graphs make different calls"
    table, owner = {}, {}
    for t, u in zip(uses_t, uses_u):
        assert type(t.layer) is type(u.layer) and t.output_shape == u.output_shape
        assert owner.setdefault(id(u.layer), id(t.layer)) == id(t.layer), (
            f"{u.layer.name} would copy two tied layers")
        entry = table.setdefault(id(t.layer), (t.layer, []))
        if all(c is not u.layer for c in entry[1]):
            entry[1].append(u.layer)
    return table


def copy_weights(table):
    for tied_layer, untied_layers in table.values():
        for layer in untied_layers:
            layer.set_weights(tied_layer.get_weights())


def _loss_and_grads(model, variables, x, weights):
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(model(x, training=True) * weights)
    return loss, tape.gradient(loss, variables)


def assert_tying_is_real(tied, untied, image_size, channels=3, lr=0.1, seed=0):
    """Run every check of the module docstring; returns the number of shared layers."""
    rng = np.random.default_rng(seed)
    x = rng.random((2, *image_size, channels), dtype=np.float32)
    out_shape = tuple(tied(x[:1]).shape[1:])
    weights = rng.standard_normal((2, *out_shape)).astype("float32")
    table = copies_of(tied, untied, image_size)
    copy_weights(table)
    np.testing.assert_allclose(tied(x, training=True), untied(x, training=True),
                               rtol=RTOL, atol=ATOL)

    pairs = [(v, [c.trainable_weights[k] for c in copies])
             for layer, copies in table.values()
             for k, v in enumerate(layer.trainable_weights)]
    tied_vars = [v for v, _ in pairs]
    untied_vars = [c for _, cs in pairs for c in cs]
    _, g_tied = _loss_and_grads(tied, tied_vars, x, weights)
    _, g_untied = _loss_and_grads(untied, untied_vars, x, weights)
    g_untied = iter(g_untied)
    sums, shared = [], 0
    for (v, cs), g in zip(pairs, g_tied):
        per_use = [next(g_untied).numpy() for _ in cs]
        sums.append(sum(per_use))
        np.testing.assert_allclose(g.numpy(), sums[-1], rtol=RTOL, atol=ATOL,
                                   err_msg=f"gradient of tied {v.path}")
        if len(cs) > 1 and v.path.endswith("kernel"):
            shared += 1
            assert not np.allclose(per_use[0], sums[-1], atol=ATOL), (
                f"the uses of {v.path} do not differ; the check proves nothing")

    before = [v.numpy() for v in tied_vars]
    opt = keras.optimizers.SGD(learning_rate=lr)
    _, g = _loss_and_grads(tied, tied_vars, x, weights)
    opt.apply_gradients(zip(g, tied_vars))
    for v, old, total in zip(tied_vars, before, sums):
        np.testing.assert_allclose(v.numpy(), old - lr * total, rtol=RTOL, atol=ATOL)
    copy_weights(table)
    np.testing.assert_allclose(tied(x, training=True), untied(x, training=True),
                               rtol=RTOL, atol=ATOL)
    return shared


def bank_copies(banked, untied, image_size):
    """Pair a template-bank (or filter-basis) model's uses with the untied model's layers.

    Returns ``(table, banks)``: ``table`` as :func:`copies_of` for every layer but
    the banks; ``banks`` ``{id(bank): (bank, {use: [untied convolutions]})}``, the
    untied convolutions that do each use of a bank (one per pass and use).
    """
    uses_b = [u for u in profile.trace_uses(banked, image_size) if u.leaf and u.layer.weights]
    uses_u = [u for u in profile.trace_uses(untied, image_size) if u.leaf and u.layer.weights]
    assert len(uses_b) == len(uses_u), "the two graphs make different calls"
    table, banks = {}, {}
    for b, u in zip(uses_b, uses_u):
        assert b.output_shape == u.output_shape
        if isinstance(b.layer, (TemplateBank, FilterBasis)):
            assert isinstance(u.layer, CONV_CLASSES)
            convs = banks.setdefault(id(b.layer), (b.layer, {}))[1].setdefault(b.use, [])
        else:
            assert type(b.layer) is type(u.layer)
            convs = table.setdefault(id(b.layer), (b.layer, []))[1]
        if all(c is not u.layer for c in convs):
            convs.append(u.layer)
    return table, banks


def assert_bank_is_real(banked, untied, image_size, channels=3, seed=0):
    """The untied model given every bank use's mixed kernel computes the same function,
    and the bank's one ``templates``/``coefficients``/``bias`` have the chain rule's
    gradients over the untied per-use kernels: ``dL/dT_j = sum_u alpha[u,j] dL/dW_u``,
    ``dL/dalpha[u,j] = <dL/dW_u, T_j>``, ``dL/dbias = sum_u dL/db_u``. The other tied
    layers are checked as :func:`assert_tying_is_real` checks them. Returns the
    number of banks."""
    rng = np.random.default_rng(seed)
    x = rng.random((2, *image_size, channels), dtype=np.float32)
    out_shape = tuple(banked(x[:1]).shape[1:])
    weights = rng.standard_normal((2, *out_shape)).astype("float32")
    table, banks = bank_copies(banked, untied, image_size)
    copy_weights(table)
    for bank, per_use in banks.values():
        for use, convs in per_use.items():
            for conv in convs:
                conv.set_weights([keras.ops.convert_to_numpy(bank.kernel_for(use)),
                                  bank.bias.numpy()])
    np.testing.assert_allclose(banked(x, training=True), untied(x, training=True),
                               rtol=RTOL, atol=ATOL)

    pairs = [(v, [c.trainable_weights[k] for c in copies]) for layer, copies in table.values()
             for k, v in enumerate(layer.trainable_weights)]
    bank_vars = [v for bank, _ in banks.values()
                 for v in (bank.templates, bank.coefficients, bank.bias)]
    per_use = [(use, conv) for _, uses in banks.values()
               for use, convs in uses.items() for conv in convs]
    untied_vars = ([c for _, cs in pairs for c in cs]
                   + [v for _, conv in per_use for v in (conv.kernel, conv.bias)])
    _, g_banked = _loss_and_grads(banked, [v for v, _ in pairs] + bank_vars, x, weights)
    _, g_untied = _loss_and_grads(untied, untied_vars, x, weights)
    g_untied = iter(g_untied)
    for (v, cs), g in zip(pairs, g_banked):
        np.testing.assert_allclose(g.numpy(), sum(next(g_untied).numpy() for _ in cs),
                                   rtol=RTOL, atol=ATOL, err_msg=f"gradient of tied {v.path}")
    g_per_use = [(use, next(g_untied).numpy(), next(g_untied).numpy()) for use, _ in per_use]
    g_bank = iter(g_banked[len(pairs):])
    for bank, uses in banks.values():
        g_templates, g_alpha, g_bias = (next(g_bank).numpy() for _ in range(3))
        d_kernel = np.zeros((bank.num_uses, *bank.kernel_shape), "float64")
        d_bias = np.zeros(bank.filters, "float64")
        for use, g_kernel, g_b in g_per_use[:sum(len(cs) for cs in uses.values())]:
            d_kernel[use] += g_kernel  # a use run by several passes: the sum of its copies
            d_bias += g_b
        g_per_use = g_per_use[sum(len(cs) for cs in uses.values()):]
        alpha, templates = bank.coefficients.numpy(), bank.templates.numpy()
        np.testing.assert_allclose(g_templates, np.tensordot(alpha.T, d_kernel, axes=1),
                                   rtol=RTOL, atol=ATOL, err_msg=f"{bank.templates.path}")
        inner = d_kernel.reshape(bank.num_uses, -1) @ templates.reshape(len(templates), -1).T
        np.testing.assert_allclose(g_alpha, inner, rtol=RTOL, atol=ATOL,
                                   err_msg=f"{bank.coefficients.path}")
        np.testing.assert_allclose(g_bias, d_bias, rtol=RTOL, atol=ATOL)
        assert sorted(uses) == list(range(bank.num_uses)), "a use of the bank was not run"
        assert not np.allclose(d_kernel[0], d_kernel[1], atol=ATOL), "uses do not differ"
    return len(banks)
