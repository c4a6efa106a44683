"""Write an ensemble of trained checkpoints as one ``.keras`` checkpoint with its config.

``segtie ensemble --checkpoint A --checkpoint B`` (:mod:`segtie.cli.ensemble`) calls
:func:`write_ensemble`: it loads the members (``.keras`` paths or MLflow URIs, as
:func:`segtie.training.checkpoints.load_checkpoint`), checks that they were trained for
the same task, and writes into one folder

- ``ensemble.keras``  :func:`segtie.nn.ensemble.build_ensemble` of the members (the
  mean of their logits), written through a temporary file and ``os.replace``;
- ``config.yaml``     member 0's config, so ``segtie evaluate|predict|export
  --checkpoint <folder>/ensemble.keras`` read it as they read a training run's;
- ``ensemble.json``   the members: checkpoint, training run, parameters.

Its parameter count is the members' sum: that is the count a budget compares.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional, Sequence

from segtie import config as cfg
from segtie.nn.ensemble import build_ensemble
from segtie.training import checkpoints
from segtie.training.backup import atomic_write_text

__all__ = ["ENSEMBLE_FILE", "MEMBERS_FILE", "SAME_KEYS", "ensemble_members", "write_ensemble"]

ENSEMBLE_FILE = "ensemble.keras"
MEMBERS_FILE = "ensemble.json"
SAME_KEYS = ("data.name", "data.image_size", "data.patch_size", "model.in_channels",
             "model.num_classes", "model.spatial_dims")
"""Config keys on which every member must agree (the task and the inference geometry)."""


def _check_same_task(configs: Sequence[cfg.Config], specs: Sequence[str]) -> None:
    """Raise ``ValueError`` naming the first :data:`SAME_KEYS` key the members differ on."""
    flat = [cfg.flatten(c) for c in configs]
    for key in SAME_KEYS:
        for spec, values in zip(specs[1:], flat[1:]):
            if values.get(key) != flat[0].get(key):
                raise ValueError(f"Ensemble members must agree on `{key}`: {specs[0]} has "
                                 f"{flat[0].get(key)!r}, {spec} has {values.get(key)!r}")


def write_ensemble(specs: Sequence[str], out_dir, tracking_uri: Optional[str] = None
                   ) -> tuple[Path, dict]:
    """Load the members, check them, write the ensemble folder.

    Args:
        specs: two or more checkpoints, each a ``.keras`` path written by ``segtie train``
            (its run folder's ``config.yaml`` is read) or an MLflow model URI.
        out_dir: the folder to write (created; an existing ensemble in it is replaced
            whole, never left half-written).
        tracking_uri: the MLflow store for URIs (``None``: the default config's).

    Returns:
        The ``.keras`` path and the listing written to :data:`MEMBERS_FILE`.

    Raises:
        ValueError: fewer than two members, a member that is not a loadable model, or
            members that differ on a :data:`SAME_KEYS` key or in their input channels or
            classes (the message names the key and both values).
        FileNotFoundError: a member path that does not exist.
    """
    specs = [s if checkpoints.is_mlflow_uri(str(s)) else str(Path(s).resolve()) for s in specs]
    if len(specs) < 2:
        raise ValueError(f"An ensemble needs at least 2 checkpoints, received {len(specs)}")
    configs = [checkpoints.resolve_config(s, None, [], tracking_uri) for s in specs]
    _check_same_task(configs, specs)
    models = []
    for spec, config in zip(specs, configs):
        model = checkpoints.load_checkpoint(spec, tracking_uri or config.tracking.tracking_uri)
        checkpoints.check_compatible(model, config.model, spec)
        models.append(model)
    ensemble = build_ensemble(models)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    members = [{"checkpoint": spec, "parameters": int(m.count_params()),
                "training_run_id": checkpoints.training_run_id(
                    spec, tracking_uri or c.tracking.tracking_uri)}
               for spec, m, c in zip(specs, models, configs)]
    listing = {"members": members, "parameters": int(ensemble.count_params()),
               "combine": "mean of the members' logits"}
    atomic_write_text(out / MEMBERS_FILE, json.dumps(listing, indent=2) + "\n")
    atomic_write_text(out / "config.yaml", cfg.dump_yaml(configs[0]))
    tmp = out / f".{ENSEMBLE_FILE}.tmp.keras"
    ensemble.save(tmp)
    os.replace(tmp, out / ENSEMBLE_FILE)
    return out / ENSEMBLE_FILE, listing


def ensemble_members(spec: str) -> Optional[list]:
    """The members listed beside an ensemble ``.keras`` file (``None`` for any other)."""
    if checkpoints.is_mlflow_uri(spec):
        return None
    listing = Path(spec).resolve().with_name(MEMBERS_FILE)
    if not listing.is_file():
        return None
    return json.loads(listing.read_text())["members"]
