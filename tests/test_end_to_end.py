"""End to end on the real Kvasir-SEG archive: train briefly, evaluate, read MLflow back."""

import csv
import dataclasses
import json
import logging

import mlflow
import numpy as np
import pytest

from segtie import cli
from segtie import config as cfg
from segtie.training import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(kvasir_data_config, tmp_path_factory):
    """A short real training: 64 train cases at 64x64, tracked in a SQLite store."""
    root = tmp_path_factory.mktemp("e2e")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    data = dataclasses.asdict(kvasir_data_config)
    data.update(image_size=[64, 64], batch_size=8, max_train_cases=64, max_eval_cases=16)
    config = cfg.from_dict({
        "data": data,
        "model": {"base_filters": 8, "depth": 3, "num_iterations": 2},
        "train": {"epochs": 12, "learning_rate": 0.003, "warmup_epochs": 0,
                  "output_dir": str(root / "runs"), "seed": 7},
        "eval": {"output_dir": str(root / "eval"), "num_overlays": 2},
        "tracking": {"tracking_uri": uri, "experiment": "e2e-kvasir"},
    })
    result = train(config)
    return config, result, uri, root


def test_training_writes_checkpoint_and_tracks_the_run(trained):
    config, result, uri, _ = trained
    assert result.checkpoint.is_file()
    assert (result.run_dir / "config.yaml").is_file()
    assert (result.run_dir.parent / "latest" / "best.keras").is_file()
    client = mlflow.MlflowClient(uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["model.num_iterations"] == "2"
    assert run.data.params["data.image_size"] == "[64, 64]"
    assert run.data.metrics["num_params"] == result.num_params
    assert run.data.metrics["resources.unique_params"] == result.num_params
    assert run.data.metrics["resources.flops_per_image"] > 0
    history = client.get_metric_history(result.mlflow_run_id, "val_dice")
    assert [m.step for m in history] == list(range(result.epochs_run))
    assert len(client.get_metric_history(result.mlflow_run_id, "learning_rate")) == result.epochs_run
    assert max(m.value for m in history) == pytest.approx(result.best_val_dice, abs=1e-6)
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert {"config.yaml", "val_overlays.png", "history.csv"} <= artifacts
    model = mlflow.keras.load_model(f"runs:/{result.mlflow_run_id}/model")
    assert model.count_params() == result.num_params


def test_evaluation_beats_background_and_links_the_training_run(trained):
    config, result, uri, root = trained
    code = cli.main(["evaluate", "--checkpoint", str(result.checkpoint)])
    assert code == 0
    (eval_dir,) = [p for p in (root / "eval").iterdir() if p.is_dir()]
    summary = json.loads((eval_dir / "summary.json").read_text())
    rows = list(csv.DictReader((eval_dir / "per_case.csv").open()))
    assert len(rows) == 16 and summary["dice"]["count"] == 16
    dice = np.array([float(r["dice"]) for r in rows])
    assert summary["dice"]["mean"] == pytest.approx(dice.mean(), abs=1e-6)
    # An all-background prediction scores Dice 0 on every test case (none is empty).
    assert summary["dice"]["mean"] > 0.3
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e-kvasir")
    (eval_run,) = client.search_runs([exp.experiment_id], "tags.`segtie.kind` = 'evaluate'")
    assert eval_run.data.tags["segtie.train_run_id"] == result.mlflow_run_id
    assert eval_run.data.metrics["test_dice_mean"] == pytest.approx(summary["dice"]["mean"])


def test_registered_model_evaluates_and_links_its_training_run(trained, capsys):
    config, result, uri, root = trained
    mlflow.set_tracking_uri(uri)
    version = mlflow.register_model(f"runs:/{result.mlflow_run_id}/model", "e2e-tied")
    code = cli.main(["evaluate", "--checkpoint", f"models:/e2e-tied/{version.version}",
                              "--set", f"tracking.tracking_uri={uri}",
                              "--set", f"eval.output_dir={root / 'eval-registered'}",
                              "--set", "data.max_eval_cases=4"])
    assert code == 0
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e-kvasir")
    runs = client.search_runs([exp.experiment_id],
                              "tags.`segtie.checkpoint` = 'models:/e2e-tied/1'")
    assert [r.data.tags["segtie.train_run_id"] for r in runs] == [result.mlflow_run_id]


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys, caplog):
    caplog.set_level(logging.INFO)
    code = cli.main(["evaluate", "--checkpoint", str(tmp_path / "nope.keras"),
                              "--set", "tracking.enabled=false"])
    assert code == 2
    assert "Checkpoint not found" in capsys.readouterr().err
    assert "using the default config" not in caplog.text  # no config look-up first
