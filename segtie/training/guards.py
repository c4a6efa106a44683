"""Stopping a training run cleanly: Ctrl-C / SIGTERM, and a NaN or infinite loss.

- :class:`StopSignals` (a context manager around the run) turns the first SIGINT or
  SIGTERM into a request; :class:`StopOnSignal` (a callback) honours it after the
  current training or validation step by raising :class:`TrainingInterrupted`, or at
  the end of an epoch, after the backup of that epoch is written. A second signal
  stops at once (Python's default behaviour). Before ``fit`` the first signal raises
  :class:`TrainingInterrupted` at once. Once every epoch is done (at the end of the
  last one, or of one that the time budget or target Dice ends with, and during the
  run's last steps: overlays, final metrics, the logged models) there is nothing left
  to resume: a first signal is logged and the run finishes (``FINISHED``).
- :class:`StopOnNonFiniteLoss` raises :class:`NonFiniteLoss` after the first batch
  whose loss is NaN or infinite, naming the epoch, step and learning rate.

Keras' ``model.stop_training = True`` (which ``TerminateOnNaN`` uses) is honoured
after the batch in Keras 3, but the epoch is then validated and ended as if it had
completed: a half epoch would be backed up, and a diverged model could be saved as
the best (its Dice, 0, beats the first epoch's ``-inf``). Raising keeps every
epoch-end callback from seeing the broken epoch.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
from typing import Optional

import keras
import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["NonFiniteLoss", "StopOnNonFiniteLoss", "StopOnSignal", "StopSignals",
           "TrainingInterrupted"]

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class TrainingInterrupted(Exception):
    """A SIGINT or SIGTERM stopped the run.

    Attributes:
        signum: the signal number; ``exit_code`` is ``128 + signum`` (130 for SIGINT,
            143 for SIGTERM), the shell's convention.
        where: what the run was doing (``"epoch 3, step 12"``).
        run_dir: the run folder (set by :func:`segtie.training.train`).
    """

    def __init__(self, signum: int, where: str = ""):
        self.signum = int(signum)
        self.where = where
        self.run_dir = None
        super().__init__(f"interrupted by {signal.Signals(self.signum).name}"
                         + (f" during {where}" if where else ""))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class NonFiniteLoss(FloatingPointError):
    """The training loss became NaN or infinite.

    Attributes:
        epoch, step: 1-based epoch and step of the batch; ``learning_rate``: the
            rate that step used (``None`` if unreadable); ``run_dir``: set by
            :func:`segtie.training.train`.
    """

    def __init__(self, value: float, epoch: int, step: int, learning_rate: Optional[float]):
        self.value, self.epoch, self.step = value, epoch, step
        self.learning_rate = learning_rate
        self.run_dir = None
        rate = "unknown" if learning_rate is None else f"{learning_rate:.6g}"
        super().__init__(
            f"training loss is {value} at epoch {epoch}, step {step} (learning rate "
            f"{rate}); stopped at once, the last good checkpoint is kept. Lower "
            f"`train.learning_rate`, add `train.warmup_epochs`, or check the data")


class StopSignals:
    """Turn SIGINT/SIGTERM into a stop request while the context is active.

    ``deferred`` (set by :class:`StopOnSignal` for the duration of ``fit``) makes the
    first signal a request honoured at the next step boundary; otherwise the handler
    raises :class:`TrainingInterrupted` at once. After :meth:`let_finish` a first
    signal is only logged: the run ends normally. The previous handlers come back on
    exit. In a thread other than the main one (where Python cannot install signal
    handlers) it does nothing.
    """

    def __init__(self):
        self.requested: Optional[int] = None
        self.deferred = False
        self.finishing = False
        self._previous = {}

    def let_finish(self) -> None:
        """Every epoch is done: from now on a first signal lets the run finish."""
        self.deferred = self.finishing = True

    def _handle(self, signum, frame):
        if self.requested is not None:  # a second signal: do what it would have done
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.requested = signum
        name = signal.Signals(signum).name
        if not self.deferred:
            raise TrainingInterrupted(signum)
        if self.finishing:
            logger.warning("%s received after the last epoch: finishing the run first "
                           "(send it again to stop at once)", name)
        else:
            logger.warning("%s received: stopping after the current step (send it again "
                           "to stop at once)", name)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False


class StopOnSignal(keras.callbacks.Callback):
    """Raise :class:`TrainingInterrupted` at the first step boundary after a signal.

    Put it last in the callback list: at an epoch's end it runs after the backup of
    that (completed) epoch has been written. At the end of the last epoch (``fit``'s
    ``epochs``, or one after which ``model.stop_training`` is set: the time budget,
    the target Dice) it does not raise, and when ``fit`` returns it calls
    :meth:`StopSignals.let_finish`: a run whose epochs are all done finishes.
    """

    def __init__(self, signals: StopSignals):
        super().__init__()
        self.signals = signals
        self.epoch = 0

    def _check(self, where: str) -> None:
        if self.signals.requested is not None:
            raise TrainingInterrupted(self.signals.requested, where)

    def on_train_begin(self, logs=None):
        self.signals.deferred = True
        self._check("the start of training")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(f"epoch {self.epoch + 1}, step {batch + 1}")

    def on_test_batch_end(self, batch, logs=None):
        self._check(f"validation of epoch {self.epoch + 1}")

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 >= (self.params or {}).get("epochs", epoch + 2)
        if not (last or self.model.stop_training):
            self._check(f"the end of epoch {epoch + 1}")

    def on_train_end(self, logs=None):
        if self.signals.requested is not None:
            logger.warning("%s received at the end of the last epoch: every epoch is done, "
                           "finishing the run", signal.Signals(self.signals.requested).name)
        self.signals.let_finish()


class StopOnNonFiniteLoss(keras.callbacks.TerminateOnNaN):
    """Raise :class:`NonFiniteLoss` after the first batch with a NaN or infinite loss.

    Keras' ``TerminateOnNaN`` checks the same batch logs; this one raises instead of
    setting ``stop_training`` (see the module docstring), so no callback's
    ``on_epoch_end`` runs on the broken epoch.
    """

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        value = float(np.asarray(loss))
        if math.isfinite(value):
            return
        from segtie.tracking import current_learning_rate

        optimizer = self.model.optimizer
        rate = None
        try:  # the rate of the step just taken (the schedule at iterations - 1)
            schedule = optimizer._learning_rate
            step = int(optimizer.iterations.numpy()) - 1
            rate = (float(schedule(max(step, 0))) if callable(schedule)
                    else current_learning_rate(optimizer))
        except Exception:  # noqa: BLE001 - a custom optimizer: say "unknown"
            rate = current_learning_rate(optimizer)
        raise NonFiniteLoss(value, self.epoch + 1, batch + 1, rate)
