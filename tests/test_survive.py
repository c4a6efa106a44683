"""A run that is stopped or fails says so: SIGTERM/SIGINT, a NaN loss, an exception,
the time budget, the target Dice (a store that is unreachable: test_survive_store.py)."""

import csv
import logging
import os
import signal
import types

import keras
import numpy as np
import pytest

from segtie import cli
from segtie import config as cfg
from segtie.training import TrainingInterrupted, fit, guards, run_end, train
from segtie.training.backup import read_state
from segtie.training.callbacks import BestCheckpoint, TargetDice
from segtie.training.journal import Journal
from segtie.training.optimizers import make_optimizer
from segtie.training.runs import read_run_info

from mlflow_runs import metric_steps, only_run
from tiny_config import signal_at, tiny_config, tiny_raw, write_yaml

pytestmark = pytest.mark.slow  # each trains a tiny model (5-25 s)

def _epochs(run_dir):
    return [int(row["epoch"]) for row in csv.DictReader(open(run_dir / "history.csv"))]



def _tags(run_dir):
    """The tags the run folder's journal gives MLflow (the last value of each)."""
    return {k: v for r in Journal(run_dir / "tracking.jsonl").records()
            for k, v in (r.get("tags") or {}).items()}



def test_sigterm_stops_after_the_step_marks_killed_and_the_run_resumes(
        kvasir_data_config, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_config(kvasir_data_config, tmp_path / "runs", {"epochs": 3},
                         {"enabled": True, "tracking_uri": uri, "experiment": "sigterm"})
    signal_at(monkeypatch, signal.SIGTERM, epoch=1, step=0)
    with pytest.raises(TrainingInterrupted) as stopped:
        train(config)
    err = stopped.value
    assert err.exit_code == 143 and "SIGTERM during epoch 2, step 1" in str(err)
    info = read_run_info(err.run_dir)
    assert info["status"] == "KILLED" and info["epochs_done"] == 1
    assert read_state(err.run_dir / "backup")["epoch"] == 1  # the completed epoch, not half
    assert _epochs(err.run_dir) == [0]
    assert keras.saving.load_model(err.run_dir / "best.keras", safe_mode=True)
    client, run = only_run(uri, "sigterm")
    assert run.info.status == "KILLED" and run.info.run_id == info["mlflow_run_id"]
    assert info["stop_reason"] == "interrupted by SIGTERM during epoch 2, step 1"
    assert run.data.tags["segtie.stop_reason"] == info["stop_reason"]  # with KILLED
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored

    monkeypatch.undo()
    result = train(config, resume_from=err.run_dir)
    assert (result.resumed_from_epoch, result.epochs_run) == (1, 3)
    client, run = only_run(uri, "sigterm")  # the same run, not a second one
    assert run.info.status == "FINISHED" and run.info.run_id == result.mlflow_run_id
    assert run.data.tags["segtie.stop_reason"] == "completed 3 epochs"  # the resumed end
    for key in ("val_dice", "loss", "learning_rate"):
        assert metric_steps(client, run.info.run_id, key) == [0, 1, 2]
    assert _epochs(result.run_dir) == [0, 1, 2]
    assert read_run_info(result.run_dir)["resumes"][0]["from_epoch"] == 1
    assert not (result.run_dir / "backup").exists()
    assert (result.run_dir / "last.weights.h5").is_file()


def test_run_info_counts_each_completed_epoch_as_a_kill_minus_9_would_find_it(
        kvasir_data_config, tmp_path, monkeypatch):
    config = tiny_config(kvasir_data_config, tmp_path / "runs", {"epochs": 2})
    seen, original = [], guards.StopOnSignal.on_train_batch_end

    def look(self, batch, logs=None):  # the folder as a kill -9 at this step leaves it
        if batch == 0:
            (run_dir,) = (tmp_path / "runs").iterdir()
            info, state = read_run_info(run_dir), read_state(run_dir / "backup") or {}
            seen.append((info["status"], info["epochs_done"], state.get("epoch", 0)))
        original(self, batch, logs)

    monkeypatch.setattr(guards.StopOnSignal, "on_train_batch_end", look)
    train(config)
    assert seen == [("RUNNING", 0, 0), ("RUNNING", 1, 1)]  # epoch 2: epoch 1 counted


@pytest.mark.parametrize("where", ["the end of the last epoch", "the run's last steps"])
def test_a_sigterm_once_every_epoch_is_done_lets_the_run_finish(
        kvasir_data_config, tmp_path, monkeypatch, caplog, where):
    config = tiny_config(kvasir_data_config, tmp_path / "runs", {"epochs": 2})
    owner, name = ((fit.BestCheckpoint, "on_epoch_end") if where.endswith("epoch")
                   else (run_end, "_save_val_overlays"))
    original = getattr(owner, name)

    def terminate(*args, **kwargs):
        if owner is run_end or args[1] == 1:  # epoch 2 of 2, before its backup
            os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, terminate)
    caplog.set_level(logging.WARNING)
    result = train(config)  # no TrainingInterrupted: there is nothing left to resume
    info = read_run_info(result.run_dir)
    assert (info["status"], info["epochs_done"], info["stop_reason"]) == (
        "FINISHED", 2, "completed 2 epochs")
    assert _tags(result.run_dir)["segtie.stop_reason"] == "completed 2 epochs"
    assert Journal(result.run_dir / "tracking.jsonl").records()[-1]["status"] == "FINISHED"
    assert (result.run_dir / "last.weights.h5").is_file()
    assert not (result.run_dir / "backup").exists()
    assert "SIGTERM received" in caplog.text and "finishing the run" in caplog.text
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_stop_request_at_an_epoch_end_is_honoured_unless_every_epoch_is_done():
    signals = guards.StopSignals()
    stopper = guards.StopOnSignal(signals)
    stopper.set_model(types.SimpleNamespace(stop_training=False))
    stopper.set_params({"epochs": 3})
    signals.requested = signal.SIGTERM
    with pytest.raises(TrainingInterrupted, match="SIGTERM during the end of epoch 2$"):
        stopper.on_epoch_end(1)
    stopper.on_epoch_end(2)  # the last epoch: the run finishes
    stopper.model.stop_training = True  # the time budget or target Dice ends it here
    stopper.on_epoch_end(0)
    stopper.on_train_end()
    assert signals.deferred and signals.finishing  # the last steps finish too


