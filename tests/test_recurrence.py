"""The recurrent U-Net: the gated bottleneck state, the passes, deep supervision."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from segtie.config import ModelConfig
from segtie.losses import DiceBCELoss
from segtie.metrics.validation import DiceMetric
from segtie.nn import (DeepSupervisionModel, build_model, build_training_model,
                           recurrence_weights)
from segtie.nn.recurrence import ConvGRUCell, ZeroState

MODEL = ModelConfig(base_filters=4, depth=2, num_recurrences=3, recurrence_loss_decay=0.5)
SHAPE = (2, 8, 8)


def _data(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((*SHAPE, 3), dtype=np.float32)
    y = (rng.random((*SHAPE, 1)) > 0.5).astype("float32")
    return x, y


def test_gru_cell_shapes_parameters_and_gating():
    cell = ConvGRUCell(5, name="gru")
    x, h = tf.ones((2, 4, 4, 3)), tf.fill((2, 4, 4, 5), 2.0)
    assert tuple(cell([x, h]).shape) == (2, 4, 4, 5)
    assert cell.count_params() == 9 * (3 + 5) * 10 + 10 + 9 * (3 + 5) * 5 + 5
    for w in cell.weights:
        w.assign(tf.zeros_like(w))
    # Zero weights: gates = sigmoid(0) = 1/2, candidate = tanh(0) = 0, so h' = h / 2.
    np.testing.assert_allclose(cell([x, h]), 1.0 * np.ones((2, 4, 4, 5)))
    assert ConvGRUCell.from_config(cell.get_config()).get_config() == cell.get_config()


@pytest.mark.parametrize("kwargs, key", [({"filters": 0}, "filters"),
                                         ({"filters": 2, "kernel_size": 2}, "kernel_size")])
def test_gru_cell_rejects_bad_arguments(kwargs, key):
    with pytest.raises(ValueError, match=f"`{key}`"):
        ConvGRUCell(**kwargs)


def test_zero_state_has_the_reference_shape_and_given_channels():
    zeros = ZeroState(3)(tf.ones((2, 5, 7, 4)))
    assert tuple(zeros.shape) == (2, 5, 7, 3)
    assert float(tf.reduce_max(tf.abs(zeros))) == 0.0


def test_every_pass_predicts_and_the_model_outputs_the_last():
    model = build_model(MODEL)
    x, _ = _data()
    passes = keras.Model(model.inputs, [model.get_layer(f"pass_{r}").output for r in (1, 2, 3)])
    outputs = [o.numpy() for o in passes(x, training=False)]
    np.testing.assert_allclose(model(x, training=False), outputs[-1], rtol=1e-6)
    assert not np.allclose(outputs[0], outputs[1])  # later passes see the prediction
    assert model.get_layer("bottleneck_gru") is not None
    plain = build_model(dataclasses.replace(MODEL, num_recurrences=1))
    assert "bottleneck_gru" not in {layer.name for layer in plain.layers}


@pytest.mark.parametrize("decay, expected", [(1.0, [1 / 3, 1 / 3, 1 / 3]),
                                             (0.5, [1 / 7, 2 / 7, 4 / 7]),
                                             (0.0, [0.0, 0.0, 1.0])])
def test_recurrence_weights(decay, expected):
    np.testing.assert_allclose(recurrence_weights(3, decay), expected)


def test_recurrence_weights_reject_a_bad_decay():
    with pytest.raises(ValueError, match=r"`recurrence_loss_decay` must be in \[0, 1\]"):
        recurrence_weights(2, 1.5)


def test_training_model_is_the_model_itself_without_recurrence():
    plain = dataclasses.replace(MODEL, num_recurrences=1)
    model = build_model(plain)
    assert build_training_model(model, plain) is model


def test_deep_supervision_loss_weights_every_pass(tmp_path):
    model = build_model(MODEL)
    trainer = build_training_model(model, MODEL)
    assert isinstance(trainer, DeepSupervisionModel)
    assert trainer.count_params() == model.count_params()  # shared layers, no copy
    loss = DiceBCELoss()
    trainer.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss,
                    metrics=[DiceMetric()])
    x, y = _data(1)
    passes = trainer(x, training=False)
    expected = sum(w * float(keras.ops.mean(loss(y, p)))
                   for w, p in zip(recurrence_weights(3, 0.5), passes))
    got = trainer.compute_loss(x, y, passes, training=False)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)

    logs = trainer.fit(x, y, epochs=1, batch_size=2, verbose=0).history
    assert set(logs) >= {"loss", "dice"}
    np.testing.assert_allclose(trainer.predict(x, verbose=0), model(x, training=False),
                               rtol=1e-5, atol=1e-6)
    trainer.save(tmp_path / "best.keras")  # what a checkpoint callback writes
    loaded = keras.saving.load_model(tmp_path / "best.keras", safe_mode=True)
    assert len(loaded.outputs) == 1 and tuple(loaded.outputs[0].shape) == (None, None, None, 1)
    np.testing.assert_allclose(loaded(x, training=False), model(x, training=False),
                               rtol=1e-5, atol=1e-6)
