"""DRIVE: retinal vessels in fundus photographs, as a TFDS builder.

Reads ``DRIVE.zip`` as distributed, without extracting it: 40 RGB fundus images
(565x584, LZW-compressed TIFF) in ``DRIVE/{training,test}/images/NN_{split}.tif``,
the first observer's vessel labels ``DRIVE/{training,test}/1st_manual/NN_manual1.gif``,
the second observer's test labels ``DRIVE/test/2nd_manual/NN_manual2.gif`` and the
field-of-view masks ``DRIVE/{training,test}/mask/NN_{split}_mask.gif``. The archive
is looked for at ``$SEGTIE_MANUAL_DIR/DRIVE.zip``, then ``<manual_dir>/DRIVE.zip``,
then in the download config's ``manual_dir`` (:mod:`segtie.data.sources.archive`).
DRIVE has no stable public download: without a local copy, ``FileNotFoundError``
lists the paths looked at and says where to register for it (:data:`HOMEPAGE`).

Features: ``id`` (the two-digit case number, ``"01"``-``"20"`` test, ``"21"``-``"40"``
training), ``image`` (``uint8 (H, W, 3)``, stored as PNG), ``mask`` (first observer,
``uint8 (H, W, 1)`` in {0, 1}), ``fov`` (``uint8 (H, W, 1)`` in {0, 1}), ``mask2``
(second observer, same form; all zeros for training cases, which have none) and
``has_mask2`` (bool). Label GIFs are read with Pillow (the second observer's are
palette images), converted to grayscale and thresholded at > 127.

Split: the official 20 training / 20 test cases; :data:`NUM_VALIDATION` = 4 of the
training cases form ``validation``: the sorted training ids shuffled with
``random.Random(2004)`` (:data:`SPLIT_SEED`), the first 4 (``"26"``, ``"36"``,
``"38"``, ``"40"`` for the published archive); ``train`` holds the other 16.
Scores are computed inside the field of view against the first observer.

References:
    Staal et al., "Ridge-based vessel segmentation in color images of the retina",
    IEEE TMI 2004.
"""

from __future__ import annotations

import io
import logging
import os
import random
import re
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from PIL import Image

from segtie.data.sources import archive as archive_lib
from segtie.data.sources.archive import MANUAL_DIR_ENV, ZipArchiveBuilder, scan_zip
from segtie.data.image_files import read_image

logger = logging.getLogger(__name__)

ARCHIVE_NAME = "DRIVE.zip"
HOMEPAGE = "https://drive.grand-challenge.org/"
SPLIT_SEED = 2004
NUM_VALIDATION = 4
_MEMBER = re.compile(r"(?:^|/)(training|test)/(images|1st_manual|2nd_manual|mask)/"
                     r"(\d+)_(?:training|test|manual1|manual2)(?:_mask)?\.(tif|gif)$")
_KINDS = {"images": "image", "1st_manual": "mask", "2nd_manual": "mask2", "mask": "fov"}

_CITATION = """@article{staal2004ridge, title={Ridge-based vessel segmentation in color
  images of the retina}, author={Staal, Joes and Abr{\\`a}moff, Michael D and Niemeijer,
  Meindert and Viergever, Max A and van Ginneken, Bram}, journal={IEEE Transactions on
  Medical Imaging}, volume={23}, number={4}, pages={501--509}, year={2004}}"""

__all__ = ["ARCHIVE_NAME", "HOMEPAGE", "NUM_VALIDATION", "SPLIT_SEED", "Drive",
           "drive_split_ids", "load_drive_split", "prepare_drive"]


def drive_split_ids(training_ids: list[str], test_ids: list[str],
                    seed: int = SPLIT_SEED) -> dict[str, list[str]]:
    """The official split with :data:`NUM_VALIDATION` training cases held out.

    Returns:
        ``{"train": sorted ids, "validation": sorted ids, "test": sorted ids}``.

    Raises:
        ValueError: fewer than ``NUM_VALIDATION + 1`` training cases or no test case.
    """
    ordered = sorted(training_ids)
    if len(ordered) <= NUM_VALIDATION or not test_ids:
        raise ValueError(f"DRIVE needs more than {NUM_VALIDATION} training cases and at "
                         f"least one test case, received {len(ordered)} and {len(test_ids)}")
    random.Random(seed).shuffle(ordered)
    return {"train": sorted(ordered[NUM_VALIDATION:]),
            "validation": sorted(ordered[:NUM_VALIDATION]), "test": sorted(test_ids)}


def _archive_members(archive: zipfile.ZipFile, path: Path) -> dict[str, dict[str, str]]:
    """``{split: {case id: {kind: member}}}`` with split in {training, test}.

    Raises:
        ValueError: a case without image, first-observer label or FOV mask.
    """
    cases: dict[str, dict[str, dict[str, str]]] = {"training": {}, "test": {}}
    for name in archive_lib.member_names(archive, path):
        match = _MEMBER.search(name)
        if match and "__MACOSX" not in name:
            split, folder, case_id, _ = match.groups()
            cases[split].setdefault(case_id.zfill(2), {})[_KINDS[folder]] = name
    if not cases["training"] and not cases["test"]:
        raise ValueError(f"{path} holds no DRIVE members; expected the layout "
                         f"`DRIVE/training/images/21_training.tif`, ...")
    for split, members in cases.items():
        for case_id, kinds in sorted(members.items()):
            missing = sorted({"image", "mask", "fov"} - set(kinds))
            if missing:
                raise ValueError(f"{path}: DRIVE {split} case {case_id} has no "
                                 f"{', '.join(missing)} (found {sorted(kinds.values())})")
    return cases


