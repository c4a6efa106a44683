"""A tied kernel's weight gradient: one call per use (what autodiff does) against one
call over the uses' batches concatenated (what tying would allow).

    nice -n 19 python benchmarks/bench_tied_grad.py [--batch 8] [--image-size 128] \
        [--widths 16 32 64 128 256] [--uses 2] [--steps 30] [--json out.json]

A kernel applied at ``--uses`` uses gets the sum of one ``Conv2DBackpropFilter`` per
use (input ``x_t``, upstream gradient ``dy_t``). Because every use has the same
kernel, the same sum is one ``Conv2DBackpropFilter`` over ``concat_t x_t`` and
``concat_t dy_t`` along the batch axis (a sum over the batch is what the weight
gradient is). If the bigger call ran closer to the matmul peak, a custom gradient for
the recurrent block could use it (issue 15's weight-gradient share, 30-45% of a step).
The table times both forms at each level of the default recipe (3x3, ``SAME``,
``(batch, S / 2**l, S / 2**l, widths[l])``, width in = width out), the concatenation
included, alternating their order each step; milliseconds are medians, and the last
column is the largest difference between the two sums (float32 round-off).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table  # noqa: E402
from _machine import machine_header  # noqa: E402

STRIDES = [1, 1, 1, 1]


@tf.function
def per_use(xs, dys, sizes):
    """The sum of one weight-gradient call per use (autodiff's form)."""
    return tf.add_n([tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=sizes, out_backprop=dy, strides=STRIDES, padding="SAME")
        for x, dy in zip(xs, dys)])


@tf.function
def concatenated(xs, dys, sizes):
    """One weight-gradient call over every use's batch (the tied form)."""
    return tf.raw_ops.Conv2DBackpropFilter(
        input=tf.concat(xs, 0), filter_sizes=sizes, out_backprop=tf.concat(dys, 0),
        strides=STRIDES, padding="SAME")


def time_level(batch: int, size: int, width: int, uses: int, steps: int) -> dict:
    """Median ms of both forms at one level, and their largest difference."""
    shape = (batch, size, size, width)
    xs = [tf.random.normal(shape, seed=t) for t in range(uses)]
    dys = [tf.random.normal(shape, seed=100 + t) for t in range(uses)]
    sizes = tf.constant([3, 3, width, width])
    forms = {"per use": per_use, "concatenated": concatenated}
    results = {name: f(xs, dys, sizes) for name, f in forms.items()}  # trace, warm up
    times = {name: [] for name in forms}
    for step in range(steps):
        order = list(forms) if step % 2 == 0 else list(forms)[::-1]
        for name in order:
            start = time.perf_counter()
            forms[name](xs, dys, sizes).numpy()
            times[name].append((time.perf_counter() - start) * 1e3)
    diff = float(tf.reduce_max(tf.abs(results["per use"] - results["concatenated"])))
    return {"level": f"{size}x{size}x{width}",
            **{name: statistics.median(t) for name, t in times.items()}, "max_diff": diff}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128, 256])
    parser.add_argument("--uses", type=int, default=2)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    print(machine_header())
    rows = [time_level(args.batch, args.image_size // 2 ** level, width, args.uses,
                       args.steps) for level, width in enumerate(args.widths)]
    total = {"level": "sum", "per use": sum(r["per use"] for r in rows),
             "concatenated": sum(r["concatenated"] for r in rows), "max_diff": None}
    table = [[r["level"], f"{r['per use']:.2f}", f"{r['concatenated']:.2f}",
              f"{r['per use'] / r['concatenated']:.2f}x",
              "" if r["max_diff"] is None else f"{r['max_diff']:.1e}"]
             for r in rows + [total]]
    print(f"batch {args.batch}, {args.uses} uses, 3x3 SAME, median of {args.steps} steps")
    print(markdown_table(["level", "per use ms", "concatenated ms", "speed-up",
                          "max abs diff"], table))
    if args.json:
        Path(args.json).write_text(json.dumps(rows + [total], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
