"""A fail-safe handle on one MLflow run (evaluation, export) and a Keras callback."""

from __future__ import annotations

import functools
import logging
import tempfile
import warnings
from pathlib import Path
from typing import Optional

import keras
import numpy as np

from segtie.tracking.models import (MODEL_NAME, SERVING_NAME, KerasFlavor, installed_version,
                                    model_requirements, pyfunc_class)
from segtie.tracking.inputs import log_dataset_inputs
from segtie.tracking.store import open_experiment, resolve_tracking_uri

__all__ = ["NOTE_TAG", "MlflowCallback", "Tracker", "current_learning_rate", "scratch_dir"]

logger = logging.getLogger(__name__)
NOTE_TAG = "mlflow.note.content"  # MLflow's run description (Markdown, top of the run page)


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
        self._missing: set = set()  # other runs found missing from the store
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
    def log_input(self, split_record: dict) -> None:
        """Log a dataset input (:func:`segtie.data.provenance.describe_split`)."""
        log_dataset_inputs(self.client, self.run_id, [split_record])

    @_guarded
    def log_table(self, rows: list, artifact_file: str) -> None:
        """Log ``rows`` (dicts with the same keys) as an MLflow table artifact.

        ``mlflow.log_table`` writes ``artifact_file`` (``.json``) in MLflow's table
        format, which the UI shows sortable (Artifacts tab, and the Evaluation view).
        """
        import mlflow

        columns = list(dict.fromkeys(k for row in rows for k in row))
        mlflow.log_table({c: [row.get(c) for row in rows] for c in columns}, artifact_file)

    def _other_run(self, run_id: str):
        """Another run of this store, or None (with a warning) when the store lacks it:
        a checkpoint trained against another store, or a deleted run. Other errors
        propagate (to :func:`_guarded`)."""
        from mlflow.exceptions import MlflowException

        try:
            return self.client.get_run(run_id)
        except MlflowException as err:
            if err.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            if run_id not in self._missing:  # one warning per run
                self._missing.add(run_id)
                logger.warning("Run %s is not in the tracking store %s (trained against "
                               "another store?); not linked or tagged", run_id,
                               self.tracking_uri)
            return None

    @_guarded
    def tag_run(self, run_id: str, tags: dict) -> None:
        """Set ``tags`` on another run of the store (the training run of an evaluation);
        nothing when the store lacks it (a warning)."""
        if self._other_run(run_id) is None:
            return
        for key, value in tags.items():
            self.client.set_tag(run_id, key, str(value))

    @_guarded
    def run_link(self, run_id: str) -> Optional[str]:
        """The MLflow UI's relative link to ``run_id`` (``#/experiments/<id>/runs/<id>``),
        or None when the store lacks it (a warning)."""
        run = self._other_run(run_id)
        return f"#/experiments/{run.info.experiment_id}/runs/{run_id}" if run else None

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
        the U-Net takes; one more ``-1`` for a 3-D model's volumes) and
        ``input_example`` when given. It loads back with
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
                artifact_path=None, name=MODEL_NAME, flavor=KerasFlavor, model=model,
                pip_requirements=model_requirements(),
                signature=signature, input_example=input_example,
                metadata={"segtie_version": installed_version("segtie"),
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
            name=SERVING_NAME, python_model=pyfunc_class()(),
            artifacts={"model": str(checkpoint), "config": str(config_file)},
            signature=signature, input_example=example,
            pip_requirements=model_requirements(),
            metadata={"segtie_version": installed_version("segtie"),
                      "serving": "mlflow models serve -m <uri> --env-manager local "
                                 "--host 127.0.0.1 (segtie installed)"})
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


def scratch_dir() -> Path:
    """A temporary folder for artifacts written before upload."""
    return Path(tempfile.mkdtemp(prefix="segtie-"))
