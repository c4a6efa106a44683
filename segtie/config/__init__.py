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
from pathlib import Path
from typing import Optional

import yaml

from segtie.config.checks import _build, _check_model_classes, _check_model_fits_data
from segtie.config.checks import implied_num_classes
from segtie.config.groups import (AugmentConfig, Config, DataConfig, EvalConfig, ModelConfig,
                                  TrackingConfig, TrainConfig)

__all__ = ["DEFAULT_CONFIG", "AugmentConfig", "Config", "DataConfig", "EvalConfig",
           "ModelConfig", "TrackingConfig", "TrainConfig", "apply_overrides", "dump_yaml",
           "flatten", "from_dict", "implied_num_classes", "load_config", "to_dict"]

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "kvasir_seg.yaml"


def from_dict(raw: dict) -> Config:
    """Build a validated :class:`Config` from a nested dict.

    Raises:
        ValueError: unknown key or out-of-range value (the message names the key);
            ``model.num_classes`` other than the data's (:func:`implied_num_classes`).
        TypeError: a value of the wrong type (the message names key and type).
    """
    config = _build(Config, raw, "")
    _check_model_fits_data(config)
    _check_model_classes(config)
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
        ValueError / TypeError: see :func:`from_dict`; the message starts with the
            file, or with the overrides when the file alone is valid.
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
        raise type(err)(f"{_error_source(path, raw, overrides, str(err))}: {err}") from err


def _error_source(path: Path, raw: dict, overrides: Optional[list[str]], message: str) -> str:
    """What to blame for an invalid config: the file, or the command line's overrides.

    The overrides whose key the message names, or all of them if it names none.
    """
    if not overrides:
        return str(path)
    named = [item for item in overrides if item.split("=", 1)[0].strip() in message]
    given = " ".join(f"--set {item}" for item in named or overrides)
    try:
        from_dict(raw)
    except (ValueError, TypeError):
        return f"{path} (with {given})"
    return given  # the file alone is valid


def dump_yaml(config: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
