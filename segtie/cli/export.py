"""``segtie export``: a trained model -> SavedModel and LiteRT float32/float16/int8.

    segtie export --checkpoint runs/latest/best.keras [--output DIR]
    segtie export --checkpoint runs:/<mlflow_run_id>/model --variants int8 --int8-io
    segtie export --checkpoint models:/<name>/<version>   (or @<alias>, or models:/m-<id>)

Writes ``saved_model/`` (uint8 images of any size -> probabilities and mask) and
``model_<variant>.tflite`` (uint8 ``(1, H, W, 3)`` at the training size -> logits and
probabilities), with ``config.yaml`` and ``export.json`` (the signatures, file and
weight bytes per variant), to ``--output`` (default: ``export/`` beside a ``.keras``
file, ``exports/<run id>/`` for an MLflow URI). int8 is calibrated on the first
``--calibration-images`` images of the recipe's training split. The files are logged
to an MLflow run tagged with the training run. See :mod:`segtie.export` for the
signatures. Nothing is overwritten without ``--overwrite``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from segtie.cli.common import add_config_arguments, run_command, setup_logging

HELP = "write SavedModel and LiteRT (float32, float16, int8) models"
VARIANT_NAMES = ("float32", "float16", "int8")  # segtie.export.VARIANTS, without TF


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register ``export`` on the ``segtie`` command's subparsers."""
    parser = subparsers.add_parser("export", help=HELP, description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True,
                        help="a .keras file, runs:/<run_id>/model, models:/m-<model_id>, "
                             "models:/<name>/<version> or models:/<name>@<alias>")
    add_config_arguments(parser, config_help="a YAML config file or recipe name (default: "
                                             "the training run's own config)")
    parser.add_argument("--output", default=None, metavar="DIR",
                        help="the export folder (default: export/ beside a .keras file, "
                             "exports/<run id>/ for an MLflow URI)")
    parser.add_argument("--variants", nargs="+", default=list(VARIANT_NAMES),
                        choices=VARIANT_NAMES, help="LiteRT variants (default: all three)")
    parser.add_argument("--int8-io", action="store_true",
                        help="int8 outputs for the int8 variant (input is uint8 always)")
    parser.add_argument("--calibration-images", type=int, default=32, metavar="N",
                        help="training images that calibrate int8 (default: 32)")
    parser.add_argument("--no-saved-model", action="store_true",
                        help="write the LiteRT files only")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an export already in --output (other files stay)")
    parser.set_defaults(run=run)
    return parser


def default_output(spec: str, run_id) -> Path:
    """``export/`` beside a ``.keras`` file, else ``exports/<run id or 'model'>/``."""
    from segtie.training.checkpoints import is_mlflow_uri

    if not is_mlflow_uri(spec):
        return Path(spec).resolve().parent / "export"
    return Path("exports") / (run_id or "model")


def run(args: argparse.Namespace) -> int:
    """Load the checkpoint and its config, export, print what was written."""
    from segtie.export import export_model
    from segtie.training import checkpoints

    setup_logging()

    def body() -> int:
        config = checkpoints.resolve_config(args.checkpoint, args.config, args.overrides)
        model = checkpoints.load_checkpoint(args.checkpoint, config.tracking.tracking_uri)
        checkpoints.check_compatible(model, config.model, args.checkpoint)
        train_run = checkpoints.training_run_id(args.checkpoint, config.tracking.tracking_uri)
        out = Path(args.output) if args.output else default_output(args.checkpoint, train_run)
        try:
            result = export_model(
                model, config, out, variants=args.variants, int8_io=args.int8_io,
                calibration_images=args.calibration_images,
                saved_model=not args.no_saved_model,
                source=checkpoints.recorded_spec(args.checkpoint), train_run_id=train_run,
                overwrite=args.overwrite)
        except FileExistsError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        print_summary(result)
        return 0

    return run_command(body)


def print_summary(result) -> None:
    """One line per file: bytes, constant bytes against unique params x bytes/weight."""
    info = result.info
    print(f"\nexport folder   {result.out_dir}")
    if "saved_model" in result.files:
        print(f"saved_model     {result.files['saved_model']}")
    for variant, d in info["variants"].items():
        print(f"{variant:<15} {d['file']}: {d['file_bytes']:,} bytes, weights "
              f"{d['constant_bytes']:,} bytes (unique params x bytes/weight "
              f"{d['unique_params_x_bytes_per_weight']:,}), {d['filter_buffers']} stored "
              f"filters for {info['conv_kernels']} Keras kernels and "
              f"{d['convolutions']} convolutions")
    print(f"MLflow run      {result.mlflow_run_id}")
