"""Datasets as MLflow dataset inputs: what trained a model, what scored it.

A split record of :func:`segtie.data.provenance.describe_split` becomes one MLflow
dataset (name ``<dataset>-<split>``, the split digest, source type ``local`` with the
archive's ``file://`` URI, a JSON profile holding the archive's SHA-256, ``num_cases``,
the source splits read (``parts``) and the size of every split) logged as an input of
the run with the context tag ``mlflow.data.context`` = the split. The MLflow UI lists it
on the run page ("Datasets used") and in the runs table.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = ["CONTEXT_TAG", "dataset_input", "has_input", "log_dataset_inputs"]

CONTEXT_TAG = "mlflow.data.context"
PROFILE_KEYS = ("sha256", "num_cases", "case_limit", "split_sizes", "parts")


def dataset_input(record: dict):
    """The ``mlflow.entities.DatasetInput`` of a split record.

    Raises:
        KeyError: ``record`` lacks ``name``, ``digest`` or ``split``.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    source = record.get("source")
    uri = Path(source).as_uri() if source else "unknown"
    profile = json.dumps({k: record.get(k) for k in PROFILE_KEYS}, sort_keys=True)
    dataset = Dataset(name=record["name"], digest=record["digest"], source_type="local",
                      source=json.dumps({"uri": uri}), profile=profile)
    return DatasetInput(dataset, tags=[InputTag(CONTEXT_TAG, record["split"])])


def has_input(run, record: dict) -> bool:
    """Whether ``run`` (an ``mlflow.entities.Run``) holds the input of ``record``."""
    for held in run.inputs.dataset_inputs if run.inputs else []:
        context = {t.key: t.value for t in held.tags}.get(CONTEXT_TAG)
        if (held.dataset.name, held.dataset.digest, context) == (
                record["name"], record["digest"], record["split"]):
            return True
    return False


def log_dataset_inputs(client, run_id: str, records: list) -> int:
    """Log the records the run does not hold yet (idempotent); returns how many."""
    if not records:
        return 0
    run = client.get_run(run_id)
    missing = [r for r in records if not has_input(run, r)]
    if missing:
        client.log_inputs(run_id, datasets=[dataset_input(r) for r in missing])
    return len(missing)
