"""Deep supervision over scales (nnU-Net's): weights, subsampled labels, loss, saving."""

import dataclasses

import keras
import numpy as np
import pytest

from segtie import config as cfg
from segtie.config import ModelConfig
from segtie.losses import DiceCELoss
from segtie.metrics.validation import DiceMetric
from segtie.nn import (ScaleSupervisionModel, build_model, build_training_model, check_model,
                       saved_model_of, scale_weights)
from segtie.nn.deep_supervision import subsample
from segtie.training import train

MODEL = ModelConfig(base_filters=2, depth=4, num_iterations=2, deep_supervision=True)


def _data(seed=0, size=16):
    rng = np.random.default_rng(seed)
    x = rng.random((2, size, size, 3), dtype=np.float32)
    y = (rng.random((2, size, size, 1)) > 0.5).astype("float32")
    return x, y


@pytest.mark.parametrize("depth, expected", [(4, [2 / 3, 1 / 3]),
                                             (5, [4 / 7, 2 / 7, 1 / 7])])
def test_scale_weights_halve_per_level_and_drop_the_coarsest(depth, expected):
    np.testing.assert_allclose(scale_weights(depth), expected)


def test_scale_weights_need_a_level_between_finest_and_coarsest():
    with pytest.raises(ValueError, match="`depth` >= 4, received 3"):
        scale_weights(3)


def test_subsample_takes_the_element_after_each_blocks_centre():
    labels = np.arange(16).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(subsample(labels, 2)[0, ..., 0], [[5, 7], [13, 15]])
    np.testing.assert_array_equal(subsample(labels, 4)[0, ..., 0], [[10]])
    volume = np.arange(64).reshape(1, 4, 4, 4, 1)  # 3-D: every spatial axis
    assert subsample(volume, 2)[0, ..., 0].tolist() == [[[21, 23], [29, 31]],
                                                       [[53, 55], [61, 63]]]


def test_the_model_is_unchanged_and_only_the_trainer_has_the_heads(tmp_path):
    keras.utils.set_random_seed(0)
    model = build_model(MODEL)
    keras.utils.set_random_seed(0)
    reference = build_model(dataclasses.replace(MODEL, deep_supervision=False))
    x, y = _data()
    assert model.count_params() == reference.count_params()
    np.testing.assert_allclose(model(x), reference(x), rtol=1e-6, atol=1e-6)

    trainer = build_training_model(model, MODEL)
    assert isinstance(trainer, ScaleSupervisionModel) and saved_model_of(trainer) is model
    # one head on decoder level 1 (width 2 * 2 = 4): 4 weights and a bias
    assert trainer.count_params() == model.count_params() + 4 + 1
    full, coarse = trainer(x, training=False)
    assert full.shape == (2, 16, 16, 1) and coarse.shape == (2, 8, 8, 1)
    np.testing.assert_allclose(full, model(x, training=False), rtol=1e-6, atol=1e-6)

    trainer.save(tmp_path / "best.keras")  # what the checkpoint callback writes
    loaded = keras.saving.load_model(tmp_path / "best.keras", safe_mode=True)
    assert len(loaded.outputs) == 1 and loaded.count_params() == model.count_params()
    np.testing.assert_allclose(loaded(x, training=False), full, rtol=1e-5, atol=1e-6)


def test_loss_is_the_weighted_sum_over_scales_against_subsampled_labels():
    model = build_model(MODEL)
    trainer = build_training_model(model, MODEL)
    loss = DiceCELoss()
    trainer.compile(optimizer=keras.optimizers.SGD(0.01), loss=loss, metrics=[DiceMetric()])
    x, y = _data(1)
    full, coarse = trainer(x, training=False)
    y_coarse = y[:, 1::2, 1::2, :]  # numpy's own slicing, not segtie's subsample
    expected = (2 / 3 * float(keras.ops.mean(loss(y, full)))
                + 1 / 3 * float(keras.ops.mean(loss(y_coarse, coarse))))
    got = trainer.compute_loss(x, y, [full, coarse], training=False)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)

    head = trainer.heads[0].kernel.numpy().copy()
    logs = trainer.fit(x, y, epochs=1, batch_size=2, verbose=0).history
    assert set(logs) >= {"loss", "dice"}
    assert not np.allclose(trainer.heads[0].kernel.numpy(), head)  # the head is trained
    np.testing.assert_allclose(trainer.predict(x, verbose=0), model(x, training=False),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change, message", [
    (dict(depth=3), "`model.depth` >= 4, received 3"),
    (dict(num_recurrences=2), "cannot be combined .* num_recurrences=2"),
])
def test_impossible_deep_supervision_is_named(change, message):
    with pytest.raises(ValueError, match=message):
        check_model(dataclasses.replace(MODEL, **change))


@pytest.mark.slow
def test_training_on_real_data_with_deep_supervision_saves_the_plain_model(
        kvasir_data_config, tmp_path):
    data = dataclasses.asdict(kvasir_data_config)
    data.update(image_size=[32, 32], max_train_cases=16, max_eval_cases=8)
    config = cfg.from_dict({
        "data": data, "model": {"base_filters": 4, "depth": 4, "deep_supervision": True},
        "train": {"epochs": 2, "output_dir": str(tmp_path)}, "tracking": {"enabled": False}})
    result = train(config)
    reference = build_model(dataclasses.replace(config.model, deep_supervision=False))
    assert result.num_params == reference.count_params()  # the head is not counted
    loaded = keras.saving.load_model(result.checkpoint, safe_mode=True)
    assert loaded.count_params() == result.num_params and len(loaded.outputs) == 1
    assert 0.0 <= result.best_val_dice <= 1.0


def test_the_resumable_backup_keeps_the_heads(tmp_path):
    """The backup is the trainer's ``save_weights``: the heads resume with the rest."""
    x, y = _data(2)
    trainers = []
    for _ in range(2):
        trainer = build_training_model(build_model(MODEL), MODEL)
        trainer.compile(optimizer="adam", loss=DiceCELoss())
        trainer.fit(x, y, epochs=1, verbose=0)
        trainers.append(trainer)
    trainers[0].save_weights(tmp_path / "epoch-0001.weights.h5")
    trainers[1].load_weights(tmp_path / "epoch-0001.weights.h5")
    for a, b in zip(trainers[0].weights, trainers[1].weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)
    assert trainers[1].heads[0].kernel.path in {w.path for w in trainers[1].weights}
