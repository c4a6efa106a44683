"""``segtie predict``: masks for image files, from any trained or exported model.

    segtie predict --model runs/latest/best.keras images/ frame7.png --output masks/
    segtie predict --model runs/latest/export/model_int8.tflite images/ --output masks/
    segtie predict --model runs/latest/export/saved_model images/ --probabilities npy
    segtie predict --model runs:/<mlflow_run_id>/model images/    (or models:/...)

Reads PNG, JPEG, TIFF, BMP and GIF files of any size (folders: their images, not
recursive) and writes ``<stem>_mask.png`` per image to ``--output`` (0/255 for a
binary model, class indices for a multi-class one; the input's size), with
``--probabilities png16`` (16-bit, p x 65535) or ``npy`` (float32) beside it. The
inference options come from the model's config (``eval.sliding_window``,
``eval.tta_mirror``, ``eval.largest_component``, ``eval.threshold``; ``--set`` changes
them): the config beside a ``.keras`` file or export, or the MLflow run's. No ground
truth is needed. An unreadable image stops the command (exit 2, naming it) unless
``--keep-going`` skips it (exit 1 if it skipped every image); existing outputs are
never replaced without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segtie.cli.common import add_config_arguments, run_command, setup_logging

HELP = "write masks for image files"
PROBABILITY_FORMATS = ("png16", "npy")  # segtie.inference.files, without TensorFlow


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``predict`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("predict", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("inputs", nargs="+", metavar="IMAGE_OR_FOLDER",
                        help="image files and folders of images")
    parser.add_argument("--model", required=True,
                        help="a .keras or .tflite file, a SavedModel folder, "
                             "runs:/<run_id>/model or models:/...")
    add_config_arguments(parser, config_help="a YAML config file or recipe name (default: "
                                             "the model's own config)")
    parser.add_argument("--output", default="predictions", metavar="DIR",
                        help="folder for the masks (default: predictions/)")
    parser.add_argument("--probabilities", choices=PROBABILITY_FORMATS, default=None,
                        help="also write probabilities: 16-bit PNG or float32 .npy")
    parser.add_argument("--keep-going", action="store_true",
                        help="skip unreadable images (listed at the end) instead of stopping")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace existing output files")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of the LiteRT interpreter (.tflite models)")
    parser.set_defaults(run=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Load the model, check every output path, predict, print the summary."""
    from segtie.export.loading import load_predictor
    from segtie.inference.files import find_images, plan_outputs, predict_files

    setup_logging()

    def body() -> int:
        files = find_images(args.inputs)
        predictor = load_predictor(args.model, args.config, args.overrides, args.threads)
        ev = predictor.config.eval
        out = Path(args.output)
        plan = plan_outputs(files, out, args.probabilities, predictor.options.num_classes,
                            args.overwrite)
        out.mkdir(parents=True, exist_ok=True)
        summary = predict_files(predictor.model, plan, predictor.options, ev.threshold,
                                keep_largest=ev.largest_component,
                                keep_going=args.keep_going, progress=True)
        for path, reason in summary.skipped:
            print(f"skipped {path}: {reason}")
        done = summary.num_images - len(summary.skipped)
        print(f"\n{done} of {summary.num_images} images predicted ({predictor.kind} model "
              f"{args.model}), {len(summary.skipped)} skipped, {len(summary.written)} files "
              f"in {out}, {summary.seconds:.1f} s")
        if summary.num_images and not done:
            print(f"error: no image of {summary.num_images} could be predicted",
                  file=sys.stderr)
            return 1
        return 0

    return run_command(body)
