"""Training: the fit loop, its callbacks, the optimizer, and what a run leaves behind.

- :mod:`~segtie.training.fit`: :func:`train` (data -> model -> optimizer -> callbacks
  -> ``model.fit`` -> best checkpoint -> tracking) and :class:`TrainResult`;
- :mod:`~segtie.training.run_start`, :mod:`~segtie.training.description`: a run's
  folder (new, resumed, a worker's copy) and first records (tags, description,
  dataset inputs, parameters); :mod:`~segtie.training.run_end`: what a run writes
  when it stops early or finishes;
- :mod:`~segtie.training.distribute`: the ``tf.distribute`` strategy of
  ``train.distribute`` (``none``, ``mirrored``, ``multi_worker`` from ``TF_CONFIG``),
  the global batch split, DATA sharding, the chief and the workers' scratch folders
  (:mod:`~segtie.training.tf_config` validates ``TF_CONFIG``;
  :mod:`~segtie.training.cluster_watchdog` stops a worker whose cluster never forms);
- :mod:`~segtie.training.callbacks`: the best checkpoint (atomic), the time budget,
  the learning rate in the logs and the epoch timing (seconds, images/s);
- :mod:`~segtie.training.backup`: the resumable backup of the last completed epoch
  (weights, optimizer, best score; atomic, bounded);
- :mod:`~segtie.training.guards`: SIGINT/SIGTERM and NaN-loss stops
  (:class:`TrainingInterrupted`, :class:`NonFiniteLoss`);
- :mod:`~segtie.training.runs`: run folders, ``run_info.json``, finding a run to resume;
- :mod:`~segtie.training.journal`, :mod:`~segtie.training.recorder`: the run folder's
  tracking journal and its MLflow mirror (``segtie sync``), system metrics included;
- :mod:`~segtie.training.reproducibility`: seeds and op determinism;
- :mod:`~segtie.training.optimizers`, :mod:`~segtie.training.precision`: the
  optimizer and schedule of ``config.train``, mixed-precision construction;
- :mod:`~segtie.training.checkpoints`: finding a trained model and its config again
  (a ``.keras`` path, ``runs:/``, ``models:/``);
- :mod:`~segtie.training.resources`: what a configured model costs (parameters,
  FLOPs, memory estimates and the measured peak of a training step).
"""

from segtie.training.backup import ResumableBackup
from segtie.training.callbacks import MONITOR, BestCheckpoint, TimeBudget
from segtie.training.fit import CONFIG_MODEL, TrainResult, train
from segtie.training.guards import NonFiniteLoss, TrainingInterrupted
from segtie.training.optimizers import make_optimizer
from segtie.training.precision import dtype_policy

__all__ = ["CONFIG_MODEL", "MONITOR", "BestCheckpoint", "NonFiniteLoss", "ResumableBackup",
           "TimeBudget", "TrainResult", "TrainingInterrupted", "dtype_policy",
           "make_optimizer", "train"]
