"""The fit loop: ``train(config)``, which survives kills, signals and a lost MLflow store.

``train(config)`` reads top to bottom: data -> model -> optimizer -> callbacks ->
``model.fit`` -> best checkpoint -> tracking. ``train(config, model=...)`` trains a
model built elsewhere (a peer architecture, for a comparison) with the very same
data, loss, optimizer, schedule, callbacks and tracking. Everything it writes lives
in one run folder ``<train.output_dir>/<run name>/`` (:mod:`segtie.training.runs`):

- ``config.yaml``      the resolved config
- ``best.keras``       the checkpoint with the best validation Dice (atomic writes)
- ``history.csv``      per-epoch logs (Keras' CSVLogger), each epoch once
- ``run_info.json``    status, why it stopped, the MLflow run id, tracking URI and
                        model source, read by ``segtie evaluate``
                        (:mod:`segtie.training.checkpoints`)
- ``tracking.jsonl``   everything MLflow gets, kept here first
                        (:mod:`segtie.training.recorder`)
- ``backup/``          the last completed epoch's weights, optimizer and best score
                        (:mod:`segtie.training.backup`), while the run is unfinished;
                        ``last.weights.h5`` once it finished
- ``val_overlays.png`` image / ground truth / prediction for a few validation cases

The MLflow run also gets a description, filter tags and the train/validation splits
as dataset inputs (:mod:`segtie.training.run_start`), per-epoch timing and MLflow's
system metrics (``tracking.system_metrics``). It logs the best model as ``model``
(Keras flavor) and as ``serving`` (a
pyfunc model, raw uint8 images -> masks; :meth:`segtie.tracking.Tracker.log_pyfunc_model`).

Surviving: ``train(config, resume_from=run_dir)`` continues an unfinished run from
its last completed epoch (weights, optimizer, schedule position, best score and
epoch, data order and augmentation, the same MLflow run): a kill loses at most the
epoch in progress. SIGINT/SIGTERM stop after the current step
(:class:`~segtie.training.guards.TrainingInterrupted`, run ``KILLED``); a NaN or
infinite loss stops at once (:class:`~segtie.training.guards.NonFiniteLoss`, run
``FAILED``, the last good checkpoint kept); any other exception marks the run
``FAILED``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import time
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from segtie import config as cfg
from segtie.data.pipeline import build_dataset
from segtie.losses import DiceCELoss
from segtie.metrics.validation import DiceMetric
from segtie.nn import build_model, build_training_model, check_model
from segtie.reports.overlays import save_overlay_grid
from segtie.training.backup import BACKUP_DIR, ResumableBackup, read_state
from segtie.training.callbacks import (BestCheckpoint, EpochTiming, LearningRateInLogs,
                                       TimeBudget)
from segtie.training.guards import (NonFiniteLoss, StopOnNonFiniteLoss, StopOnSignal,
                                    StopSignals, TrainingInterrupted)
from segtie.training.optimizers import make_optimizer
from segtie.training.precision import dtype_policy
from segtie.training.recorder import EpochMetrics, RunRecorder
from segtie.training.reproducibility import seed_everything
from segtie.training.run_start import (first_records, images_per_epoch, new_run, reopen,
                                       training_inputs)
from segtie.training.runs import check_resumable, new_run_dir, point_latest, update_run_info

logger = logging.getLogger(__name__)
CONFIG_MODEL = "config"  # the `segtie.model_source` tag of a model built from config.model
__all__ = ["CONFIG_MODEL", "TrainResult", "new_run_dir", "train"]


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    ``epochs_run`` counts every completed epoch (a resumed run's earlier ones too);
    ``seconds`` is the training time of all its parts; ``stop_reason`` says why it
    ended (``"completed N epochs"`` or the time budget); ``tracking_synced`` is None
    with tracking off, False when MLflow could not be reached at the end (``segtie
    sync`` sends the rest).
    """

    run_dir: Path
    checkpoint: Path
    best_val_dice: float
    epochs_run: int
    seconds: float
    num_params: int
    mlflow_run_id: Optional[str]
    stop_reason: str = ""
    resumed_from_epoch: Optional[int] = None
    tracking_synced: Optional[bool] = True


