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
epoch in progress; after each epoch's backup ``run_info.json``'s ``epochs_done`` is
updated, so even a kill -9 leaves a true count. SIGINT/SIGTERM stop after the current
step (:class:`~segtie.training.guards.TrainingInterrupted`, run ``KILLED``), unless
every epoch is done: then the run finishes (``FINISHED``; a second signal stops at
once). A NaN or infinite loss stops at once
(:class:`~segtie.training.guards.NonFiniteLoss`, run ``FAILED``, the last good
checkpoint kept); any other exception marks the run ``FAILED``.
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

from segtie import config as cfg
from segtie.data.pipeline import build_dataset
from segtie.losses import DiceCELoss
from segtie.metrics.validation import DiceMetric
from segtie.nn import build_model, build_training_model, check_model, saved_model_of
from segtie.training.backup import BACKUP_DIR, ResumableBackup, read_state
from segtie.training.callbacks import (BestCheckpoint, EMAWeights, EpochTiming,
                                       LearningRateInLogs, TargetDice, TimeBudget)
from segtie.training.checkpoints import initialize_from
from segtie.training.distribute import (build_distribution, distribute_dataset,
                                        per_replica_batch, worker_folder)
from segtie.training.guards import (NonFiniteLoss, StopOnNonFiniteLoss, StopOnSignal,
                                    StopSignals, TrainingInterrupted)
from segtie.training.optimizers import make_optimizer
from segtie.training.precision import dtype_policy
from segtie.training.recorder import EpochMetrics, RunRecorder
from segtie.training.reproducibility import seed_everything
from segtie.training.run_end import CONFIG_MODEL, finish, stop
from segtie.training.run_start import (first_records, images_per_epoch, open_run, reopen,
                                       training_inputs)
from segtie.training.runs import check_resumable, new_run_dir, update_run_info

logger = logging.getLogger(__name__)
__all__ = ["CONFIG_MODEL", "TrainResult", "new_run_dir", "train"]


