"""What TensorFlow's op determinism costs, and whether two same-seed runs agree without it.

Trains the default recipe's model (tied U-Net, widths 16-128, ``num_iterations: 2``,
batch 8 at 128x128) for ``--steps`` steps on seeded random images, in a fresh process
per run: twice with ``train.deterministic: true`` and twice with ``false``. Prints the
training speed of each mode (median of the timed steps, after a warm-up) and the
largest weight difference between the two runs of a mode.

    python benchmarks/bench_determinism.py [--steps 20]
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

WORKER = r"""
import json, sys, time
import numpy as np
from segtie import config as cfg
from segtie.losses import DiceCELoss
from segtie.nn import build_model, build_training_model
from segtie.training import make_optimizer
from segtie.training.reproducibility import seed_everything

deterministic, steps, out = sys.argv[1] == "1", int(sys.argv[2]), sys.argv[3]
config = cfg.load_config("kvasir_seg")
seed_everything(config.train.seed, deterministic)
model = build_training_model(build_model(config.model, config.data.image_size,
                                         config.data.batch_size), config.model)
model.compile(make_optimizer(config.train, steps), loss=DiceCELoss())
rng = np.random.default_rng(0)
shape = (config.data.batch_size, *config.data.image_size)
images = rng.random((*shape, 3), dtype=np.float32)
masks = (rng.random((*shape, 1)) > 0.8).astype(np.float32)
model.train_on_batch(images, masks)  # trace
times = []
for _ in range(steps):
    start = time.perf_counter()
    model.train_on_batch(images, masks)
    times.append(time.perf_counter() - start)
np.savez(out, *[np.asarray(w) for w in model.weights])
print(json.dumps({"step_s": float(np.median(times))}))
"""


def run(deterministic: bool, steps: int, out: Path) -> float:
    done = subprocess.run([sys.executable, "-c", WORKER, str(int(deterministic)), str(steps),
                           str(out)], capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])["step_s"]


def max_difference(a: Path, b: Path) -> float:
    import numpy as np

    x, y = np.load(a), np.load(b)
    return max(float(np.max(np.abs(x[k].astype(np.float64) - y[k]))) for k in x.files)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed training steps per run")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench_determinism_"))
    rows = []
    for deterministic in (True, False):
        files = [folder / f"{deterministic}-{i}.npz" for i in (1, 2)]
        seconds = [run(deterministic, args.steps, f) for f in files]
        rows.append((deterministic, min(seconds), max_difference(*files)))
    batch = 8
    print(f"\nDefault model, batch {batch} at 128x128, {args.steps} steps per run, fresh "
          f"process per run\n")
    print("| train.deterministic | step (s) | images/s | max weight difference, 2 runs |")
    print("|---|---|---|---|")
    for deterministic, seconds, diff in rows:
        print(f"| {str(deterministic).lower()} | {seconds:.3f} | {batch / seconds:.1f} | "
              f"{diff:.3g} |")
    on, off = rows[0][1], rows[1][1]
    print(f"\nop determinism costs {100 * (on / off - 1):+.1f}% step time")


if __name__ == "__main__":
    main()