def _num_batches(dataset) -> int:
    n = int(dataset.cardinality())
    if n < 0:
        raise ValueError("The training dataset has unknown cardinality; cannot size the "
                         "learning-rate schedule")
    return n


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


def _stop(recorder: RunRecorder, status: str, reason: str) -> None:
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


def _finish(recorder: RunRecorder, model, best: BestCheckpoint, val_ds, config, source: str,
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
    # None: tracking is off (nothing to send); False: the store could not be reached
    synced = recorder.sync(force=True) if recorder.mirror is not None else None
    update_run_info(run_dir, status="FINISHED", stop_reason=stop_reason,
                    epochs_done=best.last_epoch + 1, mlflow_run_id=recorder.run_id,
                    train_seconds=seconds, tracking_synced=synced)
    point_latest(run_dir)
    state = read_state(run_dir / BACKUP_DIR)  # finished: never resumed, keep the last epoch
    if state is not None and (run_dir / BACKUP_DIR / state["weights"]).is_file():
        (run_dir / BACKUP_DIR / state["weights"]).replace(run_dir / "last.weights.h5")
    shutil.rmtree(run_dir / BACKUP_DIR, ignore_errors=True)
    return synced


def train(config: cfg.Config, model: Optional[keras.Model] = None,
          resume_from: Optional[Path] = None) -> TrainResult:
    """Train the model described by ``config``, or ``model``; see the module docstring.

    Args:
        config: the whole config. With ``model`` given, ``config.model`` is not used
            to build anything (it is still written to ``config.yaml`` and MLflow);
            the data, loss, optimizer, schedule, callbacks and tracking are the same.
            ``config.train.precision`` applies to the config's model only (a
            supplied model keeps the dtype policy it was built with).
        model: optional, a built (uncompiled or compiled: it is recompiled)
            :class:`keras.Model` mapping images to logits, trained as it is (no deep
            supervision wrapper). Its ``.keras`` checkpoint must load in Keras safe
            mode (no ``Lambda`` layers), as the best one is reloaded. Its name is
            logged as the MLflow tag ``segtie.model_source`` and in
            ``run_info.json`` (``"config"`` for the config's model).
        resume_from: optional, an unfinished run folder trained with this very
            config (:func:`segtie.training.runs.find_resumable` finds one): training
            continues from its last completed epoch, in the same MLflow run.

    Shapes:
        ``model``: images ``(batch, H, W, in_channels)`` float32 -> logits
        ``(batch, H, W, num_classes)``, ``[H, W]`` = ``data.image_size`` (or
        ``data.patch_size``).

    Returns:
        TrainResult: the run folder, best checkpoint, best validation Dice, epochs
        run, training seconds, parameter count, MLflow run id and why it stopped.

    Raises:
        FileNotFoundError: the dataset archive is missing (the message says where to
            put it), or ``resume_from`` is not a run folder.
        TypeError: ``model`` is not a ``keras.Model``.
        ValueError: ``resume_from`` is finished or was trained with another config.
        TrainingInterrupted: SIGINT or SIGTERM (the run is ``KILLED``, resumable).
        NonFiniteLoss: the loss became NaN or infinite (the run is ``FAILED``).
    """
    if model is not None and not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model or None, received "
                        f"{type(model).__name__}")
    if model is None:
        check_model(config.model)  # before any data is prepared
    if resume_from is not None:
        check_resumable(resume_from, config)
    seed_everything(config.train.seed, config.train.deterministic)
    epochs = config.train.epochs
    state = read_state(Path(resume_from) / BACKUP_DIR) if resume_from else None
    start = min(state["epoch"], epochs) if state else 0
    # The data first: a data error leaves nothing behind but its message. Epoch e's
    # order and augmentation depend on (seed, e) only, so the stream may start at e.
    first = min(start, epochs - 1)
    train_ds = build_dataset(config.data, "train", training=True, seed=config.train.seed,
                             epochs=epochs, start_epoch=first)
    val_ds = build_dataset(config.data, "validation", training=False)
    steps = _num_batches(train_ds) // (epochs - first)

    source = CONFIG_MODEL if model is None else model.name
    if model is None:  # one output (the last pass's logits); trained on every pass
        with dtype_policy(config.train.precision):
            model = build_training_model(build_model(
                config.model, config.data.patch_size or config.data.image_size,
                config.data.batch_size), config.model)
    model.compile(optimizer=make_optimizer(config.train, steps),
                  loss=DiceCELoss(config.train.dice_weight, config.train.bce_weight),
                  metrics=[DiceMetric(threshold=config.eval.threshold)])
    num_params = model.count_params()
    logger.info("Model %s (from %s): %d parameters, %d training batches per epoch",
                model.name, "the config" if source == CONFIG_MODEL else "the caller",
                num_params, steps)

    inputs = training_inputs(config.data)
    run_dir = Path(resume_from) if resume_from else new_run(config, source)
    recorder = RunRecorder(run_dir, config.tracking.enabled, config.tracking.retry_seconds)
    if resume_from:
        reopen(recorder, start)
    else:
        first_records(recorder, config, model, source, steps, inputs, source == CONFIG_MODEL)
    recorder.sync(force=True)

    t0, spent = time.monotonic(), float(state["train_seconds"]) if state else 0.0
    clock = lambda: spent + time.monotonic() - t0  # noqa: E731 - all parts of the run
    best = BestCheckpoint(run_dir / "best.keras")
    backup = ResumableBackup(run_dir / BACKUP_DIR, best, train_seconds=clock)
    budget = TimeBudget(config.train.max_minutes, spent) if config.train.max_minutes else None
    signals = StopSignals()
    # Order matters: the logs gain the rate; the epoch is saved, logged, journaled and
    # only then backed up; a stop request is honoured after the backup.
    timing = EpochTiming(images_per_epoch(config.data, inputs[0]))
    callbacks = [timing, LearningRateInLogs(), StopOnNonFiniteLoss(), best,
                 keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
                 EpochMetrics(recorder, timing), backup, *([budget] if budget else []),
                 StopOnSignal(signals)]
    try:
        with signals:
            with recorder.system_metrics(config.tracking.system_metrics,
                                         config.tracking.system_metrics_interval):
                if start < epochs:
                    model.fit(train_ds, validation_data=val_ds, epochs=epochs,
                              initial_epoch=start, steps_per_epoch=steps,
                              shuffle=False,  # the pipeline shuffles; Keras would warn
                              callbacks=callbacks, verbose=1)
                else:  # every epoch was done; a kill came during the last steps below
                    backup.set_model(model)
                    backup.restore()
            stop_reason = (budget.reason if budget and budget.reason
                           else f"completed {best.last_epoch + 1} epochs")
            synced = _finish(recorder, model, best, val_ds, config, source, clock(),
                             stop_reason)
    except TrainingInterrupted as err:
        _stop(recorder, "KILLED", str(err))
        err.run_dir = run_dir
        raise
    except KeyboardInterrupt as err:  # a second Ctrl-C, or one outside the handler
        _stop(recorder, "KILLED", "interrupted by SIGINT")
        interrupted = TrainingInterrupted(signal.SIGINT, "a second Ctrl-C")
        interrupted.run_dir = run_dir
        raise interrupted from err
    except NonFiniteLoss as err:
        _stop(recorder, "FAILED", str(err))
        err.run_dir = run_dir
        raise
    except BaseException as err:
        _stop(recorder, "FAILED", f"{type(err).__name__}: {err}")
        raise
    return TrainResult(run_dir=run_dir, checkpoint=best.path, best_val_dice=best.best,
                       epochs_run=best.last_epoch + 1, seconds=clock(), num_params=num_params,
                       mlflow_run_id=recorder.run_id, stop_reason=stop_reason,
                       resumed_from_epoch=start if resume_from else None,
                       tracking_synced=synced)
