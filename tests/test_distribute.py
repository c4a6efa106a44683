"""tf.distribute training: TF_CONFIG checks, the global batch, and the proof that two
workers on 127.0.0.1 train the weights one process trains (real Kvasir-SEG frames).

MultiWorkerMirroredStrategy must be created before TensorFlow runs anything, so every
worker is a fresh ``python -m segtie train`` subprocess; the single-process reference
runs in this process.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import mlflow
import numpy as np
import pytest

from segtie.cli.launcher import free_ports, tf_configs
from segtie.training import train
from segtie.training.distribute import parse_tf_config, per_replica_batch

from tiny_config import tiny_config, tiny_raw, write_yaml

ROOT = Path(__file__).resolve().parents[1]
TWO = {"cluster": {"worker": ["127.0.0.1:2001", "127.0.0.1:2002"]},
       "task": {"type": "worker", "index": 1}}


def _segtie(args, env_extra, timeout=300):
    """Run ``python -m segtie <args>`` with this checkout first on the path."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), os.environ.get("PYTHONPATH", "")]), **env_extra}
    return subprocess.run([sys.executable, "-m", "segtie", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def test_tf_config_parsed():
    cluster = parse_tf_config(json.dumps(TWO))
    assert cluster.addresses == ("127.0.0.1:2001", "127.0.0.1:2002")
    assert (cluster.task_type, cluster.task_index, cluster.own) == ("worker", 1, 1)
    assert not cluster.is_chief and cluster.peers == ["127.0.0.1:2001"]
    chief = parse_tf_config(json.dumps({"cluster": {"chief": ["a:1"], "worker": ["b:2"]},
                                        "task": {"type": "worker", "index": 0}}))
    assert chief.own == 1 and not chief.is_chief and chief.peers == ["a:1"]


@pytest.mark.parametrize("text, words", [
    (None, ["TF_CONFIG is not set", "--workers"]),
    ('{"cluster": {"worker": ["127.0.0.1:2001"]}, "task": ', ["not valid JSON", "line 1"]),
    ("[1, 2]", ["JSON object", "list"]),
    ('{"task": {"type": "worker", "index": 0}}', ["lacks the key(s) ['cluster']"]),
    (json.dumps({**TWO, "task": {"type": "worker", "index": 2}}),
     ["task.index must be an integer in 0..1", "received 2"]),
    (json.dumps({**TWO, "task": {"type": "chief", "index": 0}}),
     ["task.type must be one of the cluster's jobs ['worker']", "'chief'"]),
    (json.dumps({**TWO, "task": {"type": "worker"}}), ["`type` and `index`"]),
    (json.dumps({"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}),
     ["cluster.worker[0] must be 'host:port'", "'127.0.0.1'"]),
    (json.dumps({"cluster": {"worker": ["h:1", "h:1"]}, "task": {"type": "worker", "index": 0}}),
     ["its own address", "'h:1'"]),
    (json.dumps({"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}),
     ["['chief', 'worker']", "['ps']"]),
])
def test_bad_tf_config_is_a_clear_error(text, words):
    with pytest.raises(ValueError) as err:
        parse_tf_config(text)
    for word in words:
        assert word in str(err.value)


def test_global_batch_split_across_replicas():
    assert per_replica_batch(8, 2) == 4 and per_replica_batch(8, 1) == 8
    with pytest.raises(ValueError, match=r"`data.batch_size` = 7 .* by the number of "
                                         r"replicas, 2"):
        per_replica_batch(7, 2)


def test_launcher_tf_configs():
    ports = free_ports(3)
    assert len(set(ports)) == 3
    clusters = [parse_tf_config(text) for text in tf_configs(ports)]
    assert [c.own for c in clusters] == [0, 1, 2]
    assert [c.is_chief for c in clusters] == [True, False, False]
    assert clusters[2].addresses == tuple(f"127.0.0.1:{p}" for p in ports)


def test_unreachable_worker_times_out_naming_it(kvasir_data_config, tmp_path):
    """Worker 0 of a two-worker cluster whose worker 1 never starts: killed, its address."""
    path = write_yaml(tiny_raw(kvasir_data_config, tmp_path / "runs"), tmp_path / "tiny.yaml")
    own, silent = free_ports(2)
    tf_config = json.dumps({"cluster": {"worker": [f"127.0.0.1:{own}", f"127.0.0.1:{silent}"]},
                            "task": {"type": "worker", "index": 0}})
    done = _segtie(["train", "--config", path, "--set", "train.distribute=multi_worker",
                    "--set", "train.cluster_timeout_seconds=2"], {"TF_CONFIG": tf_config},
                   timeout=120)
    assert done.returncode == -9, done.stderr[-2000:]  # SIGKILL (see cluster_watchdog)
    assert f"no worker answers at 127.0.0.1:{silent}" in done.stderr
    assert "`train.cluster_timeout_seconds` = 2 s" in done.stderr
    assert not (tmp_path / "runs").exists()  # nothing written


def _read_h5(path: Path) -> dict:
    values = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda name, item: values.__setitem__(name, item[()])
                          if isinstance(item, h5py.Dataset) else None)
    return values


@pytest.mark.slow
def test_two_workers_train_what_one_process_trains(kvasir_data_config, tmp_path):
    """2 workers x 4 images = one process x 8 images: same weights, one run, one checkpoint.

    SGD, because it makes the comparison one of gradients: Adam's first steps move
    each weight by about ``lr * sign(gradient)``, and a weight whose exact gradient
    is 0 (the bias of a convolution followed by an instance norm, which subtracts it
    away) then moves by the sign of float round-off, which differs between one batch
    of 8 and two all-reduced batches of 4 (measured with Adam: 1.2e-5 on one such
    bias of size 1e-5, every other weight within 1e-5).
    """
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracking = {"enabled": True, "tracking_uri": uri, "experiment": "distribute"}
    sgd = {"optimizer": "sgd", "learning_rate": 0.05}
    raw = tiny_raw(kvasir_data_config, tmp_path / "runs", train=sgd, tracking=tracking)
    path = write_yaml(raw, tmp_path / "tiny.yaml")
    scratch = tmp_path / "worker_tmp"
    scratch.mkdir()
    done = _segtie(["train", "--workers", "2", "--config", path], {"TMPDIR": str(scratch)})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "all 2 workers finished" in done.stdout and "[worker 1] " in done.stdout

    reference = train(tiny_config(kvasir_data_config, tmp_path / "reference", train=sgd))
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if not p.is_symlink()]
    ours, theirs = (_read_h5(d / "last.weights.h5") for d in (run_dir, reference.run_dir))
    assert sorted(ours) == sorted(theirs)  # the same variables: none duplicated
    assert int(ours["optimizer/vars/0"]) == 4  # 2 epochs x 2 steps of the global batch 8
    initial = _read_h5(_initial_weights(kvasir_data_config, tmp_path))
    moved = max(float(np.max(np.abs(ours[k] - initial[k]))) for k in initial)
    assert moved > 1e-3  # the steps changed the weights: the comparison below is not vacuous
    for key in ours:
        np.testing.assert_allclose(ours[key], theirs[key], rtol=0, atol=1e-5, err_msg=key)

    info = json.loads((run_dir / "run_info.json").read_text())
    assert info["status"] == "FINISHED"
    variables = reference_variables(reference)  # in each worker: one mirrored variable each
    assert info["distribute"] == {
        "strategy": "multi_worker", "num_workers": 2, "num_replicas": 2, "global_batch": 8,
        "per_replica_batch": 4, "auto_shard_policy": "DATA",
        "trainable_variables": variables, "mirrored_variables": variables}
    runs = mlflow.MlflowClient(uri).search_runs(
        [mlflow.MlflowClient(uri).get_experiment_by_name("distribute").experiment_id])
    assert [r.info.run_id for r in runs] == [info["mlflow_run_id"]]
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "runs").rglob("*.keras")) == [
        run_dir.relative_to(tmp_path) / "best.keras"]
    assert not [p.name for p in scratch.iterdir() if p.name.startswith("segtie-")]


def _initial_weights(data_config, tmp_path) -> Path:
    """The tiny model's weights as ``train`` initialises them (seed 42), saved."""
    import keras

    from segtie.nn import build_model, build_training_model

    config = tiny_config(data_config, tmp_path / "unused")
    keras.utils.set_random_seed(config.train.seed)
    model = build_training_model(build_model(config.model, config.data.image_size), config.model)
    path = tmp_path / "initial.weights.h5"
    model.save_weights(path)
    return path


def reference_variables(result) -> int:
    """Trainable variables of the reference run's model (each tied kernel once)."""
    import keras

    return len(keras.saving.load_model(result.checkpoint).trainable_variables)


@pytest.mark.slow
def test_launcher_reports_a_failed_worker(kvasir_data_config, tmp_path):
    """A global batch of 7 for 2 replicas: each worker says so, the launch fails with 2."""
    path = write_yaml(tiny_raw(kvasir_data_config, tmp_path / "runs"), tmp_path / "tiny.yaml")
    done = _segtie(["train", "--workers", "2", "--config", path, "--set", "data.batch_size=7"],
                   {})
    assert done.returncode == 2, done.stdout[-3000:] + done.stderr[-3000:]
    assert ("[worker 0] error: `data.batch_size` = 7 (the global batch) must be divisible by "
            "the number of replicas, 2") in done.stdout
    assert "error: worker " in done.stderr and "exited with status 2" in done.stderr
    assert not (tmp_path / "runs").exists()


def test_mirrored_trains_in_one_process_with_mirrored_variables(kvasir_data_config, tmp_path):
    """``mirrored`` on a machine without GPUs: one CPU replica, every variable mirrored."""
    config = tiny_config(kvasir_data_config, tmp_path / "runs",
                         train={"epochs": 1, "distribute": "mirrored"})
    result = train(config)
    info = json.loads((result.run_dir / "run_info.json").read_text())
    variables = reference_variables(result)
    assert info["status"] == "FINISHED" and info["distribute"] == {
        "strategy": "mirrored", "num_workers": 1, "num_replicas": 1, "global_batch": 8,
        "per_replica_batch": 8, "auto_shard_policy": "DATA",
        "trainable_variables": variables, "mirrored_variables": variables}


def test_workers_must_be_positive(tmp_path):
    from segtie.cli import main

    assert main(["train", "--workers", "0"]) == 2


def test_plain_variables_are_not_counted_as_mirrored():
    import keras
    import tensorflow as tf

    from segtie.training.distribute import Distribution

    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    summary = Distribution("none", tf.distribute.get_strategy()).summary(8, layer.weights)
    assert (summary["trainable_variables"], summary["mirrored_variables"]) == (2, 0)
