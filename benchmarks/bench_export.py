"""Keras float32 vs the LiteRT exports: bytes, test Dice, CPU latency, interpreter memory.

    SEGTIE_MANUAL_DIR=../shared/data nice -n 19 python benchmarks/bench_export.py \
        [--epochs 8] [--checkpoint-default runs/.../best.keras] \
        [--checkpoint-tied runs/.../best.keras] [--num-test 100] [--threads 1 2]

Two models, each either given by its checkpoint or trained here for ``--epochs``
epochs with ``segtie.training.train`` (the recipe's pipeline, loss and schedule; the
table header says which):

- ``default``: the Kvasir-SEG recipe (``configs/kvasir_seg.yaml``: widths 16-128,
  ``num_iterations: 2``, instance norm, 128x128);
- ``tied``: the smallest tied recipe: the same with ``tie_levels``, ``tie_decoder``,
  ``level_projection``, width 16 at all 4 levels (``width_multiplier: 1``).

Each is exported (:func:`segtie.export.export_model`: float32, float16, int8
calibrated on ``--calibration-images`` training frames) and every variant is scored on
the test split at the original resolution, as ``segtie evaluate`` does (the recipe's
``eval`` options, threshold 0.5, mean Dice over the frames). Latency: the fastest of
``--runs`` calls on one 128x128 frame after ``--warmup`` calls (the fastest, not the
median, because the 2-core machine is shared and other work inflates the median),
batch 1, in a fresh process per measurement: LiteRT through ``ai_edge_litert``'s interpreter (XNNPACK, its
default CPU delegate; the row says whether the interpreter reported it), Keras through
a traced ``tf.function`` of the model with TensorFlow's intra-op threads set to the same
count. Interpreter memory: the peak RSS of that process (``VmHWM``) minus its RSS
before the interpreter was created (the process imports numpy and ai_edge_litert only).
Targets checked at the end: int8 file <= 1/4 of float32 bytes, int8 latency >= 2x
faster than Keras float32, int8 test Dice within 0.005 of Keras float32.

``--tying-table`` prints instead, for every tying scheme at the recipe's widths and
image size (untrained weights, random normalization values, int8 calibrated on random
pixels: storage does not depend on them), each variant's constant bytes against
unique parameters x bytes per weight, and stored filters against Keras kernels and
convolutions.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _export_report import device_fit, table, targets, with_peak  # noqa: E402
from _recipes import SMALLEST_TIED  # noqa: E402

MODELS = {"default": [], "tied": SMALLEST_TIED}
VARIANTS = ("float32", "float16", "int8")


def _litert_child(path: str, threads: int, warmup: int, runs: int) -> dict:
    """Latency and memory of one ``.tflite`` in this (fresh) process."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter

    def status_mb(key):  # this process's own figures (ru_maxrss may be the parent's)
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
        return float("nan")

    before = status_mb("VmRSS")
    runner = Interpreter(model_path=path, num_threads=threads).get_signature_runner()
    shape = runner.get_input_details()["image"]["shape"]
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    for _ in range(warmup):
        runner(image=image)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        runner(image=image)
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * min(times), "median_ms": 1000 * statistics.median(times),
            "memory_mb": status_mb("VmHWM") - before}


def _keras_child(path: str, threads: int, warmup: int, runs: int) -> dict:
    """Latency of a ``.keras`` model through a traced function, ``threads`` intra-op."""
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    import keras
    import numpy as np

    import segtie  # noqa: F401 - custom layers

    model = keras.saving.load_model(path, safe_mode=True)
    size = json.loads(os.environ["BENCH_IMAGE_SIZE"])
    image = tf.constant(np.random.default_rng(0).random((1, *size, 3), dtype=np.float32))
    call = tf.function(lambda x: model(x, training=False))
    for _ in range(warmup):
        call(image).numpy()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call(image).numpy()
        times.append(time.perf_counter() - start)
    return {"ms": 1000 * min(times), "median_ms": 1000 * statistics.median(times)}


