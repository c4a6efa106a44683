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
"""

import keras
import numpy as np
import tensorflow as tf

from segtie.nn import profile

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
