"""Train segtie's tied recurrent U-Net.

    python train.py --config configs/kvasir_seg.yaml [--set group.key=value ...]

Without --config the default recipe (configs/kvasir_seg.yaml) is used.
"""

import argparse
import logging
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # hide TensorFlow's C++ start-up banner

from segtie.config import load_config
from segtie.training import train


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=None, help="YAML config (default: kvasir_seg)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="GROUP.KEY=VALUE", help="override one config value")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.overrides)
        result = train(config)
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"\nrun folder      {result.run_dir}")
    print(f"checkpoint      {result.checkpoint}")
    print(f"best val Dice   {result.best_val_dice:.4f}")
    print(f"epochs          {result.epochs_run}")
    print(f"parameters      {result.num_params:,}")
    print(f"train time      {result.seconds / 60:.1f} min")
    print(f"MLflow run      {result.mlflow_run_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
