"""Measurement helpers shared by the benchmark scripts (not part of the package).

- :func:`matmul_peak_gflops`: the machine's float32 matmul rate, the yardstick of
  "achieved GFLOP/s".
- :func:`conv_profile`: convolution kernels, convolution uses, forward FLOPs and
  effective parameters of *any* Keras model, from one traced forward pass
  (:func:`segtie.nn.profile.trace_uses` records every layer call, nested calls
  inside segtie's blocks included, so a kernel used four times counts four times).
- :func:`measure_training`: training and inference images/s and the peak memory of
  training, on given arrays.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from pathlib import Path

# TensorFlow's CPU allocator keeps statistics only as the BFC allocator, chosen at import.
os.environ.setdefault("TF_CPU_ALLOCATOR_USE_BFC", "true")

import keras
import tensorflow as tf

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from _recipes import RECIPE  # noqa: E402
from segtie.nn import profile  # noqa: E402
from segtie.training.resources import tracking_allocator_peak  # noqa: E402

CONVS = (keras.layers.Conv2D, keras.layers.Conv2DTranspose)

def recipe_model(overrides, batch: int) -> keras.Model:
    """The model of the ``kvasir_seg`` recipe with ``overrides``, as training builds it."""
    from segtie import config as cfg
    from segtie.nn import build_model

    config = cfg.load_config(RECIPE, list(overrides))
    return build_model(config.model, config.data.image_size, batch)


def matmul_peak_gflops(size: int = 2048, reps: int = 10, trials: int = 3,
                       dtype: str = "float32") -> float:
    """Best ``tf.matmul`` rate of ``trials`` runs of ``reps`` products in ``dtype``, GFLOP/s.

    One ``size x size`` product is ``2 size^3`` FLOPs; the first product (kernel
    selection, thread start-up) is not timed.
    """
    a = tf.cast(tf.random.stateless_uniform((size, size), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_uniform((size, size), seed=(3, 4)), dtype)
    tf.matmul(a, b).numpy()
    best = 0.0
    for _ in range(trials):
        start = time.perf_counter()
        for _ in range(reps):
            c = tf.matmul(a, b)
        c.numpy()  # ops run in order on one device: waiting for the last waits for all
        best = max(best, reps * 2 * size ** 3 / (time.perf_counter() - start) / 1e9)
    return best


def conv_profile(model: keras.Model, image_size) -> dict:
    """Convolution kernels vs. uses, forward FLOPs and parameters of ``model``.

    Returns:
        dict: ``conv_kernels`` (distinct convolution layers called), ``conv_uses``
        (calls of them in one forward pass), ``flops_per_image`` (``2 x`` MACs of
        every convolution use, see :func:`segtie.nn.profile.conv_macs`),
        ``unique_params`` (``count_params()``) and ``effective_params`` (weights of
        every use counted: the untied equivalent).
    """
    with warnings.catch_warnings():  # a bare tensor for a model built on a list of inputs
        warnings.filterwarnings("ignore", message="The structure of `inputs`")
        uses = profile.trace_uses(model, image_size)
    convs = [u.layer for u in uses if isinstance(u.layer, CONVS)]
    return {"conv_kernels": len({id(layer) for layer in convs}), "conv_uses": len(convs),
            "flops_per_image": 2 * profile.conv_macs(uses),
            "unique_params": model.count_params(),
            "effective_params": profile.effective_parameters(uses)}


@contextlib.contextmanager
def peak_memory(result: dict):
    """Record in ``result["peak_mb"]`` TensorFlow's allocator peak during the enclosed code.

    See :func:`segtie.training.resources.tracking_allocator_peak` (the first GPU, else ``CPU:0``;
    weights and optimizer state included). ``result["memory_how"]`` says which device.
    """
    with tracking_allocator_peak({}) as peak:
        yield
    result.update(peak_mb=None if peak["bytes"] is None else peak["bytes"] / profile.MEGABYTE,
                  memory_how=f"{peak['how']}, over the timed training steps (tracing not "
                             f"included)")


def _rate(step, batch: int, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    return _timed(step, batch, steps)


def _timed(step, batch: int, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        step()  # returns NumPy values: the step has finished
    return steps * batch / (time.perf_counter() - start)


def measure_training(model: keras.Model, images, masks, warmup: int, steps: int,
                     jit_compile="auto") -> dict:
    """Train and predict ``model`` on fixed arrays; images/s and peak training memory.

    The model is compiled with Adam (learning rate 1e-3) and binary cross-entropy on
    logits, with ``jit_compile`` (``"auto"``: XLA on GPU, not on CPU; ``"true"`` /
    ``"false"``: XLA everywhere / nowhere). The peak memory covers
    the timed training steps (after the warm-up, so tracing is not included).

    Returns:
        dict: ``train_images_per_s``, ``infer_images_per_s``, ``peak_mb``,
        ``memory_how``, ``jit_compile``.
    """
    model.compile(optimizer=keras.optimizers.Adam(1e-3),
                  loss=keras.losses.BinaryCrossentropy(from_logits=True),
                  jit_compile={"true": True, "false": False}.get(str(jit_compile),
                                                                 jit_compile))
    batch, result = len(images), {}
    train = lambda: model.train_on_batch(images, masks)  # noqa: E731
    for _ in range(warmup):
        train()
    with peak_memory(result):
        result["train_images_per_s"] = _timed(train, batch, steps)
    result["infer_images_per_s"] = _rate(lambda: model.predict_on_batch(images),
                                         batch, warmup, steps)
    result["jit_compile"] = bool(model.jit_compile)
    return result


def markdown_table(header, rows) -> str:
    """A Markdown table of ``header`` and ``rows`` (sequences of cells)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
