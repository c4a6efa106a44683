"""The end of a training run: what it writes when it stops early or finishes.

:func:`stop` marks a run that did not finish (``KILLED`` or ``FAILED``, and why: in
``run_info.json`` and as the MLflow tag ``segtie.stop_reason``, which a resumed run's
:func:`finish` overwrites with why it ended);
:func:`finish` writes everything after the last epoch: validation overlays, the final
metrics, the logged models (Keras flavor, and the pyfunc serving model of a 2-D
model), ``FINISHED``, ``latest`` and ``last.weights.h5``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from segtie.reports.overlays import save_overlay_grid
from segtie.training.backup import BACKUP_DIR, read_state
from segtie.training.callbacks import BestCheckpoint
from segtie.training.recorder import RunRecorder
from segtie.training.runs import point_latest, update_run_info

logger = logging.getLogger(__name__)
CONFIG_MODEL = "config"  # the `segtie.model_source` tag of a model built from config.model
__all__ = ["CONFIG_MODEL", "finish", "input_example", "stop"]

EXAMPLE_SIDE = 64  # pixels: the logged model's input example is a crop this large


def input_example(val_ds, depth: int) -> Optional[np.ndarray]:
    """A crop of the first validation image, float32 ``(1, h, w, C)``, for MLflow.

    Each spatial side (``h``, ``w``; and ``d`` of a volume ``(1, d, h, w, C)``) is at
    most :data:`EXAMPLE_SIDE` and a multiple of ``2 ** (depth - 1)``, so the U-Net
    takes the crop.
    """
    factor = 2 ** (depth - 1)
    for images, _ in val_ds.take(1):
        image = images.numpy()[:1]
        sides = [(min(side, max(factor, EXAMPLE_SIDE // factor * factor)) // factor) * factor
                 for side in image.shape[1:-1]]
        crop = (slice(None),) + tuple(slice(0, side) for side in sides)
        return image[crop].astype(np.float32) if all(sides) else None
    return None


def _middle_slice(image: np.ndarray, mask: np.ndarray):
    """A volume's middle slice along its last spatial axis (axial for RAS), the image
    min-max scaled to [0, 1] for display; a 2-D image and mask pass through."""
    if image.ndim == 3:
        return image, mask
    image = image[:, :, image.shape[2] // 2]
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low or 1.0), mask[:, :, mask.shape[2] // 2]


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
    if logits.ndim == 5:  # volumes: draw their middle slices
        pairs = [_middle_slice(i, m) for i, m in zip(images, masks)]
        images, masks = [p[0] for p in pairs], [p[1] for p in pairs]
        logits = logits[:, :, :, logits.shape[3] // 2]
    multiclass = logits.shape[-1] > 1
    if multiclass:
        preds = np.argmax(logits, axis=-1).astype(np.int32)
    else:
        preds = (logits[..., 0] > 0).astype(np.uint8)  # logit 0 == probability 0.5
    save_overlay_grid(images, masks, list(preds), path, multiclass=multiclass)
    return path


def _push_all(recorder: RunRecorder) -> Optional[bool]:
    """Push the whole journal now: ``None`` with tracking off (nothing to send), else
    whether the store took it (``False``: unreachable; ``segtie sync`` sends it later)."""
    return recorder.sync(force=True) if recorder.mirror is not None else None


def stop(recorder: RunRecorder, status: str, reason: str) -> None:
    """Mark a run that did not finish (never raises: the cause is what matters).

    Journals the tag ``segtie.stop_reason`` = ``reason`` and ``status``, pushes them,
    and writes ``status``, ``stop_reason``, ``epochs_done`` (the backup's count) and
    ``tracking_synced`` to ``run_info.json``.
    """
    try:
        recorder.set_tags({"segtie.stop_reason": reason})
        recorder.set_status(status)
        synced = _push_all(recorder)
        state = read_state(recorder.run_dir / BACKUP_DIR)
        update_run_info(recorder.run_dir, status=status, stop_reason=reason,
                        epochs_done=state["epoch"] if state else 0,
                        mlflow_run_id=recorder.run_id, tracking_synced=synced)
        logger.warning("Run %s %s: %s", recorder.run_dir, status, reason)
    except Exception as err:  # noqa: BLE001
        logger.error("Could not mark run %s %s: %s", recorder.run_dir, status, err)


def finish(recorder: RunRecorder, model, best: BestCheckpoint, val_ds, config, source: str,
            seconds: float, stop_reason: str) -> Optional[bool]:
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
    if config.model.spatial_dims == 2:  # raw images -> masks, for `mlflow models serve`
        recorder.log_model("pyfunc", "segtie.serving_uri", example=name)
    recorder.set_tags({"segtie.stop_reason": stop_reason})
    recorder.set_status("FINISHED")
    synced = _push_all(recorder)
    update_run_info(run_dir, status="FINISHED", stop_reason=stop_reason,
                    epochs_done=best.last_epoch + 1, mlflow_run_id=recorder.run_id,
                    train_seconds=seconds, tracking_synced=synced)
    point_latest(run_dir)
    state = read_state(run_dir / BACKUP_DIR)  # finished: never resumed, keep the last epoch
    if state is not None and (run_dir / BACKUP_DIR / state["weights"]).is_file():
        (run_dir / BACKUP_DIR / state["weights"]).replace(run_dir / "last.weights.h5")
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    return synced
