"""Score a checkpoint: the same as ``segtie evaluate`` (kept so the README's commands work).

    python evaluate.py --checkpoint runs/latest/best.keras [--split test] [--set ...]
"""

import sys

from segtie.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
