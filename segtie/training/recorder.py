"""Tracking for a training run: the run folder's journal first, MLflow second.

:class:`RunRecorder` appends every parameter, metric, tag, artifact and model to
the run folder's journal (:mod:`segtie.training.journal`) and pushes the journal to
MLflow (:class:`segtie.tracking.RunMirror`) at the points training asks for (after
the first records, after every epoch, at the end). When the store is unreachable
or a call fails, nothing is lost: one warning says so, the journal keeps growing,
the push is retried every ``tracking.retry_seconds`` and at the end, and
``segtie sync RUN_FOLDER`` (:func:`sync_run_folder`) sends the rest later.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from pathlib import Path
from typing import Optional

import keras

from segtie.tracking import RunMirror, resolve_tracking_uri
from segtie.training.journal import JOURNAL_FILE, Journal
from segtie.training.runs import RUN_INFO, read_run_info, update_run_info

logger = logging.getLogger(__name__)

__all__ = ["EpochMetrics", "RunRecorder", "sync_run_folder"]


def _mirror(run_dir: Path, info: dict, tracking_uri: Optional[str] = None) -> RunMirror:
    uri = tracking_uri or info["tracking_uri"]
    run_id = info.get("mlflow_run_id") if uri == info["tracking_uri"] else None
    return RunMirror(uri, info["experiment"], run_dir.name, info["run_uid"], run_dir,
                     run_id=run_id, start_time=info.get("start_time_ms"))


class RunRecorder:
    """The tracking of one run folder (whose ``run_info.json`` names the store).

    Args:
        run_dir: the run folder; its ``run_info.json`` must hold ``run_uid``,
            ``tracking_uri`` and ``experiment``.
        enabled: bool; ``False`` keeps the journal and never contacts MLflow.
        retry_seconds: float >= 0, the least time between two attempts on a store
            that failed (``sync(force=True)`` ignores it).
    """

    def __init__(self, run_dir, enabled: bool, retry_seconds: float):
        self.run_dir = Path(run_dir)
        self.journal = Journal(self.run_dir / JOURNAL_FILE)
        self.mirror = _mirror(self.run_dir, read_run_info(self.run_dir)) if enabled else None
        self.retry_seconds = float(retry_seconds)
        self.records = self.journal.records()
        self.offline = False
        self._next_try = 0.0
        self._lock = threading.Lock()  # the system-metrics thread records too

    @property
    def run_id(self) -> Optional[str]:
        """The MLflow run id, once a push has found or created the run."""
        return self.mirror.run_id if self.mirror else None

    # -- records (journal only; call sync() to push) -------------------------------
    def _record(self, record: dict) -> None:
        with self._lock:
            self.records.append(self.journal.append(record))

    def log_params(self, params: dict) -> None:
        self._record({"params": dict(params)})

    def log_metrics(self, metrics: dict, step: int = 0, epoch: Optional[int] = None) -> None:
        record = {"metrics": dict(metrics), "step": int(step)}
        if epoch is not None:
            record["epoch"] = int(epoch)
        self._record(record)

    def set_tags(self, tags: dict) -> None:
        self._record({"tags": {k: str(v) for k, v in tags.items()}})

    def log_input(self, split_record: dict) -> None:
        """Record a dataset input (:func:`segtie.data.provenance.describe_split`)."""
        self._record({"input": dict(split_record)})

    @contextlib.contextmanager
    def system_metrics(self, enabled: bool, interval: float):
        """Sample MLflow's system metrics into the journal while the block runs.

        Off when ``enabled`` is false or tracking is off; a resumed run continues the
        steps (:class:`segtie.tracking.system.JournalSystemMetrics`).
        """
        if not enabled or self.mirror is None:
            yield
            return
        from segtie.tracking.system import JournalSystemMetrics, next_system_step

        sampler = JournalSystemMetrics(lambda metrics, step: self.log_metrics(metrics, step),
                                       interval, next_system_step(self.records)).start()
        try:
            yield
        finally:
            sampler.stop()

    def log_artifact(self, path, artifact_path: Optional[str] = None) -> None:
        """Record ``path`` (inside the run folder) as an artifact."""
        relative = Path(path).resolve().relative_to(self.run_dir.resolve())
        self._record({"artifact": str(relative), "artifact_path": artifact_path})

    def log_model(self, kind: str, tag: str, checkpoint: str = "best.keras",
                  config: str = "config.yaml", example: Optional[str] = None) -> None:
        """Record a model to log: ``kind`` ``"keras"`` or ``"pyfunc"``; its URI goes to ``tag``."""
        self._record({"model": kind, "tag": tag, "checkpoint": checkpoint, "config": config,
                      "example": example})

    def set_status(self, status: str) -> None:
        self._record({"status": status})

    # -- the mirror -----------------------------------------------------------------
    def sync(self, force: bool = False) -> bool:
        """Push the journal to MLflow; ``False`` if tracking is off, waiting or failed."""
        if self.mirror is None or (not force and time.monotonic() < self._next_try):
            return False
        known = self.mirror.run_id
        try:
            sent = self.mirror.push(self.records)
        except Exception as err:  # noqa: BLE001 - tracking must never stop training
            self._next_try = time.monotonic() + self.retry_seconds
            if not self.offline:
                logger.warning(
                    "MLflow store %s unavailable (%s: %s); the run's tracking data stays in "
                    "%s and is sent when the store answers (retried every %.0f s and at the "
                    "end, or later with `segtie sync %s`)", self.mirror.tracking_uri,
                    type(err).__name__, err, self.journal.path, self.retry_seconds,
                    self.run_dir)
            else:
                logger.debug("MLflow store still unavailable: %s", err)
            self.offline = True
            return False
        if self.offline:
            logger.info("MLflow store %s reachable again; sent %s", self.mirror.tracking_uri,
                        sent)
            self.offline = False
        if self.mirror.run_id != known:
            update_run_info(self.run_dir, mlflow_run_id=self.mirror.run_id)
        return True


class EpochMetrics(keras.callbacks.Callback):
    """Journal each epoch's logs (step = the 0-based epoch) and push them to MLflow.

    ``timing``: an optional :class:`segtie.training.callbacks.EpochTiming` (earlier
    in the callback list) whose figures join the epoch's metrics.

    Put it after the callbacks that add to the logs (the learning rate) and before
    the backup: a kill before the backup makes the resumed run redo the epoch, and it
    drops this epoch's journal records first (:meth:`Journal.drop_epochs_from`).
    """

    def __init__(self, recorder: RunRecorder, timing=None):
        super().__init__()
        self.recorder = recorder
        self.timing = timing

    def on_epoch_end(self, epoch, logs=None):
        figures = self.timing.figures() if self.timing is not None else {}
        self.recorder.log_metrics({**(logs or {}), **figures}, step=epoch, epoch=epoch)
        self.recorder.sync()


def sync_run_folder(run_dir, tracking_uri: Optional[str] = None) -> dict:
    """Push a run folder's journal to MLflow (``segtie sync``); safe to repeat.

    Args:
        run_dir: a run folder written by ``segtie train``.
        tracking_uri: another store than the one in ``run_info.json`` (the run is
            created there; ``run_info.json`` then names it).

    Once the push succeeded, ``run_info.json`` names the MLflow run and the store and
    says ``"tracking_synced": true`` (one atomic rewrite); a failed push leaves it as
    it was.

    Returns:
        ``{"run_id", "tracking_uri", "params", "metrics", "tags", "artifacts",
        "models"}``: what was sent (0 everywhere when the store was up to date).

    Raises:
        FileNotFoundError: ``run_dir`` does not exist, or it has no ``run_info.json``
            with a ``run_uid`` or no journal (the message names what is missing).
        Exception: what the store raises when it cannot be reached.
    """
    run_dir = Path(run_dir)
    info = read_run_info(run_dir)
    journal = Journal(run_dir / JOURNAL_FILE)
    _check_run_folder(run_dir, info, journal)
    if info.get("status") == "RUNNING":
        logger.warning("%s is RUNNING (training, or killed without a trace): syncing what "
                       "its journal holds so far", run_dir)
    uri = resolve_tracking_uri(tracking_uri) if tracking_uri else info["tracking_uri"]
    mirror = _mirror(run_dir, info, uri)
    sent = mirror.push(journal.records())
    update_run_info(run_dir, mlflow_run_id=mirror.run_id, tracking_uri=uri,
                    tracking_synced=True)
    return {"run_id": mirror.run_id, "tracking_uri": uri, **sent}


def _check_run_folder(run_dir: Path, info: dict, journal: Journal) -> None:
    """Raise ``FileNotFoundError`` unless ``run_dir`` is a run folder that can be synced."""
    expected = "expected a run folder written by segtie train, runs/<dataset>-<time>"
    if not run_dir.is_dir():
        raise FileNotFoundError(f"{run_dir}: no such folder ({expected})")
    missing = [what for what, present in (
        (f"{RUN_INFO} with a run_uid", info.get("run_uid")),
        (f"journal {JOURNAL_FILE}", journal.path.is_file())) if not present]
    if missing:
        raise FileNotFoundError(f"{run_dir} is not a run folder segtie can sync: it has no "
                                f"{' and no '.join(missing)} ({expected})")
