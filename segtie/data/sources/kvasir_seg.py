"""Kvasir-SEG: polyps in colonoscopy frames, as a TFDS builder.

Reads the publisher's ``kvasir-seg.zip`` as distributed, without extracting it
(``Kvasir-SEG/images/<id>.jpg``, ``Kvasir-SEG/masks/<id>.jpg``; 1000 RGB frames from
332x487 to 1920x1072). The archive is looked for, in this order, at
``$SEGTIE_MANUAL_DIR/kvasir-seg.zip``, ``<manual_dir>/kvasir-seg.zip`` (the builder
argument; the app passes ``DataConfig.manual_dir``), then in the ``manual_dir`` of the
``tfds.download.DownloadConfig``. Only when no local copy exists is :data:`URL`
downloaded by the TFDS download manager, after a connection probe of at most 10 s
so that a machine without network fails fast; failing that, ``FileNotFoundError``
lists every path looked at, where to put the archive and the URL.

Features: ``id`` (text, the file stem), ``image`` (the original JPEG bytes, stored as
is, decoded to ``uint8 (height, width, 3)``) and ``mask`` (``uint8 (height, width,
1)`` in {0, 1}, stored as PNG). The published masks are JPEG with three channels and
compression noise; a pixel is foreground when the mean of its channels is > 127
(:func:`segtie.data.image_files.binarize_jpeg_mask`, the rule JPEG masks of a folder follow too).
Image and mask must have the same size; a mismatch or an unreadable member raises
``ValueError`` naming the member inside the archive.

Split (there is no official one): the ids are sorted, shuffled with
``random.Random(2020)`` (:data:`SPLIT_SEED`) and cut 80/10/10 in that order:
800 ``train`` / 100 ``validation`` / 100 ``test`` for the published 1000 cases.
An archive with another count is cut in the same proportions (validation and test
get ``round(n / 10)`` cases each, at least one; train gets the rest). The split
depends only on the set of ids, never on zip order, TFDS version or machine.

References:
    Jha et al., "Kvasir-SEG: A Segmented Polyp Dataset", MMM 2020.
"""

from __future__ import annotations

import logging
import os
import zipfile
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from segtie.data.sources import archive as archive_lib
from segtie.data.sources.archive import MANUAL_DIR_ENV, ZipArchiveBuilder, scan_zip
from segtie.data.sources.archive import network_reachable as _network_reachable
from segtie.data.sources.archive import open_member as _open_image
from segtie.data.image_files import binarize_jpeg_mask
from segtie.data.splits import SPLIT_SEED, SPLITS, split_ids

logger = logging.getLogger(__name__)

ARCHIVE_NAME = "kvasir-seg.zip"
URL = "https://datasets.simula.no/downloads/kvasir-seg.zip"

__all__ = ["ARCHIVE_NAME", "URL", "MANUAL_DIR_ENV", "SPLIT_SEED", "SPLITS", "KvasirSeg",
           "load_kvasir_split", "prepare_kvasir_seg", "split_ids"]

_CITATION = """@inproceedings{jha2020kvasir, title={Kvasir-SEG: A Segmented Polyp Dataset},
  author={Jha, Debesh and Smedsrud, Pia H and Riegler, Michael A and Halvorsen, P{\\aa}l
    and de Lange, Thomas and Johansen, Dag and Johansen, H{\\aa}vard D},
  booktitle={MultiMedia Modeling (MMM)}, pages={451--462}, year={2020}}"""


def _archive_members(archive: zipfile.ZipFile, path: Path) -> dict[str, tuple[str, str]]:
    """Map each case id to its ``(image_member, mask_member)`` in the zip.

    Raises:
        ValueError: no cases, or an image without a mask (or the reverse).
    """
    found: dict[str, dict[str, str]] = {"images": {}, "masks": {}}
    for name in archive_lib.member_names(archive, path):
        member = PurePosixPath(name)
        if (name.endswith("/") or "__MACOSX" in member.parts or member.name.startswith(".")
                or member.suffix.lower() not in (".jpg", ".jpeg")):
            continue
        folder = member.parent.name
        if folder in found:
            found[folder][member.stem] = name
    images, masks = found["images"], found["masks"]
    if not images:
        raise ValueError(f"{path} holds no `*/images/*.jpg` members; expected the "
                         f"Kvasir-SEG layout `Kvasir-SEG/images/<id>.jpg`")
    unpaired = sorted(set(images) ^ set(masks))
    if unpaired:
        first = images.get(unpaired[0]) or masks[unpaired[0]]
        raise ValueError(f"{path}: every image needs a mask of the same id; {len(unpaired)} "
                         f"member(s) have no partner, e.g. {first!r}")
    return {case_id: (images[case_id], masks[case_id]) for case_id in images}


