"""MLflow tracking: the only module that imports mlflow.

The tracking URI is ``tracking.tracking_uri`` from the config, else the
``MLFLOW_TRACKING_URI`` environment variable, else a SQLite store ``mlflow.db`` in
the working directory, whose artifacts go to ``mlartifacts/`` beside it. Browse with::

    mlflow ui --backend-store-uri sqlite:///mlflow.db

A :class:`Tracker` never lets a tracking failure (store unreachable, a logging
error) stop training or evaluation: the first failure is logged as a warning and
the tracker goes quiet; checkpoints are written to local disk independently.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Optional

import keras
import numpy as np

DEFAULT_STORE = "mlflow.db"  # in the working directory
MODEL_NAME = "model"
LOADING_REQUIREMENTS = ("keras", "tensorflow")
"""What loading a logged model needs besides segtie itself (its custom layers)."""
logger = logging.getLogger(__name__)

# Fail fast on an unreachable HTTP store instead of retrying for minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def resolve_tracking_uri(configured: Optional[str] = None) -> str:
    """The tracking URI: ``configured``, else ``$MLFLOW_TRACKING_URI``, else local SQLite."""
    return (configured or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{Path.cwd() / DEFAULT_STORE}")


def _guarded(method):
    """Run a tracker method unless tracking has failed; turn errors into one warning."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        if not self.active:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - tracking must never stop the job
            logger.warning("MLflow tracking disabled after error in %s: %s: %s",
                           method.__name__, type(err).__name__, err)
            self.active = False
            return None

    return wrapper


class Tracker:
    """A fail-safe handle on one MLflow run.

    Args:
        enabled: bool, ``False`` makes every call a no-op.
        tracking_uri: str or None, see :func:`resolve_tracking_uri`.
        experiment: str, experiment name (one per dataset).

    Use as a context manager; the run ends ``FINISHED`` or ``FAILED``.
    """

    def __init__(self, enabled: bool, tracking_uri: Optional[str], experiment: str):
        self.enabled = enabled
        self.active = enabled
        self.tracking_uri = resolve_tracking_uri(tracking_uri)
        self.experiment = experiment
        self.run_id: Optional[str] = None
        self.client = None

    @_guarded
    def start(self, run_name: str, tags: Optional[dict] = None) -> Optional[str]:
        """Start the run; returns its id (``None`` if tracking is off or failed)."""
        import mlflow

        mlflow.set_tracking_uri(self.tracking_uri)
        self.client = mlflow.MlflowClient(self.tracking_uri)
        exp = self.client.get_experiment_by_name(self.experiment)
        if exp is None:
            location = None
            if self.tracking_uri.startswith("sqlite:///"):  # artifacts beside the store
                store = Path(self.tracking_uri[len("sqlite:///"):]).resolve()
                location = (store.parent / "mlartifacts" / self.experiment).as_uri()
            exp_id = self.client.create_experiment(self.experiment, artifact_location=location)
        else:
            exp_id = exp.experiment_id
        run = mlflow.start_run(experiment_id=exp_id, run_name=run_name, tags=tags or {})
        self.run_id = run.info.run_id
        return self.run_id

    @_guarded
    def log_params(self, params: dict) -> None:
        """Log flat params (values stringified, long values truncated by MLflow limits)."""
        import mlflow

        mlflow.log_params({k: ("null" if v is None else v) for k, v in params.items()})

    @_guarded
    def log_metrics(self, metrics: dict, step: Optional[int] = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    @_guarded
    def set_tags(self, tags: dict) -> None:
        import mlflow

        mlflow.set_tags(tags)

    @_guarded
    def log_text(self, text: str, artifact_file: str) -> None:
        import mlflow

        mlflow.log_text(text, artifact_file)

    @_guarded
    def log_artifact(self, path, artifact_path: Optional[str] = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path)

    @_guarded
    def log_artifacts(self, folder, artifact_path: Optional[str] = None) -> None:
        import mlflow

        mlflow.log_artifacts(str(folder), artifact_path)

    @_guarded
    def log_keras_model(self, model: keras.Model, input_example: Optional[np.ndarray] = None
                        ) -> Optional[str]:
        """Log ``model`` with MLflow's Keras flavor; returns the model URI.

        The logged model records its runtime requirements only
        (:func:`model_requirements`), a tensor signature (images ``(-1, -1, -1, C)``
        float32 -> logits ``(-1, -1, -1, K)`` float32: any batch and any size that
        the U-Net takes) and ``input_example`` when given. It loads back with
        ``mlflow.keras.load_model(uri)`` in a process that imported ``segtie`` (see
        :func:`load_keras_model`); its MLflow 3 URI is ``models:/m-<model id>``.

        Args:
            model: images -> logits.
            input_example: float32 ``(n, H, W, C)``, e.g. one real validation image.
        """
        import mlflow
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        channels_in, channels_out = model.inputs[0].shape[-1], model.outputs[0].shape[-1]
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, channels_in),
                                      "image")]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1, -1, channels_out),
                                       "logits")]))
        with warnings.catch_warnings():  # MLflow checks the example through a list input
            warnings.filterwarnings("ignore", message="The structure of `inputs`")
            info = mlflow.models.Model.log(
                artifact_path=None, name=MODEL_NAME, flavor=_KerasFlavor, model=model,
                pip_requirements=model_requirements(),
                signature=signature, input_example=input_example,
                metadata={"segtie_version": _installed_version("segtie"),
                          "loading": "import segtie, mlflow; mlflow.keras.load_model(uri)"})
        return info.model_uri

    def end(self, status: str = "FINISHED") -> None:
        """End the run (safe to call when tracking is off or failed)."""
        if self.run_id is None:
            return
        try:
            import mlflow

            mlflow.end_run(status=status)
        except Exception as err:  # noqa: BLE001
            logger.warning("Could not end MLflow run %s: %s", self.run_id, err)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.end("FAILED" if exc_type else "FINISHED")
        return False


