"""Tied vs. untied U-Nets side by side: segtie's models and keras-unet-collection's.

    pip install -e '.[bench]'                  # keras-unet-collection, benchmark only
    nice -n 19 python benchmarks/bench_tying.py [--image-size 128] [--batch 8] \
        [--base-filters 16] [--depth 4] [--num-iterations 2] [--steps 10] [--warmup 2] \
        [--rounds 3] [--precision float32] [--jit-compile auto|true|false] \
        [--no-recipes] [--json results.json]

Builds, in one process, on the same random batch (seed 0; images ``(batch, S, S, 3)``
uniform in [0, 1), masks ``(batch, S, S, 1)`` in {0, 1}) and at the same level
widths ``[F, 2F, 4F, ...]`` (``--base-filters F``, ``--depth``), batch norm and ReLU:

- the recipes' own models (``benchmarks/_recipes.py``): the default Kvasir-SEG
  recipe (widths 16-128, ``num_iterations: 2``, instance norm, as ``segtie train``
  builds it) and the smallest tied recipe; these keep the recipe's widths and norm
  whatever ``--base-filters`` says (``--no-recipes`` leaves them out);
- segtie tied: :func:`segtie.nn.build_unet` with ``num_iterations=N``;
- segtie untied: the same graph with ``tied=False`` (one kernel per use);
- segtie plain: ``num_iterations=1`` (the U-Net double convolution);
- segtie tie_levels+tie_decoder: one encoder and one decoder block for every level,
  ``num_iterations=N``; these need constant widths (``width_multiplier=1``: ``F`` at
  every level) and ``level_projection`` (1x1 convolutions where widths change);
- peer ``unet_2d``: ``stack_num_down=stack_num_up=2`` (a double convolution per
  level), max pooling, ``Conv2DTranspose`` up-sampling (``unpool=False``, ours too;
  the peer's is 3x3 with batch norm, ReLU and one more 3x3 convolution before the
  skip concatenation, ours is 2x2), logits out (``output_activation=None``);
- peer ``r2_unet_2d``: R2U-Net. Its recurrent layer with ``recur_num=r`` makes
  ``1 + r`` uses of a 3x3 convolution, each a *new* ``Conv2D`` (not tied), after a 1x1
  convolution; segtie's block makes ``N`` uses of one kernel after a 3x3 entry
  convolution. The default ``--peer-recur-num N-1`` and ``--peer-stack-num 1`` give
  the same number of 3x3 uses per block as segtie's tied model.

Columns: convolution kernels / uses in one forward pass (uses > kernels: tied),
unique and effective parameters (effective counts a tied weight once per use),
``.keras`` file bytes, forward GFLOP per image (``2 x`` convolution
multiply-accumulates, every use counted; bias, norm, activations not counted),
training and inference images/s (``train_on_batch`` with Adam and binary
cross-entropy on logits / ``predict_on_batch``, after ``--warmup`` steps, over
``--steps``; the median of ``--rounds`` rounds, each running every model in
turn, so that a busy spell of a shared machine does not fall on one model), peak
memory of the timed training steps (TensorFlow's allocator peak on the GPU or
``CPU:0``, see ``_common.peak_memory``; round 1's), and
achieved training GFLOP/s = ``3 x forward FLOPs x training images/s`` (the
convention that the backward pass costs twice the forward) as a percentage of the
``tf.matmul`` rate of a ``--matmul-size`` square product in the compute dtype of
``--precision`` (float32, or the 16-bit type of a mixed policy), measured in the
same run before and after the models (the better of the two). ``--precision``
builds every model, the peers too, under that Keras dtype policy.

The table starts with the machine (``_machine.machine_header``: CPU model, cores,
instruction sets, oneDNN, threads, load average): a speed measured on one CPU kind
is a figure for that kind, not for all.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ info

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (conv_profile, markdown_table, matmul_peak_gflops,  # noqa: E402
                     measure_training, recipe_model)
from _machine import machine_header  # noqa: E402
from _recipes import RECIPE_MODELS  # noqa: E402
from segtie.nn import build_unet  # noqa: E402
from segtie.nn.unet import level_widths  # noqa: E402
from segtie.training.resources import model_file_bytes  # noqa: E402

PEER_HINT = "pip install -e '.[bench]'"


def segtie_builders(args) -> dict:
    """Name -> zero-argument builder of each segtie model in the table."""
    n = args.num_iterations
    common = dict(in_channels=3, num_classes=1, base_filters=args.base_filters,
                  depth=args.depth, norm="batch")
    recipes = {name: (lambda o=overrides: recipe_model(o, args.batch))
               for name, overrides in RECIPE_MODELS.items()} if args.recipes else {}
    return {
        **recipes,
        f"segtie tied (N={n}, batch norm)": lambda: build_unet(num_iterations=n, **common),
        f"segtie untied (N={n}, tied=False)":
            lambda: build_unet(num_iterations=n, tied=False, **common),
        "segtie plain (N=1)": lambda: build_unet(num_iterations=1, **common),
        f"segtie tie_levels+tie_decoder (N={n}, width {args.base_filters} all levels)":
            lambda: build_unet(num_iterations=n, width_multiplier=1, tie_levels=True,
                               tie_decoder=True, level_projection=True, **common),
    }


def peer_builders(args) -> dict:
    """Name -> builder of each keras-unet-collection model (imported when called)."""
    widths = level_widths(args.base_filters, 2, args.depth)
    recur = args.num_iterations - 1 if args.peer_recur_num is None else args.peer_recur_num
    stack = args.peer_stack_num
    common = dict(input_size=(args.image_size, args.image_size, 3), filter_num=widths,
                  n_labels=1, activation="ReLU", output_activation=None, batch_norm=True,
                  pool=True, unpool=False)

    def unet():
        from keras_unet_collection.models import unet_2d
        return unet_2d(stack_num_down=2, stack_num_up=2, name="peer_unet", **common)

    def r2_unet():
        from keras_unet_collection.models import r2_unet_2d
        return r2_unet_2d(stack_num_down=stack, stack_num_up=stack, recur_num=recur,
                          name="peer_r2_unet", **common)

    return {"peer unet_2d (stack 2)": unet,
            f"peer r2_unet_2d (recur_num={recur}, stack {stack})": r2_unet}


def benchmark(name: str, build, images, masks, args) -> dict:
    """All figures of one model; ``{"name", "error"}`` if it cannot be built or run."""
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(0)
    try:
        model = build()
        row = {"name": name, "model": model.name}
        row.update(conv_profile(model, [args.image_size] * 2))
        row["model_file_bytes"] = model_file_bytes(model)
        row.update(measure_training(model, images, masks, args.warmup, args.steps,
                                    jit_compile=args.jit_compile))
    except Exception as error:  # noqa: BLE001 - a peer that fails is a row, not a crash
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        if isinstance(error, ImportError):
            message += f" ({PEER_HINT})"
        return {"name": name, "error": message}
    row["train_gflops_per_s"] = 3 * row["flops_per_image"] * row["train_images_per_s"] / 1e9
    row["tied"] = row["conv_uses"] > row["conv_kernels"]
    return row


def median_rates(rounds: list) -> list:
    """Round 1's rows with images/s (and GFLOP/s) replaced by the median over rounds.

    The rounds run every model in turn, so a slow spell of a shared machine lands on
    one round of each model rather than on all the steps of one. Peak memory is round
    1's (the allocator's peak does not depend on the machine's load).
    """
    rows = []
    for results in zip(*rounds):
        row = dict(results[0])
        if "error" not in row:
            for key in ("train_images_per_s", "infer_images_per_s", "train_gflops_per_s"):
                row[key] = statistics.median(r[key] for r in results)
                row[key + "_rounds"] = [r[key] for r in results]
        rows.append(row)
    return rows


def format_rows(rows: list, peak: float) -> list:
    """Table cells of each result row."""
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([r["name"], f"not runnable: {r['error']}"] + [""] * 10)
            continue
        cells.append([
            r["name"], f"{r['conv_kernels']} / {r['conv_uses']}",
            "yes" if r["tied"] else "no", f"{r['unique_params']:,}",
            f"{r['effective_params']:,}", f"{r['model_file_bytes']:,}",
            f"{r['flops_per_image'] / 1e9:.3f}", f"{r['train_images_per_s']:.1f}",
            f"{r['infer_images_per_s']:.1f}", f"{r['peak_mb']:.0f}",
            f"{r['train_gflops_per_s']:.1f}", f"{100 * r['train_gflops_per_s'] / peak:.1f}%",
        ])
    return cells


HEADER = ("model", "conv kernels / uses", "tied", "params (unique)", "params (effective)",
          ".keras bytes", "GFLOP/img (fwd)", "train img/s", "infer img/s", "peak MB",
          "train GFLOP/s", "% matmul peak")


def device_description() -> str:
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        details = tf.config.experimental.get_device_details(gpus[0])
        return f"GPU {details.get('device_name', gpus[0].name)}"
    return f"CPU {platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=128, help="square side S")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--base-filters", type=int, default=16, help="F: level i has F*2^i")
    parser.add_argument("--depth", type=int, default=4, help="resolution levels")
    parser.add_argument("--num-iterations", type=int, default=2, help="N: uses per kernel")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per model")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--rounds", type=int, default=3,
                        help="times the whole set of models is run, one model after "
                             "another; rates are the median over rounds")
    parser.add_argument("--peer-recur-num", type=int, default=None,
                        help="r2_unet_2d recur_num (default N-1: N 3x3 uses per layer)")
    parser.add_argument("--peer-stack-num", type=int, default=1,
                        help="r2_unet_2d recurrent layers per block (default 1, as segtie)")
    parser.add_argument("--matmul-size", type=int, default=2048)
    parser.add_argument("--precision", default="float32",
                        choices=("float32", "mixed_bfloat16", "mixed_float16"),
                        help="Keras dtype policy of every model, peers included; the "
                             "matmul peak is then measured in the 16-bit type")
    parser.add_argument("--no-peers", action="store_true", help="segtie models only")
    parser.add_argument("--no-recipes", dest="recipes", action="store_false",
                        help="leave out the rows of the recipes' own models")
    parser.add_argument("--jit-compile", default="auto", choices=("auto", "true", "false"),
                        help="XLA for every model's train and predict steps (Keras "
                             "compile(jit_compile=...); auto: XLA on GPU only)")
    parser.add_argument("--json", metavar="OUT", default=None, help="also save results")
    args = parser.parse_args(argv)
    if args.image_size % 2 ** (args.depth - 1):
        parser.error(f"--image-size must be divisible by 2**(depth-1) = "
                     f"{2 ** (args.depth - 1)}, received {args.image_size}")
    if min(args.num_iterations, args.steps, args.warmup, args.rounds) < 1:
        parser.error("--num-iterations, --steps, --warmup and --rounds must be >= 1")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    tf.get_logger().setLevel("ERROR")  # retracing warnings: each model has new functions
    rng = np.random.default_rng(0)
    shape = (args.batch, args.image_size, args.image_size)
    images = rng.random((*shape, 3), dtype=np.float32)
    masks = (rng.random((*shape, 1)) > 0.5).astype(np.float32)
    keras.mixed_precision.set_global_policy(args.precision)
    matmul_dtype = keras.mixed_precision.global_policy().compute_dtype
    peak = matmul_peak_gflops(args.matmul_size, dtype=matmul_dtype)
    builders = segtie_builders(args)
    if not args.no_peers:
        builders.update(peer_builders(args))
    # A throwaway run first, so that one-time costs of the process (runtime start-up
    # memory) do not fall on the first row.
    quick = argparse.Namespace(**{**vars(args), "warmup": 1, "steps": 1})
    benchmark("throwaway", next(iter(builders.values())), images, masks, quick)
    rounds = [[benchmark(name, build, images, masks, args) for name, build in builders.items()]
              for _ in range(args.rounds)]
    rows = median_rates(rounds)
    peak = max(peak, matmul_peak_gflops(args.matmul_size, dtype=matmul_dtype))
    measured = [r for r in rows if "error" not in r]
    how = measured[0]["memory_how"] if measured else "-"
    jit = measured[0]["jit_compile"] if measured else "-"
    print(f"\n{machine_header()}")
    print(f"Tied vs. untied U-Nets: {device_description()}; TF {tf.__version__}, Keras "
          f"{keras.__version__}, XLA {jit}, dtype policy {args.precision}; image {args.image_size}x{args.image_size}, "
          f"batch {args.batch}, widths {level_widths(args.base_filters, 2, args.depth)}, "
          f"N={args.num_iterations}; {args.warmup} warm-up + {args.steps} timed steps, "
          f"median of {args.rounds} rounds.")
    print(f"{matmul_dtype} matmul peak ({args.matmul_size}^2): {peak:.1f} GFLOP/s. Train GFLOP/s "
          f"= 3 x forward FLOPs x train img/s. Peak memory: {how}.\n")
    print(markdown_table(HEADER, format_rows(rows, peak)))
    if args.json:
        result = {"settings": vars(args), "device": device_description(),
                  "machine": machine_header(),
                  "tensorflow": tf.__version__, "keras": keras.__version__,
                  "matmul_peak_gflops": peak, "rows": rows}
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
