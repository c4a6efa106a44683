"""The registered model's ``champion`` alias: moved only by a better score on the same test set.

:func:`promote` takes an evaluation run (``segtie evaluate`` logs one) and

1. reads its training run's logged model (tag ``segtie.model_uri``), its score
   (``<split>_dice_mean`` unless another metric is named) and its split digest (tag
   ``segtie.split_digest``, :mod:`segtie.data.provenance`: the same archive bytes,
   split, size and case limit);
2. compares it with the current ``champion`` of the registered model (default name
   ``segtie-<dataset>``): the champion's version carries the tags
   ``segtie.split_digest``, ``segtie.metric``, ``segtie.score`` and
   ``segtie.eval_run_id`` set when it was promoted;
3. registers the model as a new version and moves ``champion`` to it when there is no
   champion, or when the champion was scored with the same metric on the same digest
   and this score is strictly better (higher; lower for ``hd95`` and ``assd``). A
   champion scored on another test set, or with another metric, is not comparable:
   nothing changes and the result says why.

``models:/<name>@champion`` then loads, evaluates (``segtie evaluate --checkpoint``) and
serves like any other model URI.
"""

from __future__ import annotations

import logging
import math
from typing import Optional

from segtie.tracking.store import resolve_tracking_uri

__all__ = ["ALIAS", "LOWER_IS_BETTER", "promote"]

ALIAS = "champion"
LOWER_IS_BETTER = ("hd95", "assd")  # metric names that contain one of these
logger = logging.getLogger(__name__)


def _better(score: float, other: float, metric: str) -> bool:
    lower = any(part in metric for part in LOWER_IS_BETTER)
    return score < other if lower else score > other


def _current_champion(client, name: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, ALIAS)
    except MlflowException:  # no such model, or no alias yet
        return None


def _evaluation(client, eval_run_id: str, metric: Optional[str]) -> dict:
    """What the evaluation run says: training run, model URI, dataset, digest, score."""
    run = client.get_run(eval_run_id)
    tags = run.data.tags
    missing = [t for t in ("segtie.train_run_id", "segtie.split_digest", "segtie.dataset")
               if t not in tags]
    if tags.get("segtie.kind") != "evaluate" or missing:
        raise ValueError(f"Run {eval_run_id} is not an evaluation run of segtie evaluate "
                         f"with a split digest (expected tags segtie.kind=evaluate, "
                         f"{', '.join(missing) or 'present'}; received segtie.kind="
                         f"{tags.get('segtie.kind')!r})")
    metric = metric or f"{tags.get('segtie.split', 'test')}_dice_mean"
    if metric not in run.data.metrics or math.isnan(run.data.metrics[metric]):
        raise ValueError(f"Evaluation run {eval_run_id} has no metric {metric!r}; it has "
                         f"{sorted(k for k in run.data.metrics if k.endswith('_mean'))}")
    train_run = tags["segtie.train_run_id"]
    model_uri = client.get_run(train_run).data.tags.get("segtie.model_uri") if (
        train_run != "unknown") else None
    if not model_uri:
        raise ValueError(f"Evaluation run {eval_run_id}: its training run {train_run!r} "
                         f"has no logged model (tag segtie.model_uri); only a model "
                         f"trained with MLflow tracking on can be registered")
    return {"eval_run_id": eval_run_id, "train_run_id": train_run, "model_uri": model_uri,
            "dataset": tags["segtie.dataset"], "digest": tags["segtie.split_digest"],
            "metric": metric, "score": float(run.data.metrics[metric])}


def promote(eval_run_id: str, name: Optional[str] = None, metric: Optional[str] = None,
            tracking_uri: Optional[str] = None) -> dict:
    """Register the evaluated model and move ``champion`` to it if it wins (module doc).

    Args:
        eval_run_id: the MLflow run id of a ``segtie evaluate`` run.
        name: registered model name; default ``segtie-<dataset>``.
        metric: the evaluation metric that decides; default ``<split>_dice_mean``.
        tracking_uri: the store (:func:`resolve_tracking_uri`).

    Returns:
        ``{"promoted": bool, "reason": str, "name", "version" (the new version, int,
        or None), "score", "metric", "digest", "champion_score" (None if there was no
        champion), "model_uri"}``.

    Raises:
        ValueError: not an evaluation run, no such metric, no logged model, or what
            the store said (``"MLflow: ..."``: the run does not exist, the store refuses).
    """
    from mlflow.exceptions import MlflowException

    try:
        return _promote(eval_run_id, name, metric, tracking_uri)
    except MlflowException as err:  # an unknown run id, a refusing store: bad input
        raise ValueError(f"MLflow: {err.message}") from err


def _promote(eval_run_id: str, name: Optional[str], metric: Optional[str],
             tracking_uri: Optional[str]) -> dict:
    import mlflow

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)  # mlflow.register_model uses the global store
    client = mlflow.MlflowClient(uri)
    ev = _evaluation(client, eval_run_id, metric)
    name = name or f"segtie-{ev['dataset']}"
    result = {"promoted": False, "name": name, "version": None, "score": ev["score"],
              "metric": ev["metric"], "digest": ev["digest"], "champion_score": None,
              "model_uri": ev["model_uri"]}
    current = _current_champion(client, name)
    if current is not None:
        held = current.tags
        result["champion_score"] = float(held.get("segtie.score", "nan"))
        if (held.get("segtie.split_digest"), held.get("segtie.metric")) != (
                ev["digest"], ev["metric"]):
            return {**result, "reason": (
                f"not comparable: champion {name} v{current.version} was scored with "
                f"{held.get('segtie.metric')} on split digest "
                f"{held.get('segtie.split_digest')}, this run with {ev['metric']} on "
                f"{ev['digest']}")}
        if not _better(ev["score"], result["champion_score"], ev["metric"]):
            return {**result, "reason": (
                f"not better: {ev['metric']} {ev['score']:.4f} vs champion {name} "
                f"v{current.version} {result['champion_score']:.4f}")}
    with_tags = {"segtie.eval_run_id": eval_run_id, "segtie.split_digest": ev["digest"],
                 "segtie.metric": ev["metric"], "segtie.score": repr(ev["score"]),
                 "segtie.dataset": ev["dataset"]}
    version = mlflow.register_model(ev["model_uri"], name, tags=with_tags)
    client.set_registered_model_alias(name, ALIAS, version.version)
    client.set_tag(eval_run_id, "segtie.promoted", f"models:/{name}/{version.version}")
    reason = ("first champion" if current is None else
              f"better: {ev['metric']} {ev['score']:.4f} vs {result['champion_score']:.4f} "
              f"(v{current.version})")
    logger.info("%s v%s is now %s (%s)", name, version.version, ALIAS, reason)
    return {**result, "promoted": True, "version": version.version, "reason": reason}
