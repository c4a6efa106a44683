"""What the archive-reading TFDS builders share: finding the archive, reading members.

An archive is looked for, in this order, at ``$SEGTIE_MANUAL_DIR/<name>``,
``<manual_dir>/<name>`` (the builder argument; the app passes
``DataConfig.manual_dir``), then in the ``manual_dir`` of the
``tfds.download.DownloadConfig``. What a builder does when there is no local copy
(download, or a clear error) is its own business; :func:`network_reachable` lets it
fail fast on a machine without network.

A dataset built from an archive records which one, and its SHA-256, in
``<builder data_dir>/segtie_source.json`` (:data:`SOURCE_RECORD`), so that the run
records of :mod:`segtie.data.provenance` name the same source once the archive has
been moved away and only the prepared data is read.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import sys
import urllib.parse
import zipfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Optional

import tensorflow_datasets as tfds
from etils import epath
from PIL import Image

from segtie.data.image_files import single_frame_upright
from segtie.data.provenance import file_sha256

logger = logging.getLogger(__name__)

MANUAL_DIR_ENV = "SEGTIE_MANUAL_DIR"
PROBE_TIMEOUT_S = 10.0  # connection probe before a download attempt
SOURCE_RECORD = "segtie_source.json"  # beside a prepared dataset: the archive it was built from

__all__ = ["MANUAL_DIR_ENV", "SOURCE_RECORD", "ZipArchiveBuilder", "archive_candidates",
           "member_names", "network_reachable", "open_member", "prepare", "read_member",
           "recorded_source", "scan_zip"]


def archive_candidates(archive_name: str, manual_dirs: list[Optional[os.PathLike | str]]
                       ) -> list[Path]:
    """The local paths where ``archive_name`` is looked for, in order (module doc).

    Args:
        archive_name: file name of the archive, e.g. ``"DRIVE.zip"``.
        manual_dirs: folders to look in after ``$SEGTIE_MANUAL_DIR``; ``None`` entries
            are skipped and duplicates removed.

    Returns:
        Candidate absolute paths (they need not exist).
    """
    folders = [os.environ.get(MANUAL_DIR_ENV) or None, *manual_dirs]
    paths: list[Path] = []
    for folder in folders:
        if folder is None:
            continue
        path = (Path(folder).expanduser() / archive_name).absolute()
        if path not in paths:
            paths.append(path)
    return paths


def network_reachable(url: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the URL's host opens within ``timeout`` seconds."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return True
    except OSError as err:
        logger.info("Cannot reach %s (%s); not downloading", parts.hostname, err)
        return False


def scan_zip(path: Path, scan):
    """``scan(archive, path)`` on the zip file at ``path``, which is closed afterwards.

    Raises:
        ValueError: ``path`` is not a zip archive (the message names it), or what
            ``scan`` raises.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            return scan(archive, path)
    except zipfile.BadZipFile as err:
        raise ValueError(f"{path} is not a valid zip archive: {err}") from err


def member_names(archive: zipfile.ZipFile, path: Path) -> list[str]:
    """The members of ``archive``, refusing any whose path leaves the archive's folder.

    Raises:
        ValueError: an absolute member path or one with ``..`` parts (a crafted or
            broken archive; taking it in would read a case from outside its folder),
            naming the members and the archive.
    """
    names = archive.namelist()
    unsafe = [name for name in names
              if PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts
              or "\\" in name]
    if unsafe:
        raise ValueError(f"{path}: {len(unsafe)} member path(s) leave the archive's folder, "
                         f"e.g. {unsafe[:3]}; expected relative paths such as "
                         f"'Kvasir-SEG/images/<id>.jpg'")
    return names


def read_member(archive: zipfile.ZipFile, member: str, path: Path) -> bytes:
    """The bytes of one member; a damaged member is a ``ValueError`` naming it.

    Raises:
        ValueError: a bad CRC, a truncated or undecompressable member.
    """
    try:
        return archive.read(member)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
        raise ValueError(f"{path}: member {member!r} is damaged ({type(err).__name__}: "
                         f"{err}); the archive is corrupt, fetch it again") from err


def open_member(archive: zipfile.ZipFile, member: str, path: Path):
    """Fully decode one member with PIL, upright; errors name the member.

    The image is :func:`segtie.data.image_files.single_frame_upright`: one frame,
    its EXIF orientation applied.

    Returns:
        ``(PIL image, bytes)``: the member's bytes, or None when the orientation
        changed the pixels (the stored bytes would then show another picture).

    Raises:
        ValueError: the member is damaged or cannot be decoded, or holds several frames.
    """
    data = read_member(archive, member, path)
    try:
        image = Image.open(io.BytesIO(data))
        upright = single_frame_upright(image)
    except Exception as err:  # PIL raises many types for corrupt files
        raise ValueError(f"Cannot decode {member!r} in {path}: {err}") from err
    return upright, (data if upright is image else None)


class ZipArchiveBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Base of the builders that read one publisher's zip (not registered itself).

    Args:
        manual_dir: folder holding the archive; optional, looked at after
            ``$SEGTIE_MANUAL_DIR`` and before the download config's ``manual_dir``.
        **kwargs: passed to ``tfds.core.GeneratorBasedBuilder`` (``data_dir``, ...).
    """

    ARCHIVE_NAME: str = ""

    def __init__(self, *, manual_dir: Optional[os.PathLike | str] = None, **kwargs):
        super().__init__(**kwargs)
        self.manual_dir = None if manual_dir is None else os.fspath(manual_dir)
        self._original_state["manual_dir"] = self.manual_dir  # kept when pickled

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        """The subclass's file. TFDS 4.9.10 computes it with ``importlib_resources``,
        which it does not install on Python >= 3.9 (tensorflow/datasets#11212)."""
        return epath.Path(sys.modules[cls.__module__].__file__)

    def _local_archive(self, dl_manager) -> tuple[Optional[Path], list[Path]]:
        """The first existing candidate (or None) and all the candidates looked at."""
        # `dl_manager.manual_dir` raises when the folder is missing or empty; the
        # attribute is DownloadConfig.manual_dir or TFDS's <data_dir>/downloads/manual.
        config_dir = getattr(dl_manager, "_manual_dir", None)
        candidates = archive_candidates(self.ARCHIVE_NAME, [self.manual_dir, config_dir])
        for path in candidates:
            if path.is_file():
                logger.info("Reading %s", path)
                self.archive_read = path  # recorded by `prepare` once the build is done
                return path, candidates
        return None, candidates


def prepare(builder_cls: type, data_dir: os.PathLike | str,
            manual_dir: Optional[os.PathLike | str] = None) -> tfds.core.DatasetBuilder:
    """Build ``builder_cls``'s TFDS dataset into ``data_dir`` unless it is there already.

    Args:
        builder_cls: a :class:`ZipArchiveBuilder` subclass.
        data_dir: TFDS data folder (``DataConfig.data_dir``).
        manual_dir: folder holding the archive (``DataConfig.manual_dir``).

    Returns:
        The prepared builder (ready for ``as_dataset``).
    """
    builder = builder_cls(data_dir=os.fspath(data_dir), manual_dir=manual_dir)
    config = tfds.download.DownloadConfig(
        manual_dir=None if manual_dir is None else os.fspath(manual_dir),
        try_download_gcs=False)
    builder.download_and_prepare(download_config=config)
    read = getattr(builder, "archive_read", None)
    if read is not None:  # built now, from this archive
        record = Path(builder.data_dir) / SOURCE_RECORD
        partial = record.with_name(record.name + ".partial")
        partial.write_text(json.dumps({"source": str(read.resolve()),
                                       "sha256": file_sha256(read)}, indent=2))
        os.replace(partial, record)  # whole or absent, never half written
    return builder


def recorded_source(builder: tfds.core.DatasetBuilder) -> tuple[Optional[Path], Optional[str]]:
    """The archive a prepared dataset was built from and its SHA-256 (module docstring).

    Returns:
        ``(path, sha256)`` as recorded when the dataset was built (the path may no
        longer exist), or ``(None, None)`` for data built before segtie kept the record.
    """
    record = Path(builder.data_dir) / SOURCE_RECORD
    if not record.is_file():
        return None, None
    facts = json.loads(record.read_text())
    return Path(facts["source"]), facts["sha256"]


def read_split(prepare_fn, data_config, split: str):
    """One split of a dataset, prepared if needed, decoded, in its fixed stored order.

    Args:
        prepare_fn: ``prepare_fn(data_dir, manual_dir) -> builder`` (e.g.
            ``prepare_kvasir_seg``).
        data_config: a :class:`segtie.config.DataConfig` (``data_dir``, ``manual_dir``).
        split: ``"train"``, ``"validation"`` or ``"test"``.

    TFDS autocache is off: it would cache the full-size decoded images, and the
    pipeline caches after resizing instead.

    Raises:
        ValueError: an unknown split (checked before anything is built).
    """
    from segtie.data.splits import check_split

    check_split(split)
    builder = prepare_fn(data_config.data_dir, data_config.manual_dir)
    read_config = tfds.ReadConfig(try_autocache=False)
    return builder.as_dataset(split=split, shuffle_files=False, read_config=read_config)
