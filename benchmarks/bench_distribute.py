"""Training images/s with 1 and 2 workers (MultiWorkerMirroredStrategy on 127.0.0.1).

    SEGTIE_MANUAL_DIR=../shared/data python benchmarks/bench_distribute.py \
        [--data-dir data/tfds] [--steps 30] [--image-size 64] [--batch 8]

Each configuration runs in fresh processes (the strategy must exist before TensorFlow
runs anything): 1 worker is one plain process (``train.distribute: none``), 2 workers
are two processes with generated ``TF_CONFIG``s, the global batch split 2 ways. Every
worker builds segtie's pipeline on real Kvasir-SEG frames and the recipe's tied U-Net
at ``--image-size``, and times ``--steps`` training steps after 5 warm-up steps with
``model.fit`` (median step). "all-reduce ms" is the time of the all-reduce alone of
one set of gradients (the model's trainable variables, summed across the workers as
Keras does once per step), timed in a ``tf.function`` after training: the
communication part of a step. Peak RSS is each worker's (``ru_maxrss``). On a 2-core
machine two workers share the cores a single process already uses, so expect no
speed-up; the table says what it is.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
WARMUP = 5
REDUCE_REPS = 20


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform's answer elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _config(args):
    from segtie import config as cfg

    return cfg.from_dict({
        "data": {"data_dir": args.data_dir, "image_size": [args.image_size] * 2,
                 "batch_size": args.batch, "max_train_cases": args.batch * 8,
                 "max_eval_cases": args.batch},
        "model": {"base_filters": 8, "depth": 3},
        "train": {"epochs": 1, "distribute": "multi_worker" if args.workers > 1 else "none"},
        "tracking": {"enabled": False}})


def worker(args) -> None:
    """One worker: time fit steps and an all-reduce of the gradients; print RESULT json."""
    from segtie.training.distribute import build_distribution, distribute_dataset

    config = _config(args)
    distribution = build_distribution(config.train.distribute, 300.0)
    import keras
    import tensorflow as tf

    from segtie.data.pipeline import build_dataset
    from segtie.losses import DiceCELoss
    from segtie.nn import build_model, build_training_model
    from segtie.training.optimizers import make_optimizer
    from segtie.training.reproducibility import seed_everything

    seed_everything(config.train.seed, config.train.deterministic)
    steps = WARMUP + args.steps
    data = build_dataset(config.data, "train", training=True, epochs=1).repeat()
    strategy = distribution.strategy
    with strategy.scope():
        model = build_training_model(build_model(config.model, config.data.image_size),
                                     config.model)
        model.compile(optimizer=make_optimizer(config.train, steps),
                      loss=DiceCELoss(1.0, 1.0))
    if distribution.num_replicas > 1:
        data = distribute_dataset(strategy, data)
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.t0 = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.t0)

    model.fit(data, epochs=1, steps_per_epoch=steps, callbacks=[Clock()], verbose=0,
              shuffle=False)
    step = statistics.median(times[WARMUP:])
    reduce_ms = 0.0
    if distribution.num_replicas > 1:
        grads = [tf.ones_like(v.value) for v in model.trainable_variables]

        @tf.function
        def all_reduce():
            return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce(
                "SUM", grads))

        all_reduce()
        t0 = time.perf_counter()
        for _ in range(REDUCE_REPS):
            all_reduce()
        reduce_ms = (time.perf_counter() - t0) / REDUCE_REPS * 1e3
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps({
        "workers": distribution.num_workers, "replicas": distribution.num_replicas,
        "chief": distribution.is_chief, "step_ms": step * 1e3,
        "images_per_s": config.data.batch_size / step, "all_reduce_ms": reduce_ms,
        "params": model.count_params(), "peak_rss_mb": rss_mb}), flush=True)


def run(args, workers: int) -> list:
    """Start ``workers`` processes of :func:`worker`; their RESULT dicts."""
    from segtie.cli.launcher import free_ports, tf_configs

    command = [sys.executable, __file__, "--worker", "--workers", str(workers),
               "--data-dir", args.data_dir, "--steps", str(args.steps),
               "--image-size", str(args.image_size), "--batch", str(args.batch)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    configs = tf_configs(free_ports(workers)) if workers > 1 else [None]
    procs = [subprocess.Popen(command, env={**env, **({"TF_CONFIG": c} if c else {})},
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
             for c in configs]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1200)
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        if proc.returncode or not lines:
            raise SystemExit(f"a worker failed (status {proc.returncode}):\n{out[-2000:]}")
        results.append(json.loads(lines[-1][len("RESULT "):]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="data/tfds")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8, help="the global batch")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    import tensorflow as tf

    print(f"machine: {cpu_model()}, {os.cpu_count()} logical cores (os.cpu_count), "
          f"TensorFlow {tf.__version__}, Python {platform.python_version()}")
    print(f"Kvasir-SEG {args.image_size}x{args.image_size}, global batch {args.batch}, "
          f"median of {args.steps} steps after {WARMUP} warm-up steps\n")
    rows, base = [], None
    for workers in (1, 2):
        t0 = time.perf_counter()
        results = run(args, workers)
        chief = next(r for r in results if r["chief"])
        base = base or chief["images_per_s"]
        rows.append((workers, chief["replicas"], args.batch // chief["replicas"],
                     f"{chief['step_ms']:.1f}", f"{chief['images_per_s']:.1f}",
                     f"{chief['all_reduce_ms']:.2f}", f"{chief['images_per_s'] / base:.2f}x",
                     f"{max(r['peak_rss_mb'] for r in results):.0f}",
                     f"{time.perf_counter() - t0:.0f}"))
    header = ("workers", "replicas", "batch/replica", "step ms", "images/s",
              "all-reduce ms/step", "speed-up", "peak RSS MB/worker", "wall s")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
