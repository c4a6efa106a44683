"""The moving average of the weights (``train.ema_momentum``): where each callback sees it.

The average is computed here by hand from the raw weights after every step
(``a_1 = w_1``, ``a_t = m a_{t-1} + (1 - m) w_t``) and compared with what validation,
the callbacks between ``enter`` and ``leave`` (the best checkpoint), those after
``leave`` (the backup) and the model after ``fit`` hold.
"""

import csv
import signal

import keras
import numpy as np
import pytest

from segtie import config as cfg
from segtie.training import TrainingInterrupted, train
from segtie.training.backup import read_state
from segtie.training.callbacks import EMAWeights
from segtie.training.optimizers import make_optimizer

from tiny_config import signal_at, tiny_config

MOMENTUM = 0.5


class _Probe(keras.callbacks.Callback):
    """Record the model's kernel after every step, at validation and at epoch ends."""

    def __init__(self):
        super().__init__()
        self.steps, self.validation, self.epoch_ends = [], [], []

    def _kernel(self):
        return np.array(self.model.layers[-1].kernel.numpy())

    def on_train_batch_end(self, batch, logs=None):
        self.steps.append(self._kernel())

    def on_test_batch_begin(self, batch, logs=None):
        self.validation.append(self._kernel())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(self._kernel())


def _hand_average(steps, momentum):
    averages = [steps[0]]
    for w in steps[1:]:
        averages.append(momentum * averages[-1] + (1 - momentum) * w)
    return averages


def test_validation_and_checkpoint_see_the_average_the_backup_the_raw_weights():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    optimizer = make_optimizer(cfg.TrainConfig(epochs=3, learning_rate=0.1, optimizer="sgd",
                                               schedule="constant", ema_momentum=MOMENTUM), 2)
    model.compile(optimizer=optimizer, loss="mse")
    x = np.random.default_rng(0).normal(size=(8, 3)).astype("float32")
    y = x @ np.array([[1.0], [-2.0], [0.5]], "float32")
    ema, raw, steps, averaged = EMAWeights(), _Probe(), _Probe(), _Probe()
    model.fit(x, y, batch_size=4, epochs=3, shuffle=False, validation_data=(x, y), verbose=0,
              callbacks=[ema.swap, steps, ema.enter, averaged, ema.leave, raw])

    assert len(steps.steps) == 6  # 2 steps an epoch, the raw weights after each
    hand = _hand_average(steps.steps, MOMENTUM)
    for epoch in range(3):
        last_step = 2 * epoch + 1
        np.testing.assert_allclose(averaged.epoch_ends[epoch], hand[last_step], rtol=1e-6)
        np.testing.assert_allclose(raw.epoch_ends[epoch], steps.steps[last_step], rtol=1e-6)
        for batch in range(2):  # both validation batches of the epoch
            np.testing.assert_allclose(steps.validation[2 * epoch + batch], hand[last_step],
                                       rtol=1e-6)
    assert not np.allclose(hand[-1], steps.steps[-1], rtol=1e-3)  # the two differ here
    np.testing.assert_allclose(model.layers[-1].kernel.numpy(), hand[-1], rtol=1e-6)


def test_no_momentum_means_no_average():
    optimizer = make_optimizer(cfg.TrainConfig(epochs=1), 1)
    assert not optimizer.use_ema
    optimizer = make_optimizer(cfg.TrainConfig(epochs=1, ema_momentum=0.99), 1)
    assert optimizer.use_ema and optimizer.ema_momentum == 0.99


def test_a_run_shorter_than_the_average_is_warned_about(caplog):
    make_optimizer(cfg.TrainConfig(epochs=1, ema_momentum=0.99), 32)  # 32 steps, ~100 averaged
    assert "averages over about 100 steps but this run has 32" in caplog.text
    caplog.clear()
    make_optimizer(cfg.TrainConfig(epochs=10, ema_momentum=0.99), 32)  # 320 steps
    assert "ema_momentum" not in caplog.text


def test_a_momentum_outside_zero_one_is_refused():
    with pytest.raises(ValueError, match="ema_momentum"):
        cfg.from_dict({"train": {"ema_momentum": 1.5}})


def _weights(path):
    return keras.saving.load_model(path, safe_mode=True).get_weights()


@pytest.mark.slow
def test_a_killed_run_with_the_average_resumes_to_the_uninterrupted_one(
        kvasir_data_config, tmp_path, monkeypatch):
    """SIGTERM after epoch 1 of 3, resume: best checkpoint, last raw weights and every
    epoch's metrics equal an uninterrupted run's (real Kvasir-SEG frames, tiny model)."""
    ema = {"epochs": 3, "ema_momentum": 0.9}
    reference = train(tiny_config(kvasir_data_config, tmp_path / "reference", ema))
    config = tiny_config(kvasir_data_config, tmp_path / "killed", ema)
    signal_at(monkeypatch, signal.SIGTERM, epoch=1, step=0)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(config)
    assert read_state(stopped.value.run_dir / "backup")["epoch"] == 1
    monkeypatch.undo()
    resumed = train(config, resume_from=stopped.value.run_dir)

    rows = [list(csv.DictReader(open(r.run_dir / "history.csv"))) for r in (reference, resumed)]
    for key in ("val_dice", "loss"):
        assert [row[key] for row in rows[0]] == [row[key] for row in rows[1]]
    for mine, theirs in zip(_weights(resumed.checkpoint), _weights(reference.checkpoint)):
        np.testing.assert_array_equal(mine, theirs)
    last = [keras.saving.load_model(r.checkpoint, safe_mode=True) for r in (reference, resumed)]
    for model, run in zip(last, (reference, resumed)):
        model.load_weights(run.run_dir / "last.weights.h5")  # the raw weights of epoch 3
    for mine, theirs in zip(last[1].get_weights(), last[0].get_weights()):
        np.testing.assert_array_equal(mine, theirs)
