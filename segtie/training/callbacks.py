"""Training callbacks: the best checkpoint (atomic), the moving average of the weights,
the time budget, the learning rate, the epoch timing."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import keras

logger = logging.getLogger(__name__)
MONITOR = "val_dice"

__all__ = ["MONITOR", "BestCheckpoint", "EMAWeights", "EpochTiming", "LearningRateInLogs",
           "TimeBudget"]


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model whenever ``val_dice`` improves, atomically.

    Keras' ModelCheckpoint writes in place, so a crash mid-write leaves a broken
    file; this one writes ``<path>.tmp.keras`` and renames it over ``path``
    (``os.replace`` is atomic on POSIX), so ``path`` is always a complete model.

    A NaN ``val_dice`` (every validation image had an empty reference and a
    non-empty prediction, see :class:`segtie.metrics.validation.DiceMetric`) is never
    an improvement (``nan > best`` is False). If no epoch had a number, the last
    epoch's model is saved when training ends, with a warning, and ``best`` is NaN.
    """

    def __init__(self, path: Path, monitor: str = MONITOR):
        super().__init__()
        self.path = Path(path)
        self.monitor = monitor
        self.best = -math.inf
        self.best_epoch = -1
        self.last_epoch = -1

    def _save(self) -> None:
        tmp = self.path.with_name(self.path.stem + ".tmp.keras")
        self.model.save(tmp)
        os.replace(tmp, self.path)

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise KeyError(f"BestCheckpoint: `{self.monitor}` missing from logs "
                           f"{sorted(logs or {})}; is there validation data?")
        self.last_epoch = epoch
        if value > self.best:
            self._save()
            logger.info("epoch %d: %s improved %.4f -> %.4f, saved %s", epoch + 1,
                        self.monitor, self.best, value, self.path)
            self.best, self.best_epoch = float(value), epoch

    def on_train_end(self, logs=None):
        if self.best_epoch < 0 <= self.last_epoch:
            self._save()
            logger.warning("%s was NaN in every epoch (no validation image with a "
                           "defined Dice); saved the last epoch's model to %s",
                           self.monitor, self.path)
            self.best, self.best_epoch = math.nan, self.last_epoch


class _AtEpochEnd(keras.callbacks.Callback):
    """Call ``action()`` at every epoch end, where this callback sits in the list."""

    def __init__(self, action):
        super().__init__()
        self.action = action

    def on_epoch_end(self, epoch, logs=None):
        self.action()


class EMAWeights:
    """The optimizer's moving average of the weights where a run needs it.

    For an optimizer built with ``use_ema=True`` (``train.ema_momentum``), Keras'
    ``SwapEMAWeights`` puts the average in the model for validation and takes it out
    after. At the epoch end, ``enter`` puts it in again and ``leave`` takes it out:
    callbacks placed between them (the best checkpoint) see the average, those after
    ``leave`` (the backup) the raw weights, with the average in the optimizer's
    variables, so a resumed run goes on exactly. After the last epoch Keras' ``fit``
    leaves the average in the model (``finalize_variable_values``).

    Use ``callbacks = [swap, ..., enter, best, ..., leave, backup, ...]``:
    ``swap``, ``enter`` and ``leave`` are the attributes of that name.
    """

    def __init__(self):
        self.swap = keras.callbacks.SwapEMAWeights(swap_on_epoch=False)
        self.enter = _AtEpochEnd(self.swap.on_test_begin)  # swaps in unless it is in
        self.leave = _AtEpochEnd(self.swap.on_test_end)    # swaps out if it is in


