"""Training callbacks: the best checkpoint (atomic) and the time budget."""

from __future__ import annotations

import logging
import math
import os
import time
from pathlib import Path

import keras

logger = logging.getLogger(__name__)
MONITOR = "val_dice"

__all__ = ["MONITOR", "BestCheckpoint", "TimeBudget"]


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


class TimeBudget(keras.callbacks.Callback):
    """Stop training after the epoch during which ``max_minutes`` ran out."""

    def __init__(self, max_minutes: float):
        super().__init__()
        self.max_seconds = max_minutes * 60.0
        self.start = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if time.monotonic() - self.start > self.max_seconds:
            logger.info("Time budget of %.1f min reached after epoch %d; stopping.",
                        self.max_seconds / 60, epoch + 1)
            self.model.stop_training = True
