"""The logged models: Keras flavor ``model``, pyfunc ``serving``; loading; their runs."""

from __future__ import annotations

import functools
import logging
import os
import re
from importlib import metadata
from typing import Optional

import keras
import numpy as np

from segtie.tracking.store import resolve_tracking_uri

__all__ = ["LOADING_REQUIREMENTS", "MODEL_NAME", "SERVING_NAME", "KerasFlavor",
           "installed_version", "load_keras_model", "model_requirements", "pyfunc_class",
           "read_run_text", "run_id_of"]

MODEL_NAME = "model"
SERVING_NAME = "serving"  # the pyfunc model: raw images -> masks
LOADING_REQUIREMENTS = ("keras", "tensorflow")
"""What loading a logged model needs besides segtie itself (its custom layers)."""
PYFUNC_MODULE = "segtie.tracking"  # where SegmentationPyfunc is imported from (pickles)
logger = logging.getLogger(__name__)


class KerasFlavor:
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


@functools.lru_cache(maxsize=None)
def pyfunc_class():
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

    SegmentationPyfunc.__module__ = PYFUNC_MODULE
    SegmentationPyfunc.__qualname__ = "SegmentationPyfunc"
    return SegmentationPyfunc


def installed_version(name: str) -> Optional[str]:
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
        version = installed_version(name) or (
            installed_version(f"{name}-cpu") if name == "tensorflow" else None)
        pins.append(f"{name}=={version}" if version else name)
    return pins


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
