"""kill -9 and resume: one MLflow run, each metric step once, the uninterrupted weights.

Three trainings of the same tiny config (3 epochs) into one SQLite store:

- the reference, uninterrupted, in this process (its own output folder, experiment);
- ``python -m segtie train --config tiny.yaml`` in a subprocess, killed with SIGKILL
  as soon as the backup of its first epoch has landed;
- the same command with ``--resume``, in this process.

The resumed run must end as the reference did, bit for bit: weights and optimizer
variables (``last.weights.h5``), and every epoch's metrics (which also shows that two
processes with the same seed agree exactly).
"""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import mlflow
import numpy as np
import pytest

from segtie import cli
from segtie.training import train
from segtie.training.runs import read_run_info

from tiny_config import tiny_config, tiny_raw, write_yaml

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]


def _arrays(path):
    out = {}
    with h5py.File(path) as handle:
        handle.visititems(lambda name, item: out.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return out


def _history(run_dir):
    return list(csv.DictReader(open(run_dir / "history.csv")))


def _kill_after_first_epoch(command, runs, timeout=300):
    """Start ``command``; SIGKILL it once a backup of a completed epoch exists."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for state in runs.glob("*/backup/state.json"):
                try:
                    if json.loads(state.read_text())["epoch"] >= 1:
                        os.kill(process.pid, signal.SIGKILL)
                        process.wait()
                        return state.parent.parent
                except (OSError, ValueError):
                    pass  # being replaced this very moment
            if process.poll() is not None:
                pytest.fail(f"training ended before it was killed: {process.stderr.read()}")
            time.sleep(0.005)
    finally:
        if process.poll() is None:
            process.kill()
    pytest.fail("no backup within the timeout")


@pytest.fixture(scope="module")
def runs(kvasir_data_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking = {"enabled": True, "tracking_uri": uri}
    reference = train(tiny_config(kvasir_data_config, root / "reference", {"epochs": 3},
                                  {**tracking, "experiment": "reference"}))
    raw = tiny_raw(kvasir_data_config, root / "runs", {"epochs": 3},
                   {**tracking, "experiment": "killed"})
    config_file = write_yaml(raw, root / "tiny.yaml")
    command = [sys.executable, "-m", "segtie", "train", "--config", config_file]
    killed = _kill_after_first_epoch(command, root / "runs")
    at_kill = {"info": read_run_info(killed), "history": _history(killed)}
    assert cli.main(["train", "--config", config_file, "--resume"]) == 0
    return dict(uri=uri, reference=reference, run_dir=killed, at_kill=at_kill)


def test_the_killed_run_was_unfinished_and_resumed_in_place(runs):
    assert runs["at_kill"]["info"]["status"] == "RUNNING"  # kill -9 leaves no trace
    info = read_run_info(runs["run_dir"])
    assert info["status"] == "FINISHED" and info["epochs_done"] == 3
    (resume,) = info["resumes"]
    assert resume["from_epoch"] >= 1  # at most the epoch in progress was lost
    assert [p.name for p in runs["run_dir"].parent.iterdir() if not p.is_symlink()] == [
        runs["run_dir"].name]  # no second run folder


def test_one_mlflow_run_finished_with_each_step_once(runs):
    client = mlflow.MlflowClient(runs["uri"])
    (run,) = client.search_runs([client.get_experiment_by_name("killed").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_id == read_run_info(runs["run_dir"])["mlflow_run_id"]
    for key in ("val_dice", "val_loss", "loss", "dice", "learning_rate"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [0, 1, 2]
    assert [row["epoch"] for row in _history(runs["run_dir"])] == ["0", "1", "2"]


def test_resumed_weights_and_optimizer_equal_the_uninterrupted_run(runs):
    resumed = _arrays(runs["run_dir"] / "last.weights.h5")
    reference = _arrays(runs["reference"].run_dir / "last.weights.h5")
    assert sorted(resumed) == sorted(reference)
    assert any(name.startswith("optimizer/") for name in resumed)  # Adam's state too
    worst = max(float(np.max(np.abs(np.asarray(resumed[k], np.float64)
                                    - np.asarray(reference[k], np.float64))))
                for k in resumed)
    assert worst == 0.0


def test_same_seed_same_metrics_in_another_process_and_after_resume(runs):
    reference = _history(runs["reference"].run_dir)
    assert _history(runs["run_dir"]) == reference  # every column, every epoch, exactly
    done = len(runs["at_kill"]["history"])
    assert runs["at_kill"]["history"] == reference[:done]  # the subprocess, before the kill
