"""The layout of a NIfTI folder: which image pairs with which label, before any file is read.

``<folder>/images/`` with ``labels/`` (or ``masks/``), or the Medical Segmentation
Decathlon / nnU-Net ``imagesTr/`` and ``labelsTr/``; nnU-Net's channel suffix
``<id>_0000`` pairs with ``<id>``. :func:`match_volumes` lists the cases and every
layout problem, each naming its file relative to the folder; reading and checking
the volumes is :mod:`segtie.data.sources.nifti_folder`'s. No TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from segtie.data.nifti import nifti_stem

__all__ = ["IMAGE_DIRS", "LABEL_DIRS", "NiftiCase", "match_volumes"]

IMAGE_DIRS = ("images", "imagesTr")
LABEL_DIRS = ("labels", "labelsTr", "masks")
_CHANNEL = re.compile(r"^(?P<id>.+)_(?P<channel>\d{4})$")  # nnU-Net: <id>_0000


@dataclasses.dataclass(frozen=True)
class NiftiCase:
    """One image volume and its label. Paths are absolute."""

    case_id: str
    image: Path
    label: Path


def _subfolder(folder: Path, names: tuple[str, ...], what: str) -> Path:
    """The one existing ``folder/<name>`` of ``names``; ``ValueError`` for none or two."""
    found = [folder / name for name in names if (folder / name).is_dir()]
    if len(found) != 1:
        listed = " or ".join(f"`{n}/`" for n in names)
        received = ", ".join(p.name + "/" for p in found) or "none"
        raise ValueError(f"`data.folder` must hold one {what} folder, {listed}; {folder} "
                         f"holds {received}")
    return found[0]


def _volume_files(root: Path, sub: Path, problems: list) -> dict[str, list[Path]]:
    """``{stem: paths}`` of the NIfTI files of ``sub``; ``(skipped, message)`` appended."""
    found: dict[str, list[Path]] = {}
    for path in sorted(sub.iterdir()):
        rel = path.relative_to(root).as_posix()
        stem = nifti_stem(path.name)
        if path.name.startswith(".") or path.name == "__MACOSX":
            continue
        if not path.is_file():
            problems.append((rel, f"{rel!r}: not a file (subfolders are not read)"))
        elif stem is None:
            problems.append((rel, f"{rel!r}: not a NIfTI file; expected <id>.nii.gz or "
                                  f"<id>.nii"))
        else:
            found.setdefault(stem, []).append(path)
    return found


def _image_ids(images: dict, labels: dict, root: Path, problems: list):
    """``({case id: image paths}, ids left out for a second channel)``."""
    by_id: dict[str, list[Path]] = {}
    channels: set[str] = set()
    for stem, paths in images.items():
        match = None if stem in labels else _CHANNEL.match(stem)
        case_id = match["id"] if match else stem
        if match and match["channel"] != "0000":
            if case_id not in channels:
                rel = paths[0].relative_to(root).as_posix()
                problems.append((case_id, f"{rel!r}: channel {match['channel']} of case "
                                          f"{case_id!r}; only single-channel volumes are "
                                          f"read for now (nnU-Net channel _0000 alone)"))
            channels.add(case_id)
        else:
            by_id.setdefault(case_id, []).extend(paths)
    return by_id, channels


def match_volumes(folder: os.PathLike | str) -> tuple[list[NiftiCase], list]:
    """Pair the image and label folders by id (module doc), without reading the files.

    Returns:
        ``(cases sorted by id, problems)``, each problem ``(skipped, message)``: one
        per case id left out, or per entry that belongs to no case.

    Raises:
        ValueError: ``folder`` lacks an image or a label folder, or has two of one.
    """
    root = Path(folder).expanduser().absolute()
    image_dir = _subfolder(root, IMAGE_DIRS, "image")
    label_dir = _subfolder(root, LABEL_DIRS, "label")
    problems: list = []
    labels = _volume_files(root, label_dir, problems)
    images, channels = _image_ids(_volume_files(root, image_dir, problems), labels, root,
                                  problems)
    rel = lambda path: path.relative_to(root).as_posix()  # noqa: E731
    cases = []
    for case_id in sorted((set(images) | set(labels)) - channels):
        image_paths, label_paths = images.get(case_id, []), labels.get(case_id, [])
        if len(image_paths) > 1 or len(label_paths) > 1:
            first, second = (image_paths if len(image_paths) > 1 else label_paths)[:2]
            problems.append((case_id, f"{rel(second)!r}: a second file for case "
                                      f"{case_id!r} (the first is {rel(first)!r}); keep one"))
        elif not label_paths:
            problems.append((case_id, f"{rel(image_paths[0])!r}: an image without a label "
                                      f"(no {label_dir.name}/{case_id}.nii.gz)"))
        elif not image_paths:
            problems.append((case_id, f"{rel(label_paths[0])!r}: a label without an image "
                                      f"(no {image_dir.name}/{case_id}.nii.gz or "
                                      f"{case_id}_0000.nii.gz)"))
        else:
            cases.append(NiftiCase(case_id, image_paths[0], label_paths[0]))
    return cases, problems
