"""Instance norm, forward and backward: segtie's layer against Keras' group norm.

    nice -n 19 python benchmarks/bench_norms.py [--batch 8] [--image-size 128] \
        [--widths 16 32 64 128] [--steps 20] [--rounds 5] [--json out.json]

Times one forward and backward pass (``tf.GradientTape``, a fixed random upstream
gradient, gradients with respect to the input, ``gamma`` and ``beta``) inside
one ``tf.function``, summed over the feature maps the default Kvasir-SEG recipe
normalises at each level: ``(batch, S / 2**l, S / 2**l, widths[l])``. Rows:

- ``keras GroupNormalization(groups=-1)``: Keras 3's own code (reshape to groups,
  ``moments``, autodiff);
- ``fused batch norm on (1, H, W, N*C)``: segtie's previous layer, TensorFlow's
  ``FusedBatchNormV3`` on the transposed feature map (two transposes each way);
- ``closed form on x (segtie, 2026-12-02)``: ``moments`` forward, a closed-form
  backward written on ``x`` (11 full-size passes);
- ``closed form on x - mean``: :func:`segtie.nn.norms.instance_norm`, the closed
  form on the centred input (7 full-size passes backward), segtie's layer in
  inference and with an unknown batch size;
- ``segtie InstanceNormalization``: the layer in training with a static batch,
  :func:`segtie.nn.norms.instance_norm_per_sample` (``FusedBatchNormV3`` once per
  sample).

Milliseconds per pass are the median of ``--rounds`` rounds (each times every
variant in turn over ``--steps`` passes, after warm-up); the table also gives the
largest difference of each variant's output and input gradient from Keras'
(float32), so a faster row is also shown to compute the same thing.
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

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import markdown_table  # noqa: E402
from _machine import machine_header  # noqa: E402
from segtie.nn.norms import InstanceNormalization, instance_norm  # noqa: E402


class FusedTransposedInstanceNorm(keras.layers.GroupNormalization):
    """segtie's instance norm before the closed-form backward (kept here as the 'before')."""

    def __init__(self, **kwargs):
        super().__init__(groups=-1, **kwargs)

    def call(self, inputs):
        shape = tf.shape(inputs)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]
        x = tf.reshape(tf.transpose(inputs, [1, 2, 0, 3]), tf.stack([1, h, w, n * c]))
        ones = tf.ones(tf.reshape(n * c, [1]), "float32")
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(x, ones, tf.zeros_like(ones),
                                                   epsilon=self.epsilon, is_training=True)
        y = tf.transpose(tf.reshape(y, tf.stack([h, w, n, c])), [2, 0, 1, 3])
        return tf.ensure_shape(y, inputs.shape) * self.gamma + self.beta


def closed_form_on_x(x, gamma, beta, epsilon):
    """segtie's instance norm of 2026-12-02 (closed-form backward on ``x``), the 'before'."""
    spatial = list(range(1, len(x.shape) - 1))

    @tf.custom_gradient
    def normalize(x, gamma, beta):
        mean, variance = tf.nn.moments(x, axes=spatial, keepdims=True)
        rstd = tf.math.rsqrt(variance + epsilon)
        scale = rstd * gamma
        y = x * scale + (beta - mean * scale)

        def backward(dy):
            x_hat = x * rstd - mean * rstd
            dy_x_hat = dy * x_hat
            mean_dy = tf.reduce_mean(dy, axis=spatial, keepdims=True)
            mean_dy_x_hat = tf.reduce_mean(dy_x_hat, axis=spatial, keepdims=True)
            dx = scale * (dy - mean_dy - x_hat * mean_dy_x_hat)
            return (dx, tf.reduce_sum(dy_x_hat, axis=[0] + spatial),
                    tf.reduce_sum(dy, axis=[0] + spatial))

        return y, backward

    return normalize(x, gamma, beta)


class ClosedFormOnXInstanceNorm(keras.layers.GroupNormalization):
    """The layer of 2026-12-02: the same closed form, on ``x`` instead of ``x - mean``."""

    def __init__(self, **kwargs):
        super().__init__(groups=-1, **kwargs)

    def call(self, inputs):
        return closed_form_on_x(inputs, self.gamma, self.beta, self.epsilon)


class ClosedFormInstanceNorm(keras.layers.GroupNormalization):
    """segtie's closed form on the centred input: its layer's inference/unknown-batch path."""

    def __init__(self, **kwargs):
        super().__init__(groups=-1, **kwargs)

    def call(self, inputs):
        return instance_norm(inputs, self.gamma, self.beta, self.epsilon)


VARIANTS = {
    "keras GroupNormalization(groups=-1)": lambda: keras.layers.GroupNormalization(groups=-1),
    "fused batch norm on (1, H, W, N*C)": FusedTransposedInstanceNorm,
    "closed form on x (segtie, 2026-12-02)": ClosedFormOnXInstanceNorm,
    "closed form on x - mean (segtie, 2026-12-03; unknown batch)": ClosedFormInstanceNorm,
    "segtie InstanceNormalization (training: fused kernel per sample)": InstanceNormalization,
}


def level_inputs(batch: int, size: int, widths) -> list:
    """Random float32 feature maps ``(batch, size / 2**l, size / 2**l, widths[l])``, seed 0."""
    rng = np.random.default_rng(0)
    return [tf.constant(rng.normal(1.0, 2.0, (batch, size >> l, size >> l, c)), "float32")
            for l, c in enumerate(widths)]


def make_pass(make_layer, inputs):
    """A traced forward+backward over every level with fresh layers of ``make_layer``."""
    norms = [make_layer() for _ in inputs]
    rng = np.random.default_rng(1)
    upstream = [tf.constant(rng.normal(size=x.shape), "float32") for x in inputs]
    for norm, x in zip(norms, inputs):
        norm.build(x.shape)
        norm.gamma.assign(tf.linspace(0.5, 1.5, x.shape[-1]))

    @tf.function
    def step():
        outputs, grads = [], []
        for norm, x, dy in zip(norms, inputs, upstream):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = norm(x, training=True)  # layers without a training mode ignore it
            outputs.append(y)
            grads.append(tape.gradient(y, [x, norm.gamma, norm.beta], output_gradients=dy)[0])
        return outputs, grads

    return step


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    inputs = level_inputs(args.batch, args.image_size, args.widths)
    steps = {name: make_pass(make, inputs) for name, make in VARIANTS.items()}
    results = {name: step() for name, step in steps.items()}  # traces, warms up
    reference_y, reference_dx = results["keras GroupNormalization(groups=-1)"]
    times = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            step()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            times[name].append(1e3 * (time.perf_counter() - start) / args.steps)
    keras_ms = statistics.median(times["keras GroupNormalization(groups=-1)"])
    rows, report = [], {}
    for name in steps:
        y, dx = results[name]
        dy_max = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(y, reference_y))
        dx_max = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(dx, reference_dx))
        ms = statistics.median(times[name])
        report[name] = {"ms": ms, "max_abs_output_diff": dy_max, "max_abs_grad_diff": dx_max}
        rows.append([name, f"{ms:.2f}", f"{keras_ms / ms:.2f}x", f"{dy_max:.1e}",
                     f"{dx_max:.1e}"])
    shapes = ", ".join(f"{tuple(x.shape)}" for x in inputs)
    print(machine_header())
    print(f"Instance norm forward + backward over {shapes}; median of {args.rounds} rounds "
          f"of {args.steps} passes\n")
    print(markdown_table(["variant", "ms / pass", "speed vs keras", "max |y - keras|",
                          "max |dx - keras|"], rows))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