class _KerasFlavor:
    """``mlflow.keras`` with the model folder made before the input example is written.

    ``mlflow.keras.save_model`` writes ``input_example.json`` before it creates the
    folder, so ``log_model(..., input_example=...)`` fails (mlflow/mlflow#16183, open
    in MLflow 3.17); this shim creates the folder and calls the real flavor.
    """

    __name__ = "mlflow.keras"

    @staticmethod
    def save_model(path, **kwargs):
        import mlflow

        os.makedirs(path, exist_ok=True)
        return mlflow.keras.save_model(path=path, **kwargs)


def _installed_version(name: str) -> Optional[str]:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def model_requirements() -> list:
    """The pip requirements of a logged model: what loading it needs, pinned as installed.

    Keras and TensorFlow at the versions of this process (the plain ``tensorflow``
    distribution, which runs on CPU and GPU, even where this process runs the
    CPU-only ``tensorflow-cpu`` build of the same version). Nothing of the tests or
    benchmarks. Loading also needs ``segtie`` importable (its custom layers); it is
    not on PyPI, so it is recorded in the model's metadata, not here.
    """
    pins = []
    for name in LOADING_REQUIREMENTS:
        version = _installed_version(name) or (
            _installed_version(f"{name}-cpu") if name == "tensorflow" else None)
        pins.append(f"{name}=={version}" if version else name)
    return pins


class MlflowCallback(keras.callbacks.Callback):
    """Log every epoch's Keras logs (loss, Dice, val_*) and the learning rate."""

    def __init__(self, tracker: Tracker):
        super().__init__()
        self.tracker = tracker

    def on_epoch_end(self, epoch, logs=None):
        metrics = dict(logs or {})
        lr = current_learning_rate(self.model.optimizer)
        if lr is not None:
            metrics["learning_rate"] = lr
        self.tracker.log_metrics(metrics, step=epoch)


def current_learning_rate(optimizer) -> Optional[float]:
    """The optimizer's learning rate at its current iteration, as a float."""
    try:
        return float(keras.ops.convert_to_numpy(optimizer.learning_rate))
    except Exception:  # noqa: BLE001 - a custom optimizer without a readable rate
        return None


def load_keras_model(uri: str, tracking_uri: Optional[str] = None) -> keras.Model:
    """Load a model logged by :meth:`Tracker.log_keras_model` (``runs:/`` or ``models:/``).

    Raises:
        FileNotFoundError: MLflow cannot resolve ``uri`` (the message names it).
    """
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    try:
        return mlflow.keras.load_model(uri)
    except Exception as err:  # MlflowException, OSError: one clear message for the user
        raise FileNotFoundError(f"Could not load model {uri!r} from MLflow store "
                                f"{mlflow.get_tracking_uri()}: {err}") from err


def read_run_text(run_id: str, artifact_file: str,
                  tracking_uri: Optional[str] = None) -> Optional[str]:
    """The text of one artifact of a run, or ``None`` if it cannot be read."""
    import mlflow

    mlflow.set_tracking_uri(resolve_tracking_uri(tracking_uri))
    try:
        return mlflow.artifacts.load_text(f"runs:/{run_id}/{artifact_file}")
    except Exception as err:  # noqa: BLE001 - a missing artifact is not fatal here
        logger.warning("Could not read %s of run %s: %s", artifact_file, run_id, err)
        return None


_LOGGED_MODEL = re.compile(r"^models:/(m-[0-9a-f]+)/?$")
_ALIAS = re.compile(r"^models:/([^/@]+)@([^/]+)$")
_VERSION = re.compile(r"^models:/([^/@]+)/(\d+)$")


def run_id_of(uri: str, tracking_uri: Optional[str] = None) -> Optional[str]:
    """The training run behind a model URI.

    ``runs:/<run_id>/...`` gives ``run_id``; MLflow 3's logged-model URI
    ``models:/m-<model id>`` (what :meth:`Tracker.log_keras_model` returns) its
    source run; ``models:/<name>/<version>`` and ``models:/<name>@<alias>`` are
    looked up in the model registry. Anything else, or a failed look-up (logged as a
    warning), gives ``None``.
    """
    if uri.startswith("runs:/"):
        return uri[len("runs:/"):].split("/")[0] or None
    matches = [(kind, pattern.match(uri)) for kind, pattern in
               (("logged", _LOGGED_MODEL), ("alias", _ALIAS), ("version", _VERSION))]
    found = [(kind, match) for kind, match in matches if match]
    if not found:
        return None
    import mlflow

    kind, match = found[0]
    try:
        client = mlflow.MlflowClient(resolve_tracking_uri(tracking_uri))
        if kind == "logged":
            return client.get_logged_model(match.group(1)).source_run_id
        if kind == "alias":
            return client.get_model_version_by_alias(*match.groups()).run_id
        return client.get_model_version(*match.groups()).run_id
    except Exception as err:  # noqa: BLE001 - the caller says what it falls back to
        logger.warning("Could not look up the run of %s: %s", uri, err)
        return None


def scratch_dir() -> Path:
    """A temporary folder for artifacts written before upload."""
    return Path(tempfile.mkdtemp(prefix="segtie-"))
