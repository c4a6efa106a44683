"""Bring your own data: a folder of images and masks, checked up front, as tf.data.

Layout: ``<folder>/images/`` and ``<folder>/masks/``, one file per case in each, in
any format of :mod:`segtie.data.image_files` (PNG, JPEG, TIFF, GIF, BMP; 8- or
16-bit; grayscale, RGB, RGBA or palette). Hidden files (``.*``) are ignored; every
other entry must be a supported image.

Matching, by file stem (the name without its last suffix), case-sensitive: the mask
of ``images/<stem>.<ext>`` is ``masks/<stem>.<ext2>`` or, failing that,
``masks/<stem><suffix>.<ext2>`` with a suffix of :data:`MASK_SUFFIXES` (``_mask``,
``_label``, ``_gt``, ..., any letter case), e.g. ``images/case7.tif`` and
``masks/case7_mask.png``. The case id is the image's stem.

Masks: raw values are mapped to classes by ``DataConfig.label_map`` (palette images
by palette index). Without a label map masks are binary: {0, m} with ``m`` the
largest value of the file's type (0/1, 0/255, 0/65535; a 1-bit PNG is 0/1), any
non-zero value foreground; or, with ``DataConfig.mask_threshold`` set, any values,
foreground where ``value > mask_threshold`` (real binary masks often carry stray
values around the edges of their 0/255 regions). JPEG masks are lossy: they are
binarized (mean of the channels > 127) and allowed for binary data only.
Images: converted to ``uint8 (H, W, 3)``: grayscale repeated, alpha dropped; 16-bit
images are scaled linearly by ``255 / m``, ``m`` the largest value found in any
16-bit image of the folder, so relative intensities between images are kept.

Validation (:func:`validate_folder`) reads every file once and reports *all*
problems at once, each naming its file: images without masks and masks without
images, two files for one stem, unsupported or unreadable files, image/mask size
mismatches, mask values outside the label map. Empty masks are allowed and counted.
Nothing is dropped: any problem stops the load with ``ValueError``.

Split: the seeded 80/10/10 rule of :func:`segtie.data.splits.split_ids` (seed
2020) over the case ids. This is a plain tf.data source, not a TFDS builder: the
folder is the user's and may change, so it is re-read (and re-validated, once per
process and file listing) rather than copied into a TFDS build that could go stale.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from segtie.data.image_files import SUFFIXES, read_image, read_mask, to_uint8
from segtie.data.label_values import mask_classes
from segtie.data.sources._checked_folder import (cached_report, file_listing, generator_split,
                                                 problem_lines, read_cases)
from segtie.data.splits import check_split, split_ids

logger = logging.getLogger(__name__)

MASK_SUFFIXES = ("_mask", "_masks", "_label", "_labels", "_seg", "_gt", "-mask", "-label")

__all__ = ["MASK_SUFFIXES", "FolderCase", "FolderReport", "load_folder_split",
           "match_files", "validate_folder"]


@dataclasses.dataclass(frozen=True)
class FolderCase:
    """One image and its mask. Paths are absolute."""

    case_id: str
    image: Path
    mask: Path


@dataclasses.dataclass
class FolderReport:
    """What :func:`validate_folder` found.

    Attributes:
        folder: the folder checked.
        cases: the matched cases, sorted by id.
        problems: one line per problem, each starting with the file's path relative
            to ``folder``; empty when the folder is usable.
        empty_masks: ids of the cases whose mask is all background (allowed).
        max_16bit: largest value in any 16-bit image (0 when there is none).
    """

    folder: Path
    cases: list[FolderCase]
    problems: list[str]
    empty_masks: list[str]
    max_16bit: int = 0

    def raise_for_problems(self) -> None:
        """Raise ``ValueError`` listing every problem, if there is any."""
        if self.problems:
            raise ValueError(f"{len(self.problems)} problem(s) in {self.folder} "
                             f"({len(self.cases)} matched case(s)):\n"
                             f"{problem_lines(self.problems)}")


def _entries(folder: Path, sub: str, problems: list[str]) -> dict[str, Path]:
    """``{stem: path}`` of the supported files in ``folder/sub``; problems appended."""
    found: dict[str, Path] = {}
    for path in sorted((folder / sub).iterdir()):
        rel = path.relative_to(folder).as_posix()
        if path.name.startswith("."):
            continue
        if not path.is_file():
            problems.append(f"{rel}: not a file (subfolders are not read)")
        elif path.suffix.lower() not in SUFFIXES:
            problems.append(f"{rel}: unsupported file type {path.suffix!r}; expected one "
                            f"of {', '.join(SUFFIXES)}")
        elif path.stem in found:
            other = found[path.stem].relative_to(folder).as_posix()
            problems.append(f"{rel}: same stem {path.stem!r} as {other}; keep one")
        else:
            found[path.stem] = path
    return found


def _image_stem(mask_stem: str, images: dict[str, Path]) -> Optional[str]:
    if mask_stem in images:
        return mask_stem
    for suffix in MASK_SUFFIXES:
        if mask_stem.lower().endswith(suffix) and mask_stem[:-len(suffix)] in images:
            return mask_stem[:-len(suffix)]
    return None


def match_files(folder: os.PathLike | str) -> tuple[list[FolderCase], list[str]]:
    """Pair ``images/`` with ``masks/`` by stem (module doc), without reading the files.

    Returns:
        ``(cases sorted by id, problems)``.

    Raises:
        ValueError: ``folder``, ``images/`` or ``masks/`` is not a folder.
    """
    folder = Path(folder).expanduser().absolute()
    for sub in ("images", "masks"):
        if not (folder / sub).is_dir():
            raise ValueError(f"`data.folder` must hold `images/` and `masks/` folders; "
                             f"{folder / sub} is not a folder")
    problems: list[str] = []
    images = _entries(folder, "images", problems)
    masks = _entries(folder, "masks", problems)
    paired: dict[str, Path] = {}
    for stem, path in masks.items():
        rel = path.relative_to(folder).as_posix()
        image_stem = _image_stem(stem, images)
        if image_stem is None:
            problems.append(f"{rel}: no image with stem {stem!r} (or {stem!r} less a "
                            f"mask suffix) in images/")
        elif image_stem in paired:
            other = paired[image_stem].relative_to(folder).as_posix()
            problems.append(f"{rel}: a second mask for images/{images[image_stem].name} "
                            f"(the first is {other}); keep one")
        else:
            paired[image_stem] = path
    for stem, path in images.items():
        if stem not in paired:
            problems.append(f"images/{path.name}: no mask; expected masks/{stem}.<ext> or "
                            f"masks/{stem}_mask.<ext> (suffixes: {', '.join(MASK_SUFFIXES)})")
    cases = [FolderCase(stem, images[stem], paired[stem]) for stem in sorted(paired)]
    return cases, problems


def _read_case(case: FolderCase, folder: Path, label_map: Optional[dict],
               mask_threshold: Optional[int] = None) -> tuple[np.ndarray, np.ndarray]:
    """``(image uint8/uint16 (H, W, 3), classes uint8 (H, W))``; errors name the file."""
    rel_image = case.image.relative_to(folder).as_posix()
    rel_mask = case.mask.relative_to(folder).as_posix()
    errors, image, classes = [], None, None
    try:
        image = read_image(case.image.read_bytes(), case.image.name)
    except (ValueError, OSError) as err:
        errors.append(f"{rel_image}: {err}")
    try:
        values, lossy = read_mask(case.mask.read_bytes(), case.mask.name)
        classes = mask_classes(values, lossy, label_map, mask_threshold)
    except (ValueError, OSError) as err:
        errors.append(f"{rel_mask}: {err}")
    if image is not None and classes is not None and image.shape[:2] != classes.shape:
        (h, w), (mh, mw) = image.shape[:2], classes.shape
        errors.append(f"{rel_mask}: size {mw}x{mh} differs from {rel_image}'s {w}x{h} "
                      f"(width x height)")
    if errors:
        raise ValueError("\n".join(errors))
    return image, classes


def _check_case(case: FolderCase, folder: Path, label_map: Optional[dict],
                mask_threshold: Optional[int] = None):
    """``(problems, is_empty, max_16bit)`` of one case."""
    try:
        image, classes = _read_case(case, folder, label_map, mask_threshold)
    except ValueError as err:
        return str(err).split("\n"), False, 0
    max_16bit = int(image.max()) if image.dtype == np.uint16 else 0
    return [], not classes.any(), max_16bit


def validate_folder(folder: os.PathLike | str, label_map: Optional[dict] = None,
                    mask_threshold: Optional[int] = None) -> FolderReport:
    """Match and read every file of ``folder``; collect every problem (module doc).

    The result is kept for the process and reused while the file listing (names,
    sizes, modification times) and the label map are unchanged.

    Args:
        folder: the folder holding ``images/`` and ``masks/``.
        label_map: raw mask value -> class index; ``None`` for binary masks.
        mask_threshold: binary masks only: foreground where the raw value exceeds it
            (``None``: masks must be {0, max of their type}).

    Returns:
        A :class:`FolderReport`; call ``raise_for_problems()`` to stop on problems.

    Raises:
        ValueError: ``folder``, ``images/`` or ``masks/`` is not a folder.
    """
    cases, problems = match_files(folder)
    root = Path(folder).expanduser().absolute()
    labels = None if label_map is None else tuple(sorted(label_map.items()))
    key = ("folder", str(root), labels, mask_threshold,
           file_listing(root, ("images", "masks")))
    return cached_report(key, lambda: _build_report(root, cases, problems, label_map,
                                                    mask_threshold))


def _build_report(root: Path, cases: list[FolderCase], problems: list[str],
                  label_map: Optional[dict], mask_threshold: Optional[int]) -> FolderReport:
    results = read_cases(lambda c: _check_case(c, root, label_map, mask_threshold), cases, 8)
    for case_problems, _, _ in results:
        problems.extend(case_problems)
    empty = [case.case_id for case, (_, is_empty, _) in zip(cases, results) if is_empty]
    report = FolderReport(folder=root, cases=cases, problems=sorted(problems),
                          empty_masks=empty, max_16bit=max((r[2] for r in results),
                                                           default=0))
    logger.info("Folder %s: %d case(s), %d problem(s), %d empty mask(s)", root,
                len(cases), len(problems), len(empty))
    if empty:
        logger.warning("%d case(s) have an empty mask (allowed): %s", len(empty),
                       ", ".join(empty[:10]) + (" ..." if len(empty) > 10 else ""))
    return report


def load_folder_split(data_config, split: str) -> tf.data.Dataset:
    """The raw, decoded examples of one split of ``data_config.folder``.

    Args:
        data_config: a :class:`segtie.config.DataConfig` (``folder``, ``label_map``).
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": uint8 (H, W, 3),
        "mask": uint8 (H, W, 1)}`` at the original size; ``mask`` holds class
        indices (0/1 for binary data). Cases come sorted by id.

    Raises:
        ValueError: an unknown split, a folder with problems (all listed), or fewer
            than 3 cases.
    """
    check_split(split)
    label_map, threshold = data_config.label_map, data_config.mask_threshold
    report = validate_folder(data_config.folder, label_map, threshold)
    report.raise_for_problems()
    by_id = {case.case_id: case for case in report.cases}
    ids = sorted(split_ids(list(by_id))[split])

    def generate():
        for case_id in ids:
            image, classes = _read_case(by_id[case_id], report.folder, label_map, threshold)
            yield {"id": case_id, "image": to_uint8(image, report.max_16bit),
                   "mask": classes[..., None]}

    signature = {"id": tf.TensorSpec((), tf.string),
                 "image": tf.TensorSpec((None, None, 3), tf.uint8),
                 "mask": tf.TensorSpec((None, None, 1), tf.uint8)}
    return generator_split(generate, signature, len(ids))
