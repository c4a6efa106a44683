"""Score a trained checkpoint on the test split.

    python evaluate.py --checkpoint runs/<run>/best.keras
    python evaluate.py --checkpoint runs:/<mlflow_run_id>/model [--config ...] [--set ...]

Writes per_case.csv, summary.json, overlay PNGs (first cases; best, median and worst
by Dice) and a Dice box plot to ``<eval.output_dir>/<run name>/``, logs them to an
MLflow evaluation run tagged with the training run it evaluates, and prints the
summary table. Inference (sliding window, mirroring TTA, largest component), spacing,
NSD tolerance and the bootstrap come from the config's ``eval`` group.
"""

import argparse
import logging
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up banner

from segtie import checkpoints, metrics
from segtie.evaluation import InferenceOptions, evaluate
from segtie.pipeline import build_eval_dataset
from segtie.reports import format_table
from segtie.tracking import Tracker

STATS = ("mean", "median", "std", "ci_low", "ci_high")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="a .keras file, runs:/<run_id>/model or models:/<name>/<version>")
    parser.add_argument("--config", default=None,
                        help="YAML config (default: the training run's own config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="GROUP.KEY=VALUE", help="override one config value")
    parser.add_argument("--split", default="test", choices=("test", "validation", "train"))
    return parser.parse_args(argv)


def _cases(dataset):
    for case in dataset.as_numpy_iterator():
        yield {"id": case["id"].decode(), "image": case["image"], "mask": case["mask"]}


def metric_names(eval_config) -> tuple:
    """The metrics of the report, in order."""
    return metrics.METRIC_NAMES + (metrics.RANKING_NAMES if eval_config.keep_probabilities
                                   else ())


def inference_options(config) -> InferenceOptions:
    """The :class:`InferenceOptions` of ``config.eval`` and ``config.data``."""
    ev = config.eval
    return InferenceOptions(
        image_size=list(config.data.image_size), sliding_window=ev.sliding_window,
        window_size=ev.window_size, overlap=ev.overlap, gaussian=ev.gaussian,
        sigma_scale=ev.gaussian_sigma_scale, batch_size=ev.sw_batch_size,
        tta_mirror=ev.tta_mirror)


def print_table(summary: dict, names, train_run: str, out_dir: Path) -> None:
    print("\n" + format_table(summary, names))
    print(f"\nhd95 and assd in {summary.get('distance_units', 'pixels')}; nsd at "
          f"{summary.get('nsd_tolerance')} {summary.get('distance_units', 'pixels')}; "
          f"training run {train_run}; reports in {out_dir}")


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = checkpoints.resolve_config(args.checkpoint, args.config, args.overrides)
        model = checkpoints.load_checkpoint(args.checkpoint, config.tracking.tracking_uri)
        checkpoints.check_compatible(model, config.model, args.checkpoint)
        dataset = build_eval_dataset(config.data, args.split)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2

    ev, names = config.eval, metric_names(config.eval)
    cardinality = int(dataset.cardinality().numpy())
    num_cases = cardinality if cardinality >= 0 else None
    train_run = checkpoints.training_run_id(args.checkpoint, config.tracking.tracking_uri)
    run_name = f"eval-{config.data.name}-{args.split}-{time.strftime('%Y%m%d-%H%M%S')}"
    out_dir = Path(config.eval.output_dir) / run_name
    tracker = Tracker(config.tracking.enabled, config.tracking.tracking_uri,
                      config.tracking.experiment or config.data.name)
    with tracker:
        tracker.start(run_name, tags={"segtie.kind": "evaluate",
                                      "segtie.checkpoint": args.checkpoint,
                                      "segtie.train_run_id": train_run or "unknown",
                                      "segtie.split": args.split})
        tracker.log_params({"checkpoint": args.checkpoint, "split": args.split,
                            "image_size": config.data.image_size,
                            **{f"eval.{k}": v for k, v in vars(ev).items()}})
        rows, summary = evaluate(
            model, _cases(dataset), config.data.image_size, ev.threshold, out_dir,
            ev.num_overlays, ev.spacing, inference_options=inference_options(config),
            nsd_tolerance=ev.nsd_tolerance, largest_component=ev.largest_component,
            keep_probabilities=ev.keep_probabilities,
            bootstrap_samples=ev.bootstrap_samples,
            confidence_level=ev.confidence_level, seed=ev.seed, progress=True,
            num_cases=num_cases)
        tracker.log_metrics({f"{args.split}_{m}_{stat}": summary[m][stat]
                             for m in names for stat in STATS
                             if not math.isnan(summary[m].get(stat, math.nan))})
        tracker.log_metrics({f"{args.split}_{m}_num_nan": summary[m]["num_nan"]
                             for m in names})
        tracker.set_tags({"segtie.distance_units": summary["distance_units"]})
        tracker.log_artifacts(out_dir)
    print_table(summary, names, train_run or "unknown", out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
