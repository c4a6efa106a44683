"""Which data a run used: the source file, its SHA-256, the split sizes and a split digest.

:func:`describe_split` gives a plain, JSON-able record of one split, which tracking
turns into an MLflow dataset input (:func:`segtie.tracking.inputs.dataset_input`)
and which the champion rule compares (two evaluations are comparable when their test
sets have the same ``digest``):

- ``source``: the archive read (``kvasir-seg.zip``, ``DRIVE.zip``; the first that
  exists of :func:`~segtie.data.sources.archive.archive_candidates`) or the folder;
- ``sha256``: SHA-256 of the archive's bytes; of a folder, of every file's relative
  path and bytes in sorted order. When the archive is no longer there, the prepared
  TFDS data being read instead, both are the ones recorded when that data was built
  (:func:`segtie.data.sources.archive.recorded_source`; ``null`` for data built
  before the record was kept), so the digest does not change with the archive's place;
- ``digest``: the first :data:`DIGEST_CHARS` hex digits of SHA-256 over the
  ``sha256``, the dataset name, the split, the split's size and the case limit
  (``max_train_cases``/``max_eval_cases``): the split rule is a pure function of
  the ids and a fixed seed (:mod:`segtie.data.splits`), so equal digests mean the same
  cases. MLflow keeps at most 36 characters of a dataset digest;
- ``split_sizes``: the number of cases of every split of the source, and
  ``num_cases``: the cases this split gives the run (after the limit; the train
  split with ``train_on_validation`` gives train and validation cases, which the
  digest and ``parts`` say).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import Optional

from segtie.data.splits import SPLITS, case_limit, check_split, split_parts

__all__ = ["DIGEST_CHARS", "describe_split", "file_sha256", "folder_sha256"]

DIGEST_CHARS = 32
CHUNK_BYTES = 1 << 20


@functools.lru_cache(maxsize=16)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes (cached per path, size and modification time).

    Raises:
        OSError: the file cannot be read.
    """
    stat = os.stat(path)
    return _sha256_cached(os.fspath(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def folder_sha256(folder) -> str:
    """Hex SHA-256 over ``relative path, NUL, sha256 of the file, NUL`` of every file of
    ``folder`` (hidden files included), sorted by path."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(file_sha256(path).encode() + b"\0")
    return digest.hexdigest()


def _archive_source(data_config) -> tuple[Optional[Path], Optional[str]]:
    """The archive (or folder) read and its SHA-256; without the archive, the ones its
    prepared data recorded (``(None, None)`` when it holds no record)."""
    if data_config.name in ("folder", "nifti_folder"):
        return Path(data_config.folder).resolve(), folder_sha256(data_config.folder)
    from segtie.data.sources import LOADERS, prepared_source
    from segtie.data.sources.archive import archive_candidates

    module = __import__(LOADERS[data_config.name].__module__, fromlist=["ARCHIVE_NAME"])
    for path in archive_candidates(module.ARCHIVE_NAME, [data_config.manual_dir]):
        if path.is_file():
            return path.resolve(), file_sha256(path)
    return prepared_source(data_config)


def _split_sizes(data_config) -> dict:
    """Cases of every split of the source (before ``max_*_cases``)."""
    from segtie.data.sources import load_split

    if data_config.name == "folder":
        from segtie.data.sources.folder import validate_folder
        from segtie.data.splits import split_ids

        report = validate_folder(data_config.folder, data_config.label_map,
                                 data_config.mask_threshold)
        report.raise_for_problems()
        return {s: len(ids) for s, ids in split_ids([c.case_id for c in report.cases]).items()}
    return {s: int(load_split(data_config, s).cardinality()) for s in SPLITS}


def describe_split(data_config, split: str) -> dict:
    """A record of the data one split gives a run (module docstring).

    Args:
        data_config: a :class:`segtie.config.DataConfig`.
        split: ``"train"``, ``"validation"`` or ``"test"``.

    Returns:
        ``{"name": "<data.name>-<split>", "dataset": data.name, "split", "parts"
        (the source splits read, e.g. ``["train", "validation"]``), "digest",
        "sha256", "source" (absolute path or null), "num_cases", "case_limit",
        "split_sizes": {split: int}}``.

    Raises:
        ValueError: an unknown split or dataset; a folder with problems.
        FileNotFoundError: the data cannot be found (as when loading it).
    """
    check_split(split)
    source, sha256 = _archive_source(data_config)
    sizes = _split_sizes(data_config)
    limit = case_limit(data_config, split)
    parts = split_parts(data_config, split)
    available = sum(sizes[part] for part in parts)
    num_cases = available if limit is None else min(available, limit)
    key = json.dumps([sha256, data_config.name, "+".join(parts), available, limit])
    digest = hashlib.sha256(key.encode()).hexdigest()[:DIGEST_CHARS]
    return {"name": f"{data_config.name}-{split}", "dataset": data_config.name,
            "split": split, "parts": parts, "digest": digest,
            "sha256": sha256, "source": None if source is None else str(source),
            "num_cases": num_cases, "case_limit": limit, "split_sizes": sizes}
