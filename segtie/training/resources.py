"""What a configured model costs: weights, uses, FLOPs, file size, memory.

For the config's model at its training batch and image size (``data.batch_size``;
``data.patch_size`` when training on patches, else ``data.image_size``):

- unique parameters (the weights stored; ``count_params()``) and effective
  parameters (every use of a tied weight counted, i.e. the untied equivalent);
- the ``.keras`` file size in bytes;
- FLOPs per image (``2 x`` convolution multiply-accumulates, every use counted);
- the activation memory estimate with and without ``recompute`` and the
  training-step estimate (:mod:`segtie.nn.profile`);
- the measured peak memory of one training step (:func:`measure_step_peak`), with
  ``recompute`` off and on at the same batch and width: TensorFlow's allocator
  peak (``tf.config.experimental.get_memory_info``, on the GPU or on ``CPU:0``)
  during the second step, weights and optimizer state included, tracing not; where
  the allocator keeps no statistics, the rise of the peak RSS, and it says so (see
  :func:`tracking_allocator_peak`).

:func:`resource_figures` returns the figures as a dict of numbers for MLflow;
:func:`segtie.reports.resources.format_report` prints them (``segtie report``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import tempfile
from pathlib import Path
from typing import Optional

import keras
import numpy as np
import tensorflow as tf

from segtie import config as cfg
from segtie.losses import DiceCELoss
from segtie.nn import build_model, build_training_model, profile, saved_model_of

logger = logging.getLogger(__name__)
OPTIMIZER_SLOTS = {"adam": 2, "adamw": 2, "sgd": 1}
MEGABYTE = profile.MEGABYTE


def model_file_bytes(model: keras.Model) -> int:
    """Bytes of ``model`` saved as ``.keras`` as it is (uncompiled: no optimizer state;
    training's ``best.keras`` also holds the optimizer's variables, e.g. Adam's two
    slots per weight, so it is about three times larger)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        return path.stat().st_size


def train_size(config: cfg.Config) -> list:
    """``[H, W]`` of a training batch: ``data.patch_size`` if set, else ``data.image_size``."""
    return list(config.data.patch_size or config.data.image_size)


def measure_step_peak(config: cfg.Config) -> tuple:
    """Peak memory of one training step of a fresh model of ``config``.

    Returns:
        ``(bytes, how)``: the figure and a sentence saying what was measured.
    """
    keras.backend.clear_session()  # earlier models' tensors must not count
    gc.collect()
    height, width = train_size(config)
    batch = config.data.batch_size
    model = build_model(config.model, [height, width], batch)
    trainer = build_training_model(model, config.model)
    trainer.compile(optimizer=keras.optimizers.get(config.train.optimizer),
                    loss=DiceCELoss(config.train.dice_weight, config.train.bce_weight))
    rng = np.random.default_rng(0)
    x = rng.random((batch, height, width, config.model.in_channels), dtype=np.float32)
    classes = config.model.num_classes
    y = ((rng.random((batch, height, width, 1)) > 0.5).astype("float32") if classes == 1
         else rng.integers(0, classes, (batch, height, width, 1)).astype("int32"))
    return allocator_peak(lambda: trainer.train_on_batch(x, y))


BFC_ENV = "TF_CPU_ALLOCATOR_USE_BFC"
"""Set to ``true`` before TensorFlow is imported (``import segtie`` does it unless the
environment says otherwise), TensorFlow's CPU allocator keeps memory statistics (the
BFC allocator). Not every CPU build defaults to it: on AMD EPYC with TF 2.21
``reset_memory_stats("CPU:0")`` fails without it."""


def _status_kib(field: str) -> Optional[int]:
    """A ``/proc/self/status`` figure in KiB (``VmRSS``, ``VmHWM``), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_rss_peak() -> bool:
    """Reset the kernel's peak-RSS mark (``VmHWM``) to the current RSS (Linux)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_kib("VmHWM") is not None


