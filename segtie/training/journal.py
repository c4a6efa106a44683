"""The run folder's tracking journal: what MLflow should hold, kept on local disk first.

``<run>/tracking.jsonl`` holds one JSON record per line, appended (and flushed to
disk) before anything is sent to MLflow; MLflow is a mirror of it
(:class:`segtie.tracking.RunMirror` pushes what the store lacks, idempotently), so an
unreachable store loses nothing and ``segtie sync RUN_FOLDER`` can push it later.

Records (each also has ``"time"``: Unix milliseconds when it was written):

- ``{"params": {key: value}}``
- ``{"metrics": {key: number}, "step": int}``; per-epoch metrics also carry
  ``"epoch": int`` (0-based), so a resumed run can drop what it will redo; system
  metrics (``system/...``, :mod:`segtie.tracking.system`) are metrics records too
- ``{"tags": {key: str}}``; the run description is the tag ``mlflow.note.content``
- ``{"input": a split record of segtie.data.provenance.describe_split}``: a dataset
  input of the run (:mod:`segtie.tracking.inputs`)
- ``{"artifact": path relative to the run folder, "artifact_path": str or null}``
- ``{"model": "keras" | "pyfunc", "checkpoint": "best.keras", "config": "config.yaml",
  "example": "input_example.npy" or null, "tag": the run tag that receives the URI}``
- ``{"status": "RUNNING" | "FINISHED" | "KILLED" | "FAILED"}``

A kill while a line is being written leaves at most a torn last line: it is ignored
when reading and cut off before the next append.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path
from typing import Iterable

from segtie.training.backup import atomic_write_text

logger = logging.getLogger(__name__)

__all__ = ["JOURNAL_FILE", "Journal"]

JOURNAL_FILE = "tracking.jsonl"


def _clean(value):
    """JSON-safe: NaN and infinities become strings MLflow's float() reads back."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "nan", "inf", "-inf"
    return value


class Journal:
    """Append-only JSON-lines journal in a run folder.

    Args:
        path: the ``tracking.jsonl`` file (created on the first append).
    """

    def __init__(self, path):
        self.path = Path(path)

    def records(self) -> list:
        """Every complete record, in order (a torn or unreadable line is skipped)."""
        if not self.path.is_file():
            return []
        out = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError:
                logger.warning("%s line %d is not JSON (a torn write?); skipped",
                               self.path, number)
                continue
            if isinstance(record, dict):
                out.append(record)
        return out

    def _cut_torn_tail(self) -> None:
        """Drop a last line without its newline (a write that a kill interrupted)."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            keep = data[:data.rfind(b"\n") + 1]
            with open(self.path, "r+b") as handle:
                handle.truncate(len(keep))

    def append(self, record: dict) -> dict:
        """Write one record (with ``"time"``) durably; returns it."""
        record = {**record, "time": int(time.time() * 1000)}
        if "metrics" in record:
            record["metrics"] = {k: _clean(float(v)) for k, v in record["metrics"].items()}
        line = json.dumps(record, default=str) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._cut_torn_tail()
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return record

    def extend(self, records: Iterable[dict]) -> None:
        for record in records:
            self.append(record)

    def drop_epochs_from(self, epoch: int) -> int:
        """Remove per-epoch records of epochs ``>= epoch`` (atomically); returns how many.

        A resumed run redoes those epochs, so their first attempt's records go.
        """
        records = self.records()
        keep = [r for r in records if not (isinstance(r.get("epoch"), int)
                                           and r["epoch"] >= epoch)]
        if len(keep) != len(records) or (self.path.is_file() and not
                                         self.path.read_bytes().endswith(b"\n")):
            atomic_write_text(self.path, "".join(json.dumps(r, default=str) + "\n"
                                                 for r in keep))
        return len(records) - len(keep)
