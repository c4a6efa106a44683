"""MLflow tracking: the only module that imports mlflow.

The tracking URI is ``tracking.tracking_uri`` from the config, else the
``MLFLOW_TRACKING_URI`` environment variable, else a SQLite store ``mlflow.db`` in
the working directory, whose artifacts go to ``mlartifacts/`` beside it. Browse with::

    mlflow ui --backend-store-uri sqlite:///mlflow.db

A :class:`Tracker` never lets a tracking failure (store unreachable, a logging
error) stop training or evaluation: the first failure is logged as a warning and
the tracker goes quiet; checkpoints are written to local disk independently.

Training logs the best model twice: ``model`` (Keras flavor: images in [0, 1] ->
logits, for :mod:`segtie.training.checkpoints`) and ``serving``
(:meth:`Tracker.log_pyfunc_model`, a pyfunc :class:`SegmentationPyfunc`: raw uint8
images of any size -> masks and probabilities, with the recipe's inference options),
which ``mlflow models serve -m runs:/<run_id>/serving --env-manager local`` serves
in an environment where segtie is installed. ``SegmentationPyfunc`` is created on
first access (this module's ``__getattr__``), so importing this module does not
import MLflow.
"""

from __future__ import annotations

import contextlib
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
SERVING_NAME = "serving"  # the pyfunc model: raw images -> masks
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
        self.client, exp_id = open_experiment(self.tracking_uri, self.experiment)
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
        the U-Net takes; one more ``-1`` for a 3-D model's volumes) and ``input_example`` when given. It loads back with
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
        free = (-1,) * (len(model.inputs[0].shape) - 1)  # batch and every spatial axis
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), free + (channels_in,),
                                      "image")]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), free + (channels_out,),
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

    @_guarded
    def log_pyfunc_model(self, checkpoint, config_file, input_example: Optional[np.ndarray]
                         = None) -> Optional[str]:
        """Log the serving model: a :class:`SegmentationPyfunc` over ``checkpoint``.

        Its signature: input uint8 ``(-1, -1, -1, 3)`` (images of one size per
        request, any size), outputs ``mask`` uint8 ``(-1, -1, -1)`` and
        ``probabilities`` float32 ``(-1, -1, -1, K)``. ``input_example`` (float32 in
        [0, 1], as training's; rounded to uint8 here) is logged and checked by MLflow.

        Args:
            checkpoint: the ``.keras`` file (an artifact of the model).
            config_file: the run's ``config.yaml`` (the inference options, threshold).
            input_example: ``(1, h, w, 3)`` float32 in [0, 1], or None.

        Returns:
            The model URI (``models:/m-<id>``); ``runs:/<run_id>/serving`` also works.
        """
        import mlflow
        from mlflow.models import ModelSignature
        from mlflow.types import Schema, TensorSpec

        classes = keras.saving.load_model(checkpoint, safe_mode=True).outputs[0].shape[-1]
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))]),
            outputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1), "mask"),
                            TensorSpec(np.dtype(np.float32), (-1, -1, -1, classes),
                                       "probabilities")]))
        example = None if input_example is None else np.clip(
            np.rint(np.asarray(input_example) * 255.0), 0, 255).astype(np.uint8)
        info = mlflow.pyfunc.log_model(
            name=SERVING_NAME, python_model=_pyfunc_class()(),
            artifacts={"model": str(checkpoint), "config": str(config_file)},
            signature=signature, input_example=example,
            pip_requirements=model_requirements(),
            metadata={"segtie_version": _installed_version("segtie"),
                      "serving": "mlflow models serve -m <uri> --env-manager local "
                                 "(segtie installed)"})
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


def __getattr__(name: str):
    """``SegmentationPyfunc`` on first access (MLflow imported then, not before)."""
    if name == "SegmentationPyfunc":
        return _pyfunc_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@functools.lru_cache(maxsize=None)
