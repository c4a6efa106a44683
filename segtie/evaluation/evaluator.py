"""The evaluation loop: inference at the original resolution, scoring and reports.

:func:`evaluate` runs the model on every case (:func:`segtie.inference.predict_probabilities`:
resize or sliding window, optional mirroring TTA), scores it at its original size
(:mod:`segtie.evaluation.scoring` over :mod:`segtie.metrics`) and writes the reports
of :mod:`segtie.reports`. Binary and multi-class models take the
same path; ``InferenceOptions.num_classes`` says which. No config objects and no
MLflow here: the caller passes plain values.
"""

from __future__ import annotations

import collections
import logging
import math
import re
import time
from pathlib import Path
from typing import Iterable, Optional, Sequence

import keras
import numpy as np

from segtie import metrics, reports
from segtie.evaluation import scoring
from segtie.evaluation.pooled import PooledScores
from segtie.inference import InferenceOptions, predict_labels, predict_probabilities
from segtie.reports import save_overlay_grid

__all__ = ["evaluate"]

logger = logging.getLogger(__name__)


def _check_case(case: dict, index: int) -> tuple[str, np.ndarray, np.ndarray]:
    if not isinstance(case, dict) or not {"id", "image", "mask"} <= set(case):
        keys = sorted(case) if isinstance(case, dict) else type(case).__name__
        raise ValueError(f"Case {index} must be a dict with keys 'id', 'image', 'mask' "
                         f"(optional 'roi', 'spacing', 'mask2'), received {keys}")
    case_id = str(case["id"])
    image, mask = np.asarray(case["image"]), _plane(case["mask"])
    if image.shape[:2] != mask.shape:
        raise ValueError(f"Case {case_id!r}: image {image.shape} and mask {mask.shape} "
                         "must have the same height and width")
    return case_id, image, mask


def _plane(mask) -> np.ndarray:
    """``(H, W, 1)`` -> ``(H, W)``; anything else unchanged."""
    mask = np.asarray(mask)
    return mask[..., 0] if mask.ndim == 3 and mask.shape[-1] == 1 else mask


def _safe_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text)[:80] or "case"


def _predict(model, case_id: str, image: np.ndarray, options: InferenceOptions,
             threshold: float, keep_largest: bool):
    probabilities = predict_probabilities(model, image, options.image_size, options)
    if np.isnan(probabilities).any():
        raise ValueError(f"Case {case_id!r}: the model returned NaN probabilities for "
                         f"{int(np.isnan(probabilities).sum())} pixels")
    prediction = predict_labels(probabilities, options.num_classes, threshold,
                                        keep_largest)
    return probabilities, prediction


