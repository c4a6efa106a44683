"""Push a training run folder's journal to one MLflow run, idempotently."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from segtie.tracking.inputs import log_dataset_inputs
from segtie.tracking.store import open_experiment
from segtie.tracking.tracker import Tracker

__all__ = ["RunMirror"]

logger = logging.getLogger(__name__)


class RunMirror:
    """Push a run folder's journal (:mod:`segtie.training.journal`) to one MLflow run.

    The journal is the record; the MLflow run is a mirror that receives, on each
    :meth:`push`, only what it lacks: parameters it does not hold, dataset inputs
    (name, digest, context) it does not hold, metric
    ``(key, step)`` pairs it does not hold, artifacts missing or of another size,
    models whose URI tag is absent, and the journal's last status. Pushing the same
    journal twice changes nothing, so a retry after a failure, a resumed run
    re-logging an epoch, or ``segtie sync`` after training never duplicates a step.

    The run is found by its id, else by the tag ``segtie.run_uid`` (a run folder's
    own id, so a run created by a push whose reply was lost is found, not made
    twice), else created with the journal's start time.

    Args:
        tracking_uri: the store (resolved, :func:`resolve_tracking_uri`).
        experiment: experiment name.
        run_name: the MLflow run name (the run folder's name).
        run_uid: the run folder's id (``run_info.json``).
        base_dir: the run folder; artifact and model paths are relative to it.
        run_id: the MLflow run id when known.
        start_time: Unix milliseconds, the run's start, used when creating it.
    """

    UID_TAG = "segtie.run_uid"
    TERMINAL = ("FINISHED", "KILLED", "FAILED")

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, run_uid: str,
                 base_dir, run_id: Optional[str] = None, start_time: Optional[int] = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.run_uid = run_uid
        self.base_dir = Path(base_dir)
        self.run_id = run_id
        self.start_time = start_time
        self.confirmed = 0  # records[:confirmed] are known to be in the store

    def push(self, records: list) -> dict:
        """Send what the run lacks of ``records`` (the whole journal, in order).

        Returns:
            Counts of what was sent: ``{"params", "metrics", "tags", "artifacts",
            "models", "inputs"}`` (inputs: dataset inputs, :mod:`segtie.tracking.inputs`).

        Raises:
            Exception: whatever the store raises (unreachable, locked, refused); the
                next push starts over from the first record not confirmed.
        """
        client, exp_id = open_experiment(self.tracking_uri, self.experiment)
        run = self._run(client, exp_id)
        count = len(records)  # records may grow meanwhile (the system-metrics thread)
        pending = records[self.confirmed:count]
        sent = {"params": 0, "metrics": 0, "tags": 0, "artifacts": 0, "models": 0,
                "inputs": 0}
        sent["params"] = self._push_params(client, run, pending)
        sent["metrics"] = self._push_metrics(client, pending)
        tags = {k: str(v) for r in pending for k, v in (r.get("tags") or {}).items()}
        if tags:
            self._log_batch(client, tags=tags)
            sent["tags"] = len(tags)
        sent["inputs"] = log_dataset_inputs(client, self.run_id,
                                            [r["input"] for r in pending if r.get("input")])
        sent["artifacts"] = self._push_artifacts(client, pending)
        sent["models"] = self._push_models(client, pending)
        statuses = [r["status"] for r in records[:count] if r.get("status")]
        self._set_status(client, statuses[-1] if statuses else "RUNNING", records[:count])
        self.confirmed = count
        return sent

    # -- the run --------------------------------------------------------------------
    def _run(self, client, exp_id):
        if self.run_id:
            return client.get_run(self.run_id)
        found = client.search_runs([exp_id], f"tags.`{self.UID_TAG}` = '{self.run_uid}'",
                                   max_results=1)
        run = found[0] if found else client.create_run(
            exp_id, start_time=self.start_time, run_name=self.run_name,
            tags={self.UID_TAG: self.run_uid})
        self.run_id = run.info.run_id
        return run

    def _log_batch(self, client, metrics=(), params=(), tags=None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        batches = ([("metrics", [Metric(*m) for m in metrics], 1000),
                    ("params", [Param(k, v) for k, v in params], 100),
                    ("tags", [RunTag(k, v) for k, v in (tags or {}).items()], 100)])
        for kind, items, limit in batches:  # MLflow's limits per log_batch call
            for i in range(0, len(items), limit):
                client.log_batch(self.run_id, **{kind: items[i:i + limit]})

    def _push_params(self, client, run, pending) -> int:
        held = run.data.params
        wanted = {k: "null" if v is None else str(v)
                  for r in pending for k, v in (r.get("params") or {}).items()}
        for key in [k for k in wanted if k in held and held[k] != wanted[k]]:
            logger.warning("MLflow run %s holds param %s=%r, the journal %r; kept the "
                           "run's", self.run_id, key, held[key], wanted.pop(key))
        missing = [(k, v) for k, v in wanted.items() if k not in held]
        if missing:
            self._log_batch(client, params=missing)
        return len(missing)

    def _push_metrics(self, client, pending) -> int:
        wanted = {}
        for r in pending:
            for key, value in (r.get("metrics") or {}).items():
                wanted.setdefault(key, {})[int(r.get("step", 0))] = (float(value),
                                                                     int(r["time"]))
        rows = []
        for key, steps in wanted.items():
            held = {m.step for m in client.get_metric_history(self.run_id, key)}
            rows += [(key, value, stamp, step) for step, (value, stamp) in sorted(steps.items())
                     if step not in held]
        if rows:
            self._log_batch(client, metrics=rows)
        return len(rows)

    def _push_artifacts(self, client, pending) -> int:
        count = 0
        for r in (r for r in pending if r.get("artifact")):
            local = self.base_dir / r["artifact"]
            if not local.is_file():
                logger.warning("Journal artifact %s is missing; not sent", local)
                continue
            folder = r.get("artifact_path")
            held = {Path(f.path).name: f.file_size for f in client.list_artifacts(
                self.run_id, folder)}
            if held.get(local.name) != local.stat().st_size:
                client.log_artifact(self.run_id, str(local), folder)
                count += 1
        return count

    def _push_models(self, client, pending) -> int:
        records = [r for r in pending if r.get("model")]
        held = client.get_run(self.run_id).data.tags if records else {}
        count = 0
        for r in (r for r in records if r["tag"] not in held):
            uri = self._log_model(r)
            self._log_batch(client, tags={r["tag"]: uri})
            count += 1
        return count

    def _log_model(self, record: dict) -> str:
        """Log one model record with :class:`Tracker`'s code, inside this run."""
        import mlflow

        checkpoint = self.base_dir / record["checkpoint"]
        example = record.get("example")
        example = np.load(self.base_dir / example) if example else None
        log = getattr(Tracker, f"log_{record['model']}_model").__wrapped__  # raises
        tracker = Tracker(True, self.tracking_uri, self.experiment)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.start_run(run_id=self.run_id)
        try:
            if record["model"] == "keras":
                return log(tracker, keras.saving.load_model(checkpoint, safe_mode=True),
                           example)
            return log(tracker, checkpoint, self.base_dir / record["config"], example)
        finally:
            mlflow.end_run()  # the status is set right after, from the journal

    def _set_status(self, client, status: str, records: list) -> None:
        run = client.get_run(self.run_id)
        if status in self.TERMINAL:
            ended = [r["time"] for r in records if r.get("status") == status][-1]
            if run.info.status != status or run.info.end_time != ended:
                client.set_terminated(self.run_id, status, end_time=ended)
        elif run.info.status != status:
            client.update_run(self.run_id, status=status)