def _pyfunc_class():
    """Define :class:`SegmentationPyfunc` (a ``mlflow.pyfunc.PythonModel``) once.

    It is defined here, on demand, so that this module imports MLflow only when it is
    used; its ``__module__`` and ``__qualname__`` make it importable as
    ``segtie.tracking.SegmentationPyfunc``, so MLflow pickles it by reference and a
    serving process imports segtie to load it.
    """
    import mlflow.pyfunc

    class SegmentationPyfunc(mlflow.pyfunc.PythonModel):
        """Raw images -> masks and probabilities, with the recipe's inference options.

        ``load_context`` imports segtie (its custom layers), loads the ``.keras``
        artifact ``model`` and the ``config`` artifact; ``predict`` runs
        :func:`segtie.inference.predict_probabilities` (resize or sliding window,
        TTA: ``eval``) and :func:`segtie.inference.predict_labels` (``eval.threshold``,
        ``eval.largest_component``) on each image, at its own size.

        Shapes:
            input: uint8 ``(n, H0, W0, 3)`` (or ``(H0, W0, 3)``). Returns ``{"mask":
            uint8 (n, H0, W0), "probabilities": float32 (n, H0, W0, K)}``; binary
            masks are 0/1, multi-class masks class indices.

        Raises:
            ValueError: an input that is not ``(n, H0, W0, 3)`` with values 0..255.
        """

        def load_context(self, context):
            import segtie  # noqa: F401 - registers the custom layers
            from segtie import config as cfg
            from segtie.evaluation.run import inference_options

            self.config = cfg.load_config(context.artifacts["config"])
            self.model = keras.saving.load_model(context.artifacts["model"], safe_mode=True)
            self.options = inference_options(self.config)

        def predict(self, context, model_input, params=None):
            from segtie.inference import predict_labels, predict_probabilities

            images = np.asarray(model_input)
            images = images[None] if images.ndim == 3 else images
            if images.ndim != 4 or images.shape[-1] != 3 or images.size == 0 or (
                    images.min() < 0 or images.max() > 255):
                raise ValueError(f"Expected uint8 images (n, height, width, 3) in 0..255, "
                                 f"received shape {images.shape}")
            images = images.astype(np.uint8)
            ev, masks, probabilities = self.config.eval, [], []
            for image in images:
                p = predict_probabilities(self.model, image, self.options.image_size,
                                          self.options)
                masks.append(predict_labels(p, self.options.num_classes, ev.threshold,
                                            ev.largest_component).astype(np.uint8))
                probabilities.append(p[..., None] if p.ndim == 2 else p)
            return {"mask": np.stack(masks), "probabilities": np.stack(probabilities)}

    SegmentationPyfunc.__module__ = __name__
    SegmentationPyfunc.__qualname__ = "SegmentationPyfunc"
    return SegmentationPyfunc


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


# --- the store's first use, and the run-folder mirror ----------------------------------

STORE_LOCK_SUFFIX = ".lock"  # <store>.lock beside a SQLite store


