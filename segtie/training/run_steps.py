"""The steps of a training run around ``model.fit``: what it writes at its start, stop and end.

:func:`open_run` makes the run folder (or a worker's scratch copy, see
:mod:`segtie.training.distribute`), :func:`first_records` and :func:`reopen` start or
continue its tracking, :func:`stop` marks a run that did not finish, and
:func:`finish` writes everything after the last epoch: overlays, the final metrics,
the logged models, ``FINISHED``, ``latest`` and ``last.weights.h5``.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from segtie import config as cfg
from segtie.reports.overlays import save_overlay_grid
from segtie.tracking import resolve_tracking_uri
from segtie.training.backup import BACKUP_DIR, read_state
from segtie.training.callbacks import BestCheckpoint
from segtie.training.distribute import Distribution
from segtie.training.recorder import RunRecorder
from segtie.training.resources import resource_figures
from segtie.training.runs import (new_run_dir, point_latest, read_run_info, truncate_history,
                                  update_run_info)

logger = logging.getLogger(__name__)
CONFIG_MODEL = "config"  # the `segtie.model_source` tag of a model built from config.model
__all__ = ["CONFIG_MODEL", "finish", "first_records", "input_example", "open_run", "reopen",
           "stop"]

EXAMPLE_SIDE = 64  # pixels: the logged model's input example is a crop this large


def input_example(val_ds, depth: int) -> Optional[np.ndarray]:
    """A crop of the first validation image, float32 ``(1, h, w, C)``, for MLflow.

    ``h`` and ``w`` are at most :data:`EXAMPLE_SIDE` and multiples of
    ``2 ** (depth - 1)``, so the U-Net takes the crop.
    """
    factor = 2 ** (depth - 1)
    for images, _ in val_ds.take(1):
        image = images.numpy()[:1]
        h, w = ((min(side, max(factor, EXAMPLE_SIDE // factor * factor)) // factor) * factor
                for side in image.shape[1:3])
        return image[:, :h, :w].astype(np.float32) if h and w else None
    return None


def _save_val_overlays(model, val_ds, path: Path, count: int) -> Optional[Path]:
    if count <= 0:
        return None
    images, masks = [], []
    for x, y in val_ds.unbatch().take(count):
        images.append(x.numpy())
        masks.append(y.numpy()[..., 0])
    if not images:
        return None
    logits = model.predict(np.stack(images), verbose=0)
    multiclass = logits.shape[-1] > 1
    if multiclass:
        preds = np.argmax(logits, axis=-1).astype(np.int32)
    else:
        preds = (logits[..., 0] > 0).astype(np.uint8)  # logit 0 == probability 0.5
    save_overlay_grid(images, masks, list(preds), path, multiclass=multiclass)
    return path


def new_run(config: cfg.Config, source: str, output_dir: Path) -> Path:
    """Make the run folder, its ``config.yaml`` and ``run_info.json``."""
    run_dir = new_run_dir(output_dir, config.data.name)
    (run_dir / "config.yaml").write_text(cfg.dump_yaml(config))
    update_run_info(
        run_dir, status="RUNNING", stop_reason=None, epochs=config.train.epochs,
        epochs_done=0, run_uid=uuid.uuid4().hex, mlflow_run_id=None,
        tracking_uri=resolve_tracking_uri(config.tracking.tracking_uri),
        experiment=config.tracking.experiment or config.data.name, model_source=source,
        started=time.strftime("%Y-%m-%dT%H:%M:%S"), start_time_ms=int(time.time() * 1000),
        resumes=[])
    return run_dir


def first_records(recorder: RunRecorder, config, model, source: str, steps: int) -> None:
    recorder.set_status("RUNNING")
    recorder.set_tags({"segtie.kind": "train", "segtie.model_source": source})
    recorder.log_params(cfg.flatten(config))
    recorder.log_artifact(recorder.run_dir / "config.yaml")
    recorder.log_metrics({"num_params": model.count_params(), "steps_per_epoch": steps})
    if recorder.mirror is not None:  # the resource report's estimates (the CLI measures)
        recorder.log_metrics({f"resources.{k}": v for k, v in
                              resource_figures(model, config, measure=False).items()})


def reopen(recorder: RunRecorder, start: int) -> None:
    """A resumed run: forget the records and history rows of epochs it will redo."""
    dropped = recorder.journal.drop_epochs_from(start)
    recorder.records = recorder.journal.records()
    rows = truncate_history(recorder.run_dir / "history.csv", start)
    recorder.set_status("RUNNING")
    recorder.set_tags({"segtie.resumed_from_epoch": start})
    info = read_run_info(recorder.run_dir)
    update_run_info(recorder.run_dir, status="RUNNING", stop_reason=None,
                    resumes=info.get("resumes", []) + [
                        {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "from_epoch": start}])
    logger.info("Resuming %s at epoch %d of %d (dropped %d journal records and %d "
                "history rows of unfinished epochs)", recorder.run_dir, start + 1,
                int(info.get("epochs", 0)), dropped, rows)


def stop(recorder: RunRecorder, status: str, reason: str) -> None:
    """Mark a run that did not finish (never raises: the cause is what matters)."""
    try:
        recorder.set_status(status)
        recorder.sync(force=True)
        state = read_state(recorder.run_dir / BACKUP_DIR)
        update_run_info(recorder.run_dir, status=status, stop_reason=reason,
                        epochs_done=state["epoch"] if state else 0,
                        mlflow_run_id=recorder.run_id)
        logger.warning("Run %s %s: %s", recorder.run_dir, status, reason)
    except Exception as err:  # noqa: BLE001
        logger.error("Could not mark run %s %s: %s", recorder.run_dir, status, err)


def finish(recorder: RunRecorder, model, best: BestCheckpoint, val_ds, config, source: str,
            seconds: float, stop_reason: str) -> bool:
    """Everything after the last epoch: overlays, metrics, artifacts, models, FINISHED."""
    run_dir = recorder.run_dir
    best_model = keras.saving.load_model(best.path, safe_mode=True)
    overlays = _save_val_overlays(best_model, val_ds, run_dir / "val_overlays.png",
                                  config.eval.num_overlays)
    rate = keras.ops.convert_to_numpy(model.optimizer.learning_rate)
    recorder.log_metrics({"best_val_dice": best.best, "best_epoch": best.best_epoch + 1,
                          "train_seconds": seconds, "epochs_run": best.last_epoch + 1,
                          "final_learning_rate": float(rate)})
    if overlays:
        recorder.log_artifact(overlays)
    recorder.log_artifact(run_dir / "history.csv")
    example = input_example(val_ds, config.model.depth) if source == CONFIG_MODEL else None
    if example is not None:
        np.save(run_dir / "input_example.npy", example)
    name = "input_example.npy" if example is not None else None
    recorder.log_model("keras", "segtie.model_uri", example=name)
    # raw images -> masks, for `mlflow models serve`
    recorder.log_model("pyfunc", "segtie.serving_uri", example=name)
    recorder.set_tags({"segtie.stop_reason": stop_reason})
    recorder.set_status("FINISHED")
    synced = recorder.sync(force=True)
    update_run_info(run_dir, status="FINISHED", stop_reason=stop_reason,
                    epochs_done=best.last_epoch + 1, mlflow_run_id=recorder.run_id,
                    train_seconds=seconds, tracking_synced=synced)
    point_latest(run_dir)
    state = read_state(run_dir / BACKUP_DIR)  # finished: never resumed, keep the last epoch
    if state is not None and (run_dir / BACKUP_DIR / state["weights"]).is_file():
        (run_dir / BACKUP_DIR / state["weights"]).replace(run_dir / "last.weights.h5")
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    return synced


def open_run(config, model, source, distribution: Distribution, scratch,
              resume_from) -> Path:
    """The run folder (the chief's, or a worker's scratch copy of it) and its first records."""
    if scratch is not None and resume_from:
        run_dir = scratch / Path(resume_from).name
        shutil.copytree(resume_from, run_dir, symlinks=True)
    elif resume_from:
        run_dir = Path(resume_from)
    else:
        run_dir = new_run(config, source, scratch or Path(config.train.output_dir))
    if distribution.name != "none":
        update_run_info(run_dir, distribute=distribution.summary(
            config.data.batch_size, model.trainable_variables))
    return run_dir
