"""Bring your own volumes: a folder of 3-D NIfTI images and labels, checked up front.

Layout: ``<folder>/images/<id>.nii[.gz]`` with ``<folder>/labels/<id>.nii[.gz]``, or
the Medical Segmentation Decathlon / nnU-Net ``imagesTr/`` and ``labelsTr/``, or
``masks/`` for the labels: one folder of :data:`IMAGE_DIRS` and one of
:data:`LABEL_DIRS`. Nothing else of the folder is read (``dataset.json``,
``imagesTs/``). nnU-Net's channel suffix is accepted: ``imagesTr/<id>_0000.nii.gz``
pairs with ``labelsTr/<id>.nii.gz`` (an image whose whole stem names a label pairs
with it first); volumes are single-channel for now, so ``_0001`` is a problem.
Hidden entries (``.*``, ``__MACOSX``) are ignored; any other non-NIfTI entry is a
problem.

Classes: ``DataConfig.label_map`` (required: a folder of volumes states its classes
nowhere else; nnU-Net asks for a ``dataset.json`` for the same reason) maps raw
label values to class indices 0..K; the model has ``K + 1`` softmax outputs, two
classes included (:func:`segtie.config.implied_num_classes`).

Pairing: :mod:`segtie.data.sources.nifti_layout`. Checks (:func:`validate_nifti_folder`): every file is read once and every problem
reported at once, naming its file relative to the folder: an image without a label
or a label without an image, two files for one id, a second channel, a non-NIfTI
entry, a file nibabel cannot read or that is not 3-D, and the pair rules of
:func:`segtie.data.nifti.check_pair` (finite intensities, the image's shape and
affine to 1e-4 mm, label values among the label map's keys). ``skip_invalid:
false`` (default) refuses a folder with problems, listing them; ``true`` builds from
the valid pairs and logs each skipped entry once as a warning; runs log
``data.num_skipped`` and ``data.num_pairs`` (:func:`dataset_facts`).

Elements are :mod:`segtie.data.sources.hippocampus`'s, voxels in stored order, so
the 3-D pipeline, evaluation and ``segtie predict`` take them unchanged. Split:
:func:`segtie.data.splits.split_ids` (seed 2020) over the valid ids. Like
:mod:`segtie.data.sources.folder`, a plain tf.data source, re-validated once per
process and file listing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from segtie.data.label_values import label_table
from segtie.data.nifti import check_pair, read_nifti_bytes, zscore
from segtie.data.sources._checked_folder import (cached_report, file_listing, generator_split,
                                                 problem_lines, read_cases)
from segtie.data.sources.nifti_layout import IMAGE_DIRS, LABEL_DIRS, NiftiCase, match_volumes
from segtie.data.splits import check_split, split_ids

logger = logging.getLogger(__name__)

__all__ = ["IMAGE_DIRS", "LABEL_DIRS", "NiftiCase", "NiftiFolderReport", "dataset_facts",
           "load_nifti_folder_split", "match_volumes", "validate_nifti_folder"]


@dataclasses.dataclass
class NiftiFolderReport:
    """What :func:`validate_nifti_folder` found.

    Attributes:
        folder: the folder checked.
        cases: the valid cases, sorted by id.
        problems: one line per problem, each naming its file relative to ``folder``.
        skipped: what the problems leave out, sorted: case ids, or the relative path
            of an entry that belongs to no case; one per problem.
        warned: whether the problems were logged as skipped (once per report).
    """

    folder: Path
    cases: list[NiftiCase]
    problems: list[str]
    skipped: list[str]
    warned: bool = False

    def raise_for_problems(self) -> None:
        """Raise ``ValueError`` listing every problem, if there is any."""
        if self.problems:
            raise ValueError(
                f"{len(self.problems)} problem(s) in {self.folder}:\n"
                f"{problem_lines(self.problems)}\nFix the "
                f"folder, or set `data.skip_invalid: true` to build from the "
                f"{len(self.cases)} valid pairs")


def _read_pair(case: NiftiCase, root: Path):
    """``(image Volume, label Volume)``; ``ValueError`` naming each unreadable file."""
    volumes, errors = [], []
    for path in (case.image, case.label):
        rel = path.relative_to(root).as_posix()
        try:
            volumes.append(read_nifti_bytes(path.read_bytes(), rel))
        except (ValueError, OSError) as err:
            errors.append(str(err) if isinstance(err, ValueError) else f"{rel!r}: {err}")
    if errors:
        raise ValueError("; ".join(errors))
    return tuple(volumes)


def _check_case(case: NiftiCase, root: Path, label_map: dict) -> Optional[str]:
    try:
        image, label = _read_pair(case, root)
    except ValueError as err:
        return str(err)
    return check_pair(image, label, case.image.relative_to(root).as_posix(),
                      case.label.relative_to(root).as_posix(), label_map,
                      "raw values of `data.label_map`")


def validate_nifti_folder(folder: os.PathLike | str, label_map: dict) -> NiftiFolderReport:
    """Pair and read every volume of ``folder``; collect every problem (module doc).

    The result is kept for the process and reused while the file listing (names,
    sizes, modification times) and the label map are unchanged.

    Args:
        folder: the folder holding the image and label folders.
        label_map: raw label value -> class index (its keys are the allowed values).

    Returns:
        A :class:`NiftiFolderReport`; ``raise_for_problems()`` stops on problems.

    Raises:
        ValueError: the folder lacks an image or a label folder, or has two of one.
    """
    cases, problems = match_volumes(folder)
    root = Path(folder).expanduser().absolute()
    key = ("nifti_folder", str(root), tuple(sorted(label_map.items())),
           file_listing(root, IMAGE_DIRS + LABEL_DIRS))
    return cached_report(key, lambda: _build_report(root, cases, problems, label_map))


def _build_report(root: Path, cases: list[NiftiCase], problems: list,
                  label_map: dict) -> NiftiFolderReport:
    results = read_cases(lambda c: _check_case(c, root, label_map), cases, 4)
    problems += [(c.case_id, p) for c, p in zip(cases, results) if p is not None]
    problems.sort()
    report = NiftiFolderReport(
        folder=root, cases=[c for c, p in zip(cases, results) if p is None],
        problems=[message for _, message in problems],
        skipped=[skipped for skipped, _ in problems])
    logger.info("NIfTI folder %s: %d valid pair(s), %d problem(s)", root,
                len(report.cases), len(problems))
    return report


def _usable_report(data_config) -> NiftiFolderReport:
    """The report of ``data_config.folder``, refused or warned about per ``skip_invalid``."""
    report = validate_nifti_folder(data_config.folder, data_config.label_map)
    if not data_config.skip_invalid:
        report.raise_for_problems()
    elif not report.warned:
        for problem in report.problems:
            logger.warning("Skipping %s", problem)
        report.warned = True
    return report


def load_nifti_folder_split(data_config, split: str) -> tf.data.Dataset:
    """The decoded volumes of one split of ``data_config.folder``.

    Args:
        data_config: a :class:`segtie.config.DataConfig` (``folder``, ``label_map``,
            ``skip_invalid``).
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": float32 (X, Y, Z, 1) z-scored
        per volume, "mask": uint8 (X, Y, Z, 1) class indices, "spacing": float32
        (3,), "affine": float32 (4, 4), "orientation": string ()}``, sorted by id.

    Raises:
        ValueError: an unknown split; a folder with problems (all listed) unless
            ``skip_invalid``; fewer than 3 valid pairs.
    """
    check_split(split)
    report = _usable_report(data_config)
    by_id = {case.case_id: case for case in report.cases}
    ids = sorted(split_ids(list(by_id))[split])
    table = label_table(data_config.label_map)  # the keys were checked

    def generate():
        for case_id in ids:
            image, label = _read_pair(by_id[case_id], report.folder)
            yield {"id": case_id, "image": zscore(image.data)[..., None],
                   "mask": table[np.asarray(label.data).astype(np.int64)][..., None],
                   "spacing": np.asarray(image.spacing, np.float32),
                   "affine": image.affine.astype(np.float32),
                   "orientation": image.orientation}

    volume = (None, None, None, 1)
    signature = {"id": tf.TensorSpec((), tf.string),
                 "image": tf.TensorSpec(volume, tf.float32),
                 "mask": tf.TensorSpec(volume, tf.uint8),
                 "spacing": tf.TensorSpec((3,), tf.float32),
                 "affine": tf.TensorSpec((4, 4), tf.float32),
                 "orientation": tf.TensorSpec((), tf.string)}
    return generator_split(generate, signature, len(ids))


def dataset_facts(data_config) -> dict:
    """``{"data.num_skipped": entries left out, "data.num_pairs": valid pairs}``.

    Raises:
        ValueError: as :func:`load_nifti_folder_split` for a folder with problems.
    """
    report = _usable_report(data_config)
    return {"data.num_skipped": len(report.skipped), "data.num_pairs": len(report.cases)}
