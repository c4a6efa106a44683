"""Load any trained or exported model for prediction, with the config it goes with.

``spec`` may be a ``.keras`` file, a ``runs:/``/``models:/`` MLflow URI (both through
:mod:`segtie.training.checkpoints`), a ``.tflite`` file or a SavedModel folder written
by :func:`segtie.export.export_model`. The config is ``--config`` when given, else the
training run's own (beside the ``.keras`` file, in the MLflow run, or the
``config.yaml`` an export writes beside its files), else the default recipe. The
inference options (:func:`segtie.evaluation.run.inference_options`: resize or sliding
window, TTA, number of classes) come from it; for a LiteRT model, whose input size is
fixed, the training size and the window are the model's own.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Optional

from segtie import config as cfg
from segtie.evaluation.run import inference_options
from segtie.export.runtime import LiteRTModel, SavedModelModel, is_saved_model
from segtie.inference import InferenceOptions
from segtie.training import checkpoints

__all__ = ["Predictor", "is_export", "load_predictor"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Predictor:
    """A model ready for :func:`segtie.inference.predict_probabilities`.

    Attributes:
        model: a Keras model, :class:`LiteRTModel` or :class:`SavedModelModel`
            (images float32 in [0, 1] -> logits).
        config: the config it goes with.
        options: the :class:`InferenceOptions` of ``config`` (for the model).
        kind: ``"keras"``, ``"litert"`` or ``"saved_model"``.
        train_run_id: the MLflow run that trained it (a checkpoint's ``run_info.json``,
            an export's ``export.json``), or None when unknown.
        ensemble_members: an exported ensemble's members (its ``export.json``), else
            None (a ``.keras`` ensemble's are read beside it by the evaluation).
    """

    model: object
    config: cfg.Config
    options: InferenceOptions
    kind: str
    train_run_id: Optional[str] = None
    ensemble_members: Optional[list] = None


def _config_beside(path: Path, config_path, overrides) -> cfg.Config:
    """``--config``, else ``config.yaml`` in the export folder, else the default."""
    own = next((folder / "config.yaml" for folder in
                (path if path.is_dir() else path.parent, path.parent)
                if (folder / "config.yaml").is_file()), None)
    if config_path:
        config = cfg.load_config(config_path, overrides)
        if own is not None:
            cfg.warn_if_trained_for_other_data(own, config, str(path))
        return config
    if own is not None:
        return cfg.load_config(own, overrides)
    config = cfg.load_config(None, overrides)
    logger.warning("No config.yaml beside %s: using the default config (dataset %s, image "
                   "size %s); if the model was trained with another, pass --config <its "
                   "config.yaml or recipe>", path, config.data.name,
                   "x".join(map(str, config.data.image_size)))
    return config


def _export_record(path: Path) -> dict:
    """The ``export.json`` beside a ``.tflite`` file or ``saved_model/`` ({} if none)."""
    record = path.resolve().with_name("export.json")
    return json.loads(record.read_text()) if record.is_file() else {}


def _litert_options(model: LiteRTModel, config: cfg.Config, spec: str) -> InferenceOptions:
    options = inference_options(config)
    window = options.window_size
    if options.sliding_window and window is not None and list(window) != model.image_size:
        raise ValueError(f"`eval.window_size` must be the LiteRT model's fixed input size "
                         f"{model.image_size} (or null) for {spec}, received {list(window)}")
    if list(options.image_size) != model.image_size:
        logger.info("%s takes %s; using it instead of data.image_size %s", spec,
                    model.image_size, list(options.image_size))
    return dataclasses.replace(options, image_size=model.image_size, window_size=None,
                               batch_size=1)


def is_export(spec: str) -> bool:
    """Whether ``spec`` names an exported model (a ``.tflite`` file or a SavedModel)."""
    return Path(spec).suffix == ".tflite" or is_saved_model(Path(spec))


def load_predictor(spec: str, config_path: Optional[str] = None, overrides=(),
                   num_threads: Optional[int] = None) -> Predictor:
    """Load ``spec`` (see the module docstring) and its config.

    Args:
        spec: a ``.keras`` or ``.tflite`` file, a SavedModel folder or an MLflow URI.
        config_path: a YAML file or recipe name overriding the model's own config.
        overrides: ``--set`` strings.
        num_threads: LiteRT interpreter threads (None: its default).

    Raises:
        FileNotFoundError: nothing at ``spec``.
        ValueError: a file that is not a model of the kinds above, a model whose
            classes differ from the config's, a window size a LiteRT model cannot take.
    """
    overrides = list(overrides)
    path = Path(spec)
    if (checkpoints.is_mlflow_uri(spec) or path.suffix == ".keras"
            or (path.is_dir() and not is_saved_model(path))):  # a folder: name what's in it
        config = checkpoints.resolve_config(spec, config_path, overrides)
        model = checkpoints.load_checkpoint(spec, config.tracking.tracking_uri)
        checkpoints.check_compatible(model, config.model, spec)
        return Predictor(model, config, inference_options(config), "keras",
                         checkpoints.training_run_id(spec, config.tracking.tracking_uri))
    if path.suffix == ".tflite":
        model = LiteRTModel(path, num_threads=num_threads)
        config = _config_beside(path, config_path, overrides)
        _check_classes(model.num_classes, config, spec)
        record = _export_record(path)
        return Predictor(model, config, _litert_options(model, config, spec), "litert",
                         record.get("train_run_id"), record.get("ensemble_members"))
    if is_saved_model(path):
        model = SavedModelModel(path)
        config = _config_beside(path, config_path, overrides)
        _check_classes(model.num_classes, config, spec)
        record = _export_record(path)
        return Predictor(model, config, inference_options(config), "saved_model",
                         record.get("train_run_id"), record.get("ensemble_members"))
    if not path.exists():
        raise FileNotFoundError(f"Model not found: {path} (expected a .keras or .tflite "
                                f"file, a SavedModel folder, runs:/<run_id>/model or "
                                f"models:/...)")
    raise ValueError(f"Cannot load {path} as a model: expected a .keras or .tflite file or "
                     f"a folder holding saved_model.pb")


def _check_classes(num_classes: int, config: cfg.Config, spec: str) -> None:
    if num_classes != config.model.num_classes:
        raise ValueError(f"{spec} outputs {num_classes} classes but the config's "
                         f"`model.num_classes` is {config.model.num_classes}")
