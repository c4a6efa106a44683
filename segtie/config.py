"""YAML -> typed, frozen configuration objects.

A config is one :class:`Config` with five groups (``data``, ``model``, ``train``,
``eval``, ``tracking``). Every value can be overridden from the command line with
``--set group.key=value`` (the value is parsed as YAML, so ``--set
data.image_size=[96,96]`` and ``--set train.epochs=3`` both work).

Unknown keys, wrong types and out-of-range values raise ``ValueError`` or
``TypeError`` naming the key, what was expected and what was received.
"""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any, Optional

import yaml

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "configs" / "kvasir_seg.yaml"


def _field(default: Any, *, low: Optional[float] = None, high: Optional[float] = None,
           choices: Optional[tuple] = None, factory: bool = False):
    """A dataclass field carrying its validation rule in ``metadata``."""
    meta = {"low": low, "high": high, "choices": choices}
    if factory:
        return dataclasses.field(default_factory=default, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly training augmentation; image and mask are transformed together."""

    flip: bool = True  # random left-right and up-down flips
    rotate90: bool = True  # random multiple of 90 degrees (square images only)


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it is fed to the model.

    ``image_size`` is ``[height, width]`` in pixels after resizing. ``manual_dir`` is
    the folder holding the publisher's archive when there is no network; the
    environment variable ``SEGTIE_MANUAL_DIR`` overrides it. ``max_train_cases``
    caps the training split (``null`` = all), for quick runs and tests.
    """

    name: str = _field("kvasir_seg", choices=("kvasir_seg",))
    data_dir: str = "data/tfds"
    manual_dir: str = "data"
    image_size: list = _field(lambda: [128, 128], factory=True)
    batch_size: int = _field(8, low=1)
    max_train_cases: Optional[int] = _field(None, low=1)
    max_eval_cases: Optional[int] = _field(None, low=1)
    shuffle_buffer: int = _field(1000, low=1)
    cache: bool = True
    augment: AugmentConfig = _field(AugmentConfig, factory=True)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """The recurrent U-Net with tied kernels (see :mod:`segtie.models`).

    ``num_iterations`` is the number of uses of one tied kernel in a block;
    ``num_iterations: 1`` gives the plain U-Net from the same code.
    """

    in_channels: int = _field(3, low=1)
    num_classes: int = _field(1, low=1)
    base_filters: int = _field(16, low=1)
    depth: int = _field(4, low=1, high=8)
    num_iterations: int = _field(2, low=1)
    norm: str = _field("batch", choices=("batch", "none"))
    norm_per_iteration: bool = False
    dropout: float = _field(0.0, low=0.0, high=0.99)


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Optimisation. ``learning_rate`` is the peak rate of the schedule."""

    epochs: int = _field(20, low=1)
    optimizer: str = _field("adam", choices=("adam", "adamw", "sgd"))
    learning_rate: float = _field(1e-3, low=0.0)
    weight_decay: float = _field(0.0, low=0.0)
    schedule: str = _field("cosine", choices=("cosine", "constant"))
    warmup_epochs: int = _field(0, low=0)
    dice_weight: float = _field(1.0, low=0.0)
    bce_weight: float = _field(1.0, low=0.0)
    seed: int = _field(42, low=0)
    output_dir: str = "runs"
    max_minutes: Optional[float] = _field(None, low=0.0)


@dataclasses.dataclass(frozen=True)
class EvalConfig:
    """Evaluation. ``threshold`` applies to probabilities (sigmoid of logits)."""

    threshold: float = _field(0.5, low=0.0, high=1.0)
    output_dir: str = "runs/eval"
    num_overlays: int = _field(4, low=0)


@dataclasses.dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking. ``tracking_uri: null`` means ``MLFLOW_TRACKING_URI`` if set,
    else a SQLite store ``mlflow.db`` in the project folder; ``experiment: null``
    means the dataset name."""

    enabled: bool = True
    tracking_uri: Optional[str] = None
    experiment: Optional[str] = None


@dataclasses.dataclass(frozen=True)
class Config:
    """The whole configuration: one object with five groups."""

    data: DataConfig = _field(DataConfig, factory=True)
    model: ModelConfig = _field(ModelConfig, factory=True)
    train: TrainConfig = _field(TrainConfig, factory=True)
    eval: EvalConfig = _field(EvalConfig, factory=True)
    tracking: TrackingConfig = _field(TrackingConfig, factory=True)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _check_value(key: str, tp: Any, value: Any, meta: dict) -> Any:
    """Validate one leaf value against its annotation and metadata."""
    origin = typing.get_origin(tp)
    if origin is typing.Union:  # Optional[X]
        if value is None:
            return None
        (tp,) = [t for t in typing.get_args(tp) if t is not type(None)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if tp is list:
        ok = isinstance(value, list)
    elif tp is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, tp)
    if not ok:
        raise TypeError(f"`{key}` must be of type {_type_name(tp)}, received "
                        f"{value!r} of type {type(value).__name__}")
    if meta.get("choices") and value not in meta["choices"]:
        raise ValueError(f"`{key}` must be one of {list(meta['choices'])}, received {value!r}")
    if meta.get("low") is not None and value < meta["low"]:
        raise ValueError(f"`{key}` must be >= {meta['low']}, received {value!r}")
    if meta.get("high") is not None and value > meta["high"]:
        raise ValueError(f"`{key}` must be <= {meta['high']}, received {value!r}")
    return value


def _build(cls: type, raw: Any, prefix: str) -> Any:
    """Recursively turn a dict into the dataclass ``cls``, validating every key."""
    where = prefix or "config"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise TypeError(f"`{where}` must be a mapping, received {raw!r} of type "
                        f"{type(raw).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        raise ValueError(f"Unknown key `{prefix + '.' if prefix else ''}{unknown[0]}`; "
                         f"valid keys of `{where}` are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    values = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            values[name] = _build(tp, value, key)
        else:
            values[name] = _check_value(key, tp, value, dict(fields[name].metadata))
    obj = cls(**values)
    _check_cross(obj, prefix)
    return obj


def _check_cross(obj: Any, prefix: str) -> None:
    """Constraints that involve more than one value."""
    if isinstance(obj, DataConfig):
        size = obj.image_size
        if len(size) != 2 or not all(isinstance(s, int) and s > 0 for s in size):
            raise ValueError(f"`{prefix}.image_size` must be [height, width] of two positive "
                             f"integers, received {size!r}")


def _check_model_fits_data(config: Config) -> None:
    factor = 2 ** (config.model.depth - 1)
    for side in config.data.image_size:
        if side % factor:
            raise ValueError(
                f"`data.image_size` must be divisible by 2**(model.depth - 1) = {factor} "
                f"(model.depth = {config.model.depth}), received {config.data.image_size}")


def from_dict(raw: dict) -> Config:
    """Build a validated :class:`Config` from a nested dict.

    Raises:
        ValueError: unknown key or out-of-range value (the message names the key).
        TypeError: a value of the wrong type (the message names key and type).
    """
    config = _build(Config, raw, "")
    _check_model_fits_data(config)
    return config


def to_dict(config: Config) -> dict:
    """The config as a plain nested dict (YAML- and JSON-serialisable)."""
    return dataclasses.asdict(config)


def flatten(config: Config) -> dict:
    """The config as ``{"group.key": value}``, e.g. for MLflow params."""
    out = {}

    def walk(d: dict, prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, f"{prefix}{k}.")
            else:
                out[f"{prefix}{k}"] = v

    walk(to_dict(config), "")
    return out


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    """Apply ``group.key=value`` overrides to a raw config dict (values parsed as YAML).

    Raises:
        ValueError: an override without ``=``.
    """
    raw = yaml.safe_load(yaml.safe_dump(raw)) or {}
    for item in overrides or []:
        if "=" not in item:
            raise ValueError(f"Override must look like `group.key=value`, received {item!r}")
        key, text = item.split("=", 1)
        node = raw
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"Override {item!r}: `{part}` is not a group")
        node[parts[-1]] = yaml.safe_load(text)
    return raw


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load a YAML config file, apply overrides and validate.

    Args:
        path: YAML file; ``None`` loads ``configs/kvasir_seg.yaml``.
        overrides: ``["group.key=value", ...]``.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError / TypeError: see :func:`from_dict`; YAML syntax errors name the file.
    """
    path = Path(path) if path else DEFAULT_CONFIG
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"Config file {path} is not valid YAML: {err}") from err
    try:
        return from_dict(apply_overrides(raw, overrides or []))
    except (ValueError, TypeError) as err:
        raise type(err)(f"{path}: {err}") from err


def dump_yaml(config: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