def measure(kind: str, path, threads: int, args, image_size) -> dict:
    """Run one latency measurement in a fresh process; its JSON result."""
    env = {**os.environ, "BENCH_IMAGE_SIZE": json.dumps(list(image_size))}
    done = subprocess.run([sys.executable, __file__, "--child", kind, str(path), str(threads),
                           str(args.warmup), str(args.runs)], capture_output=True, text=True,
                          env=env, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{kind} {path} x{threads} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["xnnpack"] = "XNNPACK" in done.stderr
    return result


def checkpoint_for(key: str, given, args):
    """``(config, checkpoint path, how)``: the given checkpoint, or train one now."""
    from segtie import config as cfg
    from segtie.training import checkpoints, train

    if given:
        config = checkpoints.resolve_config(given, None, args.overrides)
        return config, Path(given), f"checkpoint {given}"
    overrides = MODELS[key] + [f"train.epochs={args.epochs}", "train.max_minutes=null",
                               f"train.output_dir={args.out / 'train' / key}",
                               "tracking.enabled=false"] + args.overrides
    config = cfg.load_config(args.config, overrides)
    result = train(config)
    return config, result.checkpoint, (f"trained here, {result.epochs_run} epochs, "
                                       f"{result.seconds / 60:.1f} min")


def test_dice(model, config, num_test: int) -> float:
    """Mean Dice over the first ``num_test`` test frames at their original size."""
    import numpy as np

    from segtie.data.pipeline import build_eval_dataset
    from segtie.evaluation.run import inference_options
    from segtie.inference import predict_labels, predict_probabilities
    from segtie.metrics.overlap import dice

    options, scores = inference_options(config), []
    for case in build_eval_dataset(config.data, "test").take(num_test).as_numpy_iterator():
        p = predict_probabilities(model, case["image"], config.data.image_size, options)
        labels = predict_labels(p, 1, config.eval.threshold, config.eval.largest_component)
        scores.append(dice(case["mask"].astype(bool), labels))
    return float(np.nanmean(scores))


def bench_model(key: str, given, args) -> tuple[list, str]:
    """The rows of one model and the line saying where its checkpoint came from."""
    from segtie.export import LiteRTModel, export_model
    from segtie.export.arena import activation_peak
    from segtie.training import checkpoints

    config, checkpoint, how = checkpoint_for(key, given, args)
    model = checkpoints.load_checkpoint(str(checkpoint))
    out = args.out / "export" / key
    result = export_model(model, config, out, variants=VARIANTS, overwrite=True,
                          calibration_images=args.calibration_images, saved_model=False,
                          track=False, source=str(checkpoint))
    size, params = config.data.image_size, model.count_params()
    rows = [{"model": key, "variant": "Keras float32", "bytes": checkpoint.stat().st_size,
             "params": params, "dice": test_dice(model, config, args.num_test),
             **{f"{k}_{t}": v for t in args.threads
                for k, v in measure("keras", checkpoint, t, args, size).items()
                if k in ("ms", "median_ms")}}]
    for variant in VARIANTS:
        path = result.files[variant]
        row = {"model": key, "variant": f"LiteRT {variant}", "bytes": path.stat().st_size,
               "params": params, "weight_bytes": result.weights[variant].constant_bytes,
               "path": str(path), "image_size": list(size),
               "activation_peak_bytes": activation_peak(path.read_bytes()).peak_bytes,
               "dice": test_dice(LiteRTModel(path, num_threads=max(args.threads)), config,
                                 args.num_test)}
        for t in args.threads:
            m = measure("litert", path, t, args, size)
            row.update({f"ms_{t}": m["ms"], f"median_ms_{t}": m["median_ms"],
                        f"mb_{t}": m["memory_mb"], "xnnpack": m["xnnpack"]})
        rows.append(row)
    return rows, f"{key}: {how}"


TYING_SCHEMES = {
    "plain (num_iterations=1)": dict(num_iterations=1),
    "num_iterations=2 (recipe)": dict(num_iterations=2),
    "tie_levels+tie_decoder (width 16)": dict(tie_levels=True, tie_decoder=True,
                                             width_multiplier=1, level_projection=True),
    "num_recurrences=2": dict(num_recurrences=2),
    "recompute": dict(recompute=True),
    "norm=batch (per iteration)": dict(norm="batch", norm_per_iteration=True),
}


def tying_table(args) -> str:
    """Constant bytes and stored filters of every variant, for every tying scheme."""
    import numpy as np

    from _common import markdown_table
    from segtie import config as cfg
    from segtie.export import BYTES_PER_WEIGHT, conv_kernel_count, convert_litert, read_weights
    from segtie.nn import build_unet, unet_arguments

    config = cfg.load_config(args.config, args.overrides)
    size, body = config.data.image_size, []
    images = np.random.default_rng(0).integers(0, 256, (8, *size, 3), dtype=np.uint8)
    for name, change in TYING_SCHEMES.items():
        model = build_unet(**{**unet_arguments(config.model), **change})
        rng = np.random.default_rng(1)
        for v in model.weights:
            if "norm" in v.path:
                v.assign(rng.uniform(0.5, 1.5, v.shape).astype("float32"))
        params, kernels = model.count_params(), conv_kernel_count(model)
        for variant in VARIANTS:
            w = read_weights(convert_litert(model, size, variant, images))
            ideal = params * BYTES_PER_WEIGHT[variant]
            body.append([name, variant, f"{params:,}", f"{w.file_bytes:,}",
                         f"{w.constant_bytes:,}", f"{ideal:,}",
                         f"{w.constant_bytes / ideal:.3f}",
                         f"{w.num_filter_buffers} / {kernels} / {w.num_convolutions}"])
    return markdown_table(["scheme", "variant", "unique params", "file bytes",
                           "constant bytes", "params x bytes/weight", "ratio",
                           "filters stored / Keras kernels / convolutions"], body)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=None, help="recipe or YAML (default kvasir_seg)")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--checkpoint-default", default=None)
    parser.add_argument("--checkpoint-tied", default=None)
    parser.add_argument("--epochs", type=int, default=8, help="epochs when training here")
    parser.add_argument("--num-test", type=int, default=100)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--calibration-images", type=int, default=32)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--out", type=Path, default=Path("runs/bench_export"))
    parser.add_argument("--rows", type=Path, default=None,
                        help="print the tables of a rows.json of an earlier run and exit")
    parser.add_argument("--tying-table", action="store_true",
                        help="print the tying-in-the-flatbuffer table instead")
    parser.add_argument("--child", nargs=5, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        kind, path, threads, warmup, runs = args.child
        child = _litert_child if kind == "litert" else _keras_child
        print(json.dumps(child(path, int(threads), int(warmup), int(runs))))
        return 0
    if args.tying_table:
        print(tying_table(args))
        return 0
    if args.rows:
        rows = [with_peak(r, args.rows.parent) for r in json.loads(args.rows.read_text())]
        print(table(rows, args.threads) + "\n\n" + "\n".join(targets(rows, args.threads))
              + "\n\n" + device_fit(rows, args.threads))
        return 0
    rows, sources = [], []
    for key in args.models:
        given = {"default": args.checkpoint_default, "tied": args.checkpoint_tied}[key]
        model_rows, source = bench_model(key, given, args)
        rows += model_rows
        sources.append(source)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "rows.json").write_text(json.dumps(rows, indent=2))
    from _machine import machine_header

    print(f"\n{machine_header()}")
    print(f"Keras float32 vs LiteRT exports, {platform.machine()} CPU, {os.cpu_count()} "
          f"cores, {time.strftime('%Y-%m-%d')}; test Dice on {args.num_test} Kvasir-SEG test "
          f"frames at original resolution; models: " + "; ".join(sources) + "\n")
    print(table(rows, args.threads))
    print("\n" + "\n".join(targets(rows, args.threads)))
    print("\nDevice fit (file bytes against flash; the interpreter's peak RSS, or for a "
          "microcontroller the activation peak, against RAM; see _export_report.DEVICES):\n")
    print(device_fit(rows, args.threads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
