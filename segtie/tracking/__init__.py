"""MLflow tracking: the only package that imports mlflow.

The tracking URI is ``tracking.tracking_uri`` from the config, else the
``MLFLOW_TRACKING_URI`` environment variable, else a SQLite store ``mlflow.db`` in
the working directory, whose artifacts go to ``mlartifacts/`` beside it. Browse it on
this machine only (bound to 127.0.0.1; README says how to share it with a team)::

    mlflow server --backend-store-uri sqlite:///mlflow.db --host 127.0.0.1 --port 5000

Modules, by concern:

- :mod:`~segtie.tracking.store`: the URI, a new store's first use (lock, experiment).
- :mod:`~segtie.tracking.tracker`: :class:`Tracker`, a fail-safe handle on one run
  (evaluation, export), and the Keras callback :class:`MlflowCallback`.
- :mod:`~segtie.tracking.models`: the logged models (Keras flavor ``model``, pyfunc
  ``serving``), loading them, and the run behind a model URI.
- :mod:`~segtie.tracking.mirror`: :class:`RunMirror`, which pushes a training run
  folder's journal to MLflow.
- :mod:`~segtie.tracking.inputs`: datasets as MLflow dataset inputs.
- :mod:`~segtie.tracking.system`: MLflow's system-metrics sampling, into a journal.
- :mod:`~segtie.tracking.champion`: the registered model's ``champion`` alias.

A :class:`Tracker` never lets a tracking failure (store unreachable, a logging
error) stop training or evaluation: the first failure is logged as a warning and
the tracker goes quiet; checkpoints are written to local disk independently.

Training logs the best model twice: ``model`` (Keras flavor: images in [0, 1] ->
logits, for :mod:`segtie.training.checkpoints`) and ``serving``
(:meth:`Tracker.log_pyfunc_model`, a pyfunc :class:`SegmentationPyfunc`: raw uint8
images of any size -> masks and probabilities, with the recipe's inference options),
which ``mlflow models serve -m runs:/<run_id>/serving --env-manager local --host
127.0.0.1`` serves in an environment where segtie is installed.
``SegmentationPyfunc`` is created on first access (this package's ``__getattr__``),
so importing this package does not import MLflow.
"""

from __future__ import annotations

from segtie.tracking.mirror import RunMirror
from segtie.tracking.models import (LOADING_REQUIREMENTS, MODEL_NAME, SERVING_NAME,
                                    load_keras_model, model_requirements, read_run_text,
                                    run_id_of)
from segtie.tracking.store import (DEFAULT_STORE, STORE_LOCK_SUFFIX, open_experiment,
                                   resolve_tracking_uri, store_lock)
from segtie.tracking.tracker import (NOTE_TAG, MlflowCallback, Tracker, current_learning_rate,
                                     scratch_dir)

__all__ = ["DEFAULT_STORE", "LOADING_REQUIREMENTS", "MODEL_NAME", "MlflowCallback", "NOTE_TAG",
           "RunMirror", "SERVING_NAME", "STORE_LOCK_SUFFIX", "SegmentationPyfunc", "Tracker",
           "current_learning_rate", "load_keras_model", "model_requirements",
           "open_experiment", "read_run_text", "resolve_tracking_uri", "run_id_of",
           "scratch_dir", "store_lock"]


def __getattr__(name: str):
    """``SegmentationPyfunc`` on first access (MLflow imported then, not before)."""
    if name == "SegmentationPyfunc":
        from segtie.tracking.models import pyfunc_class

        return pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