class KvasirSeg(ZipArchiveBuilder):
    """Kvasir-SEG read from the publisher's zip; see the module docstring.

    Args:
        manual_dir: folder holding ``kvasir-seg.zip``; optional, looked at after
            ``$SEGTIE_MANUAL_DIR`` and before the download config's ``manual_dir``.
        **kwargs: passed to ``tfds.core.GeneratorBasedBuilder`` (``data_dir``, ...).
    """

    ARCHIVE_NAME = ARCHIVE_NAME
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release; seeded 800/100/100 split (seed 2020)."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        f"Download {URL} and place {ARCHIVE_NAME} (unextracted) in the manual folder "
        f"(`data.manual_dir` of the config) or in ${MANUAL_DIR_ENV}.")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            description="Kvasir-SEG polyp segmentation, 1000 colonoscopy frames; fixed "
                        "seeded 800/100/100 split.",
            features=tfds.features.FeaturesDict({
                "id": tfds.features.Text(),
                "image": tfds.features.Image(shape=(None, None, 3),
                                             encoding_format="jpeg"),
                "mask": tfds.features.Image(shape=(None, None, 1), dtype=np.uint8,
                                            encoding_format="png"),
            }),
            supervised_keys=("image", "mask"),
            homepage="https://datasets.simula.no/kvasir-seg/",
            citation=_CITATION,
        )

    def _find_archive(self, dl_manager) -> Path:
        """Local copy first; a download only when there is none (see module doc)."""
        path, candidates = self._local_archive(dl_manager)
        if path is not None:
            return path
        error = None
        if _network_reachable(URL):
            try:
                return Path(os.fspath(dl_manager.download(URL)))
            except Exception as err:  # DownloadError, requests/OSError, checksum errors
                error = err
        looked = "\n".join(f"  {p}" for p in candidates) or "  (no manual folder given)"
        raise FileNotFoundError(
            f"Archive {ARCHIVE_NAME} not found. Looked at:\n{looked}\nand the download "
            f"from {URL} failed ({error or 'host unreachable'}). Download it from {URL} "
            f"and put {ARCHIVE_NAME}, unextracted, in the manual folder (`data.manual_dir`"
            f" of the config) or in the folder named by ${MANUAL_DIR_ENV}.")

    def _split_generators(self, dl_manager):
        path = self._find_archive(dl_manager)
        members = scan_zip(path, _archive_members)
        split = split_ids(list(members))
        logger.info("Kvasir-SEG: %s", {name: len(ids) for name, ids in split.items()})
        return {name: self._generate_examples(path, {i: members[i] for i in ids})
                for name, ids in split.items()}

    def _generate_examples(self, path: Path, members: dict[str, tuple[str, str]]
                           ) -> Iterator[tuple[str, dict]]:
        with zipfile.ZipFile(path) as archive:
            for case_id in sorted(members):
                image_member, mask_member = members[case_id]
                image, image_bytes = _open_image(archive, image_member, path)
                mask, _ = _open_image(archive, mask_member, path)  # upright like the image
                if image.size != mask.size:
                    (w, h), (mw, mh) = image.size, mask.size
                    raise ValueError(
                        f"Image and mask sizes differ for case {case_id!r} in {path}: "
                        f"{image_member!r} is {w}x{h}, {mask_member!r} is {mw}x{mh} "
                        f"(width x height); expected equal sizes")
                if image_bytes is None:  # rotated by its EXIF orientation
                    image_bytes = np.asarray(image.convert("RGB"))
                elif image.format != "JPEG" or image.mode != "RGB":
                    logger.warning("%s is %s/%s, not an RGB JPEG; re-encoding it",
                                   image_member, image.format, image.mode)
                    image_bytes = np.asarray(image.convert("RGB"))
                yield case_id, {"id": case_id, "image": image_bytes,
                                "mask": binarize_jpeg_mask(mask)[..., None]}


def prepare_kvasir_seg(data_dir: os.PathLike | str,
                       manual_dir: Optional[os.PathLike | str] = None) -> KvasirSeg:
    """Build the TFDS dataset into ``data_dir`` unless it is there already.

    Args:
        data_dir: TFDS data folder (``DataConfig.data_dir``).
        manual_dir: folder holding ``kvasir-seg.zip`` (``DataConfig.manual_dir``).
            Relative paths are relative to the current directory.

    Returns:
        The prepared builder (ready for ``as_dataset``).

    Raises:
        FileNotFoundError: the archive is neither local nor downloadable.
        ValueError: a malformed archive (the message names the member).
    """
    return archive_lib.prepare(KvasirSeg, data_dir, manual_dir)


def load_kvasir_split(data_config, split: str) -> tf.data.Dataset:
    """The raw, decoded examples of one split, preparing the dataset if needed.

    Args:
        data_config: a :class:`segtie.config.DataConfig` (``data_dir`` and
            ``manual_dir`` are used).
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Shapes:
        Each element is ``{"id": string (), "image": uint8 (height, width, 3),
        "mask": uint8 (height, width, 1) in {0, 1}}`` at the original size, in a
        fixed order (files are not shuffled).

    Raises:
        ValueError: an unknown split.
        FileNotFoundError: see :func:`prepare_kvasir_seg`.
    """
    return archive_lib.read_split(prepare_kvasir_seg, data_config, split)
