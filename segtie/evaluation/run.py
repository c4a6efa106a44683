"""The evaluation run: score a checkpoint on a split as ``config.eval`` says, in MLflow.

Cases that carry a field of view (DRIVE) are scored as the literature does: inside
the FOV, against the first observer, with AUC/AP (``eval.keep_probabilities``) and
accuracy (``eval.accuracy``) switched on; cases with a second observer's annotation
add the block ``second_observer`` (the human reference) to summary.json. Volumes
(``model.spatial_dims: 3``) go through :func:`segtie.evaluation.volumes.evaluate_volumes`
(3-D sliding window, per-class scores in mm from the header spacing, volumes in mL).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path
from typing import Optional

from segtie.data.provenance import describe_split
from segtie.data.sources import dataset_facts
from segtie.evaluation.evaluator import evaluate
from segtie.evaluation.volumes import evaluate_volumes
from segtie.inference import InferenceOptions
from segtie.inference.volumes import refuse_2d_only
from segtie.tracking import NOTE_TAG, Tracker
from segtie.training import checkpoints
from segtie.training.ensembles import ensemble_members

__all__ = ["ENSEMBLE_EVAL_TAG", "EVAL_RUN_TAG", "EvaluationResult", "PER_CASE_TABLE",
           "has_field_of_view", "inference_options", "run_evaluation"]

logger = logging.getLogger(__name__)

STATS = ("mean", "median", "std", "ci_low", "ci_high")
EVAL_RUN_TAG = "segtie.eval_run_id"  # on the training run: its latest evaluation
ENSEMBLE_EVAL_TAG = "segtie.ensemble_eval_run_id"  # on a member: an ensemble's evaluation
PER_CASE_TABLE = "per_case_table.json"


def _cases(dataset):
    """Evaluation cases; DRIVE's ``fov`` becomes the ROI, ``mask2`` the 2nd observer."""
    for case in dataset.as_numpy_iterator():
        out = {"id": case["id"].decode(), "image": case["image"], "mask": case["mask"]}
        if "fov" in case:
            out["roi"] = case["fov"]
        if case.get("has_mask2", False):
            out["mask2"] = case["mask2"]
        yield out


def _volume_cases(dataset):
    """Volumes with their header spacing (``hippocampus``)."""
    for case in dataset.as_numpy_iterator():
        yield {"id": case["id"].decode(), "image": case["image"], "mask": case["mask"],
               "spacing": case["spacing"]}


def _check_volume_options(ev) -> None:
    """Refuse evaluation options that the 3-D path does not implement (never ignored).

    Raises:
        ValueError: naming the option.
    """
    refuse_2d_only(**{key: getattr(ev, key) for key in (
        "tta_mirror", "tta_transpose", "largest_component", "keep_probabilities", "accuracy")})
    if not ev.sliding_window:
        raise ValueError("`eval.sliding_window` must be true for volumes (`model.spatial_dims`"
                         " = 3): they are evaluated at their own size, window by window")


def has_field_of_view(dataset) -> bool:
    """Whether the evaluation cases carry a field-of-view mask (DRIVE)."""
    return "fov" in dataset.element_spec


def inference_options(config) -> InferenceOptions:
    """The :class:`InferenceOptions` of ``config.eval`` and ``config.data``."""
    ev = config.eval
    return InferenceOptions(
        image_size=list(config.data.image_size), sliding_window=ev.sliding_window,
        window_size=ev.window_size, overlap=ev.overlap, gaussian=ev.gaussian,
        sigma_scale=ev.gaussian_sigma_scale, batch_size=ev.sw_batch_size,
        tta_mirror=ev.tta_mirror, tta_transpose=ev.tta_transpose,
        num_classes=config.model.num_classes)


def _description(tracker, train_run: Optional[str], test_set: dict, summary: dict) -> str:
    """The evaluation run's Markdown note: what was scored, on what, against what."""
    link = tracker.run_link(train_run) if train_run else None
    source = f"[{train_run}]({link})" if link else (train_run or "unknown")
    dice = summary.get("dice", {}).get("mean")
    score = f"; mean Dice {dice:.4f}" if isinstance(dice, float) else ""
    return (f"**Evaluation** of training run {source} on {test_set['dataset']} "
            f"`{test_set['split']}` ({test_set['num_cases']} cases, split digest "
            f"`{test_set['digest']}`){score}.\n\nPer-case scores: `{PER_CASE_TABLE}` "
            f"(a table, sortable in the Artifacts tab); overlays and the Dice box plot "
            f"are artifacts too.")


