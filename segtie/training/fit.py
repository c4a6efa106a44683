"""The fit loop: ``train(config)``.

``train(config)`` reads top to bottom: data -> model -> optimizer -> callbacks ->
``model.fit`` -> best checkpoint -> tracking. ``train(config, model=...)`` trains a
model built elsewhere (a peer architecture, for a comparison) with the very same
data, loss, optimizer, schedule, callbacks and tracking. Everything it writes lives
in one run folder ``<train.output_dir>/<run name>/``:

- ``config.yaml``      the resolved config
- ``best.keras``       the checkpoint with the best validation Dice (atomic writes)
- ``history.csv``      per-epoch logs (Keras' CSVLogger)
- ``run_info.json``    the MLflow run id, tracking URI and model source, read by
                        ``segtie evaluate`` (:mod:`segtie.training.checkpoints`)
- ``val_overlays.png`` image / ground truth / prediction for a few validation cases
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
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
from segtie.tracking import MlflowCallback, Tracker, current_learning_rate
from segtie.training.callbacks import BestCheckpoint, TimeBudget
from segtie.training.optimizers import make_optimizer
from segtie.training.precision import dtype_policy
from segtie.training.resources import resource_figures

logger = logging.getLogger(__name__)
CONFIG_MODEL = "config"  # the `segtie.model_source` tag of a model built from config.model


@dataclasses.dataclass
class TrainResult:
    """What a training run produced."""

    run_dir: Path
    checkpoint: Path
    best_val_dice: float
    epochs_run: int
    seconds: float
    num_params: int
    mlflow_run_id: Optional[str]


def _num_batches(dataset) -> int:
    n = int(dataset.cardinality())
    if n < 0:
        raise ValueError("The training dataset has unknown cardinality; cannot size the "
                         "learning-rate schedule")
    return n


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


def new_run_dir(output_dir: Path, prefix: str) -> Path:
    """Create a run folder ``<output_dir>/<prefix>-<YYYYmmdd-HHMMSS>[-<n>]``, unique.

    Made with ``mkdir(exist_ok=False)``, which is atomic: two trainings started in the
    same second get two folders (the second one suffixed ``-2``, ...), never one.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    for attempt in range(1, 1000):
        run_dir = output_dir / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"{output_dir}: 999 run folders named {stem}-*; clean up")


def _point_latest(run_dir: Path) -> None:
    """Make ``<output_dir>/latest`` a symlink to the newest finished run folder."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / ".latest.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    os.replace(tmp, link)


def train(config: cfg.Config, model: Optional[keras.Model] = None) -> TrainResult:
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

    Shapes:
        ``model``: images ``(batch, H, W, in_channels)`` float32 -> logits
        ``(batch, H, W, num_classes)``, ``[H, W]`` = ``data.image_size`` (or
        ``data.patch_size``).

    Returns:
        TrainResult: the run folder, best checkpoint, best validation Dice, epochs
        run, training seconds, parameter count and MLflow run id.

    Raises:
        FileNotFoundError: the dataset archive is missing (the message says where to
            put it).
        TypeError: ``model`` is not a ``keras.Model``.
    """
    if model is not None and not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model or None, received "
                        f"{type(model).__name__}")
    if model is None:
        check_model(config.model)  # before any data is prepared
    keras.utils.set_random_seed(config.train.seed)
    # The data first: a data error leaves nothing behind but its message.
    train_ds = build_dataset(config.data, "train", training=True, seed=config.train.seed)
    val_ds = build_dataset(config.data, "validation", training=False)
    steps = _num_batches(train_ds)
    run_dir = new_run_dir(Path(config.train.output_dir), config.data.name)
    run_name = run_dir.name
    (run_dir / "config.yaml").write_text(cfg.dump_yaml(config))

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

    tracker = Tracker(config.tracking.enabled, config.tracking.tracking_uri,
                      config.tracking.experiment or config.data.name)
    run_id = tracker.start(run_name, tags={"segtie.kind": "train",
                                           "segtie.model_source": source})
    (run_dir / "run_info.json").write_text(json.dumps(
        {"mlflow_run_id": run_id, "tracking_uri": tracker.tracking_uri,
         "model_source": source}, indent=2))
    tracker.log_params(cfg.flatten(config))
    tracker.log_text(cfg.dump_yaml(config), "config.yaml")
    tracker.log_metrics({"num_params": num_params, "steps_per_epoch": steps})
    if tracker.active:  # the resource report's estimates (measuring a step is the CLI's job)
        tracker.log_metrics({f"resources.{k}": v for k, v in
                             resource_figures(model, config, measure=False).items()})

    checkpoint = run_dir / "best.keras"
    best = BestCheckpoint(checkpoint)
    callbacks = [best, keras.callbacks.CSVLogger(str(run_dir / "history.csv")),
                 MlflowCallback(tracker)]
    if config.train.max_minutes:
        callbacks.append(TimeBudget(config.train.max_minutes))

    start = time.monotonic()
    status = "FAILED"
    try:
        history = model.fit(train_ds, validation_data=val_ds, epochs=config.train.epochs,
                            shuffle=False,  # the pipeline shuffles; Keras would warn
                            callbacks=callbacks, verbose=1)
        status = "FINISHED"
    finally:
        seconds = time.monotonic() - start
        if status != "FINISHED":
            tracker.end(status)
    epochs_run = len(history.history.get("loss", []))

    best_model = keras.saving.load_model(checkpoint, safe_mode=True)
    overlays = _save_val_overlays(best_model, val_ds, run_dir / "val_overlays.png",
                                  config.eval.num_overlays)
    tracker.log_metrics({"best_val_dice": best.best, "best_epoch": best.best_epoch + 1,
                         "train_seconds": seconds,
                         "final_learning_rate": current_learning_rate(model.optimizer) or 0.0})
    if overlays:
        tracker.log_artifact(overlays)
    tracker.log_artifact(run_dir / "history.csv")
    example = input_example(val_ds, config.model.depth) if source == CONFIG_MODEL else None
    model_uri = tracker.log_keras_model(best_model, example)
    if model_uri:
        tracker.set_tags({"segtie.model_uri": model_uri})
    tracker.end("FINISHED")
    _point_latest(run_dir)
    return TrainResult(run_dir=run_dir, checkpoint=checkpoint, best_val_dice=best.best,
                       epochs_run=epochs_run, seconds=seconds, num_params=num_params,
                       mlflow_run_id=run_id)
