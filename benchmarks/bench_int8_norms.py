"""Why int8 LiteRT can be slower than float32: the normalisation, measured side by side.

    nice -n 19 python benchmarks/bench_int8_norms.py [--runs 20] [--threads 1 2]

Builds the default Kvasir-SEG recipe's model twice, with ``norm: instance`` (the
recipe) and ``norm: batch`` with one batch norm per iteration (which the converter
folds into the preceding convolution at inference), gives every normalisation
non-trivial weights (seeded), converts each to LiteRT float32 and full-integer int8
(:func:`segtie.export.litert.convert_litert`, int8 calibrated on 8 random 128x128
frames: timing does not depend on the calibration), and times one frame in the
LiteRT interpreter (XNNPACK): the fastest of ``--runs`` calls after 5 warm-up calls.
Untrained weights: this measures speed, not accuracy.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402
from ai_edge_litert.interpreter import Interpreter  # noqa: E402

from _common import markdown_table  # noqa: E402
from _machine import machine_header  # noqa: E402
from segtie import config as cfg  # noqa: E402
from segtie.export.litert import convert_litert  # noqa: E402
from segtie.nn import build_model  # noqa: E402

NORMS = {"instance (recipe)": ["model.norm=instance"],
         "batch, one per iteration (folded)": ["model.norm=batch",
                                               "model.norm_per_iteration=true"]}


def fastest_ms(tflite: bytes, image: np.ndarray, threads: int, runs: int) -> float:
    """The fastest of ``runs`` invocations on ``image``, in ms, after 5 warm-up calls."""
    interpreter = Interpreter(model_content=tflite, num_threads=threads)
    interpreter.allocate_tensors()
    details = interpreter.get_input_details()[0]
    interpreter.set_tensor(details["index"], image.astype(details["dtype"]))
    for _ in range(5):
        interpreter.invoke()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        best = min(best, time.perf_counter() - start)
    return 1000 * best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (8, 128, 128, 3), dtype=np.uint8)
    rows = []
    for name, overrides in NORMS.items():
        config = cfg.load_config("kvasir_seg", overrides)
        keras.utils.set_random_seed(0)
        model = build_model(config.model, config.data.image_size, 1)
        for variable in model.weights:
            if "norm" in variable.path:
                variable.assign(rng.uniform(0.5, 1.5, variable.shape).astype("float32"))
        times = {}
        for variant in ("float32", "int8"):
            tflite = convert_litert(model, config.data.image_size, variant, images)
            for threads in args.threads:
                times[variant, threads] = fastest_ms(tflite, images[:1], threads, args.runs)
        rows.append([name, f"{model.count_params():,}"]
                    + [f"{times['float32', t]:.1f} / {times['int8', t]:.1f} "
                       f"({times['float32', t] / times['int8', t]:.2f}x)" for t in args.threads])
    print(f"\n{machine_header()}")
    print(f"Default recipe's model, 128x128 uint8 frame, LiteRT (XNNPACK), fastest of "
          f"{args.runs} calls; float32 / int8 ms (int8 speed-up)\n")
    print(markdown_table(["norm", "params"] + [f"x{t} threads" for t in args.threads], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
