"""Training loop pieces: atomic checkpoints, the schedule, and tracking failures that lose nothing."""

import dataclasses
import json

import keras
import numpy as np
import pytest

from segtie import config as cfg
from segtie.nn import build_unet
from segtie.tracking import Tracker
from segtie.training import BestCheckpoint, make_optimizer, train
from segtie.training.journal import JOURNAL_FILE, Journal

UNREACHABLE = "http://127.0.0.1:9"  # discard port: connection refused at once


def test_best_checkpoint_keeps_the_old_file_when_a_save_crashes(tmp_path):
    model = build_unet(base_filters=2, depth=2, num_iterations=2)
    path = tmp_path / "best.keras"
    callback = BestCheckpoint(path)
    callback.set_model(model)
    callback.on_epoch_end(0, {"val_dice": 0.5})
    good = path.read_bytes()

    def crash(target, *args, **kwargs):
        open(target, "wb").write(b"half a zip")
        raise OSError("disk full")

    model.save = crash
    with pytest.raises(OSError, match="disk full"):
        callback.on_epoch_end(1, {"val_dice": 0.9})
    assert path.read_bytes() == good
    assert keras.saving.load_model(path, safe_mode=True).count_params() == model.count_params()
    callback.on_epoch_end(2, {"val_dice": 0.1})  # no improvement: no save attempted


def test_best_checkpoint_names_the_missing_monitor(tmp_path):
    callback = BestCheckpoint(tmp_path / "best.keras")
    with pytest.raises(KeyError, match="val_dice"):
        callback.on_epoch_end(0, {"loss": 1.0})


def test_cosine_schedule_warms_up_then_decays_to_zero():
    train_config = cfg.TrainConfig(epochs=4, learning_rate=0.01, warmup_epochs=1)
    opt = make_optimizer(train_config, steps_per_epoch=10)
    schedule = opt._learning_rate
    values = [float(schedule(step)) for step in (0, 5, 10, 25, 40)]
    np.testing.assert_allclose(values[:3], [0.0, 0.005, 0.01], atol=1e-7)
    # Half way through the 30 decay steps: 0.01 * (1 + cos(pi/2)) / 2 = 0.005.
    np.testing.assert_allclose(values[3], 0.005, rtol=1e-5)
    assert values[4] == pytest.approx(0.0, abs=1e-9)


def test_tracker_with_unreachable_store_goes_quiet(caplog):
    tracker = Tracker(True, UNREACHABLE, "nowhere")
    assert tracker.start("run") is None
    assert not tracker.active
    tracker.log_metrics({"x": 1.0})  # no exception, no retry storm
    tracker.end()
    assert "MLflow tracking disabled" in caplog.text


@pytest.mark.slow
def test_training_survives_an_unreachable_tracking_store(kvasir_data_config, tmp_path):
    data = dataclasses.asdict(kvasir_data_config)
    data.update(image_size=[32, 32], max_train_cases=16, max_eval_cases=8)
    config = cfg.from_dict({
        "data": data, "model": {"base_filters": 4, "depth": 2},
        "train": {"epochs": 1, "output_dir": str(tmp_path)},
        "tracking": {"tracking_uri": UNREACHABLE},
    })
    result = train(config)
    assert result.mlflow_run_id is None
    assert result.checkpoint.is_file()
    assert keras.saving.load_model(result.checkpoint, safe_mode=True).count_params() \
        == result.num_params


def test_train_rejects_a_model_that_is_not_a_keras_model():
    with pytest.raises(TypeError, match="keras.Model or None, received str"):
        train(cfg.from_dict({}), model="unet")


@pytest.mark.slow
def test_training_a_supplied_model_uses_it_and_names_it(kvasir_data_config, tmp_path):
    data = dataclasses.asdict(kvasir_data_config)
    data.update(image_size=[32, 32], max_train_cases=16, max_eval_cases=8)
    config = cfg.from_dict({"data": data, "model": {"base_filters": 4, "depth": 2},
                            "train": {"epochs": 1, "output_dir": str(tmp_path)},
                            "tracking": {"enabled": False}})
    image = keras.Input((None, None, 3))
    hidden = keras.layers.Conv2D(3, 3, padding="same", activation="relu")(image)
    model = keras.Model(image, keras.layers.Conv2D(1, 1)(hidden), name="supplied_net")
    result = train(config, model=model)
    assert result.num_params == model.count_params() == 3 * 27 + 3 + 3 + 1
    assert keras.saving.load_model(result.checkpoint, safe_mode=True).name == "supplied_net"
    info = json.loads((result.run_dir / "run_info.json").read_text())
    tags = {k: v for r in Journal(result.run_dir / JOURNAL_FILE).records()
            for k, v in (r.get("tags") or {}).items()}  # tracking off: the journal has them
    assert info["model_source"] == tags["segtie.model_source"] == "supplied_net"
    assert tags["segtie.scheme"] == "supplied_net"  # not a tying scheme of config.model
    assert tags["segtie.num_iterations"] == "n/a"
    assert tags["segtie.param_bucket"] == "<10k"  # 88 weights
    assert "`supplied_net`, built by the caller" in tags["mlflow.note.content"]
    assert result.tracking_synced is None and info["tracking_synced"] is None  # not tracked


def test_precision_must_be_a_keras_policy():
    with pytest.raises(ValueError, match="precision"):
        cfg.from_dict({"train": {"precision": "float8"}})


@pytest.mark.slow
def test_mixed_bfloat16_training_computes_in_bfloat16_and_restores_the_policy(
        kvasir_data_config, tmp_path):
    data = dataclasses.asdict(kvasir_data_config)
    data.update(image_size=[32, 32], max_train_cases=16, max_eval_cases=8)
    config = cfg.from_dict({"data": data, "model": {"base_filters": 4, "depth": 2},
                            "train": {"epochs": 1, "output_dir": str(tmp_path),
                                      "precision": "mixed_bfloat16"},
                            "tracking": {"enabled": False}})
    result = train(config)
    assert keras.mixed_precision.global_policy().name == "float32"
    model = keras.saving.load_model(result.checkpoint, safe_mode=True)
    block = model.get_layer("encoder_0")
    assert block.entry_conv.compute_dtype == block.convs[0].compute_dtype == "bfloat16"
    assert block.entry_conv.kernel.dtype == "float32"  # weights stay float32
    logits = model(np.zeros((1, 32, 32, 3), "float32"))
    assert logits.dtype == "float32" and np.isfinite(np.asarray(logits)).all()
    assert np.isfinite(result.best_val_dice)