def _pooled_metrics(pooled: dict, split: str) -> dict:
    """``{<split>_pooled_<metric>: value}`` (:mod:`segtie.evaluation.pooled`), NaN left out."""
    return {f"{split}_pooled_{m}": pooled[m] for m in pooled["metrics"]
            if not math.isnan(pooled[m])}


def _summary_metrics(summary: dict, prefix: str) -> dict:
    """``{<prefix>_<metric>_<stat>: value}`` of a summary block, NaN left out."""
    out = {f"{prefix}_{m}_{stat}": summary[m][stat] for m in summary["metrics"]
           for stat in STATS if not math.isnan(summary[m].get(stat, math.nan))}
    out.update({f"{prefix}_{m}_num_nan": summary[m]["num_nan"] for m in summary["metrics"]})
    return out


@dataclasses.dataclass
class EvaluationResult:
    """What :func:`run_evaluation` produced."""

    summary: dict
    out_dir: Path
    train_run_id: Optional[str]
    mlflow_run_id: Optional[str]
    ensemble_runs: Optional[list] = None  # an ensemble's members' training runs


def run_evaluation(model, config, dataset, split: str, checkpoint: str,
                   options: Optional[InferenceOptions] = None,
                   train_run_id: Optional[str] = None,
                   model_format: str = "keras",
                   members: Optional[list] = None) -> EvaluationResult:
    """Score ``model`` on ``dataset`` as ``config.eval`` says; log an MLflow eval run.

    The reports go to ``<eval.output_dir>/eval-<data.name>-<split>-<time>/``; the run
    is tagged with ``checkpoint``, the training run that produced it
    (``segtie.train_run_id``), the dataset and the split digest
    (``segtie.split_digest``, :mod:`segtie.data.provenance`); it logs the split as a
    dataset input, a Markdown description linking the training run, the reports and
    ``per_case_table.json`` (the per-case rows as an MLflow table). The training run
    gets the tags ``segtie.eval_run_id`` and ``segtie.eval_run_id.<split>`` (this
    run's id), so each run links to the other. An ensemble's evaluation
    (:mod:`segtie.training.ensembles`) is tagged ``segtie.ensemble_members``, the
    members' training runs, and each member's training run gets
    ``segtie.ensemble_eval_run_id.<split>`` (its own ``segtie.eval_run_id`` is left
    alone: that is the member's evaluation, not the ensemble's).

    Args:
        model: a loaded checkpoint (images -> logits).
        config: the whole config (``eval``, ``data``, ``model.num_classes``,
            ``tracking``).
        dataset: :func:`segtie.data.pipeline.build_eval_dataset` of ``split``.
        split: ``"test"``, ``"validation"`` or ``"train"``; prefixes the metrics.
        checkpoint: the checkpoint spec (a ``.keras`` path or an MLflow URI; or an
            exported ``.tflite`` file or SavedModel, with ``options``).
        options: the inference options; None = :func:`inference_options` of
            ``config`` (a LiteRT model's come from
            :func:`segtie.export.loading.load_predictor`: its fixed input size).
        train_run_id: the training run, when ``checkpoint`` does not say it (an
            export); None = read from the checkpoint.
        model_format: ``"keras"``, ``"litert"`` or ``"saved_model"``, tagged
            ``segtie.model_format``; ``segtie.weights_dtype`` tags how the model
            stores its weights (a LiteRT file's ``weights_dtype``: ``"int8"``,
            ``"float16"`` or ``"float32"``; Keras and SavedModel weights are float32).
        members: an ensemble's members when ``checkpoint`` does not list them beside
            it (an exported ensemble); None = read beside the checkpoint.
    """
    ev, fov = config.eval, has_field_of_view(dataset)
    if split == "validation" and config.data.train_on_validation:
        logger.warning("data.train_on_validation is on: the model trained on the validation "
                       "cases, so these scores are optimistic; score the test split")
    if config.model.spatial_dims == 3:
        _check_volume_options(ev)  # before any run is opened
    cardinality = int(dataset.cardinality().numpy())
    num_cases = cardinality if cardinality >= 0 else None
    options = options or inference_options(config)
    train_run = train_run_id or checkpoints.training_run_id(checkpoint,
                                                            config.tracking.tracking_uri)
    members = members or ensemble_members(checkpoint)
    ensemble_runs = [m["training_run_id"] or "unknown" for m in members] if members else None
    recorded = checkpoints.recorded_spec(checkpoint)
    run_name = f"eval-{config.data.name}-{split}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(config.eval.output_dir) / run_name
    tracker = Tracker(config.tracking.enabled, config.tracking.tracking_uri,
                      config.tracking.experiment or config.data.name)
    with tracker:
        run_id = tracker.start(run_name, tags={"segtie.kind": "evaluate",
                                               "segtie.checkpoint": recorded,
                                               "segtie.train_run_id": train_run or "unknown",
                                               "segtie.split": split,
                                               "segtie.model_format": model_format,
                                               "segtie.weights_dtype": getattr(
                                                   model, "weights_dtype", "float32")})
        test_set = describe_split(config.data, split)
        tracker.log_input(test_set)
        tracker.set_tags({"segtie.dataset": config.data.name,
                          "segtie.split_digest": test_set["digest"]})
        if ensemble_runs:
            tracker.set_tags({"segtie.ensemble_members": ",".join(ensemble_runs)})
        tracker.log_params({"checkpoint": recorded, "split": split,
                            "image_size": list(options.image_size),
                            **{f"eval.{k}": v for k, v in vars(ev).items()}})
        if config.model.spatial_dims == 3:  # volumes: per-class scores in mm, mL
            tracker.log_metrics(dataset_facts(config.data))
            _, summary = evaluate_volumes(
                model, _volume_cases(dataset), options, out_dir,
                ev.num_overlays, nsd_tolerance=ev.nsd_tolerance,
                bootstrap_samples=ev.bootstrap_samples,
                confidence_level=ev.confidence_level, seed=ev.seed)
            tracker.log_metrics(_summary_metrics(summary, split))
            tracker.set_tags({"segtie.distance_units": "mm"})
            tracker.log_artifacts(out_dir)
            return EvaluationResult(summary, out_dir, train_run, run_id, ensemble_runs)
        rows, summary = evaluate(
            model, _cases(dataset), options.image_size, ev.threshold, out_dir,
            ev.num_overlays, ev.spacing or config.data.spacing,
            inference_options=options,
            nsd_tolerance=ev.nsd_tolerance, largest_component=ev.largest_component,
            keep_probabilities=ev.keep_probabilities or fov,
            accuracy=ev.accuracy or fov, bootstrap_samples=ev.bootstrap_samples,
            confidence_level=ev.confidence_level, seed=ev.seed, progress=True,
            num_cases=num_cases)
        tracker.log_metrics(_summary_metrics(summary, split))
        if "second_observer" in summary:
            tracker.log_metrics(_summary_metrics(summary["second_observer"],
                                                 f"{split}_second_observer"))
        if "pooled" in summary:
            tracker.log_metrics(_pooled_metrics(summary["pooled"], split))
        tracker.set_tags({"segtie.distance_units": summary["distance_units"],
                          NOTE_TAG: _description(tracker, train_run, test_set, summary)})
        tracker.log_artifacts(out_dir)
        tracker.log_table(rows, PER_CASE_TABLE)
        if train_run and run_id:
            tracker.tag_run(train_run, {EVAL_RUN_TAG: run_id,
                                        f"{EVAL_RUN_TAG}.{split}": run_id})
        for member_run in sorted(set(ensemble_runs or ())) if run_id else ():
            if member_run != "unknown":  # not the member's own evaluation: its own tag
                tracker.tag_run(member_run, {f"{ENSEMBLE_EVAL_TAG}.{split}": run_id})
    return EvaluationResult(summary, out_dir, train_run, run_id, ensemble_runs)