def evaluate(model, cases: Iterable[dict], image_size: Sequence[int], threshold: float,
             output_dir: str | Path, num_overlays: int,
             spacing: Optional[Sequence[float]] = None, log_every: int = 50, *,
             inference_options: Optional[InferenceOptions] = None,
             nsd_tolerance: float = 1.0, largest_component: bool = False,
             keep_probabilities: bool = False, accuracy: bool = False,
             bootstrap_samples: int = 0, confidence_level: float = 0.95, seed: int = 0,
             progress: bool = False, num_cases: Optional[int] = None
             ) -> tuple[list[dict], dict]:
    """Predict, score and report every case at its original resolution.

    Binary models (``inference_options.num_classes == 1``): a pixel is foreground
    when its probability is strictly greater than ``threshold`` (as
    ``keras.metrics.BinaryAccuracy``). Multi-class models: the argmax class, each
    foreground class scored one-vs-rest (see :mod:`segtie.evaluation.scoring`). Then,
    optionally, only the largest connected component (of each class) is kept.
    Metrics follow the conventions of :mod:`segtie.metrics` (NaN for an empty
    reference, skipped and counted by the summary); a case's ``roi`` restricts them
    to a region of interest (DRIVE: the field of view) and its ``spacing`` overrides
    ``spacing``. A case's ``mask2`` (a second human annotation) is scored against
    ``mask`` the same way, as the human reference.

    Writes under ``output_dir``:

    * ``per_case.csv``: ``id``, every metric, ``height, width``, one row per case
      (multi-class: ``dice`` = mean over classes, then ``<metric>_class<c>``);
    * ``summary.json``: per metric ``mean, median, std, count, num_nan`` (HD95 and
      ASSD also ``num_penalized``: missed structures, scored with the image
      diagonal, see :mod:`segtie.metrics`), and ``ci_low, ci_high``, the bootstrap
      interval of the mean, when ``bootstrap_samples > 0``; plus ``metrics`` (the
      names, in order), ``num_cases``, ``num_classes``, ``num_cases_with_roi``, ``threshold``,
      ``image_size``, ``distance_units`` and ``hd95_units`` (``"mm"`` with a spacing,
      else ``"pixels"``), ``nsd_tolerance`` and the inference options; with cases
      carrying ``mask2``, a block ``second_observer`` of the same statistics (plus
      ``metrics`` and ``num_cases``); for binary models a block ``pooled``: the
      overlap metrics (and accuracy, AUC, AP when asked) of all cases' ROI pixels
      scored as one pool, the DRIVE literature's convention
      (:mod:`segtie.evaluation.pooled`), with ``metrics``, ``num_cases`` and
      ``num_pixels``; NaN -> ``null``;
    * ``per_case_second_observer.csv``: the second observer's rows, if any;
    * ``overlays/NNN_<id>.png`` for the first ``num_overlays`` cases, and
      ``best_median_worst.png`` (cases ranked by Dice) and ``dice_boxplot.png``.

    Args:
        model: Keras model outputting logits ``(n, H, W, num_classes)``.
        cases: iterable of ``{"id": str, "image": uint8 (H0, W0, 3), "mask": uint8
            (H0, W0)}`` (0/1, or class indices 0..K-1 for a multi-class model),
            optionally with ``"roi"`` (H0, W0), ``"spacing"`` (row, col) mm and
            ``"mask2"`` (H0, W0) 0/1; may be a generator.
        image_size: ``[H, W]`` the model runs at.
        threshold: probability threshold in [0, 1] (binary models).
        output_dir: folder for the reports (created).
        num_overlays: how many of the first cases get an overlay PNG (>= 0).
        spacing: ``(row, col)`` mm per pixel; ``None`` = pixels.
        log_every: log a progress line every this many cases.
        inference_options: resize/sliding window, TTA and ``num_classes``; ``None``
            = resize, binary.
        nsd_tolerance: NSD tolerance in the distance unit.
        largest_component: keep only the largest predicted component (per class).
        keep_probabilities: also compute AUC and average precision.
        accuracy: also compute pixel accuracy ``(TP + TN) / N`` (inside the ROI).
        bootstrap_samples, confidence_level, seed: the summary's interval.
        progress: show a Keras progress bar (``num_cases`` is its target).
        num_cases: the number of cases, if known, for the progress bar.

    Returns:
        ``(rows, summary)``: the per-case rows as written to the CSV, and the summary
        as written to the JSON (with NaN instead of ``null``).

    Raises:
        ValueError: no cases, a malformed case, a mask not in {0, 1} (or not in
            0..K-1), NaN probabilities, a bad spacing (each message names the case);
            cases with and without a spacing mixed; ``threshold`` outside [0, 1] or
            ``num_overlays < 0``.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"`threshold` must be in [0, 1], received {threshold!r}")
    if num_overlays < 0:
        raise ValueError(f"`num_overlays` must be >= 0, received {num_overlays!r}")
    options = inference_options or InferenceOptions(image_size=list(image_size))
    multiclass = options.num_classes > 1
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    names = scoring.metric_names(options.num_classes, keep_probabilities, accuracy)
    rows, observer_rows, thumbs, units, num_roi = [], [], [], set(), 0
    penalized, observer_penalized = collections.Counter(), collections.Counter()
    pool = None if multiclass else PooledScores(keep_probabilities, accuracy)
    bar = keras.utils.Progbar(num_cases, stateful_metrics=["dice"]) if progress else None
    start = time.perf_counter()
    for index, case in enumerate(cases):
        case_id, image, mask = _check_case(case, index)
        case_spacing = case.get("spacing", spacing)
        units.add("mm" if case_spacing is not None else "pixels")
        if len(units) > 1:
            raise ValueError(f"Case {case_id!r}: cases with and without a spacing cannot "
                             "be summarised together (mm and pixels)")
        probabilities, prediction = _predict(model, case_id, image, options, threshold,
                                             largest_component)
        where = dict(spacing=case_spacing, roi=case.get("roi"), tolerance=nsd_tolerance,
                     accuracy=accuracy, case_id=case_id)
        num_roi += where["roi"] is not None
        scores = scoring.score_prediction(
            mask, prediction, options.num_classes,
            probabilities=probabilities if keep_probabilities else None, **where)
        if pool is not None:
            pool.add(mask, prediction, probabilities if keep_probabilities else None,
                     where["roi"], case_id=case_id)
        rows.append({"id": case_id, **scores,
                     "height": int(mask.shape[0]), "width": int(mask.shape[1])})
        penalized.update(scoring.penalized_names(mask, prediction, options.num_classes,
                                                 where["roi"]))
        if case.get("mask2") is not None:
            observer_rows.append({"id": case_id, **scoring.score_observer(
                mask, _plane(case["mask2"]), **where)})
            observer_penalized.update(scoring.penalized_names(
                mask, _plane(case["mask2"]), 1, where["roi"]))
        thumbs.append(reports.thumbnail(image, mask, prediction, multiclass=multiclass))
        if index < num_overlays:
            save_overlay_grid(
                [image], [mask], [prediction],
                output_dir / "overlays" / f"{index:03d}_{_safe_name(case_id)}.png",
                titles=[f"{case_id}  dice={scores['dice']:.3f}"], multiclass=multiclass)
        if bar is not None:
            bar.update(index + 1, values=[("dice", _mean_dice(rows))])
        elif (index + 1) % max(1, log_every) == 0:
            _log_progress(rows, start)
    if not rows:
        raise ValueError("`cases` is empty: there is nothing to evaluate")
    (unit,) = units
    stats = dict(bootstrap_samples=bootstrap_samples, level=confidence_level, seed=seed)
    summary = {
        **metrics.summarize({n: [r[n] for r in rows] for n in names}, **stats),
        "metrics": list(names), "num_cases": len(rows),
        "num_classes": options.num_classes, "num_cases_with_roi": num_roi,
        "threshold": float(threshold), "image_size": [int(s) for s in image_size],
        "distance_units": unit, "hd95_units": unit, "nsd_tolerance": float(nsd_tolerance),
        "confidence_level": float(confidence_level) if bootstrap_samples else None,
        "bootstrap_samples": int(bootstrap_samples),
        "inference": {**vars(options), "largest_component": bool(largest_component)},
    }
    _count_penalized(summary, penalized)
    if pool is not None:
        summary["pooled"] = {**pool.result(), "metrics": list(pool.names())}
    if observer_rows:
        summary["second_observer"] = _observer_summary(observer_rows, accuracy, stats)
        _count_penalized(summary["second_observer"], observer_penalized)
    _write_reports(rows, observer_rows, summary, thumbs, names, output_dir, multiclass)
    logger.info("Evaluation of %d cases in %.1f s: dice %.4f; reports in %s", len(rows),
                time.perf_counter() - start, summary["dice"]["mean"], output_dir)
    return rows, summary


def _count_penalized(summary: dict, counts: collections.Counter) -> None:
    """``num_penalized`` beside every HD95/ASSD statistic: the missed structures."""
    for name in summary["metrics"]:
        if name.split("_class")[0] in metrics.DISTANCE_NAMES:
            summary[name]["num_penalized"] = int(counts[name])


def _observer_summary(observer_rows: list[dict], accuracy: bool, stats: dict) -> dict:
    """The ``second_observer`` block: statistics of the second annotation's scores."""
    names = scoring.metric_names(1, False, accuracy)
    return {**metrics.summarize({n: [r[n] for r in observer_rows] for n in names},
                                **stats),
            "metrics": list(names), "num_cases": len(observer_rows),
            "reference": "mask (first observer)"}