@contextlib.contextmanager
def tracking_allocator_peak(result: dict):
    """Record the peak memory of the enclosed code in ``result``; never raises for it.

    The measurement, in order of preference:

    * ``"allocator"``: TensorFlow's allocator peak (live tensors at their highest
      point, weights and optimizer state included) on the first GPU, else ``CPU:0``
      (needs the BFC allocator on the CPU, see :data:`BFC_ENV`);
    * ``"rss"``: the rise of the process's peak resident set size over its size
      at the start (Linux ``VmHWM`` after ``clear_refs``): what the enclosed code
      added, weights already in memory not counted;
    * ``"none"``: nothing could be measured (``result["bytes"]`` is None).

    Sets ``result["bytes"]``, ``result["method"]``, ``result["device"]`` and
    ``result["how"]`` (a sentence saying what was measured, and why not the allocator).
    """
    gpus = tf.config.list_logical_devices("GPU")
    device = gpus[0].name if gpus else "CPU:0"
    try:
        tf.config.experimental.reset_memory_stats(device)
        why = None
    except ValueError as error:  # an allocator without statistics
        why = (f"TensorFlow keeps no memory statistics for {device} ({error}; set "
               f"{BFC_ENV}=true before TensorFlow is imported)")
    rss_start = None if why is None or not _reset_rss_peak() else _status_kib("VmRSS")
    yield result
    if why is None:
        result.update(bytes=int(tf.config.experimental.get_memory_info(device)["peak"]),
                      method="allocator", device=device,
                      how=f"TensorFlow allocator peak on {device}")
    elif rss_start is not None:
        rise = max(0, (_status_kib("VmHWM") or rss_start) - rss_start) * 1024
        result.update(bytes=rise, method="rss", device="process",
                      how=f"rise of the process's peak RSS, because {why}")
    else:
        result.update(bytes=None, method="none", device=None,
                      how=f"not measured: {why}, and the peak RSS is not readable")
    if why is not None:
        logger.warning("Memory: %s", result["how"])


def allocator_peak(step) -> tuple:
    """Peak memory during the second call of ``step`` (see :func:`tracking_allocator_peak`).

    The first call traces the step function and creates the optimizer's slots; the
    peak is then reset and ``step`` runs again, so the figure is the memory of one
    step (weights, optimizer slots, activations and temporaries), not of tracing.

    Returns:
        ``(bytes, how)``: the figure (None when nothing could be measured) and a
        sentence saying what was measured.
    """
    step()
    with tracking_allocator_peak({}) as peak:
        step()
    return peak["bytes"], f"{peak['how']}, during one training step"


def resource_figures(model: keras.Model, config: cfg.Config, measure: bool = True) -> dict:
    """The report's figures as numbers (for ``Tracker.log_metrics`` at training start).

    Args:
        model: the model from :func:`segtie.nn.build_model` (a
            :class:`~segtie.nn.DeepSupervisionModel` is also accepted).
        config: the whole config (batch size, image size, optimizer).
        measure: bool, also measure one training step of a fresh model of the config
            (this model is not trained).

    Returns:
        dict of str -> int/float: ``unique_params``, ``trainable_params``,
        ``effective_params``, ``model_file_bytes``, ``flops_per_image``,
        ``activation_mb_estimate``, ``training_step_mb_estimate`` and, with
        ``measure``, ``measured_step_peak_mb``.
    """
    model = saved_model_of(model)
    size, batch = train_size(config), config.data.batch_size
    uses = profile.trace_uses(model, size)
    activations = profile.activation_elements(uses)
    unique = model.count_params()
    trainable = int(sum(np.prod(w.shape) for w in model.trainable_weights))
    slots = OPTIMIZER_SLOTS.get(config.train.optimizer, 2)
    figures = {
        "unique_params": unique,
        "trainable_params": trainable,
        "effective_params": profile.effective_parameters(uses),
        "model_file_bytes": model_file_bytes(model),
        "flops_per_image": 2 * profile.conv_macs(uses),
        "activation_mb_estimate": profile.FLOAT_BYTES * batch * activations / MEGABYTE,
        "training_step_mb_estimate": profile.training_memory_bytes(
            unique, activations, batch, slots) / MEGABYTE,
    }
    if measure:
        peak = measure_step_peak(config)[0]
        if peak is not None:
            figures["measured_step_peak_mb"] = peak / MEGABYTE
    return figures


def _with_recompute(config: cfg.Config, flag: bool, base_filters: int) -> cfg.Config:
    """``config`` with ``model.recompute = flag`` at a fixed width (budgets off)."""
    return dataclasses.replace(config, model=dataclasses.replace(
        config.model, recompute=flag, base_filters=base_filters, param_budget=None,
        memory_budget_mb=None))


def recompute_comparison(config: cfg.Config, base_filters: int) -> dict:
    """Activation estimate (MB) of the config's model with ``recompute`` off and on.

    ``base_filters`` is fixed (a budget would choose another width for each setting).
    """
    out = {}
    for flag in (False, True):
        model = build_model(_with_recompute(config, flag, base_filters).model)
        elements = profile.activation_elements(profile.trace_uses(model, train_size(config)))
        out[flag] = profile.FLOAT_BYTES * config.data.batch_size * elements / MEGABYTE
    return out


def measured_recompute_comparison(config: cfg.Config, base_filters: int) -> tuple:
    """Measured step peak (MB) with ``recompute`` off and on, at the same batch and width.

    Returns:
        ``({False: MB, True: MB}, how)``, see :func:`measure_step_peak`; the dict is
        empty when nothing could be measured.
    """
    out, how = {}, ""
    for flag in (False, True):
        peak, how = measure_step_peak(_with_recompute(config, flag, base_filters))
        if peak is None:
            return {}, how
        out[flag] = peak / MEGABYTE
    return out, how
