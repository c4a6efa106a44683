"""MLflow as a mirror of the run folder: idempotent pushes, `segtie sync`, a new store's first use."""

import multiprocessing
import uuid

import mlflow
import pytest

from segtie import cli
from segtie.training.journal import Journal
from segtie.training.runs import read_run_info, update_run_info

from mlflow_runs import metric_steps

UNREACHABLE = "http://127.0.0.1:9"  # discard port: connection refused at once


def _run_folder(root, epochs=3, status="FINISHED"):
    """A run folder as training leaves it when the store was unreachable throughout."""
    folder = root / "kvasir_seg-20260101-000000"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("train: {epochs: 3}\n")
    update_run_info(folder, status=status, run_uid=uuid.uuid4().hex, mlflow_run_id=None,
                    tracking_uri=UNREACHABLE, experiment="mirror", start_time_ms=1_700_000_000_000)
    journal = Journal(folder / "tracking.jsonl")
    journal.append({"status": "RUNNING"})
    journal.append({"tags": {"segtie.kind": "train"}})
    journal.append({"params": {"train.epochs": 3, "train.max_minutes": None}})
    journal.append({"artifact": "config.yaml", "artifact_path": None})
    journal.append({"metrics": {"num_params": 1781}, "step": 0})
    for epoch in range(epochs):
        journal.append({"metrics": {"loss": 1.0 - 0.1 * epoch, "val_dice": 0.2 + 0.1 * epoch},
                        "step": epoch, "epoch": epoch})
    if status != "RUNNING":
        journal.append({"status": status})
    return folder, journal



def test_sync_creates_the_run_and_sends_every_step_once_however_often_it_runs(tmp_path,
                                                                              capsys):
    folder, journal = _run_folder(tmp_path)
    update_run_info(folder, tracking_synced=False)  # as training wrote it
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for _ in range(2):
        assert cli.main(["sync", str(folder), "--tracking-uri", uri]) == 0
        assert read_run_info(folder)["tracking_synced"] is True
    assert not list(folder.glob(".*.tmp"))  # run_info.json rewritten atomically
    out = capsys.readouterr().out
    assert "sent            2 params, 7 metrics, 1 tags, 1 artifacts, 0 models" in out
    assert "sent            0 params, 0 metrics, 1 tags, 0 artifacts, 0 models" in out
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("mirror").experiment_id])
    assert run.info.run_id == read_run_info(folder)["mlflow_run_id"]
    assert read_run_info(folder)["tracking_uri"] == uri
    assert run.info.status == "FINISHED"
    assert run.info.start_time == 1_700_000_000_000
    assert run.info.end_time == journal.records()[-1]["time"]
    assert metric_steps(client, run.info.run_id, "val_dice") == [0, 1, 2]
    assert [m.value for m in client.get_metric_history(run.info.run_id, "loss")] == \
        pytest.approx([1.0, 0.9, 0.8])
    assert run.data.params == {"train.epochs": "3", "train.max_minutes": "null"}
    assert run.data.tags["segtie.kind"] == "train"
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["config.yaml"]


def test_an_epoch_redone_after_a_resume_is_not_logged_twice(tmp_path):
    folder, journal = _run_folder(tmp_path, epochs=2, status="RUNNING")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    update_run_info(folder, tracking_uri=uri)
    assert cli.main(["sync", str(folder)]) == 0  # epochs 0 and 1 reached MLflow ...
    journal.drop_epochs_from(1)  # ... but the backup only held epoch 0: redo epoch 1
    for epoch in (1, 2):
        journal.append({"metrics": {"loss": 0.5, "val_dice": 0.5}, "step": epoch,
                        "epoch": epoch})
    journal.append({"status": "FINISHED"})
    assert cli.main(["sync", str(folder)]) == 0
    client = mlflow.MlflowClient(uri)
    run_id = read_run_info(folder)["mlflow_run_id"]
    assert metric_steps(client, run_id, "val_dice") == [0, 1, 2]
    assert client.get_run(run_id).info.status == "FINISHED"


def test_sync_to_an_unreachable_store_says_so_and_keeps_everything(tmp_path, capsys):
    folder, journal = _run_folder(tmp_path)
    update_run_info(folder, tracking_synced=False)
    before = journal.path.read_bytes()
    assert cli.main(["sync", str(folder)]) == 1
    assert "could not reach the MLflow store" in capsys.readouterr().err
    assert journal.path.read_bytes() == before
    assert read_run_info(folder)["tracking_synced"] is False  # not sent: still says so


def _not_a_run(root, kind):
    """A folder `segtie sync` must refuse: ``missing``, ``empty`` or ``no journal``."""
    if kind == "no journal":
        folder, journal = _run_folder(root)
        journal.path.unlink()
        return folder
    folder = root / "nosuch"
    if kind == "empty":
        folder.mkdir()
    return folder


@pytest.mark.parametrize("kind, message", [
    ("missing", "{folder}: no such folder (expected a run folder written by segtie train, "
                "runs/<dataset>-<time>)"),
    ("empty", "{folder} is not a run folder segtie can sync: it has no run_info.json with a "
              "run_uid and no journal tracking.jsonl (expected a run folder written by "
              "segtie train"),
    ("no journal", "{folder} is not a run folder segtie can sync: it has no journal "
                   "tracking.jsonl (expected"),
], ids=["missing", "empty", "no journal"])
def test_sync_of_a_folder_that_is_not_a_run_says_what_is_wrong(tmp_path, capsys, kind,
                                                               message):
    folder = _not_a_run(tmp_path, kind)
    assert cli.main(["sync", str(folder)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("error: " + message.format(folder=folder)), err
    assert "0.3" not in err  # segtie is 0.2.0: no version that does not exist


def _first_use(uri, kind, barrier, queue):
    """One process's first use of a new store: an evaluation run or a training push."""
    try:
        from segtie import tracking

        barrier.wait()
        if kind == "tracker":  # what `segtie evaluate` does
            tracker = tracking.Tracker(True, uri, "race")
            run_id = tracker.start("evaluate")
            tracker.end()
        else:  # what `segtie train` does
            mirror = tracking.RunMirror(uri, "race", "train", uuid.uuid4().hex, ".")
            mirror.push([{"metrics": {"x": 1.0}, "step": 0, "time": 0}])
            run_id = mirror.run_id
        queue.put((kind, run_id))
    except Exception as err:  # noqa: BLE001 - reported to the test
        queue.put((kind, f"error {type(err).__name__}: {err}"))


def test_two_processes_can_start_using_a_new_sqlite_store_at_once(tmp_path):
    """MLflow's schema creation races (`duplicate column name: step`); the lock serialises it.

    Two new processes (spawned, not forked: a fork of this process inherits TensorFlow's and
    MLflow's threads and any lock one of them held, and once hung CI): an evaluation's
    ``Tracker.start`` and a training's ``RunMirror.push`` on one new store at once. The
    workers are daemons and are killed on the way out, so a hung worker fails this test
    instead of keeping pytest from exiting.
    """
    context = multiprocessing.get_context("spawn")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    barrier, queue = context.Barrier(2), context.Queue()
    workers = [context.Process(target=_first_use, args=(uri, kind, barrier, queue), daemon=True)
               for kind in ("tracker", "mirror")]
    try:
        for worker in workers:
            worker.start()
        results = dict(queue.get(timeout=240) for _ in workers)
        for worker in workers:
            worker.join(timeout=60)
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.kill()
    assert all(len(run_id) == 32 for run_id in results.values()), results
    client = mlflow.MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("race").experiment_id])
    assert len(runs) == 2
