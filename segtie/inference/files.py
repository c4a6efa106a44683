"""Predict image files: a list of files or folders in, one mask PNG per image out.

:func:`find_images` lists the inputs (folders: their files with a known suffix,
sorted, not recursive); :func:`plan_outputs` names the outputs and refuses to
overwrite; :func:`predict_files` decodes each image
(:func:`segtie.data.image_files.read_image`: PNG, JPEG, TIFF, BMP, GIF, any size),
predicts it at its original size (:func:`~segtie.inference.predict_probabilities` with
the given :class:`~segtie.inference.InferenceOptions`), thresholds it
(:func:`~segtie.inference.predict_labels`, optional largest component) and writes:

- ``<stem>_mask.png``: uint8, 0/255 for a binary model, class indices 0..K-1 for
  a multi-class one, the size of the input image;
- with ``probabilities="png16"``: ``<stem>_prob.png``, 16-bit, ``round(p * 65535)``
  (one file per class, ``<stem>_prob_class<k>.png``, for ``K > 1``);
- with ``probabilities="npy"``: ``<stem>_prob.npy``, float32 ``(H0, W0)`` or
  ``(H0, W0, K)``.

16-bit images are scaled to 8 bits by their own maximum
(:func:`segtie.data.image_files.to_uint8`). NIfTI volumes (``.nii``, ``.nii.gz``) go
to a 3-D model (:func:`segtie.inference.volumes.predict_nifti`) and give
``<stem>_mask.nii.gz`` with the input's affine (``probabilities="npy"`` only). No
ground truth is read.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
from PIL import Image

from segtie.data.image_files import SUFFIXES, read_image, to_uint8
from segtie.inference.options import InferenceOptions
from segtie.inference.postprocess import predict_labels
from segtie.inference.predict import predict_probabilities
from segtie.inference.volumes import (VOLUME_SUFFIXES, is_volume, predict_nifti,
                                      refuse_2d_only, volume_stem)

__all__ = ["PROBABILITY_FORMATS", "PredictSummary", "find_images", "plan_outputs",
           "predict_files"]

logger = logging.getLogger(__name__)
PROBABILITY_FORMATS = ("png16", "npy")


@dataclasses.dataclass
class PredictSummary:
    """What :func:`predict_files` did: files written, inputs skipped, time taken."""

    written: list
    skipped: list  # (path, reason)
    seconds: float
    num_images: int = 0


def find_images(inputs: Sequence) -> list[Path]:
    """The image files named by ``inputs`` (files, or folders read non-recursively).

    Raises:
        FileNotFoundError: an input does not exist.
        ValueError: a named file has an unknown suffix, or nothing was found.
    """
    known = lambda p: p.suffix.lower() in SUFFIXES or is_volume(p)  # noqa: E731
    files = []
    for item in map(Path, inputs):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.is_file() and known(p))
        elif item.is_file():
            if not known(item):
                raise ValueError(f"{item}: unsupported image type {item.suffix!r}; "
                                 f"expected one of {SUFFIXES + VOLUME_SUFFIXES}")
            files.append(item)
        else:
            raise FileNotFoundError(f"Input not found: {item}")
    if not files:
        raise ValueError(f"No images ({', '.join(SUFFIXES + VOLUME_SUFFIXES)}) in "
                         f"{[str(i) for i in inputs]}")
    return files


def _targets(path: Path, out_dir: Path, probabilities: Optional[str], num_classes: int):
    if is_volume(path):
        if probabilities == "png16":
            raise ValueError(f"{path}: --probabilities png16 writes 2-D images; use npy for "
                             f"volumes")
        stem = volume_stem(path)
        return [out_dir / f"{stem}_mask.nii.gz"] + (
            [out_dir / f"{stem}_prob.npy"] if probabilities == "npy" else [])
    stem = path.stem
    names = [f"{stem}_mask.png"]
    if probabilities == "npy":
        names.append(f"{stem}_prob.npy")
    elif probabilities == "png16":
        names += ([f"{stem}_prob.png"] if num_classes == 1 else
                  [f"{stem}_prob_class{k}.png" for k in range(num_classes)])
    return [out_dir / n for n in names]


def plan_outputs(files: Sequence[Path], out_dir, probabilities: Optional[str],
                 num_classes: int, overwrite: bool) -> dict:
    """``{input: [output paths]}``, checked before anything is written.

    Raises:
        ValueError: an unknown ``probabilities`` format; two inputs with the same
            stem (their outputs would collide); an output that exists and
            ``overwrite`` is False (the message names it and how many exist).
        NotADirectoryError: ``out_dir`` exists and is not a folder.
    """
    if probabilities not in (None, *PROBABILITY_FORMATS):
        raise ValueError(f"`probabilities` must be one of {list(PROBABILITY_FORMATS)} or "
                         f"None, received {probabilities!r}")
    out_dir, plan, stems = Path(out_dir), {}, {}
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"--output {out_dir} is a file; expected a folder for the "
                                 f"masks (created if missing)")
    for path in files:
        stem = volume_stem(path) if is_volume(path) else path.stem
        targets = _targets(path, out_dir, probabilities, num_classes)
        if stem in stems:
            raise ValueError(f"{stems[stem]} and {path} would both write {targets[0].name} "
                             f"(or {stem}_mask.*); rename one or predict them separately")
        stems[stem] = path
        plan[path] = targets
    existing = [p for outs in plan.values() for p in outs if p.exists()]
    if existing and not overwrite:
        raise ValueError(f"{existing[0]} exists ({len(existing)} output files exist in "
                         f"{out_dir}); pass --overwrite to replace them")
    return plan


def _write(outputs: list, probabilities: np.ndarray, labels: np.ndarray,
           num_classes: int) -> None:
    mask = labels.astype(np.uint8) * (255 if num_classes == 1 else 1)
    Image.fromarray(mask).save(outputs[0])
    if len(outputs) == 1:
        return
    if outputs[1].suffix == ".npy":
        np.save(outputs[1], probabilities.astype(np.float32))
        return
    planes = [probabilities] if num_classes == 1 else np.moveaxis(probabilities, -1, 0)
    for path, plane in zip(outputs[1:], planes):
        Image.fromarray(np.rint(np.clip(plane, 0, 1) * 65535).astype(np.uint16)).save(path)


def predict_files(model, plan: dict, options: InferenceOptions, threshold: float,
                  keep_largest: bool = False, keep_going: bool = False,
                  progress: bool = False) -> PredictSummary:
    """Predict every input of ``plan`` (:func:`plan_outputs`) and write its outputs.

    Args:
        model: images float32 ``(n, h, w, 3)`` in [0, 1] -> logits (a Keras model
            or an adapter of :mod:`segtie.export.runtime`).
        plan: ``{input path: [output paths]}``.
        options: how to run the model; ``options.image_size`` is the training size.
        threshold: binary foreground where the probability exceeds it.
        keep_largest: keep only the largest connected component.
        keep_going: skip an unreadable image (reported in the summary) instead of
            raising.
        progress: show a progress bar.

    Raises:
        ValueError: an unreadable image (naming it) unless ``keep_going``.
    """
    import keras  # the progress bar

    bar = keras.utils.Progbar(len(plan), unit_name="image") if progress else None
    written, skipped, start = [], [], time.monotonic()
    for i, (path, outputs) in enumerate(plan.items()):
        if is_volume(path):
            refuse_2d_only(largest_component=keep_largest)
            try:
                predict_nifti(model, path, outputs, options, threshold)
            except (ValueError, OSError) as err:
                if not keep_going:
                    raise
                logger.warning("Skipping %s: %s", path, err)
                skipped.append((path, str(err)))
            else:
                written += outputs
            if bar is not None:
                bar.update(i + 1)
            continue
        try:
            image = read_image(path.read_bytes(), path.name)
        except (ValueError, OSError) as err:
            if not keep_going:
                raise ValueError(f"{path}: {err} (pass --keep-going to skip unreadable "
                                 f"images)") from err
            logger.warning("Skipping %s: %s", path, err)
            skipped.append((path, str(err)))
        else:
            image = to_uint8(image, image.max()) if image.dtype != np.uint8 else image
            probabilities = predict_probabilities(model, image, options.image_size, options)
            labels = predict_labels(probabilities, options.num_classes, threshold,
                                    keep_largest)
            _write(outputs, probabilities, labels, options.num_classes)
            written += outputs
        if bar is not None:
            bar.update(i + 1)
    return PredictSummary(written, skipped, time.monotonic() - start, len(plan))
