"""Input-pipeline throughput with full augmentation vs. the model's training step rate.

    nice -n 19 python benchmarks/bench_pipeline.py [--kvasir-cases 200] [--steps 20]

Pipelines (``segtie.data.pipeline.build_dataset``, training mode, the nnU-Net-like suite
``segtie.data.augment.NNUNET_LIKE`` with every transform's probability raised to 1.0, the
worst case): Kvasir-SEG (the first ``--kvasir-cases`` training frames at the default
config's 128x128) and DRIVE (all 16 training images at 584x568, 96x96 patches, 16
per image, foreground fraction 0.33). The first epoch decodes, resizes and caches;
later epochs only shuffle, crop and augment: both rates are shown. Training: the
default config's model, compiled as ``segtie.training`` does, fed random batches of
the same shapes (no input pipeline), after one warm-up step. The archives are read
from ../shared/data (TFDS builds go to a temporary folder unless ``--data-dir``).

The pipeline is not the bottleneck while its cached rate exceeds the training rate
("headroom" > 1). Both compete for the same CPU cores in a real run, and the numbers
move with machine load: read them as orders of magnitude.
"""

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segtie import config as cfg  # noqa: E402
from segtie.data.augment import NNUNET_LIKE  # noqa: E402
from segtie.losses import DiceBCELoss  # noqa: E402
from segtie.nn import build_model  # noqa: E402
from segtie.data.pipeline import build_dataset  # noqa: E402

SHARED = ROOT.parent / "shared" / "data"
ALWAYS = {**NNUNET_LIKE, **{k: 1.0 for k in NNUNET_LIKE if k.endswith("_prob")}}


def images_per_second(dataset, epochs: int = 2) -> list[float]:
    """Images per second of each full pass over ``dataset``."""
    rates = []
    for _ in range(epochs):
        start, count = time.perf_counter(), 0
        for image, _ in dataset:
            count += int(image.shape[0])
        rates.append(count / (time.perf_counter() - start))
    return rates


def training_images_per_second(config, shape, steps: int) -> float:
    """Training images per second of the default model on random batches of ``shape``."""
    model = build_model(config.model)
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=DiceBCELoss(config.train.dice_weight, config.train.bce_weight))
    rng = np.random.default_rng(0)
    images = rng.random(shape, dtype=np.float32)
    masks = (rng.random((*shape[:3], 1)) > 0.8).astype(np.float32)
    model.train_on_batch(images, masks)  # trace and warm up
    start = time.perf_counter()
    for _ in range(steps):
        model.train_on_batch(images, masks)
    return steps * shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kvasir-cases", type=int, default=200)
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--data-dir", default=None, help="TFDS folder (default: temp)")
    args = parser.parse_args()
    config = cfg.load_config()
    data_dir = args.data_dir or tempfile.mkdtemp(prefix="bench_tfds_")
    augment = cfg.AugmentConfig(**ALWAYS)
    kvasir = dataclasses.replace(config.data, data_dir=data_dir, manual_dir=str(SHARED),
                                 max_train_cases=args.kvasir_cases, augment=augment)
    drive = dataclasses.replace(kvasir, name="drive", image_size=[584, 568],
                                patch_size=[96, 96], patches_per_image=16,
                                max_train_cases=None)
    batch = config.data.batch_size
    rows = []
    for name, data in (("Kvasir-SEG", kvasir), ("DRIVE patches", drive)):
        shape = data.patch_size or data.image_size
        first, cached = images_per_second(build_dataset(data, "train", training=True))
        train = training_images_per_second(config, (batch, *shape, 3), args.steps)
        rows.append((name, f"{shape[0]}x{shape[1]}", first, cached, train))
    print(f"\nInput pipeline (full augmentation, every transform p=1) vs. training "
          f"(default model, num_iterations={config.model.num_iterations}, batch {batch}); "
          f"images/s\n")
    header = ("dataset", "size", "pipeline 1st epoch", "pipeline cached", "train step",
              "headroom")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for name, size, first, cached, train in rows:
        print(f"| {name} | {size} | {first:.1f} | {cached:.1f} | {train:.1f} | "
              f"{cached / train:.1f}x |")


if __name__ == "__main__":
    main()