@contextlib.contextmanager
def store_lock(tracking_uri: str):
    """Hold an exclusive lock on a local SQLite store's ``<store>.lock`` file.

    Two processes opening a new SQLite store at once both run MLflow's schema
    migration and one fails (``duplicate column name: step``); both creating the
    same experiment is the same race one level up. The lock (``fcntl.flock``, released
    when the process dies) serialises that first use. Other stores, a store whose
    folder does not exist (MLflow's own error says so) and platforms without
    ``fcntl`` are not locked.
    """
    path = _sqlite_path(tracking_uri)
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the retry in open_experiment remains
        fcntl = None
    if path is None or fcntl is None or not path.parent.is_dir():
        yield
        return
    with open(path.with_name(path.name + STORE_LOCK_SUFFIX), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sqlite_path(tracking_uri: str) -> Optional[Path]:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///"):]).resolve()


def open_experiment(tracking_uri: str, experiment: str):
    """A client of ``tracking_uri`` and the id of ``experiment`` (created if missing).

    Safe when several processes use a new store at once (:func:`store_lock`; and if
    another client created the experiment in between, its id is used). A SQLite
    store's artifacts go to ``mlartifacts/<experiment>`` beside it.

    Returns:
        ``(mlflow.MlflowClient, experiment_id)``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with store_lock(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(experiment)  # the first use: schema made here
        if exp is not None:
            return client, exp.experiment_id
        path = _sqlite_path(tracking_uri)
        location = (path.parent / "mlartifacts" / experiment).as_uri() if path else None
        try:
            return client, client.create_experiment(experiment, artifact_location=location)
        except MlflowException:
            exp = client.get_experiment_by_name(experiment)  # created by another client
            if exp is None:
                raise
            return client, exp.experiment_id


class RunMirror:
    """Push a run folder's journal (:mod:`segtie.training.journal`) to one MLflow run.

    The journal is the record; the MLflow run is a mirror that receives, on each
    :meth:`push`, only what it lacks: parameters it does not hold, metric
    ``(key, step)`` pairs it does not hold, artifacts missing or of another size,
    models whose URI tag is absent, and the journal's last status. Pushing the same
    journal twice changes nothing, so a retry after a failure, a resumed run
    re-logging an epoch, or ``segtie sync`` after training never duplicates a step.

    The run is found by its id, else by the tag ``segtie.run_uid`` (a run folder's
    own id, so a run created by a push whose reply was lost is found, not made
    twice), else created with the journal's start time.

    Args:
        tracking_uri: the store (resolved, :func:`resolve_tracking_uri`).
        experiment: experiment name.
        run_name: the MLflow run name (the run folder's name).
        run_uid: the run folder's id (``run_info.json``).
        base_dir: the run folder; artifact and model paths are relative to it.
        run_id: the MLflow run id when known.
        start_time: Unix milliseconds, the run's start, used when creating it.
    """

    UID_TAG = "segtie.run_uid"
    TERMINAL = ("FINISHED", "KILLED", "FAILED")

    def __init__(self, tracking_uri: str, experiment: str, run_name: str, run_uid: str,
                 base_dir, run_id: Optional[str] = None, start_time: Optional[int] = None):
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.run_name = run_name
        self.run_uid = run_uid
        self.base_dir = Path(base_dir)
        self.run_id = run_id
        self.start_time = start_time
        self.confirmed = 0  # records[:confirmed] are known to be in the store

    def push(self, records: list) -> dict:
        """Send what the run lacks of ``records`` (the whole journal, in order).

        Returns:
            Counts of what was sent: ``{"params", "metrics", "tags", "artifacts",
            "models"}``.

        Raises:
            Exception: whatever the store raises (unreachable, locked, refused); the
                next push starts over from the first record not confirmed.
        """
        client, exp_id = open_experiment(self.tracking_uri, self.experiment)
        run = self._run(client, exp_id)
        pending = records[self.confirmed:]
        sent = {"params": 0, "metrics": 0, "tags": 0, "artifacts": 0, "models": 0}
        sent["params"] = self._push_params(client, run, pending)
        sent["metrics"] = self._push_metrics(client, pending)
        tags = {k: str(v) for r in pending for k, v in (r.get("tags") or {}).items()}
        if tags:
            self._log_batch(client, tags=tags)
            sent["tags"] = len(tags)
        sent["artifacts"] = self._push_artifacts(client, pending)
        sent["models"] = self._push_models(client, pending)
        statuses = [r["status"] for r in records if r.get("status")]
        self._set_status(client, statuses[-1] if statuses else "RUNNING", records)
        self.confirmed = len(records)
        return sent

    # -- the run --------------------------------------------------------------------
    def _run(self, client, exp_id):
        if self.run_id:
            return client.get_run(self.run_id)
        found = client.search_runs([exp_id], f"tags.`{self.UID_TAG}` = '{self.run_uid}'",
                                   max_results=1)
        run = found[0] if found else client.create_run(
            exp_id, start_time=self.start_time, run_name=self.run_name,
            tags={self.UID_TAG: self.run_uid})
        self.run_id = run.info.run_id
        return run

    def _log_batch(self, client, metrics=(), params=(), tags=None) -> None:
        from mlflow.entities import Metric, Param, RunTag

        batches = ([("metrics", [Metric(*m) for m in metrics], 1000),
                    ("params", [Param(k, v) for k, v in params], 100),
                    ("tags", [RunTag(k, v) for k, v in (tags or {}).items()], 100)])
        for kind, items, limit in batches:  # MLflow's limits per log_batch call
            for i in range(0, len(items), limit):
                client.log_batch(self.run_id, **{kind: items[i:i + limit]})

    def _push_params(self, client, run, pending) -> int:
        held = run.data.params
        wanted = {k: "null" if v is None else str(v)
                  for r in pending for k, v in (r.get("params") or {}).items()}
        for key in [k for k in wanted if k in held and held[k] != wanted[k]]:
            logger.warning("MLflow run %s holds param %s=%r, the journal %r; kept the "
                           "run's", self.run_id, key, held[key], wanted.pop(key))
        missing = [(k, v) for k, v in wanted.items() if k not in held]
        if missing:
            self._log_batch(client, params=missing)
        return len(missing)

    def _push_metrics(self, client, pending) -> int:
        wanted = {}
        for r in pending:
            for key, value in (r.get("metrics") or {}).items():
                wanted.setdefault(key, {})[int(r.get("step", 0))] = (float(value),
                                                                     int(r["time"]))
        rows = []
        for key, steps in wanted.items():
            held = {m.step for m in client.get_metric_history(self.run_id, key)}
            rows += [(key, value, stamp, step) for step, (value, stamp) in sorted(steps.items())
                     if step not in held]
        if rows:
            self._log_batch(client, metrics=rows)
        return len(rows)

    def _push_artifacts(self, client, pending) -> int:
        count = 0
        for r in (r for r in pending if r.get("artifact")):
            local = self.base_dir / r["artifact"]
            if not local.is_file():
                logger.warning("Journal artifact %s is missing; not sent", local)
                continue
            folder = r.get("artifact_path")
            held = {Path(f.path).name: f.file_size for f in client.list_artifacts(
                self.run_id, folder)}
            if held.get(local.name) != local.stat().st_size:
                client.log_artifact(self.run_id, str(local), folder)
                count += 1
        return count

    def _push_models(self, client, pending) -> int:
        records = [r for r in pending if r.get("model")]
        held = client.get_run(self.run_id).data.tags if records else {}
        count = 0
        for r in (r for r in records if r["tag"] not in held):
            uri = self._log_model(r)
            self._log_batch(client, tags={r["tag"]: uri})
            count += 1
        return count

    def _log_model(self, record: dict) -> str:
        """Log one model record with :class:`Tracker`'s code, inside this run."""
        import mlflow

        checkpoint = self.base_dir / record["checkpoint"]
        example = record.get("example")
        example = np.load(self.base_dir / example) if example else None
        log = getattr(Tracker, f"log_{record['model']}_model").__wrapped__  # raises
        tracker = Tracker(True, self.tracking_uri, self.experiment)
        mlflow.set_tracking_uri(self.tracking_uri)
        mlflow.start_run(run_id=self.run_id)
        try:
            if record["model"] == "keras":
                return log(tracker, keras.saving.load_model(checkpoint, safe_mode=True),
                           example)
            return log(tracker, checkpoint, self.base_dir / record["config"], example)
        finally:
            mlflow.end_run()  # the status is set right after, from the journal

    def _set_status(self, client, status: str, records: list) -> None:
        run = client.get_run(self.run_id)
        if status in self.TERMINAL:
            ended = [r["time"] for r in records if r.get("status") == status][-1]
            if run.info.status != status or run.info.end_time != ended:
                client.set_terminated(self.run_id, status, end_time=ended)
        elif run.info.status != status:
            client.update_run(self.run_id, status=status)
