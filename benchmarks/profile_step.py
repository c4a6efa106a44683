"""Where a training step's time goes: TensorFlow's profiler on the tied model and the peers.

    nice -n 19 python benchmarks/profile_step.py [--steps 5] [--warmup 3] [--batch 8] \
        [--image-size 128] [--jit-compile auto|true|false] [--models NAME ...] [--json OUT]

For each model of ``bench_tying.py`` (the recipes' models, segtie's tied / untied /
plain batch-norm U-Nets, the keras-unet-collection peers; ``--models`` picks some by
a part of their name), on the same random batch, with the same Adam + binary
cross-entropy step as ``bench_tying.py``: ``--warmup`` untimed steps, ``--steps``
timed steps (wall ms per step, the median), then ``--steps`` steps under
``tf.profiler.experimental`` (TensorFlow's own profiler; its ``framework_op_stats``
tool gives each op's self-time, the same table TensorBoard's profile plugin shows).

Each op's self-time goes to one category, by its type and name:

- conv forward / conv backward: convolutions (oneDNN's ``_MklNative*Conv2D*`` and
  TensorFlow's ``Conv2D*``, depthwise, transposed); backward = the ops under
  ``gradient_tape/`` (input and filter gradients);
- normalisation: ops of the normalisation layers (group/instance/batch norm, fused or
  not, forward and backward);
- optimizer: the Adam update and variable assignments;
- element-wise and other: everything else (ReLU, adds, pooling, concatenation,
  resizing, the loss).

Columns: the share of the summed op self-time per category (op time is summed over
TensorFlow's threads, so it can exceed the wall time), ``ops / wall``: summed op time
per wall second (the parallelism achieved; at most the cores), and ``no op running``:
the ms per step during which no op kernel runs on any thread (Python, Keras and
TensorFlow dispatch, thread hand-offs: the overhead no kernel work can hide).
The profiler itself slows a step; the ms/step column is measured without it.
"""

from __future__ import annotations

import argparse
import gc
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import bench_tying  # noqa: E402
from _common import markdown_table  # noqa: E402
from _machine import machine_header  # noqa: E402

CATEGORIES = ("conv forward", "conv backward", "normalisation", "optimizer",
              "element-wise and other")
TOP_OPS = 8  # op types listed per model in the second table
NORM_WORDS = ("normalization", "norm", "batchnorm", "group_norm", "instance")


def category(op_type: str, name: str) -> str:
    """The category of one op from its type (``_MklNativeConv2D``) and name (scope path)."""
    lowered_type, lowered = op_type.lower(), name.lower()
    if "conv" in lowered_type:
        return "conv backward" if "gradient_tape/" in lowered else "conv forward"
    if "fusedbatchnorm" in lowered_type or any(w in lowered for w in NORM_WORDS):
        return "normalisation"
    if ("adam" in lowered or lowered_type.startswith("resourceapply")
            or lowered_type in ("assignvariableop", "assignaddvariableop",
                                "assignsubvariableop")):
        return "optimizer"
    return "element-wise and other"


def _op_stats(xplane_files) -> list:
    """``[(type, name, self_time_us)]`` of every host op, from ``framework_op_stats``."""
    from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

    data, ok = plugin.xspace_to_tools_data(list(xplane_files), "framework_op_stats", {})
    if not ok:
        raise RuntimeError(f"TensorFlow's profiler could not read {xplane_files}: {data!r}")
    table = json.loads(data)[0]
    ids = [c["id"] for c in table["cols"]]
    kind, op, self_time = ids.index("type"), ids.index("operation"), ids.index("total_self_time")
    rows = []
    for row in table["rows"]:
        cells = [c.get("v") for c in row["c"]]
        if cells[kind] != "IDLE":
            rows.append((cells[kind], cells[op], float(cells[self_time])))
    return rows


def _busy_and_span_ps(xplane_files) -> tuple[int, int]:
    """``(ps with at least one op kernel running, ps from the first to the last kernel)``.

    Op kernel events are the host plane's events named ``<op name>:<op type>``.
    """
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    intervals = []
    for path in xplane_files:
        space = xplane_pb2.XSpace()
        space.ParseFromString(Path(path).read_bytes())
        for plane in space.planes:
            if not plane.name.startswith("/host:CPU"):
                continue
            for line in plane.lines:
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    if ":" in name and "::" not in name:
                        start = line.timestamp_ns * 1000 + event.offset_ps
                        intervals.append((start, start + event.duration_ps))
    if not intervals:
        return 0, 0
    intervals.sort()
    busy, (current_start, current_end) = 0, intervals[0]
    for start, end in intervals[1:]:
        if start > current_end:
            busy += current_end - current_start
            current_start, current_end = start, end
        else:
            current_end = max(current_end, end)
    busy += current_end - current_start
    return busy, intervals[-1][1] - intervals[0][0]


