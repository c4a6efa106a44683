"""What 3-D rotations and scaling cost per training patch and per whole volume.

    nice -n 19 python benchmarks/bench_augment3d.py [--items 40] [--repeats 3]

Times :func:`segtie.data.augment.volume.augment_volume` inside ``tf.data`` (one map
call at a time, ``num_parallel_calls=1``, so the figure is the cost of one item on
one core) on a seeded random z-scored volume, one seed per item as in the training
pipeline, for a 32x32x32 patch (the Hippocampus recipe's ``patch_size``) and a
48x64x48 volume (its ``image_size``). Configs: "recipe" is the Hippocampus recipe's
augmentation (flips, axial quarter turns, brightness, contrast, noise); "+ rotate,
scale" adds ``rotate_prob=1`` (+-30 degrees about each axis) and ``scale_prob=1``
([0.7, 1.4]), the worst case (every item resampled); at nnU-Net's 0.2 and 0.2, 36% of
the items are. "resample only" is the SciPy call alone (``affine_volume``, NumPy, no
TensorFlow). Each figure is the median over ``--repeats`` passes of ``--items`` items,
after one warm-up pass. Figures move with machine load: the header says what it was.
"""

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import tensorflow as tf  # noqa: E402

from _machine import machine_header  # noqa: E402
from segtie import config as cfg  # noqa: E402
from segtie.data.augment.affine3d import affine_volume  # noqa: E402
from segtie.data.augment.volume import augment_volume  # noqa: E402

SIZES = ([32, 32, 32], [48, 64, 48])


def per_item_ms(fn, items: int, repeats: int) -> float:
    """Median over ``repeats`` passes of the milliseconds per item of ``fn(items)``."""
    fn(items)  # warm-up: tracing, first allocations
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(items)
        times.append((time.perf_counter() - start) * 1000.0 / items)
    return statistics.median(times)


def pipeline_pass(image, mask, config):
    """A function running ``augment_volume`` over ``n`` seeded copies in tf.data."""
    def run(n):
        dataset = tf.data.Dataset.from_tensors((image, mask)).repeat(n).enumerate().map(
            lambda i, pair: augment_volume(pair[0], pair[1], tf.stack([i, 7]), config),
            num_parallel_calls=1)
        for _ in dataset:
            pass
    return run


def resample_pass(image, mask):
    rng = np.random.default_rng(0)

    def run(n):
        for _ in range(n):
            affine_volume(image, mask, rng.uniform(-30, 30, 3), rng.uniform(0.7, 1.4))
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recipe = cfg.load_config("hippocampus").data.augment
    affine = dataclasses.replace(recipe, rotate_prob=1.0, rotate_max_degrees=30.0,
                                 scale_prob=1.0, scale_range=[0.7, 1.4])
    rng = np.random.default_rng(0)
    rows = []
    for size in SIZES:
        image = rng.standard_normal((*size, 1)).astype(np.float32)
        mask = rng.integers(0, 3, (*size, 1)).astype(np.int32)
        off = per_item_ms(pipeline_pass(image, mask, recipe), args.items, args.repeats)
        on = per_item_ms(pipeline_pass(image, mask, affine), args.items, args.repeats)
        scipy_only = per_item_ms(resample_pass(image, mask), args.items, args.repeats)
        rows.append(("x".join(map(str, size)), off, on, scipy_only))
    print(machine_header())
    print(f"\nms per item (median of {args.repeats} passes of {args.items}), one core\n")
    print(f"{'size':>10} | {'recipe':>8} | {'+ rotate, scale':>15} | {'added':>7} | "
          f"{'resample only':>13}")
    for size, off, on, scipy_only in rows:
        print(f"{size:>10} | {off:8.2f} | {on:15.2f} | {on - off:7.2f} | {scipy_only:13.2f}")


if __name__ == "__main__":
    main()