def test_ctrl_c_at_an_epoch_end_keeps_that_epoch_and_prints_how_to_resume(
        kvasir_data_config, tmp_path, monkeypatch, capsys):
    config_file = write_yaml(tiny_raw(kvasir_data_config, tmp_path / "runs", {"epochs": 3}),
                             tmp_path / "tiny.yaml")
    original = BestCheckpoint.on_epoch_end

    def interrupt(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while epoch 1 is being saved

    monkeypatch.setattr(fit.BestCheckpoint, "on_epoch_end", interrupt)
    assert cli.main(["train", "--config", config_file]) == 130
    err = capsys.readouterr().err
    assert "interrupted by SIGINT during the end of epoch 1" in err
    assert f"resume with: segtie train --config {config_file} --resume" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert read_state(run_dir / "backup")["epoch"] == 1  # epoch 1 was completed: kept
    assert read_run_info(run_dir)["status"] == "KILLED"
    assert Journal(run_dir / "tracking.jsonl").records()[-1]["status"] == "KILLED"


def test_a_nan_loss_stops_at_once_fails_the_run_and_keeps_the_good_checkpoint(
        kvasir_data_config, tmp_path, monkeypatch, capsys):
    config = tiny_config(kvasir_data_config, tmp_path / "runs", {"epochs": 3})
    config_file = write_yaml(cfg.to_dict(config), tmp_path / "tiny.yaml")
    original, saved = BestCheckpoint.on_epoch_end, {}

    def diverge(self, epoch, logs=None):  # after epoch 1, the weights blow up
        original(self, epoch, logs)
        if epoch == 0:
            saved["best"] = self.path.read_bytes()
            kernel = self.model.get_layer("logits").kernel
            kernel.assign(np.full(kernel.shape, np.nan, "float32"))

    monkeypatch.setattr(fit.BestCheckpoint, "on_epoch_end", diverge)
    assert cli.main(["train", "--config", config_file]) == 1
    err = capsys.readouterr().err
    rate = float(make_optimizer(config.train, steps_per_epoch=2)._learning_rate(2))
    assert f"error: training loss is nan at epoch 2, step 1 (learning rate {rate:.6g})" in err
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "best.keras").read_bytes() == saved["best"]  # never saved as best
    assert read_state(run_dir / "backup")["epoch"] == 1
    info = read_run_info(run_dir)
    assert info["status"] == "FAILED" and "loss is nan at epoch 2, step 1" in info["stop_reason"]
    assert _tags(run_dir)["segtie.stop_reason"] == info["stop_reason"]  # the MLflow tag
    assert _epochs(run_dir) == [0]


