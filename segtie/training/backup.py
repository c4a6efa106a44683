"""The resumable backup of a training run: Keras' BackupAndRestore, written atomically.

After every completed epoch :class:`ResumableBackup` writes, into ``<run>/backup/``,

- ``epoch-<NNNN>.weights.h5``: ``model.save_weights`` after epoch ``NNNN`` (1-based:
  the number of completed epochs). Keras 3 stores the optimizer's variables in the
  same file (``optimizer/vars``: the iteration count, which is also the learning-rate
  schedule's position, and Adam's first and second moments), so restoring it
  restores the optimizer exactly;
- ``state.json``: ``{"epoch": completed epochs, "weights": that file's name,
  "best": BestCheckpoint's score and epoch, "train_seconds": training time so far,
  "previous": the state before}``;
- then, if given, ``on_saved(epoch)`` runs (training records the completed epoch count
  in ``run_info.json``, so a kill leaves a true ``epochs_done`` there too).

Every file is written to a temporary name, flushed to disk and renamed over the old
one (``os.replace`` is atomic on POSIX), and ``state.json`` goes last, so it only
ever names a complete weights file: a kill at any moment leaves either the old or
the new state, never a file that the next start trips on. The weights of the
previous epoch are kept as a fallback (Keras' ``double_checkpoint``), older ones
deleted: the folder holds at most two weights files, whatever the epoch count.

Keras' own class writes ``latest.weights.h5`` in place and then its JSON, so a kill
between the two leaves new weights with an old epoch number; this subclass keeps its
constructor, epoch bookkeeping and restore-on-``fit`` behaviour and changes how the
files are written and read.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Optional

import keras

logger = logging.getLogger(__name__)

__all__ = ["BACKUP_DIR", "ResumableBackup", "read_state", "atomic_write_text"]

BACKUP_DIR = "backup"
STATE_FILE = "state.json"


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a power cut after it keeps it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # a platform without directory handles: the rename is all we have
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a flushed temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _load_json(path: Path) -> Optional[dict]:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_state(backup_dir: Path) -> Optional[dict]:
    """The newest complete backup state in ``backup_dir``, or ``None`` if there is none.

    A state counts when ``state.json`` parses and the weights file it names exists.
    Without one, nothing was completed: training starts at epoch 0.

    Returns:
        ``{"epoch": int, "weights": str, "best": {"value": float, "epoch": int},
        "train_seconds": float, "previous": dict or None}``; ``epoch`` is the number
        of completed epochs (the next epoch to run, 0-based).
    """
    state = _load_json(Path(backup_dir) / STATE_FILE)
    if state is None or not isinstance(state.get("epoch"), int):
        return None
    return state


class ResumableBackup(keras.callbacks.BackupAndRestore):
    """Back up weights, optimizer and best score after every epoch; restore them.

    Args:
        backup_dir: str or Path, the run folder's ``backup/`` (made if missing).
        best: the run's :class:`segtie.training.callbacks.BestCheckpoint`, whose
            ``best`` and ``best_epoch`` are saved and restored with the weights.
        train_seconds: callable returning the training seconds so far (saved, so a
            resumed run's time budget and ``train_seconds`` count the earlier part).
        on_saved: optional callable taking the completed epoch count (int), called
            after each epoch's ``state.json`` is written.

    On ``fit``'s start the newest state is restored into the model (weights and
    optimizer variables; the optimizer is built first) and into ``best``; if its
    weights file cannot be read, the previous epoch's is tried. ``fit`` must be given
    ``initial_epoch`` = the state's ``epoch`` (see :func:`read_state`); the data
    stream starts there too. The backup is kept when ``fit`` returns (a finished run
    deletes it itself, after its last step).

    Raises:
        ValueError: at restore, when a state exists but no weights file it names can
            be read (the message names the files).
    """

    def __init__(self, backup_dir, best, train_seconds=None, on_saved=None):
        super().__init__(str(backup_dir), save_freq="epoch", double_checkpoint=True,
                         delete_checkpoint=False)
        self.folder = Path(backup_dir)
        self.best = best
        self.train_seconds = train_seconds or (lambda: 0.0)
        self.on_saved = on_saved

    # -- restore ------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.restore()

    def _load_model(self):  # Keras' name for the restore step
        self.restore()

    def restore(self) -> Optional[dict]:
        """Load the newest readable state into the model and ``best``; returns it."""
        state = read_state(self.folder)
        if state is None:
            return None
        model = self.model
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)  # its variables must exist
        tried = []
        for candidate in (state, state.get("previous")):
            if not candidate or not candidate.get("weights"):
                continue
            path = self.folder / candidate["weights"]
            try:
                model.load_weights(str(path))
            except (OSError, ValueError) as err:
                tried.append(f"{path} ({type(err).__name__}: {err})")
                logger.warning("Backup weights %s unreadable (%s); trying the previous "
                               "epoch's", path, err)
                continue
            self._apply(candidate)
            return candidate
        raise ValueError(f"Backup {self.folder / STATE_FILE} names no readable weights "
                         f"file: {'; '.join(tried) or 'none named'}; delete "
                         f"{self.folder} to start the run again from epoch 1")

    def _apply(self, state: dict) -> None:
        best = state.get("best") or {}
        value = best.get("value")
        self.best.best = -math.inf if value is None else float(value)
        self.best.best_epoch = int(best.get("epoch", -1))
        self.best.last_epoch = state["epoch"] - 1
        self._current_epoch = state["epoch"]
        logger.info("Restored %s: %d epochs done, best %s %.4f at epoch %d", self.folder,
                    state["epoch"], self.best.monitor, self.best.best,
                    self.best.best_epoch + 1)

    # -- save ---------------------------------------------------------------------
    def _save_model(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        epoch = self._current_epoch
        name = f"epoch-{epoch:04d}.weights.h5"
        tmp = self.folder / f".{name}.tmp.weights.h5"  # Keras wants the suffix
        self.model.save_weights(str(tmp), overwrite=True)
        _fsync_file(tmp)
        os.replace(tmp, self.folder / name)
        previous = read_state(self.folder)
        if previous is not None:
            previous.pop("previous", None)
        best = self.best.best
        state = {"epoch": epoch, "weights": name,
                 "best": {"value": None if math.isinf(best) else best,
                          "epoch": self.best.best_epoch},
                 "train_seconds": float(self.train_seconds()), "previous": previous}
        atomic_write_text(self.folder / STATE_FILE, json.dumps(state, indent=2))
        keep = {name, (previous or {}).get("weights")}
        for stale in self.folder.glob("*.weights.h5"):  # bounded: two weights files
            if stale.name not in keep:
                stale.unlink(missing_ok=True)
        if self.on_saved is not None:
            self.on_saved(epoch)

    def on_train_end(self, logs=None):
        """Keep the backup: the run deletes it once everything after ``fit`` is done."""
