"""Run folders: making one, finding one to resume, and what ``run_info.json`` says.

A run folder ``<train.output_dir>/<dataset>-<YYYYmmdd-HHMMSS>[-<n>]/`` holds
``config.yaml`` (the resolved config), ``run_info.json``, ``tracking.jsonl`` (the
journal MLflow mirrors), ``history.csv``, ``backup/`` while the run is unfinished,
and, once it finished, ``best.keras``, ``last.weights.h5`` (the last epoch's weights
and optimizer state) and ``val_overlays.png``.

``run_info.json`` (rewritten atomically) holds ``status`` (``RUNNING``,
``FINISHED``, ``KILLED``, ``FAILED``), ``stop_reason`` (why it stopped: ``"completed
N epochs"``, the time budget, the signal, the error), ``epochs_done``, the MLflow
``mlflow_run_id``, ``tracking_uri`` and ``experiment``, ``run_uid`` (the folder's own
id, tagged on the MLflow run), ``model_source`` and ``resumes`` (one entry per resume).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from pathlib import Path
from typing import Optional

import yaml

from segtie import config as cfg
from segtie.training.backup import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["RUN_INFO", "config_differences", "find_resumable", "new_run_dir",
           "point_latest", "read_run_info", "truncate_history", "update_run_info"]

RUN_INFO = "run_info.json"
FINISHED = "FINISHED"


def new_run_dir(output_dir: Path, prefix: str) -> Path:
    """Create a run folder ``<output_dir>/<prefix>-<YYYYmmdd-HHMMSS>[-<n>]``, unique.

    Made with ``mkdir(exist_ok=False)``, which is atomic: two trainings started in the
    same second get two folders (the second one suffixed ``-2``, ...), never one.
    """
    output_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
    for attempt in range(1, 1000):
        run_dir = output_dir / (stem if attempt == 1 else f"{stem}-{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"{output_dir}: 999 run folders named {stem}-*; clean up")


def point_latest(run_dir: Path) -> None:
    """Make ``<output_dir>/latest`` a symlink to the newest finished run folder."""
    link = run_dir.parent / "latest"
    tmp = run_dir.parent / ".latest.tmp"
    if tmp.is_symlink():
        tmp.unlink()
    tmp.symlink_to(run_dir.name, target_is_directory=True)
    tmp.replace(link)


def read_run_info(run_dir: Path) -> dict:
    """``run_info.json`` of ``run_dir`` as a dict (empty if missing or unreadable)."""
    try:
        info = json.loads((Path(run_dir) / RUN_INFO).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return info if isinstance(info, dict) else {}


def update_run_info(run_dir: Path, **fields) -> dict:
    """Merge ``fields`` into ``run_info.json`` (atomic rewrite); returns the result."""
    info = {**read_run_info(run_dir), **fields}
    atomic_write_text(Path(run_dir) / RUN_INFO, json.dumps(info, indent=2, default=str))
    return info


def config_differences(run_dir: Path, config: cfg.Config) -> list:
    """``["group.key: run <a>, now <b>", ...]`` between a folder's config.yaml and ``config``.

    Raises:
        FileNotFoundError: ``run_dir`` has no ``config.yaml``.
    """
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{run_dir} is not a segtie run folder: no config.yaml "
                                f"(expected a folder written by segtie train)")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    try:
        old = cfg.flatten(cfg.from_dict(raw))
    except (ValueError, TypeError) as err:  # written by another segtie version
        return [f"{path} is no longer a valid config ({err})"]
    new = cfg.flatten(config)
    return [f"{key}: run {old.get(key)!r}, now {new.get(key)!r}"
            for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]


def find_resumable(config: cfg.Config) -> Optional[Path]:
    """The newest run folder under ``train.output_dir`` to resume with ``config``.

    Candidates are the folders whose ``config.yaml`` equals ``config``; the newest
    (by name, which carries the start time; then by modification time) is taken.

    Returns:
        Its path if it is unfinished, ``None`` if no folder has this config.

    Raises:
        ValueError: the newest such folder is ``FINISHED`` (a finished run is never
            resumed; the message says how to start a new one).
    """
    output_dir = Path(config.train.output_dir)
    if not output_dir.is_dir():
        return None
    candidates = []
    for folder in output_dir.iterdir():
        if (folder.is_dir() and not folder.is_symlink() and (folder / "config.yaml").is_file()
                and not config_differences(folder, config)):
            candidates.append(folder)
    if not candidates:
        return None
    newest = max(candidates, key=lambda f: (read_run_info(f).get("started", ""),
                                            f.stat().st_mtime, f.name))
    info = read_run_info(newest)
    if info.get("status") == FINISHED:
        raise ValueError(f"--resume: the newest run with this config, {newest}, is "
                         f"FINISHED ({info.get('stop_reason', 'completed')}); a finished run "
                         f"is never resumed. Leave out --resume to start a new run")
    return newest


def check_resumable(run_dir: Path, config: cfg.Config) -> None:
    """Raise unless ``run_dir`` can be resumed with ``config``.

    Raises:
        FileNotFoundError: not a run folder.
        ValueError: it is ``FINISHED``, or its config differs (the keys are named).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"--run-dir {run_dir}: no such folder (expected a run "
                                f"folder written by segtie train)")
    differences = config_differences(run_dir, config)
    if differences:
        raise ValueError(f"--run-dir {run_dir} was trained with another config; resume it "
                         f"with the same --config/--set values. Differences: "
                         f"{'; '.join(differences)}")
    info = read_run_info(run_dir)
    if info.get("status") == FINISHED:
        raise ValueError(f"--run-dir {run_dir} is FINISHED "
                         f"({info.get('stop_reason', 'completed')}); a finished run is never "
                         f"resumed")


def truncate_history(path: Path, epoch: int) -> int:
    """Drop rows of epochs ``>= epoch`` from a CSVLogger ``history.csv``; returns how many.

    A resumed run redoes those epochs and appends them again, so the file never holds
    an epoch twice. The file is rewritten atomically; a torn last row is dropped.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    with open(path, encoding="utf-8", newline="") as handle:  # Keras writes \r\n
        text = handle.read()
    lines = text.splitlines(keepends=True)
    torn = int(bool(lines) and not lines[-1].endswith("\n"))
    if torn:
        lines = lines[:-1]  # a row cut short by a kill
    rows = list(csv.reader(io.StringIO("".join(lines))))
    if not rows:
        return 0
    header, body = rows[0], rows[1:]
    column = header.index("epoch") if "epoch" in header else 0
    keep = [row for row in body if row and row[column].isdigit() and int(row[column]) < epoch]
    out = io.StringIO()
    writer = csv.writer(out)  # the excel dialect, as CSVLogger writes
    writer.writerow(header)
    writer.writerows(keep)
    if out.getvalue() != text:
        atomic_write_text(path, out.getvalue())
    return len(body) - len(keep) + torn
