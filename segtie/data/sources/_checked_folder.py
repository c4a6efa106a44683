"""What the bring-your-own-data sources share (:mod:`.folder`, :mod:`.nifti_folder`).

One rule each: a folder's report is kept for the process while its file listing
(names, sizes, modification times) and the options it was checked with are
unchanged; every case is read by a small thread pool; problems are listed one per
line; the split is a ``tf.data`` generator that knows its length.
"""

from __future__ import annotations

import concurrent.futures
import os
from pathlib import Path
from typing import Callable, Iterable, Sequence

import tensorflow as tf

_REPORTS: dict[tuple, object] = {}


def file_listing(root: Path, subs: Iterable[str]) -> tuple:
    """``((sub, name, bytes, mtime_ns), ...)`` of every entry of each existing ``root/sub``."""
    files = []
    for sub in subs:
        if (root / sub).is_dir():
            for path in sorted((root / sub).iterdir()):
                stat = path.stat()
                files.append((sub, path.name, stat.st_size, stat.st_mtime_ns))
    return tuple(files)


def cached_report(key: tuple, build: Callable[[], object]):
    """The report stored under ``key`` this process, else ``build()``'s (then stored).

    ``key`` must hold the source's name, the folder, the options and
    :func:`file_listing`, so that a changed folder is read again.
    """
    if key not in _REPORTS:
        _REPORTS[key] = build()
    return _REPORTS[key]


def read_cases(check: Callable, cases: Sequence, max_workers: int) -> list:
    """``[check(case) for case in cases]`` on at most ``max_workers`` threads (file I/O)."""
    workers = max(1, min(max_workers, os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        return list(pool.map(check, cases))


def problem_lines(problems: Iterable[str]) -> str:
    """The problems indented, one per line, for an error message."""
    return "\n".join(f"  {p}" for p in problems)


def generator_split(generate: Callable, signature: dict, count: int) -> tf.data.Dataset:
    """``tf.data.Dataset.from_generator`` whose cardinality is ``count`` (elements)."""
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    return dataset.apply(tf.data.experimental.assert_cardinality(count))
