"""``export_model``: one trained model -> SavedModel + LiteRT files, checked and tracked.

Layout of the export folder::

    <out_dir>/
      config.yaml              the training run's config (inference options, threshold)
      export.json              signature, sizes, figures per variant, where it came from
      saved_model/             any-size uint8 images -> probabilities, mask
      model_float32.tflite     fixed uint8 (1, H, W, 3) -> logits, probabilities
      model_float16.tflite
      model_int8.tflite        (model_int8_io.tflite with int8 outputs)

After each conversion the flatbuffer is read back
(:func:`segtie.export.flatbuffer.read_weights`) and compared with the Keras model: a
stored filter per Keras kernel (a tied kernel once) is expected, plus one per use of
a template bank (``model.num_templates``: the converter constant-folds each use's
mixed kernel ``sum_j alpha[u, j] T_j`` into a filter of its own, so on the device a
bank costs the bytes of the untied kernels), and for a filter basis
(``model.basis_size``, factored) its one shared basis filter plus, per use, its 1x1
coefficients and its own filters (``basis_unique``): the basis keeps its tying on
the device, the file's bytes are its parameters'. More is logged as a warning
naming both counts. The files are logged as artifacts (``litert/``,
``saved_model/``) of an MLflow run tagged ``segtie.kind = export`` and
``segtie.train_run_id``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Optional, Sequence

import keras
import numpy as np
import tensorflow as tf

from segtie import config as cfg
from segtie.export.calibration import representative_images
from segtie.export.flatbuffer import FlatbufferWeights, read_weights
from segtie.export.litert import BYTES_PER_WEIGHT, VARIANTS, convert_litert
from segtie.export.pixels import PixelServing, activation_name
from segtie.nn.filter_basis import FilterBasis, factored_is_cheaper
from segtie.tracking import Tracker
from segtie.training.ensembles import ensemble_members

__all__ = ["ExportResult", "bank_use_count", "basis_filter_count", "conv_kernel_count",
           "export_model", "litert_file_name", "litert_input_size"]

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ExportResult:
    """What :func:`export_model` wrote.

    Attributes:
        out_dir: the export folder.
        files: ``{"saved_model" or variant: path}``.
        weights: ``{variant: FlatbufferWeights}`` read back from each ``.tflite``.
        info: the contents of ``export.json``.
        mlflow_run_id: the export run, or None when tracking is off or failed.
    """

    out_dir: Path
    files: dict
    weights: dict
    info: dict
    mlflow_run_id: Optional[str]


def litert_file_name(variant: str, int8_io: bool = False) -> str:
    """``model_<variant>.tflite`` (``model_int8_io.tflite`` with int8 outputs)."""
    return f"model_{variant}{'_io' if int8_io else ''}.tflite"


def litert_input_size(config: cfg.Config) -> list:
    """The LiteRT input ``[H, W]``: ``eval.window_size`` for a sliding-window recipe
    (DRIVE: the model runs on windows), else ``data.image_size`` (the resize path)."""
    ev = config.eval
    if ev.sliding_window and ev.window_size is not None:
        return list(ev.window_size)
    return list(config.data.image_size)


def conv_kernel_count(model: keras.Model) -> int:
    """Distinct 4-D convolution kernels of a Keras model (a tied kernel counts once)."""
    return sum(1 for v in model.weights if v.path.endswith("kernel") and len(v.shape) == 4)


def bank_use_count(model: keras.Model) -> int:
    """Uses of the template banks of a Keras model: the filters LiteRT folds them into."""
    return sum(int(v.shape[0]) for v in model.weights
               if v.path.endswith("template_bank/coefficients"))


def basis_filter_count(model: keras.Model) -> int:
    """Filters LiteRT stores for the filter bases of a Keras model (the builder's, which
    take the cheaper way: :func:`~segtie.nn.filter_basis.factored_is_cheaper`).

    A factored basis of ``U`` uses: its shared basis once, a 1x1 coefficient filter
    per use and, with ``basis_unique``, a filter of the use's own: ``1 + U (+ U)``.
    A composed one is folded like a bank: one composite filter per use, ``U``.
    """
    total = 0
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if not isinstance(layer, FilterBasis):  # by layer, not by variable path: two
            continue                            # ensemble members share their paths
        uses, width, filters = (int(d) for d in layer.coefficients.shape)
        *kernel, c_in, _ = (int(d) for d in layer.basis.shape)
        if factored_is_cheaper(int(np.prod(kernel)), c_in, width, filters):
            total += 1 + uses + (uses if layer.unique is not None else 0)
        else:
            total += uses
    return total


def _prepare_dir(out_dir: Path, overwrite: bool) -> None:
    """Create ``out_dir``; an export already there is refused, or removed with
    ``overwrite`` (only what an export writes: other files are left alone)."""
    ours = ([out_dir / n for n in ("saved_model", "export.json", "config.yaml")]
            + sorted(out_dir.glob("model_*.tflite")))
    existing = [p for p in ours if p.exists()]
    if existing and not overwrite:
        raise FileExistsError(f"Export folder {out_dir} already holds {existing[0].name}; "
                              f"pass --overwrite to replace the export, or choose another "
                              f"--output")
    for path in existing:
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)


def _check_tying(weights: FlatbufferWeights, kernels: int, name: str) -> None:
    if weights.num_filter_buffers > kernels:
        logger.warning("%s stores %d convolution filters for the Keras model's %d kernels: "
                       "the converter folded a per-use normalization into a tied kernel "
                       "(norm: batch with tied levels?)", name, weights.num_filter_buffers,
                       kernels)


def _signature(image_size, num_classes) -> dict:
    h, w = image_size
    return {"litert": {"inputs": {"image": f"uint8 (1, {h}, {w}, 3) raw RGB pixels, "
                                           f"resized to the training size by the caller"},
                       "outputs": {"logits": f"float32 (1, {h}, {w}, {num_classes})",
                                   "probabilities": f"float32 (1, {h}, {w}, {num_classes}), "
                                                    f"{activation_name(num_classes)}"}},
            "saved_model": {"inputs": {"image": "uint8 (n, H0, W0, 3) any size"},
                            "outputs": {"probabilities": f"float32 (n, H0, W0, {num_classes})",
                                        "mask": "uint8 (n, H0, W0)"},
                            "other signatures": {"logits": "float32 (n, h, w, 3) in [0, 1] "
                                                 f"-> logits (n, h, w, {num_classes})"}}}


def export_model(model: keras.Model, config: cfg.Config, out_dir, *,
                 variants: Sequence[str] = VARIANTS, int8_io: bool = False,
                 calibration_images: int = 32, saved_model: bool = True,
                 source: str = "", train_run_id: Optional[str] = None,
                 overwrite: bool = False, track: bool = True) -> ExportResult:
    """Write the SavedModel and the LiteRT variants of a trained model.

    Args:
        model: the trained segtie model (images float32 in [0, 1] -> logits).
        config: its config: ``data.image_size`` (the fixed LiteRT input size;
            ``eval.window_size`` with ``eval.sliding_window``: :func:`litert_input_size`),
            ``data`` (the int8 calibration set, the training split),
            ``eval.threshold`` (the SavedModel's mask), ``tracking``.
        out_dir: the export folder (see the module docstring).
        variants: any of :data:`segtie.export.litert.VARIANTS`.
        int8_io: the int8 variant with int8 outputs.
        calibration_images: training images that calibrate int8 (a few dozen).
        saved_model: write the SavedModel too.
        source: where ``model`` came from (a ``.keras`` path, an MLflow URI).
        train_run_id: the MLflow run that trained it, tagged on the export run.
        overwrite: replace an export already in ``out_dir`` (other files stay).
        track: log the files to an MLflow export run (if ``config.tracking.enabled``).

    Returns:
        :class:`ExportResult`.

    Raises:
        FileExistsError: ``out_dir`` holds an export and ``overwrite`` is False.
        ValueError: an unknown variant (named), a model that does not take RGB.
        FileNotFoundError: the int8 calibration data cannot be found.
    """
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown or not variants:
        raise ValueError(f"`variants` must be a non-empty subset of {list(VARIANTS)}, "
                         f"received {list(variants)}")
    out_dir = Path(out_dir)
    _prepare_dir(out_dir, overwrite)
    size, files, weights = litert_input_size(config), {}, {}
    (out_dir / "config.yaml").write_text(cfg.dump_yaml(config))
    if saved_model:
        module = PixelServing(model, config.data.image_size, config.eval.threshold)
        files["saved_model"] = out_dir / "saved_model"
        tf.saved_model.save(module, str(files["saved_model"]), signatures=module.signatures())
    images = (representative_images(config.data, calibration_images, window=size)
              if "int8" in variants else None)
    kernels, banked, based = (conv_kernel_count(model), bank_use_count(model),
                              basis_filter_count(model))
    if banked:
        logger.info("The template banks' %d uses are folded into one filter each: LiteRT "
                    "stores the untied kernels, not the bank", banked)
    for variant in variants:
        io = int8_io and variant == "int8"
        data = convert_litert(model, size, variant, images, int8_io=io)
        path = out_dir / litert_file_name(variant, io)
        path.write_bytes(data)
        files[variant], weights[variant] = path, read_weights(data)
        _check_tying(weights[variant], kernels + banked + based, path.name)
    info = _info(model, config, files, weights, kernels, source, train_run_id, images, int8_io)
    (out_dir / "export.json").write_text(json.dumps(info, indent=2))
    run_id = _track(config, out_dir, files, info) if track else None
    return ExportResult(out_dir, files, weights, info, run_id)


def _info(model, config, files, weights, kernels, source, train_run_id, images, int8_io):
    size, num_classes = litert_input_size(config), model.outputs[0].shape[-1]
    params = model.count_params()
    return {
        "source": source, "train_run_id": train_run_id,
        "ensemble_members": ensemble_members(source) if source else None,
        "image_size": size,
        "saved_model_image_size": list(config.data.image_size),
        "num_classes": num_classes, "activation": activation_name(num_classes),
        "threshold": config.eval.threshold, "unique_params": params,
        "conv_kernels": kernels, "calibration_images": 0 if images is None else len(images),
        "signature": _signature(size, num_classes),
        "variants": {v: {"file": files[v].name, "file_bytes": w.file_bytes,
                         "constant_bytes": w.constant_bytes,
                         "unique_params_x_bytes_per_weight": params * BYTES_PER_WEIGHT[v],
                         "filter_buffers": w.num_filter_buffers,
                         "convolutions": w.num_convolutions,
                         "int8_outputs": bool(int8_io and v == "int8")}
                     for v, w in weights.items()},
    }


def _track(config, out_dir: Path, files: dict, info: dict) -> Optional[str]:
    """Log the export to an MLflow run tagged with the training run."""
    tracker = Tracker(config.tracking.enabled, config.tracking.tracking_uri,
                      config.tracking.experiment or config.data.name)
    with tracker:
        run_id = tracker.start(f"export-{config.data.name}-{time.strftime('%Y%m%d-%H%M%S')}",
                               tags={"segtie.kind": "export",
                                     "segtie.checkpoint": info["source"] or "unknown",
                                     "segtie.train_run_id": info["train_run_id"] or "unknown"})
        if info["ensemble_members"]:
            tracker.set_tags({"segtie.ensemble_members": ",".join(
                m["training_run_id"] or "unknown" for m in info["ensemble_members"])})
        tracker.log_params({"image_size": info["image_size"],
                            "variants": ",".join(info["variants"]),
                            "calibration_images": info["calibration_images"]})
        tracker.log_metrics({f"{v}.{k}": x for v, d in info["variants"].items()
                             for k, x in d.items() if isinstance(x, int)
                             and not isinstance(x, bool)})
        for key, path in files.items():
            if key == "saved_model":
                tracker.log_artifacts(path, "saved_model")
            else:
                tracker.log_artifact(path, "litert")
        tracker.log_artifact(out_dir / "export.json")
        tracker.log_artifact(out_dir / "config.yaml")
    return run_id
