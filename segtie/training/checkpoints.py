"""Find, load and check a trained model: a ``.keras`` path or an MLflow model URI.

A checkpoint can be given as
- a path to a ``.keras`` file written by training (``runs/<run>/best.keras``); the
  run folder's ``config.yaml`` and ``run_info.json`` are used when present;
- ``runs:/<run_id>/model`` (a training run's logged model) or
  ``models:/m-<model_id>`` (MLflow 3's logged model, what training logs), or
  ``models:/<name>/<version>`` and ``models:/<name>@<alias>`` (a registered model).
"""

from __future__ import annotations

import json
import logging
import zipfile
from pathlib import Path
from typing import Optional

import keras
import yaml

from segtie import config as cfg
from segtie import tracking

logger = logging.getLogger(__name__)
URI_SCHEMES = ("runs:/", "models:/")


def is_mlflow_uri(spec: str) -> bool:
    """Whether ``spec`` is an MLflow model URI rather than a file path."""
    return spec.startswith(URI_SCHEMES)


def load_checkpoint(spec: str, tracking_uri: Optional[str] = None) -> keras.Model:
    """Load a model from a ``.keras`` path or an MLflow URI (Keras safe mode).

    Raises:
        FileNotFoundError: the path does not exist or MLflow cannot resolve the URI.
        IsADirectoryError: the path is a folder (the message names its ``best.keras``
            when it has one).
        ValueError: the file exists but is not a ``.keras`` zip archive, or not a
            loadable Keras model.
    """
    if is_mlflow_uri(spec):
        return tracking.load_keras_model(spec, tracking_uri)
    path = _existing_file(spec)
    if path.suffix != ".keras":
        raise ValueError(f"Checkpoint {path} must be a .keras file, received suffix "
                         f"{path.suffix!r}")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"Checkpoint {path} is not a .keras archive (expected a zip file "
                         f"holding config.json and model.weights.h5, as segtie train "
                         f"writes; {path.stat().st_size} bytes, not a zip)")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as err:  # zip/JSON/deserialisation errors: one clear message
        raise ValueError(f"Checkpoint {path} is not a loadable segtie Keras model: "
                         f"{type(err).__name__}: {err}") from err


def check_compatible(model: keras.Model, model_config, spec: str) -> None:
    """Check that ``model`` takes and returns what ``model_config`` says.

    Raises:
        ValueError: input channels or output classes differ (names both values).
    """
    in_ch = model.inputs[0].shape[-1]
    out_ch = model.outputs[0].shape[-1]
    if in_ch != model_config.in_channels:
        raise ValueError(f"Checkpoint {spec} takes {in_ch} input channels but the config's "
                         f"`model.in_channels` is {model_config.in_channels}")
    if out_ch != model_config.num_classes:
        raise ValueError(f"Checkpoint {spec} outputs {out_ch} classes but the config's "
                         f"`model.num_classes` is {model_config.num_classes}")


def initialize_from(model: keras.Model, spec: str,
                    tracking_uri: Optional[str] = None) -> None:
    """Give ``model`` the weights of the checkpoint ``spec`` (``train.init_from``).

    Every variable of the checkpoint's model is assigned to the variable of ``model``
    at the same position of ``model.weights`` (trainable and not, e.g. a batch norm's
    running statistics); a tied kernel is one variable in both, so it stays one.

    Args:
        model: the freshly built model (the inference model, not a training wrapper).
        spec: a ``.keras`` path or an MLflow model URI, as :func:`load_checkpoint`.
        tracking_uri: the MLflow store of an MLflow URI.

    Raises:
        FileNotFoundError, ValueError: as :func:`load_checkpoint`; ValueError also when
            the two models have a different number of variables or a variable's shape
            differs (the message names the variable and both shapes).
    """
    source = load_checkpoint(spec, tracking_uri)
    have, want = source.weights, model.weights
    if len(have) != len(want):
        raise ValueError(f"`train.init_from` = {spec}: its model has {len(have)} variables "
                         f"and this config's model {len(want)}; expected the same "
                         f"architecture (model group) as the run that wrote it")
    for index, (a, b) in enumerate(zip(have, want)):
        if tuple(a.shape) != tuple(b.shape):
            raise ValueError(f"`train.init_from` = {spec}: variable {index} ({b.path}) has "
                             f"shape {tuple(b.shape)} in this config's model but "
                             f"{tuple(a.shape)} ({a.path}) in the checkpoint; expected the "
                             f"same architecture (model group) as the run that wrote it")
    for a, b in zip(have, want):
        b.assign(a)
    logger.info("Initialised %d variables from %s", len(want), spec)