def test_an_exception_after_the_last_epoch_marks_the_run_failed(kvasir_data_config, tmp_path,
                                                                monkeypatch, caplog):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    config = tiny_config(kvasir_data_config, tmp_path / "runs", {"epochs": 1},
                         {"enabled": True, "tracking_uri": uri, "experiment": "crash"})

    def crash(*args, **kwargs):
        raise OSError("disk full while writing the overlays")

    monkeypatch.setattr(run_end, "_save_val_overlays", crash)
    with pytest.raises(OSError, match="disk full"):
        train(config)
    _, run = only_run(uri, "crash")
    assert run.info.status == "FAILED"  # never FINISHED, never left RUNNING
    (run_dir,) = (tmp_path / "runs").iterdir()
    info = read_run_info(run_dir)
    assert (info["status"], info["epochs_done"]) == ("FAILED", 1)
    assert info["stop_reason"] == "OSError: disk full while writing the overlays"
    assert run.data.tags["segtie.stop_reason"] == info["stop_reason"]

    monkeypatch.undo()  # resumed: nothing to train again, only the last steps
    caplog.set_level(logging.INFO)
    result = train(config, resume_from=run_dir)
    assert (result.resumed_from_epoch, result.epochs_run) == (1, 1)
    assert "after its last epoch (1 of 1 done): finishing the run" in caplog.text
    assert "at epoch 2 of 1" not in caplog.text
    _, run = only_run(uri, "crash")
    assert run.info.status == "FINISHED"
    assert run.data.tags["segtie.stop_reason"] == "completed 1 epoch"


def test_a_run_cut_short_by_the_time_budget_says_so_everywhere(kvasir_data_config, tmp_path,
                                                               caplog, capsys):
    raw = tiny_raw(kvasir_data_config, tmp_path / "runs", {"epochs": 3, "max_minutes": 1e-5})
    caplog.set_level(logging.WARNING)
    assert cli.main(["train", "--config", write_yaml(raw, tmp_path / "t.yaml")]) == 0
    reason = "time budget train.max_minutes=1e-05 reached after epoch 1 of 3"
    assert f"WARNING: {reason}: fewer epochs than the config asks for" in capsys.readouterr().err
    assert reason in caplog.text
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    info = read_run_info(run_dir)
    assert (info["status"], info["stop_reason"], info["epochs_done"]) == ("FINISHED", reason, 1)
    assert _tags(run_dir)["segtie.stop_reason"] == reason  # the MLflow tag


def test_a_run_stopped_at_its_target_dice_is_finished_and_says_when(
        kvasir_data_config, tmp_path, capsys):
    raw = tiny_raw(kvasir_data_config, tmp_path / "runs", {"epochs": 3,
                                                           "target_val_dice": 0.0})
    assert cli.main(["train", "--config", write_yaml(raw, tmp_path / "t.yaml")]) == 0
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    info = read_run_info(run_dir)
    assert (info["status"], info["epochs_done"]) == ("FINISHED", 1)
    assert info["stop_reason"].startswith("validation Dice ")
    assert "reached train.target_val_dice=0 after epoch 1 of 3 (" in info["stop_reason"]
    assert "WARNING" not in capsys.readouterr().err


def test_the_target_dice_callback_stops_at_the_first_epoch_that_reaches_it():
    stopper = TargetDice(0.75, clock=lambda: 90.0)
    stopper.set_model(types.SimpleNamespace(stop_training=False))
    stopper.set_params({"epochs": 24})
    for epoch, dice in enumerate([0.5, float("nan"), 0.7499]):
        stopper.on_epoch_end(epoch, {"val_dice": dice})
        assert stopper.reason is None and not stopper.model.stop_training
    stopper.on_epoch_end(3, {"val_dice": 0.75})
    assert stopper.model.stop_training and stopper.stopped_after == 4
    assert stopper.reason == ("validation Dice 0.7500 reached train.target_val_dice=0.75 "
                              "after epoch 4 of 24 (1.5 min of training)")


def test_the_recipes_have_no_time_cap():
    for name in cfg.recipe_names():
        assert cfg.load_config(name).train.max_minutes is None, name