def _png(array: np.ndarray) -> bytes:
    """Fast lossless PNG (zlib level 1: 5x faster than TensorFlow's encoder here)."""
    buffer = io.BytesIO()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(
        buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _label(archive: zipfile.ZipFile, member: str, path: Path, shape) -> np.ndarray:
    """A GIF label as ``uint8 (H, W, 1)`` in {0, 1}; errors name the member."""
    image, _ = archive_lib.open_member(archive, member, path)
    label = (np.asarray(image.convert("L")) > 127).astype(np.uint8)[..., None]
    if label.shape[:2] != tuple(shape[:2]):
        raise ValueError(f"Size of {member!r} in {path} is {label.shape[1]}x"
                         f"{label.shape[0]}, expected the image's {shape[1]}x{shape[0]} "
                         f"(width x height)")
    return label


class Drive(ZipArchiveBuilder):
    """DRIVE read from ``DRIVE.zip``; see the module docstring.

    Args:
        manual_dir: folder holding ``DRIVE.zip``; optional, looked at after
            ``$SEGTIE_MANUAL_DIR`` and before the download config's ``manual_dir``.
        **kwargs: passed to ``tfds.core.GeneratorBasedBuilder`` (``data_dir``, ...).
    """

    ARCHIVE_NAME = ARCHIVE_NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Official 20/20 split; 4 training cases for validation "
                              "(seed 2004)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Register at {HOMEPAGE}, download {ARCHIVE_NAME} and place it (unextracted) in "
        f"the manual folder (`data.manual_dir` of the config) or in ${MANUAL_DIR_ENV}.")

    def _info(self) -> tfds.core.DatasetInfo:
        label = tfds.features.Image(shape=(None, None, 1), dtype=np.uint8,
                                    encoding_format="png")
        return self.dataset_info_from_configs(
            description="DRIVE retinal vessel segmentation, 40 fundus images; official "
                        "20/20 split, 4 training images held out for validation.",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(None, None, 3), encoding_format="png"),
                "mask": label, "fov": label, "mask2": label,
                "has_mask2": tfds.features.Scalar(dtype=np.bool_),
            }),
            supervised_keys=("image", "mask"),
            homepage=HOMEPAGE,
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager):
        path, candidates = self._local_archive(dl_manager)
        if path is None:
            looked = "\n".join(f"  {p}" for p in candidates) or "  (no manual folder given)"
            raise FileNotFoundError(
                f"Archive {ARCHIVE_NAME} not found. Looked at:\n{looked}\nDRIVE has no "
                f"public download: register at {HOMEPAGE}, download {ARCHIVE_NAME} and "
                f"put it, unextracted, in the manual folder (`data.manual_dir` of the "
                f"config) or in the folder named by ${MANUAL_DIR_ENV}.")
        cases = scan_zip(path, _archive_members)
        split = drive_split_ids(list(cases["training"]), list(cases["test"]))
        members = {**cases["training"], **cases["test"]}
        logger.info("DRIVE: %s", {name: len(ids) for name, ids in split.items()})
        return {name: self._generate_examples(path, {i: members[i] for i in ids})
                for name, ids in split.items()}

    def _generate_examples(self, path: Path, members: dict[str, dict[str, str]]
                           ) -> Iterator[tuple[str, dict]]:
        with zipfile.ZipFile(path) as archive:
            for case_id in sorted(members):
                kinds = members[case_id]
                try:
                    image = read_image(archive_lib.read_member(archive, kinds["image"], path),
                                       kinds["image"])
                except ValueError as err:
                    raise ValueError(f"Cannot decode {kinds['image']!r} in {path}: "
                                     f"{err}") from err
                if image.dtype != np.uint8:
                    raise ValueError(f"{kinds['image']!r} in {path} is {image.dtype}, "
                                     f"expected 8-bit RGB")
                labels = {kind: _label(archive, kinds[kind], path, image.shape)
                          for kind in ("mask", "fov", "mask2") if kind in kinds}
                has_mask2 = "mask2" in labels
                if not has_mask2:
                    labels["mask2"] = np.zeros_like(labels["mask"])
                yield case_id, {"id": case_id, "image": _png(image),
                                **{kind: _png(label) for kind, label in labels.items()},
                                "has_mask2": has_mask2}


def prepare_drive(data_dir: os.PathLike | str,
                  manual_dir: Optional[os.PathLike | str] = None) -> Drive:
    """Build the TFDS dataset into ``data_dir`` unless it is there already.

    Args:
        data_dir: TFDS data folder (``DataConfig.data_dir``).
        manual_dir: folder holding ``DRIVE.zip`` (``DataConfig.manual_dir``).

    Returns:
        The prepared builder (ready for ``as_dataset``).

    Raises:
        FileNotFoundError: the archive is not found (the message says where to put it
            and where to register for it).
        ValueError: a malformed archive (the message names the member).
    """
    return archive_lib.prepare(Drive, data_dir, manual_dir)


def load_drive_split(data_config, split: str) -> tf.data.Dataset:
    """The raw, decoded examples of one split, preparing the dataset if needed.

    Args:
        data_config: a :class:`segtie.config.DataConfig` (``data_dir``, ``manual_dir``).
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": uint8 (H, W, 3), "mask",
        "fov", "mask2": uint8 (H, W, 1) in {0, 1}, "has_mask2": bool ()}`` at the
        original size (584x565 for the published images), in a fixed order.

    Raises:
        ValueError: an unknown split.
        FileNotFoundError: see :func:`prepare_drive`.
    """
    return archive_lib.read_split(prepare_drive, data_config, split)
