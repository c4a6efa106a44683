"""The resumable backup: optimizer state included, atomic against kills, bounded on disk."""

import json

import keras
import numpy as np
import pytest

from segtie.training.backup import STATE_FILE, ResumableBackup, read_state
from segtie.training.callbacks import BestCheckpoint


def _model(seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.CosineDecay(0.05, decay_steps=40)
    model.compile(keras.optimizers.Adam(schedule), loss="mse")
    return model


DATA = (np.random.default_rng(0).random((16, 4), dtype=np.float32),
        np.random.default_rng(1).random((16, 1), dtype=np.float32))


def _fit(model, backup, epochs, initial_epoch=0):
    model.fit(*DATA, batch_size=4, epochs=epochs, initial_epoch=initial_epoch, verbose=0,
              shuffle=False, callbacks=[backup.best, backup])


def _backup(folder, path=None):
    best = BestCheckpoint(path or folder.parent / "best.keras", monitor="loss")
    return ResumableBackup(folder, best)


def test_restore_brings_back_weights_adam_moments_step_count_and_schedule(tmp_path):
    trained = _model()
    backup = _backup(tmp_path / "backup")
    _fit(trained, backup, epochs=2)
    state = read_state(tmp_path / "backup")
    assert state["epoch"] == 2 and state["best"]["epoch"] == backup.best.best_epoch

    fresh = _model(seed=1)  # other initial weights, optimizer not built
    restored = _backup(tmp_path / "backup")
    restored.set_model(fresh)
    restored.restore()
    assert int(fresh.optimizer.iterations) == int(trained.optimizer.iterations) == 8
    assert len(fresh.optimizer.variables) == len(trained.optimizer.variables) == 9
    for a, b in zip(trained.optimizer.variables, fresh.optimizer.variables):  # m and v too
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    for a, b in zip(trained.weights, fresh.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert float(fresh.optimizer.learning_rate) == float(trained.optimizer.learning_rate)
    assert restored.best.best == backup.best.best
    assert restored.best.best_epoch == backup.best.best_epoch


def test_resumed_fit_equals_uninterrupted_fit_exactly(tmp_path):
    straight = _model()
    _fit(straight, _backup(tmp_path / "a"), epochs=4)
    first = _model()
    _fit(first, _backup(tmp_path / "b"), epochs=2)
    again = _model(seed=5)
    backup = _backup(tmp_path / "b")
    _fit(again, backup, epochs=4, initial_epoch=read_state(tmp_path / "b")["epoch"])
    for a, b in zip(straight.weights + straight.optimizer.variables,
                    again.weights + again.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_a_crash_while_writing_keeps_the_last_complete_state(tmp_path):
    model = _model()
    backup = _backup(tmp_path / "backup")
    _fit(model, backup, epochs=2)
    before = (tmp_path / "backup" / STATE_FILE).read_text()

    def crash(filepath, overwrite=True):
        open(filepath, "wb").write(b"half an h5 file")
        raise OSError("killed mid-write")

    model.save_weights = crash
    with pytest.raises(OSError, match="mid-write"):
        backup.on_epoch_end(2)
    assert (tmp_path / "backup" / STATE_FILE).read_text() == before
    fresh = _model(seed=3)
    restored = _backup(tmp_path / "backup")
    restored.set_model(fresh)
    assert restored.restore()["epoch"] == 2
    for a, b in zip(model.weights, fresh.weights):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    # The next save removes the half-written temporary file.
    del model.save_weights
    backup.on_epoch_end(2)
    assert not list((tmp_path / "backup").glob(".*tmp*"))


def test_a_damaged_weights_file_falls_back_to_the_previous_epoch(tmp_path):
    model = _model()
    backup = _backup(tmp_path / "backup")
    _fit(model, backup, epochs=3)
    state = read_state(tmp_path / "backup")
    (tmp_path / "backup" / state["weights"]).write_bytes(b"not hdf5")
    restored = _backup(tmp_path / "backup")
    restored.set_model(_model(seed=2))
    assert restored.restore()["epoch"] == 2  # the previous epoch's state
    assert restored._current_epoch == 2


def test_no_readable_weights_is_an_error_naming_the_files(tmp_path):
    folder = tmp_path / "backup"
    folder.mkdir()
    (folder / STATE_FILE).write_text(json.dumps({"epoch": 1, "weights": "gone.weights.h5"}))
    restored = _backup(folder)
    restored.set_model(_model())
    with pytest.raises(ValueError, match=r"gone\.weights\.h5.*delete"):
        restored.restore()


def test_the_backup_folder_holds_two_weights_files_whatever_the_epochs(tmp_path):
    backup = _backup(tmp_path / "backup")
    _fit(_model(), backup, epochs=6)
    names = sorted(p.name for p in (tmp_path / "backup").iterdir())
    assert names == ["epoch-0005.weights.h5", "epoch-0006.weights.h5", STATE_FILE]
    state = read_state(tmp_path / "backup")
    assert state["previous"]["epoch"] == 5 and "previous" not in state["previous"]


def test_a_torn_state_file_means_no_state(tmp_path):
    (tmp_path / STATE_FILE).write_text('{"epoch": 3, "weigh')
    assert read_state(tmp_path) is None
    assert read_state(tmp_path / "missing") is None
