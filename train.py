"""Train a model: the same as ``segtie train`` (kept so the README's commands work).

    python train.py --config configs/kvasir_seg.yaml [--set group.key=value ...]
"""

import sys

from segtie.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
