"""End to end: a recurrent model evaluates from every URI training leaves, in a fresh process.

A short real training of a ``num_recurrences: 2`` U-Net on Kvasir-SEG (64x64, 32
training cases, 2 epochs) tracked in a SQLite store, then ``python -m segtie evaluate``
as a subprocess (a process that has imported nothing yet, as a user's shell) on each
checkpoint spec that training prints or logs: the ``.keras`` file, ``runs:/<run
id>/model``, MLflow 3's logged-model URI ``models:/m-<id>`` (the run's tag
``segtie.model_uri``) and a registered alias ``models:/<name>@<alias>``. Each must
exit 0, evaluate with the training run's own config (image size 64, not the default
recipe's 128; its data folder, which the default recipe does not know) and tag its
evaluation run with the training run's id.
"""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import mlflow
import pytest

import segtie
from segtie import config as cfg
from segtie.training import checkpoints, train

pytestmark = pytest.mark.slow

EXPERIMENT = "e2e-recurrent"


@pytest.fixture(scope="module")
def trained(kvasir_data_config, tmp_path_factory):
    """A 2-epoch ``num_recurrences: 2`` training, tracked in a SQLite store."""
    root = tmp_path_factory.mktemp("e2e_recurrent")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    data = dataclasses.asdict(kvasir_data_config)
    data.update(image_size=[64, 64], batch_size=8, max_train_cases=32, max_eval_cases=8)
    config = cfg.from_dict({
        "data": data,
        "model": {"base_filters": 4, "depth": 3, "num_iterations": 1, "num_recurrences": 2},
        "train": {"epochs": 2, "learning_rate": 0.003, "output_dir": str(root / "runs"),
                  "seed": 3},
        "eval": {"output_dir": str(root / "eval"), "num_overlays": 1,
                 "bootstrap_samples": 100},
        "tracking": {"tracking_uri": uri, "experiment": EXPERIMENT},
    })
    result = train(config)
    return result, uri, root


def evaluate(spec: str, uri: str, root) -> subprocess.CompletedProcess:
    """``python -m segtie evaluate --checkpoint spec`` in a fresh process.

    The store is named by ``MLFLOW_TRACKING_URI`` only (no ``--set``), and the working
    directory is empty, so nothing but the training run can supply the config.
    """
    cwd = root / "cwd"
    cwd.mkdir(exist_ok=True)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri,
           "PYTHONPATH": str(Path(segtie.__file__).parents[1])}  # this checkout's segtie
    return subprocess.run([sys.executable, "-m", "segtie", "evaluate", "--checkpoint", spec],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def test_every_uri_training_leaves_evaluates_with_its_config_and_links_back(trained):
    result, uri, root = trained
    client = mlflow.MlflowClient(uri)
    train_run = client.get_run(result.mlflow_run_id)
    assert train_run.data.params["model.num_recurrences"] == "2"
    logged = train_run.data.tags["segtie.model_uri"]
    assert logged.startswith("models:/m-")
    run_info = json.loads((result.run_dir / "run_info.json").read_text())
    assert run_info["mlflow_run_id"] == result.mlflow_run_id

    mlflow.set_tracking_uri(uri)
    version = mlflow.register_model(logged, "e2e-recurrent")
    client.set_registered_model_alias("e2e-recurrent", "champion", version.version)

    specs = [str(result.checkpoint), f"runs:/{result.mlflow_run_id}/model", logged,
             "models:/e2e-recurrent@champion"]
    dice = {}
    for spec in specs:
        done = evaluate(spec, uri, root)
        assert done.returncode == 0, f"{spec}:\n{done.stderr[-3000:]}"
        assert f"training run {result.mlflow_run_id}" in done.stdout
        assert "using the default config" not in done.stderr
        exp = client.get_experiment_by_name(EXPERIMENT)
        (run,) = client.search_runs([exp.experiment_id],
                                    f"tags.`segtie.checkpoint` = "
                                    f"'{checkpoints.recorded_spec(spec)}'")
        assert run.data.tags["segtie.kind"] == "evaluate"
        assert run.data.tags["segtie.train_run_id"] == result.mlflow_run_id, spec
        assert run.data.params["image_size"] == "[64, 64]", spec  # the default is 128
        assert run.data.metrics["test_dice_num_nan"] == 0
        dice[spec] = run.data.metrics["test_dice_mean"]
    # One model (the logged model is the best checkpoint), one config: one score.
    assert max(dice.values()) - min(dice.values()) < 1e-9, dice
    assert 0.0 <= dice[logged] <= 1.0
