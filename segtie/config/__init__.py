"""Config: YAML -> typed, frozen configuration objects (the lowest stage; imports no
other part of segtie).

The recipes (one YAML file per dataset/model) ship in ``segtie/config/recipes/`` and
are named by file or by name (``--config drive``).

A config is one :class:`Config` with five groups (``data``, ``model``, ``train``,
``eval``, ``tracking``). Every value can be overridden from the command line with
``--set group.key=value`` (the value is parsed as YAML, so ``--set
data.image_size=[96,96]`` and ``--set train.epochs=3`` both work).

A YAML file may start from another with ``inherits_from: <recipe name or path>``
(nnU-Net v2's plans use the same key for configurations that derive from others):
the other file is read first (recursively) and this file's values replace its
values key by key, so a variant recipe states only what differs.

Unknown keys, wrong types and out-of-range values raise ``ValueError`` or
``TypeError`` naming the key, what was expected and what was received.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Optional

import yaml

from segtie.config.checks import _build, _check_model_classes, _check_model_fits_data
from segtie.config.checks import implied_num_classes
from segtie.config.groups import (AugmentConfig, Config, DataConfig, EvalConfig, ModelConfig,
                                  TrackingConfig, TrainConfig)

__all__ = ["DEFAULT_CONFIG", "RECIPES_DIR", "AugmentConfig", "Config", "DataConfig",
           "EvalConfig", "ModelConfig", "TrackingConfig", "TrainConfig", "apply_overrides",
           "config_path", "dump_yaml", "flatten", "from_dict", "implied_num_classes",
           "load_config", "recipe_names", "to_dict", "warn_if_trained_for_other_data"]

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
"""The recipes shipped with the package (``configs/`` in the checkout links here)."""
DEFAULT_CONFIG = RECIPES_DIR / "kvasir_seg.yaml"
_INHERITS_FROM = "inherits_from"  # the top-level key naming the file a config starts from


def recipe_names() -> list[str]:
    """The names of the shipped recipes, e.g. ``["drive", "kvasir_seg"]``."""
    return sorted(path.stem for path in RECIPES_DIR.glob("*.yaml"))


def config_path(spec: Optional[str | Path]) -> Path:
    """The YAML file ``spec`` names: a path, or the name of a shipped recipe.

    ``None`` is the default recipe (``kvasir_seg``); ``"drive"`` or ``"drive.yaml"``
    is ``RECIPES_DIR / "drive.yaml"`` unless a file of that name exists here.

    Raises:
        FileNotFoundError: neither a file nor a recipe (the message lists the recipes).
    """
    if spec is None:
        return DEFAULT_CONFIG
    path = Path(spec)
    if path.is_file():
        return path
    recipe = RECIPES_DIR / (path.name if path.suffix == ".yaml" else f"{path.name}.yaml")
    if path.parent == Path(".") and recipe.is_file():
        return recipe
    raise FileNotFoundError(f"Config file not found: {path} (expected a YAML file or the "
                            f"name of a shipped recipe: {', '.join(recipe_names())})")


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
        ValueError: an override without ``=``, or whose value is not valid YAML (the
            message names the override).
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
        try:
            node[parts[-1]] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            problem = getattr(err, "problem", None) or str(err).splitlines()[0]
            raise ValueError(f"`{key.strip()}`: the value {text!r} is not valid YAML "
                             f"({problem}); expected e.g. 5, 1e-3, true, kvasir_seg or "
                             f"[96, 96]") from err
    return raw


def _read_raw(path: str | Path, _chain: tuple = ()) -> dict:
    """The raw nested dict of a YAML config file, its ``inherits_from`` resolved.

    ``inherits_from: kvasir_seg_long`` (a shipped recipe's name) or ``inherits_from:
    base.yaml`` (a path, relative to the file that names it) reads that file first,
    recursively; then this file's groups are merged over it key by key (a nested
    mapping is merged, any other value, lists included, replaces the base's).

    Raises:
        FileNotFoundError: ``path``, or a file it inherits from, does not exist (the
            message names the file that names it).
        ValueError: not UTF-8, not valid YAML, or a cycle of ``inherits_from`` (the
            message gives the chain of files).
        TypeError: the file is not a mapping, or ``inherits_from`` is not a string.
    """
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ValueError(f"Config file {path} is not UTF-8 text ({err.reason} at byte "
                         f"{err.start}); expected a YAML file") from err
    except yaml.YAMLError as err:
        raise ValueError(f"Config file {path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise TypeError(f"Config file {path} must hold a mapping of groups (data, model, "
                         f"train, eval, tracking), received {type(raw).__name__}")
    if _INHERITS_FROM not in raw:
        return raw
    spec = raw.pop(_INHERITS_FROM)
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"Config file {path}: `{_INHERITS_FROM}` must be a recipe name or a "
                        f"YAML path, received {spec!r}")
    chain = _chain + (path.resolve(),)
    beside = path.parent / spec
    try:
        base = beside if beside.is_file() else config_path(spec)
    except FileNotFoundError as err:
        raise FileNotFoundError(f"Config file {path}: `{_INHERITS_FROM}: {spec}` names no "
                                f"file ({err})") from err
    if base.resolve() in chain:
        cycle = " -> ".join(str(p) for p in chain + (base.resolve(),))
        raise ValueError(f"Config file {path}: `{_INHERITS_FROM}` makes a cycle: {cycle}")
    return _merge(_read_raw(base, chain), raw)


def _merge(base: dict, over: dict) -> dict:
    """``base`` with ``over``'s values in place of its own, nested mappings merged."""
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: Optional[str | Path] = None, overrides: Optional[list[str]] = None) -> Config:
    """Load a YAML config file (its ``inherits_from`` resolved), apply overrides and validate.

    Args:
        path: YAML file or recipe name (:func:`config_path`); ``None`` loads the
            default recipe ``kvasir_seg``.
        overrides: ``["group.key=value", ...]``.

    Raises:
        FileNotFoundError: neither a file nor a shipped recipe, or a missing
            ``inherits_from`` file (:func:`_read_raw`).
        ValueError / TypeError: see :func:`_read_raw` and :func:`from_dict`; the message
            starts with the file, or with the overrides when the file alone is valid.
    """
    path = config_path(path)
    raw = _read_raw(path)
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


def warn_if_trained_for_other_data(own_config: Path, config: Config, model: str) -> None:
    """Log a WARNING when ``config`` (from ``--config``) scores ``model`` on other data
    than its own ``config.yaml`` says it was trained for (``data.name``,
    ``data.image_size``, ``data.patch_size``). Scoring a model on another dataset is
    allowed (a generalisation test), never silent."""
    own = (yaml.safe_load(Path(own_config).read_text()) or {}).get("data") or {}
    ours = dataclasses.asdict(config.data)
    differ = [f"data.{k} {own[k]!r} (its own) vs {ours[k]!r}" for k in
              ("name", "image_size", "patch_size") if k in own and own[k] != ours[k]]
    if differ:
        logging.getLogger(__name__).warning(
            "%s was trained with other data than --config gives: %s (%s); scoring it "
            "anyway: leave out --config to use its own", model, "; ".join(differ),
            own_config)


def dump_yaml(config: Config) -> str:
    """The resolved config as YAML text."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