def _write_reports(rows, observer_rows, summary, thumbs, names, output_dir: Path,
                   multiclass: bool) -> None:
    reports.write_per_case_csv(rows, output_dir / "per_case.csv",
                               columns=("id", *names, "height", "width"))
    if observer_rows:
        reports.write_per_case_csv(
            observer_rows, output_dir / "per_case_second_observer.csv",
            columns=("id", *summary["second_observer"]["metrics"]))
    reports.write_summary_json(summary, output_dir / "summary.json")
    ranked = metrics.rank_cases([r["dice"] for r in rows])
    if ranked is not None:
        picks = [(label, ranked[label]) for label in ("best", "median", "worst")]
        reports.save_thumbnail_grid(
            [thumbs[i] for _, i in picks], output_dir / "best_median_worst.png",
            titles=[f"{label}: {rows[i]['id']}  dice={rows[i]['dice']:.3f}"
                    for label, i in picks], multiclass=multiclass)
    reports.save_boxplot({"dice": [r["dice"] for r in rows]},
                         output_dir / "dice_boxplot.png", title="Per-case Dice")


def _mean_dice(rows: list[dict]) -> float:
    values = [r["dice"] for r in rows if not math.isnan(r["dice"])]
    return sum(values) / len(values) if values else math.nan


def _log_progress(rows: list[dict], start: float) -> None:
    logger.info("Evaluated %d cases in %.1f s, running mean dice %.4f",
                len(rows), time.perf_counter() - start, _mean_dice(rows))
