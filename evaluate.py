"""Score a trained checkpoint on the test split.

    python evaluate.py --checkpoint runs/<run>/best.keras
    python evaluate.py --checkpoint runs:/<mlflow_run_id>/model [--config ...] [--set ...]

Writes per_case.csv, summary.json and overlay PNGs to
``<eval.output_dir>/<run name>/``, logs them to an MLflow evaluation run tagged
with the training run it evaluates, and prints the summary table.
"""

import argparse
import logging
import sys
import time
from pathlib import Path

from segtie import checkpoints
from segtie.evaluation import evaluate
from segtie.pipeline import build_eval_dataset
from segtie.tracking import Tracker

METRICS = ("dice", "iou", "hd95")


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


def print_table(summary: dict, train_run: str, out_dir: Path) -> None:
    print(f"\n{'metric':<8}{'mean':>9}{'median':>9}{'std':>9}{'n':>6}{'NaN':>5}")
    for name in METRICS:
        s = summary[name]
        print(f"{name:<8}{s['mean']:>9.4f}{s['median']:>9.4f}{s['std']:>9.4f}"
              f"{s['count']:>6}{s['num_nan']:>5}")
    print(f"\nhd95 in {summary.get('hd95_units', 'pixels')}; training run {train_run}; "
          f"reports in {out_dir}")


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

    train_run = checkpoints.training_run_id(args.checkpoint)
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
                            "threshold": config.eval.threshold,
                            "image_size": config.data.image_size})
        rows, summary = evaluate(model, _cases(dataset), config.data.image_size,
                                 config.eval.threshold, out_dir, config.eval.num_overlays)
        tracker.log_metrics({f"{args.split}_{m}_{stat}": summary[m][stat]
                             for m in METRICS for stat in ("mean", "median", "std")
                             if summary[m][stat] == summary[m][stat]})  # skip NaN
        tracker.log_artifacts(out_dir)
    print_table(summary, train_run or "unknown", out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
