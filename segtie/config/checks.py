"""Validation: build the dataclasses from raw dicts, checking every key and value.

Messages say what, expected and received: "`model.num_iterations` must be >= 1,
received 0".
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from segtie.config.groups import Config, DataConfig

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
    elif tp is dict:
        ok = isinstance(value, dict)
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
    return cls(**values)


VOLUME_DATASETS = ("hippocampus", "nifti_folder")  # 3-D, one channel: spatial_dims 3


def _check_model_fits_data(config: Config) -> None:
    dims = config.model.spatial_dims
    wanted = 3 if config.data.name in VOLUME_DATASETS else 2
    if dims != wanted:
        raise ValueError(f"`model.spatial_dims` must be {wanted} for `data.name` = "
                         f"{config.data.name!r} ({'volumes' if wanted == 3 else 'images'}), "
                         f"received {dims}")
    if wanted == 3 and config.model.in_channels != 1:
        raise ValueError(f"`model.in_channels` must be 1 for `data.name` = "
                         f"{config.data.name!r} (single-channel volumes), received "
                         f"{config.model.in_channels}")
    for key, size in (("data.image_size", config.data.image_size),
                      ("data.patch_size", config.data.patch_size),
                      ("eval.window_size", config.eval.window_size)):
        if size is not None and len(size) != dims:
            raise ValueError(f"`{key}` must have {dims} sides for `model.spatial_dims` = "
                             f"{dims}, received {size}")
    factor = 2 ** (config.model.depth - 1)
    for key in ("image_size", "patch_size"):
        size = getattr(config.data, key)
        if size is not None and any(side % factor for side in size):
            raise ValueError(
                f"`data.{key}` must be divisible by 2**(model.depth - 1) = {factor} "
                f"(model.depth = {config.model.depth}), received {size}")


DATASET_CLASSES = {"hippocampus": 3}  # multi-class public datasets: classes incl. background


def implied_num_classes(data: DataConfig) -> int:
    """Model outputs the data calls for: 1 (sigmoid) for binary masks, else K + 1.

    Hippocampus has 3 classes (background, anterior, posterior: 3 softmax outputs).
    Binary data is Kvasir-SEG, DRIVE, and a folder without ``label_map`` or whose
    ``label_map`` has two classes (the pipeline then gives float masks in {0, 1});
    a ``label_map`` with classes 0..K, K >= 2, calls for ``K + 1`` softmax outputs.
    A ``nifti_folder`` always calls for ``K + 1`` softmax outputs, two classes
    included, as Hippocampus does: volumes are evaluated by the argmax over classes
    (:func:`segtie.evaluation.volumes.evaluate_volumes` takes no sigmoid model).
    """
    if data.name in DATASET_CLASSES:
        return DATASET_CLASSES[data.name]
    if data.label_map is None:
        return 1
    classes = max(data.label_map.values()) + 1
    return 1 if classes == 2 and data.name not in VOLUME_DATASETS else classes


def _check_model_classes(config: Config) -> None:
    data, expected = config.data, implied_num_classes(config.data)
    if config.model.num_classes == expected:
        return
    if data.name in DATASET_CLASSES:
        why = (f"`data.name` = {data.name!r} has classes 0..{expected - 1}, one softmax "
               f"output each")
    elif data.label_map is None:
        why = (f"binary masks (`data.name` = {data.name!r}, `data.label_map` = null) "
               f"need one sigmoid output")
    elif data.name in VOLUME_DATASETS:
        why = (f"`data.label_map` = {data.label_map} has classes 0..{expected - 1}, one "
               f"softmax output each (volumes take the argmax, two classes included)")
    elif expected == 1:
        why = (f"`data.label_map` = {data.label_map} has two classes (binary masks), "
               f"which need one sigmoid output")
    else:
        why = (f"`data.label_map` = {data.label_map} has classes 0..{expected - 1} "
               f"(background and {expected - 1} foreground classes), one softmax "
               f"output each")
    raise ValueError(f"`model.num_classes` must be {expected}: {why}; received "
                     f"`model.num_classes` = {config.model.num_classes}")

