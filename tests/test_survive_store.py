"""A run whose tracking store is unreachable keeps everything for ``segtie sync``, and
one whose store comes back during training sends everything to it."""

import json
import logging

import keras
import mlflow
import pytest

from segtie import cli
from segtie.training import fit, train
from segtie.training.callbacks import BestCheckpoint
from segtie.training.journal import Journal
from segtie.training.runs import read_run_info

from mlflow_runs import metric_steps, only_run
from tiny_config import tiny_config

pytestmark = pytest.mark.slow  # each trains a tiny model (5-25 s)

UNREACHABLE = "http://127.0.0.1:9"  # discard port: connection refused at once




def test_training_with_an_unreachable_store_keeps_everything_for_segtie_sync(
        kvasir_data_config, tmp_path, caplog, capsys):
    config = tiny_config(kvasir_data_config, tmp_path / "runs", {"epochs": 2},
                         {"enabled": True, "tracking_uri": UNREACHABLE, "retry_seconds": 0})
    caplog.set_level(logging.WARNING)
    result = train(config)
    assert result.mlflow_run_id is None and not result.tracking_synced
    assert caplog.text.count("MLflow store http://127.0.0.1:9 unavailable") == 1  # one warning
    assert keras.saving.load_model(result.checkpoint, safe_mode=True)
    records = Journal(result.run_dir / "tracking.jsonl").records()
    assert [r["step"] for r in records if "val_dice" in r.get("metrics", {})] == [0, 1]

    assert read_run_info(result.run_dir)["tracking_synced"] is False
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert cli.main(["sync", str(result.run_dir), "--tracking-uri", uri]) == 0
    assert read_run_info(result.run_dir)["tracking_synced"] is True
    assert cli.main(["sync", str(result.run_dir)]) == 0  # again: nothing twice
    assert read_run_info(result.run_dir)["tracking_synced"] is True
    client, run = only_run(uri, "kvasir_seg")
    assert run.info.status == "FINISHED"
    for key in ("val_dice", "loss", "learning_rate"):
        assert metric_steps(client, run.info.run_id, key) == [0, 1]
    assert metric_steps(client, run.info.run_id, "best_val_dice") == [0]
    assert run.data.params["data.image_size"] == "[32, 32]"
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {
        "config.yaml", "history.csv", "val_overlays.png"}
    mlflow.set_tracking_uri(uri)
    model = mlflow.keras.load_model(run.data.tags["segtie.model_uri"])
    assert model.count_params() == result.num_params
    assert read_run_info(result.run_dir)["mlflow_run_id"] == run.info.run_id


def test_a_store_that_comes_back_during_training_gets_everything(kvasir_data_config, tmp_path,
                                                                 monkeypatch):
    blocker = tmp_path / "store"
    blocker.write_text("a file where the store's folder should be")  # unreachable
    uri = f"sqlite:///{blocker / 'mlflow.db'}"
    config = tiny_config(kvasir_data_config, tmp_path / "runs", {"epochs": 2},
                         {"enabled": True, "tracking_uri": uri, "retry_seconds": 0})
    original = BestCheckpoint.on_epoch_end

    def store_returns(self, epoch, logs=None):
        original(self, epoch, logs)
        if epoch == 0 and blocker.is_file():
            blocker.unlink()  # the store is back for epoch 2's push

    monkeypatch.setattr(fit.BestCheckpoint, "on_epoch_end", store_returns)
    result = train(config)
    assert result.tracking_synced and result.mlflow_run_id
    client, run = only_run(uri, "kvasir_seg")
    assert run.info.status == "FINISHED"
    assert metric_steps(client, run.info.run_id, "val_dice") == [0, 1]
    assert metric_steps(client, run.info.run_id, "num_params") == [0]
    assert json.loads((result.run_dir / "run_info.json").read_text())["mlflow_run_id"] == \
        run.info.run_id