def profile_model(name, build, images, masks, args) -> dict:
    """Timed and profiled training steps of one model; ``{"name", "error"}`` if it fails."""
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(0)
    try:
        model = build()
        model.compile(optimizer=keras.optimizers.Adam(1e-3),
                      loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      jit_compile={"true": True, "false": False}.get(args.jit_compile, "auto"))
        for _ in range(args.warmup):
            model.train_on_batch(images, masks)
        times = []
        for _ in range(args.steps):
            start = time.perf_counter()
            model.train_on_batch(images, masks)
            times.append(time.perf_counter() - start)
        with tempfile.TemporaryDirectory() as logdir:
            tf.profiler.experimental.start(logdir)
            start = time.perf_counter()
            for _ in range(args.steps):
                model.train_on_batch(images, masks)
            profiled_wall = time.perf_counter() - start
            tf.profiler.experimental.stop()
            files = glob.glob(f"{logdir}/**/*.xplane.pb", recursive=True)
            ops = _op_stats(files)
            busy_ps, span_ps = _busy_and_span_ps(files)
    except Exception as error:  # noqa: BLE001 - a peer that fails is a row, not a crash
        return {"name": name, "error": f"{type(error).__name__}: {error}".splitlines()[0]}
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for op_type, op_name, self_us in ops:
        totals[category(op_type, op_name)] += self_us
    op_us = sum(totals.values())
    by_type = {}
    for op_type, _, self_us in ops:
        by_type[op_type] = by_type.get(op_type, 0.0) + self_us
    top = sorted(by_type.items(), key=lambda item: -item[1])[:TOP_OPS]
    return {"name": name, "top_ops": [(t, us / op_us) for t, us in top], "ms_per_step": 1000 * statistics.median(times),
            "profiled_ms_per_step": 1000 * profiled_wall / args.steps,
            "shares": {k: v / op_us for k, v in totals.items()},
            "op_ms_per_step": op_us / 1000 / args.steps,
            "ops_per_wall": op_us / 1e6 / profiled_wall,
            "no_op_ms_per_step": max(0.0, profiled_wall * 1e12 - busy_ps) / 1e9 / args.steps,
            "kernel_span_ms": span_ps / 1e9}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"))
    parser.add_argument("--models", nargs="*", default=None,
                        help="profile only the models whose name contains one of these")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--json", default=None, metavar="OUT")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    tf.get_logger().setLevel("ERROR")
    tying_args = bench_tying.parse_args(["--image-size", str(args.image_size),
                                         "--batch", str(args.batch),
                                         "--jit-compile", args.jit_compile])
    builders = bench_tying.segtie_builders(tying_args)
    if not args.no_peers:
        builders.update(bench_tying.peer_builders(tying_args))
    if args.models:
        builders = {k: v for k, v in builders.items() if any(m in k for m in args.models)}
    rng = np.random.default_rng(0)
    shape = (args.batch, args.image_size, args.image_size)
    images = rng.random((*shape, 3), dtype=np.float32)
    masks = (rng.random((*shape, 1)) > 0.5).astype(np.float32)
    header_line = machine_header()
    rows = [profile_model(name, build, images, masks, args) for name, build in builders.items()]
    print(f"\n{header_line}")
    print(f"Training step profile (TensorFlow profiler, framework_op_stats): batch "
          f"{args.batch} at {args.image_size}x{args.image_size}, Adam + BCE, XLA "
          f"{args.jit_compile}; {args.warmup} warm-up, {args.steps} timed and {args.steps} "
          f"profiled steps. Shares are of the summed op self-time.\n")
    head = ["model", "ms/step", *CATEGORIES, "ops / wall", "no op running ms/step"]
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([r["name"], f"not runnable: {r['error']}"] + [""] * (len(head) - 2))
            continue
        cells.append([r["name"], f"{r['ms_per_step']:.0f}",
                      *(f"{100 * r['shares'][c]:.1f}%" for c in CATEGORIES),
                      f"{r['ops_per_wall']:.2f}", f"{r['no_op_ms_per_step']:.1f}"])
    print(markdown_table(head, cells))
    print(f"\nThe {TOP_OPS} op types with the most self-time (share of the summed op "
          "self-time; forward and backward ops of one type together):\n")
    print(markdown_table(["model", "op types"], [
        [r["name"], ", ".join(f"{t} {100 * share:.1f}%" for t, share in r["top_ops"])]
        for r in rows if "error" not in r]))
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": header_line, "settings": vars(args),
                                               "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