class TimeBudget(keras.callbacks.Callback):
    """Stop training after the epoch during which ``max_minutes`` ran out.

    Args:
        max_minutes: float > 0, the budget in minutes of training time.
        spent_seconds: float, training seconds already spent (a resumed run's
            earlier part, from its backup). Default 0.

    After a stop, ``stopped_after`` is the number of completed epochs (else ``None``)
    and ``reason`` says why, for the console, MLflow and ``run_info.json``.
    """

    def __init__(self, max_minutes: float, spent_seconds: float = 0.0):
        super().__init__()
        self.max_seconds = max_minutes * 60.0
        self.spent_seconds = float(spent_seconds)
        self.start = time.monotonic()
        self.stopped_after = None
        self.reason = None

    def elapsed(self) -> float:
        return self.spent_seconds + time.monotonic() - self.start

    def on_epoch_end(self, epoch, logs=None):
        epochs = self.params.get("epochs") if self.params else None
        if self.elapsed() > self.max_seconds and (epochs is None or epoch + 1 < epochs):
            self.stopped_after = epoch + 1
            self.reason = (f"time budget train.max_minutes={self.max_seconds / 60:g} reached "
                           f"after epoch {epoch + 1} of {epochs}")
            logger.warning("%s: stopping early; the model is weaker than the recipe's",
                           self.reason)
            self.model.stop_training = True


class TargetDice(keras.callbacks.Callback):
    """Stop training after the first epoch whose validation Dice reaches a target.

    For "train until good enough" and for time-to-accuracy measurements
    (``benchmarks/bench_kvasir.py --set train.target_val_dice=0.75``): the run ends
    as a finished run whose best checkpoint is that epoch's (or an earlier better
    one), and ``reason`` says when the target was reached.

    Args:
        target: float in (0, 1], the validation Dice (``val_dice`` in the epoch logs,
            the mean over validation images as :class:`BestCheckpoint` reads it).
        clock: callable returning the seconds of training so far (all parts of a
            resumed run), for the reason's minutes.

    After a stop, ``stopped_after`` is the number of completed epochs (else ``None``).
    """

    def __init__(self, target: float, clock):
        super().__init__()
        self.target = float(target)
        self.clock = clock
        self.stopped_after = None
        self.reason = None

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get("val_dice")
        if value is None or not value >= self.target:  # NaN never reaches it
            return
        epochs = self.params.get("epochs") if self.params else None
        self.stopped_after = epoch + 1
        self.reason = (f"validation Dice {value:.4f} reached train.target_val_dice="
                       f"{self.target:g} after epoch {epoch + 1} of {epochs} "
                       f"({self.clock() / 60:.1f} min of training)")
        logger.info("%s: stopping", self.reason)
        self.model.stop_training = True


class LearningRateInLogs(keras.callbacks.Callback):
    """Add ``learning_rate`` (the rate at the optimizer's current step) to epoch logs.

    First in the callback list, so that ``history.csv`` and the tracking journal get it.
    """

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        try:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(
                self.model.optimizer.learning_rate))
        except Exception:  # noqa: BLE001 - a custom optimizer without a readable rate
            pass


class EpochTiming(keras.callbacks.Callback):
    """Time each epoch: ``epoch_seconds`` and ``images_per_second`` (:meth:`figures`).

    ``epoch_seconds``: wall-clock seconds of the epoch, validation included.
    ``images_per_second``: ``images_per_epoch`` over the seconds of the training
    steps alone (from the epoch's start to the start of validation; the whole epoch
    when there is none). Wall clock on a shared machine: a figure to compare runs of
    one machine, not a benchmark. They are kept out of the Keras logs, so
    ``history.csv`` stays the same for the same seed (a resumed run equals an
    uninterrupted one); :class:`segtie.training.recorder.EpochMetrics` journals them.

    Args:
        images_per_epoch: int >= 1, training images (or patches) per epoch.
    """

    def __init__(self, images_per_epoch: int):
        super().__init__()
        self.images_per_epoch = int(images_per_epoch)
        self._start = self._train_end = None
        self.last: dict = {}

    def on_epoch_begin(self, epoch, logs=None):
        self._start, self._train_end, self.last = time.monotonic(), None, {}

    def on_test_begin(self, logs=None):
        if self._start is not None and self._train_end is None:
            self._train_end = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if self._start is None:
            return
        end = time.monotonic()
        train_seconds = (self._train_end or end) - self._start
        self.last = {"epoch_seconds": end - self._start,
                     "images_per_second": self.images_per_epoch / max(train_seconds, 1e-9)}

    def figures(self) -> dict:
        """The last finished epoch's ``{"epoch_seconds", "images_per_second"}`` ({} before)."""
        return dict(self.last)
