"""The sources: public datasets as TFDS builders, your own folders, one entry point.

:func:`load_split` dispatches on ``DataConfig.name`` and returns the raw, decoded
examples of a split at their original size; :mod:`segtie.data.pipeline` resizes, caches,
augments and batches them.
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf

from segtie.data.sources.drive import Drive, load_drive_split, prepare_drive
from segtie.data.sources import hippocampus
from segtie.data.sources.hippocampus import Hippocampus, load_hippocampus_split
from segtie.data.sources.folder import load_folder_split, validate_folder
from segtie.data.sources.archive import recorded_source
from segtie.data.sources.kvasir_seg import KvasirSeg, load_kvasir_split, prepare_kvasir_seg
from segtie.data.sources import nifti_folder
from segtie.data.sources.nifti_folder import load_nifti_folder_split, validate_nifti_folder
from segtie.data.splits import SPLITS, check_split

__all__ = ["Drive", "Hippocampus", "KvasirSeg", "LOADERS", "dataset_facts", "SPLITS", "load_split", "load_drive_split",
           "load_folder_split", "load_hippocampus_split", "load_kvasir_split", "load_nifti_folder_split",
           "prepared_source", "prepare_drive", "prepare_kvasir_seg", "validate_folder", "validate_nifti_folder"]

# DataConfig.name -> function(data_config, split) -> tf.data.Dataset of raw examples.
LOADERS: dict[str, Callable[..., tf.data.Dataset]] = {
    "kvasir_seg": load_kvasir_split,
    "drive": load_drive_split,
    "folder": load_folder_split,
    "hippocampus": load_hippocampus_split,
    "nifti_folder": load_nifti_folder_split,
}

# DataConfig.name -> function(data_config) -> its prepared TFDS builder (the archive datasets).
PREPARERS: dict[str, Callable] = {
    "kvasir_seg": lambda c: prepare_kvasir_seg(c.data_dir, c.manual_dir),
    "drive": lambda c: prepare_drive(c.data_dir, c.manual_dir),
    "hippocampus": lambda c: hippocampus._prepare_from(c)(c.data_dir, c.manual_dir),
}


def prepared_source(data_config):
    """The archive that ``data_config``'s prepared TFDS data was built from, and its SHA-256.

    Returns:
        ``(path, sha256)`` from :func:`segtie.data.sources.archive.recorded_source`
        (the path may be gone), or ``(None, None)`` for a dataset without an archive
        or data built before the record was kept.

    Raises:
        FileNotFoundError: the data is not prepared and its archive cannot be found.
    """
    if data_config.name not in PREPARERS:
        return None, None
    return recorded_source(PREPARERS[data_config.name](data_config))


def load_split(data_config, split: str) -> tf.data.Dataset:
    """The raw examples of one split of the dataset named by ``data_config.name``.

    Archive datasets are built into ``data_config.data_dir`` on first use (from the
    archive in ``data_config.manual_dir`` or ``$SEGTIE_MANUAL_DIR``); a folder is
    validated and read directly (:mod:`segtie.data.sources.folder`, images;
    :mod:`segtie.data.sources.nifti_folder`, volumes).

    Args:
        data_config: a :class:`segtie.config.DataConfig`.
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": uint8 (height, width, 3),
        "mask": uint8 (height, width, 1)}`` at the original size; ``mask`` is in
        {0, 1}, or class indices for a folder with a multi-class ``label_map``.
        DRIVE adds ``fov`` and ``mask2`` (uint8 (height, width, 1) in {0, 1}) and
        ``has_mask2`` (bool). Volumes (``hippocampus``, ``nifti_folder``) are
        ``{"id": string (), "image": float32 (X, Y, Z, 1) z-scored per volume,
        "mask": uint8 (X, Y, Z, 1) class indices, "spacing": float32 (3,),
        "affine": float32 (4, 4), "orientation": string ()}``.

    Returns:
        An unbatched ``tf.data.Dataset`` in a fixed order.

    Raises:
        ValueError: an unknown dataset name or split; a folder with problems.
        FileNotFoundError: the dataset's archive cannot be found or downloaded.
    """
    if data_config.name not in LOADERS:
        raise ValueError(f"`data.name` must be one of {sorted(LOADERS)}, received "
                         f"{data_config.name!r}")
    check_split(split)
    return LOADERS[data_config.name](data_config, split)


def dataset_facts(data_config) -> dict:
    """Figures a run records about its dataset's build (``{}`` for most datasets).

    ``hippocampus`` and ``nifti_folder``: ``data.num_skipped`` (cases, or stray
    files, left out by ``data.skip_invalid``) and ``data.num_pairs`` (valid
    image/label pairs), from the dataset info or the folder's validation.
    """
    if data_config.name == "hippocampus":
        return hippocampus.dataset_facts(data_config)
    if data_config.name == "nifti_folder":
        return nifti_folder.dataset_facts(data_config)
    return {}