@dataclasses.dataclass
class TrainResult:
    """What a training run produced.

    ``epochs_run`` counts every completed epoch (a resumed run's earlier ones too);
    ``seconds`` is the training time of all its parts; ``stop_reason`` says why it
    ended (``"completed N epochs"`` or the time budget); ``tracking_synced`` is None
    with tracking off, False when MLflow could not be reached at the end (``segtie
    sync`` sends the rest); ``is_chief`` is False on a multi-worker run's other workers.
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
    is_chief: bool = True


def _num_batches(dataset) -> int:
    n = int(dataset.cardinality())
    if n < 0:
        raise ValueError("The training dataset has unknown cardinality; cannot size the "
                         "learning-rate schedule")
    return n


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
    # multi_worker must join its cluster before TensorFlow runs anything else
    distribution = build_distribution(config.train.distribute,
                                      config.train.cluster_timeout_seconds)
    per_replica_batch(config.data.batch_size, distribution.num_replicas)
    if distribution.num_workers > 1 and config.train.max_minutes:
        raise ValueError(f"`train.max_minutes` = {config.train.max_minutes} cannot be used "
                         f"with `train.distribute` = 'multi_worker' (each worker's clock "
                         f"would decide alone when to stop); set it to null")
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
    with distribution.strategy.scope():  # variables, optimizer slots and metrics mirrored
        if model is None:  # one output (the last pass's logits); trained on every pass
            with dtype_policy(config.train.precision):
                model = build_training_model(build_model(
                    config.model, config.data.patch_size or config.data.image_size,
                    config.data.batch_size), config.model)
        if config.train.init_from and state is None:  # a resumed run keeps its own
            initialize_from(saved_model_of(model), config.train.init_from,
                            config.tracking.tracking_uri)
        model.compile(optimizer=make_optimizer(config.train, steps),
                      loss=DiceCELoss(config.train.dice_weight, config.train.bce_weight),
                      metrics=[DiceMetric(threshold=config.eval.threshold)])
    num_params = saved_model_of(model).count_params()
    if config.data.train_on_validation:
        logger.warning("data.train_on_validation: training on the train and validation cases; "
                       "validation Dice scores seen images (optimistic)")
    logger.info("Model %s (from %s): %d parameters, %d training batches per epoch",
                model.name, "the config" if source == CONFIG_MODEL else "the caller",
                num_params, steps)
    # Workers other than the chief write into a folder of their own, deleted at the end
    scratch = None if distribution.is_chief else worker_folder(distribution)
    try:
        return _train_run(config, model, source, distribution, scratch, resume_from, state,
                          start, steps, train_ds, val_ds)
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _train_run(config, model, source, distribution, scratch, resume_from, state, start, steps,
               train_ds, val_ds) -> TrainResult:
    """``train`` from the run folder on: callbacks, ``fit``, the best model, tracking."""
    epochs, num_params = config.train.epochs, saved_model_of(model).count_params()
    inputs = training_inputs(config.data)
    run_dir = open_run(config, model, source, distribution, scratch, resume_from)
    recorder = RunRecorder(run_dir, config.tracking.enabled and distribution.is_chief,
                           config.tracking.retry_seconds)
    if resume_from:
        reopen(recorder, start)
    else:
        first_records(recorder, config, model, source, steps, inputs, source == CONFIG_MODEL)
    recorder.sync(force=True)

    t0, spent = time.monotonic(), float(state["train_seconds"]) if state else 0.0
    clock = lambda: spent + time.monotonic() - t0  # noqa: E731 - all parts of the run
    best = BestCheckpoint(run_dir / "best.keras")
    backup = ResumableBackup(run_dir / BACKUP_DIR, best, train_seconds=clock,
                             on_saved=lambda done: update_run_info(run_dir, epochs_done=done))
    budget = TimeBudget(config.train.max_minutes, spent) if config.train.max_minutes else None
    target = (TargetDice(config.train.target_val_dice, clock)
              if config.train.target_val_dice is not None else None)
    stoppers = [c for c in (budget, target) if c]
    signals = StopSignals()
    # Order matters: the logs gain the rate; the epoch is saved, logged, journaled and
    # only then backed up; a stop request is honoured after the backup.
    timing = EpochTiming(images_per_epoch(config.data, inputs[0]))
    ema = EMAWeights() if config.train.ema_momentum else None  # best: the average
    callbacks = [c for c in (
        ema and ema.swap, timing, LearningRateInLogs(), StopOnNonFiniteLoss(),
        ema and ema.enter, best,
        keras.callbacks.CSVLogger(str(run_dir / "history.csv"), append=True),
        EpochMetrics(recorder, timing), ema and ema.leave, backup, *stoppers,
        StopOnSignal(signals)) if c]
    try:
        with signals, recorder.system_metrics(config.tracking.system_metrics,
                                              config.tracking.system_metrics_interval):
            if start < epochs:
                fit_train, fit_val = train_ds, val_ds
                if distribution.num_replicas > 1:  # global batch k = single-process batch k
                    fit_train, fit_val = (distribute_dataset(distribution.strategy, ds)
                                          for ds in (train_ds, val_ds))
                model.fit(fit_train, validation_data=fit_val, epochs=epochs,
                          initial_epoch=start, steps_per_epoch=steps,
                          shuffle=False,  # the pipeline shuffles; Keras would warn
                          callbacks=callbacks, verbose=1)
            else:  # every epoch was done; a kill came during the last steps below
                signals.let_finish()
                backup.set_model(model)
                with distribution.strategy.scope():  # the optimizer's variables, mirrored
                    backup.restore()
            reasons = [c.reason for c in stoppers if c.reason]
            stop_reason = (reasons[0] if reasons else f"completed {best.last_epoch + 1} epoch"
                           + ("s" if best.last_epoch else ""))
            synced = finish(recorder, model, best, val_ds, config, source, clock(),
                             stop_reason)
    except TrainingInterrupted as err:
        stop(recorder, "KILLED", str(err))
        err.run_dir = run_dir
        raise
    except KeyboardInterrupt as err:  # a second Ctrl-C, or one outside the handler
        stop(recorder, "KILLED", "interrupted by SIGINT")
        interrupted = TrainingInterrupted(signal.SIGINT, "a second Ctrl-C")
        interrupted.run_dir = run_dir
        raise interrupted from err
    except NonFiniteLoss as err:
        stop(recorder, "FAILED", str(err))
        err.run_dir = run_dir
        raise
    except BaseException as err:
        stop(recorder, "FAILED", f"{type(err).__name__}: {err}")
        raise
    return TrainResult(run_dir=run_dir, checkpoint=best.path, best_val_dice=best.best,
                       epochs_run=best.last_epoch + 1, seconds=clock(), num_params=num_params,
                       mlflow_run_id=recorder.run_id, stop_reason=stop_reason,
                       resumed_from_epoch=start if resume_from else None,
                       tracking_synced=synced, is_chief=distribution.is_chief)