def recorded_spec(spec: str) -> str:
    """``spec`` as a record should keep it: an MLflow URI as it is, a path absolute with
    its links followed (``runs/latest/best.keras`` names the run it meant, not
    whichever run ``latest`` points at later)."""
    return spec if is_mlflow_uri(spec) else str(Path(spec).resolve())


def training_run_id(spec: str, tracking_uri: Optional[str] = None) -> Optional[str]:
    """The MLflow id of the training run that produced the checkpoint, if known."""
    if is_mlflow_uri(spec):
        return tracking.run_id_of(spec, tracking_uri)
    info = Path(spec).resolve().with_name("run_info.json")
    if info.is_file():
        return json.loads(info.read_text()).get("mlflow_run_id")
    return None


def _existing_file(spec: str) -> Path:
    """``spec`` as an absolute path; ``FileNotFoundError`` (or ``IsADirectoryError``)
    saying what was expected."""
    path = Path(spec).resolve()
    if path.is_dir():
        inside = path / "best.keras"
        exported = sorted(str(p) for p in path.glob("model_*.tflite"))
        if (path / "saved_model" / "saved_model.pb").is_file():
            exported.append(str(path / "saved_model"))
        hint = (f"; did you mean {inside}?" if inside.is_file() else
                f"; an export: did you mean {' or '.join(exported)}?" if exported else "")
        raise IsADirectoryError(f"Checkpoint {path} is a folder; expected a .keras file "
                                f"(a run folder's best.keras){hint}")
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint not found: {path} (expected a .keras file "
                                f"written by segtie train, or an MLflow URI runs:/<run_id>/model, "
                                f"models:/m-<model_id>, models:/<name>/<version> or "
                                f"models:/<name>@<alias>)")
    return path


def resolve_config(spec: str, config_path: Optional[str], overrides: list,
                   tracking_uri: Optional[str] = None) -> cfg.Config:
    """The config to evaluate with.

    ``--config`` wins; else the training run's own ``config.yaml`` (beside a
    ``.keras`` file, or the MLflow run's artifact); else the default config.

    Raises:
        FileNotFoundError: ``spec`` is a path to no file.
    """
    if not is_mlflow_uri(spec):
        _existing_file(spec)
    if config_path:
        config = cfg.load_config(config_path, overrides)
        beside = None if is_mlflow_uri(spec) else Path(spec).resolve().with_name("config.yaml")
        if beside is not None and beside.is_file():
            cfg.warn_if_trained_for_other_data(beside, config, spec)
        return config
    if tracking_uri is None:  # a --set tracking.tracking_uri=... must reach the look-up
        # (only the tracking keys: the others belong to the run's config, e.g. a 3-D
        # window that the default 2-D config would refuse)
        tracking_only = [o for o in overrides if str(o).strip().startswith("tracking.")]
        tracking_uri = cfg.load_config(None, tracking_only).tracking.tracking_uri
    if not is_mlflow_uri(spec):
        beside = Path(spec).resolve().with_name("config.yaml")
        if beside.is_file():
            return cfg.load_config(beside, overrides)
    else:
        run_id = tracking.run_id_of(spec, tracking_uri)
        text = tracking.read_run_text(run_id, "config.yaml", tracking_uri) if run_id else None
        if text:
            raw = yaml.safe_load(text) or {}
            return cfg.from_dict(cfg.apply_overrides(raw, overrides))
    config = cfg.load_config(None, overrides)
    logger.warning("No training config found for %s (no config.yaml beside it%s): using "
                   "the default config (dataset %s, image size %s); if the model was "
                   "trained with another, the scores may be wrong: pass --config <its "
                   "config.yaml or recipe>", spec,
                   "" if not is_mlflow_uri(spec) else " or in its MLflow run",
                   config.data.name, "x".join(map(str, config.data.image_size)))
    return config
