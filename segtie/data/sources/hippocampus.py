"""Hippocampus MRI (MSD Task04, Udacity copy): 3-D NIfTI volumes, as a TFDS builder.

Reads ``hippocampus-msd-udacity.zip`` as published, without extracting it:
``TrainingSet/images/hippocampus_NNN.nii.gz`` and ``TrainingSet/labels/<same name>``,
T1 MRI crops around the hippocampus with labels 0 background, 1 anterior, 2 posterior.
The archive is looked for at ``$SEGTIE_MANUAL_DIR/<name>``, ``<manual_dir>/<name>``,
then in the download config's ``manual_dir`` (:mod:`segtie.data.sources.archive`);
there is no download.

Pairing and checks (:func:`scan_archive`): image and label are paired by file name.
Every problem is reported by member name: an image without a label, a label without
an image, a file nibabel cannot read or that is not 3-D, an image with NaN or
infinite intensities, a label whose shape or affine differs from its image's
(affines compared to 1e-4 mm), a label with values outside {0, 1, 2} (the pair rules
are :func:`segtie.data.nifti.check_pair`, shared with the NIfTI folder source). The published archive has three such members (``hippocampus_118``
image only; ``hippocampus_010`` and ``hippocampus_281`` labels only). Two builder
configs decide what happens then (``DataConfig.skip_invalid``):

- ``strict`` (``skip_invalid: false``, the default): any problem refuses the build
  with a ``ValueError`` listing every problem;
- ``skip_invalid``: the valid pairs are built; each skipped member is logged as a
  warning and recorded in the dataset info's metadata (``num_skipped``, the number of
  cases skipped, and ``problems``, the messages); training logs ``num_skipped`` to
  MLflow (:func:`dataset_facts`).

Features: ``id`` (text, ``"hippocampus_001"``), ``image`` (float32 ``(X, Y, Z, 1)``,
z-scored per volume, :func:`segtie.data.nifti.zscore`), ``mask`` (uint8 ``(X, Y, Z,
1)`` in {0, 1, 2}), ``spacing`` (float32 ``(3,)``, mm per voxel from the header),
``affine`` (float32 ``(4, 4)``) and ``orientation`` (text, e.g. ``"RAS"``). Voxels
stay in their stored order (no reorientation).

Split (none is official): the sorted valid ids shuffled with ``random.Random(2020)``
and cut as :func:`segtie.data.splits.split_ids` cuts: 208 ``train`` / 26
``validation`` / 26 ``test`` for the 260 published pairs.

References:
    Simpson et al., "A large annotated medical image dataset for the development and
    evaluation of segmentation algorithms", arXiv:1902.09063, 2019.
    Antonelli et al., "The Medical Segmentation Decathlon", Nat. Commun. 13, 4128, 2022.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import re
import zipfile
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from segtie.data.nifti import check_pair, read_nifti_bytes, zscore
from segtie.data.sources import archive as archive_lib
from segtie.data.sources.archive import MANUAL_DIR_ENV, ZipArchiveBuilder
from segtie.data.splits import split_ids

logger = logging.getLogger(__name__)

ARCHIVE_NAME = "hippocampus-msd-udacity.zip"
HOMEPAGE = "https://github.com/udacity/nd320-c3-3d-imaging-starter"
CLASSES = ("background", "anterior", "posterior")
_MEMBER = re.compile(r"(?:^|/)(images|labels)/([^/]+)\.nii(?:\.gz)?$")

__all__ = ["ARCHIVE_NAME", "CLASSES", "Hippocampus", "Pairing", "dataset_facts",
           "load_hippocampus_split", "prepare_hippocampus", "scan_archive"]

_CITATION = """@article{simpson2019large, title={A large annotated medical image dataset for
  the development and evaluation of segmentation algorithms}, author={Simpson, Amber L and
  others}, journal={arXiv:1902.09063}, year={2019}}"""


@dataclasses.dataclass(frozen=True)
class Pairing:
    """What :func:`scan_archive` found: valid pairs, problems, ids of skipped cases."""

    pairs: dict  # id -> (image member, label member)
    problems: list  # one message per problem, naming the member(s)
    skipped: list  # sorted ids that have a problem


def _check_pair(archive, path, image_member, label_member) -> Optional[str]:
    """The problem with one pair (:func:`segtie.data.nifti.check_pair`), or None."""
    try:
        image = read_nifti_bytes(archive_lib.read_member(archive, image_member, path),
                                 image_member)
        label = read_nifti_bytes(archive_lib.read_member(archive, label_member, path),
                                 label_member)
    except ValueError as err:
        return str(err)
    return check_pair(image, label, image_member, label_member, range(len(CLASSES)))


def scan_archive(archive: zipfile.ZipFile, path: Path) -> Pairing:
    """Pair images and labels by file name and check every pair (module doc).

    Reads every volume once (about 2 s for the published archive).

    Raises:
        ValueError: the archive holds no ``*/images/*.nii[.gz]`` member.
    """
    found: dict[str, dict[str, str]] = {"images": {}, "labels": {}}
    for name in archive_lib.member_names(archive, path):
        match = _MEMBER.search(name)
        if match and "__MACOSX" not in name and not match.group(2).startswith("."):
            found[match.group(1)][match.group(2)] = name
    images, labels = found["images"], found["labels"]
    if not images:
        raise ValueError(f"{path} holds no `*/images/*.nii.gz` members; expected the layout "
                         f"`TrainingSet/images/<id>.nii.gz` with `TrainingSet/labels/<id>.nii.gz`")
    problems, skipped, pairs = [], [], {}
    for case_id in sorted(set(images) | set(labels)):
        if case_id not in labels:
            problem = f"{images[case_id]!r}: an image without a label (no labels/{case_id}.nii.gz)"
        elif case_id not in images:
            problem = f"{labels[case_id]!r}: a label without an image (no images/{case_id}.nii.gz)"
        else:
            problem = _check_pair(archive, path, images[case_id], labels[case_id])
        if problem is None:
            pairs[case_id] = (images[case_id], labels[case_id])
        else:
            problems.append(problem)
            skipped.append(case_id)
    return Pairing(pairs, problems, skipped)


class Hippocampus(ZipArchiveBuilder):
    """The Hippocampus volumes read from the zip; see the module docstring.

    Args:
        config: ``"strict"`` (default) or ``"skip_invalid"``.
        manual_dir: folder holding the archive (optional).
        **kwargs: passed to ``tfds.core.GeneratorBasedBuilder`` (``data_dir``, ...).
    """

    ARCHIVE_NAME = ARCHIVE_NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Valid pairs only; seeded 208/26/26 split (seed 2020)."}
    BUILDER_CONFIGS = [
        tfds.core.BuilderConfig(name="strict", description="Refuse an archive with any "
                                "unpaired or mismatched file, listing every one."),
        tfds.core.BuilderConfig(name="skip_invalid", description="Build from the valid "
                                "pairs; the skipped cases are in the metadata."),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Place {ARCHIVE_NAME} (unextracted; the `data/TrainingSet` folder of {HOMEPAGE}) "
        f"in the manual folder (`data.manual_dir` of the config) or in ${MANUAL_DIR_ENV}.")

    def _info(self) -> tfds.core.DatasetInfo:
        volume = (None, None, None, 1)
        return self.dataset_info_from_configs(
            description="Hippocampus T1 MRI crops (MSD Task04 training cases), labels "
                        "0 background / 1 anterior / 2 posterior; seeded split.",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "image": tfds.features.Tensor(shape=volume, dtype=np.float32,
                                              encoding="zlib"),
                "mask": tfds.features.Tensor(shape=volume, dtype=np.uint8, encoding="zlib"),
                "spacing": tfds.features.Tensor(shape=(3,), dtype=np.float32),
                "affine": tfds.features.Tensor(shape=(4, 4), dtype=np.float32),
                "orientation": tfds.features.Text(),
            }),
            supervised_keys=("image", "mask"),
            homepage=HOMEPAGE,
            citation=_CITATION,
            metadata=tfds.core.MetadataDict(),
        )

    def _split_generators(self, dl_manager):
        path, candidates = self._local_archive(dl_manager)
        if path is None:
            looked = "\n".join(f"  {p}" for p in candidates) or "  (no manual folder given)"
            raise FileNotFoundError(f"Archive {ARCHIVE_NAME} not found. Looked at:\n{looked}"
                                    f"\n{self.MANUAL_DOWNLOAD_INSTRUCTIONS}")
        pairing = archive_lib.scan_zip(path, scan_archive)
        if pairing.problems and self.builder_config.name == "strict":
            listed = "\n".join(f"  {p}" for p in pairing.problems)
            raise ValueError(
                f"{path}: {len(pairing.problems)} case(s) cannot be used:\n{listed}\nFix the "
                f"archive, or set `data.skip_invalid: true` to build from the "
                f"{len(pairing.pairs)} valid pairs")
        for problem in pairing.problems:
            logger.warning("Skipping %s", problem)
        self.info.metadata.update(num_skipped=len(pairing.skipped), skipped=pairing.skipped,
                                  problems=pairing.problems, num_pairs=len(pairing.pairs))
        split = split_ids(list(pairing.pairs))
        logger.info("Hippocampus: %s, %d skipped", {k: len(v) for k, v in split.items()},
                    len(pairing.skipped))
        return {name: self._generate_examples(path, {i: pairing.pairs[i] for i in ids})
                for name, ids in split.items()}

    def _generate_examples(self, path: Path, members: dict) -> Iterator[tuple[str, dict]]:
        with zipfile.ZipFile(path) as archive:
            for case_id in sorted(members):
                image_member, label_member = members[case_id]
                image = read_nifti_bytes(archive_lib.read_member(archive, image_member, path),
                                         image_member)
                label = read_nifti_bytes(archive_lib.read_member(archive, label_member, path),
                                         label_member)
                yield case_id, {
                    "id": case_id,
                    "image": zscore(image.data)[..., None],
                    "mask": np.asarray(label.data).astype(np.uint8)[..., None],
                    "spacing": np.asarray(image.spacing, np.float32),
                    "affine": image.affine.astype(np.float32),
                    "orientation": image.orientation,
                }


def prepare_hippocampus(data_dir: os.PathLike | str,
                        manual_dir: Optional[os.PathLike | str] = None,
                        skip_invalid: bool = False) -> Hippocampus:
    """Build the TFDS dataset into ``data_dir`` unless it is there already.

    Args:
        data_dir: TFDS data folder (``DataConfig.data_dir``).
        manual_dir: folder holding the archive (``DataConfig.manual_dir``).
        skip_invalid: build from the valid pairs (config ``skip_invalid``) instead of
            refusing an archive with problems (config ``strict``). Default False.

    Returns:
        The prepared builder.

    Raises:
        FileNotFoundError: the archive is not found (the message lists where it looked).
        ValueError: with ``skip_invalid=False``, every problem of the archive, one
            per line, each naming its member; a damaged zip.
    """
    config = "skip_invalid" if skip_invalid else "strict"
    return archive_lib.prepare(functools.partial(Hippocampus, config=config), data_dir,
                               manual_dir)


def _prepare_from(data_config):
    return functools.partial(prepare_hippocampus,
                             skip_invalid=bool(getattr(data_config, "skip_invalid", False)))


def load_hippocampus_split(data_config, split: str) -> tf.data.Dataset:
    """The decoded volumes of one split, preparing the dataset if needed.

    Args:
        data_config: a :class:`segtie.config.DataConfig` (``data_dir``,
            ``manual_dir``, ``skip_invalid``).
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": float32 (X, Y, Z, 1), "mask":
        uint8 (X, Y, Z, 1) in {0, 1, 2}, "spacing": float32 (3,), "affine": float32
        (4, 4), "orientation": string ()}``, in a fixed order.

    Raises:
        ValueError: an unknown split; see :func:`prepare_hippocampus`.
        FileNotFoundError: see :func:`prepare_hippocampus`.
    """
    return archive_lib.read_split(_prepare_from(data_config), data_config, split)


def dataset_facts(data_config) -> dict:
    """What a run records about the built dataset: ``{"data.num_skipped": n, ...}``.

    Returns:
        ``data.num_skipped`` (cases left out) and ``data.num_pairs`` (valid pairs), as
        the dataset info's metadata holds them.
    """
    builder = _prepare_from(data_config)(data_config.data_dir, data_config.manual_dir)
    meta = builder.info.metadata or {}
    return {"data.num_skipped": int(meta.get("num_skipped", 0)),
            "data.num_pairs": int(meta.get("num_pairs", 0))}
