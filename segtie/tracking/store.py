"""The MLflow store: its URI, and a new store's first use by several processes at once."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Optional

__all__ = ["DEFAULT_STORE", "STORE_LOCK_SUFFIX", "open_experiment", "resolve_tracking_uri",
           "store_lock"]

DEFAULT_STORE = "mlflow.db"  # in the working directory

# Fail fast on an unreachable HTTP store instead of retrying for minutes.
os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")


def resolve_tracking_uri(configured: Optional[str] = None) -> str:
    """The tracking URI: ``configured``, else ``$MLFLOW_TRACKING_URI``, else local SQLite."""
    return (configured or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{Path.cwd() / DEFAULT_STORE}")


STORE_LOCK_SUFFIX = ".lock"  # <store>.lock beside a SQLite store


@contextlib.contextmanager
def store_lock(tracking_uri: str):
    """Hold an exclusive lock on a local SQLite store's ``<store>.lock`` file.

    Two processes opening a new SQLite store at once both run MLflow's schema
    migration and one fails (``duplicate column name: step``); both creating the
    same experiment is the same race one level up. The lock (``fcntl.flock``, released
    when the process dies) serialises that first use. Other stores, a store whose
    folder does not exist (MLflow's own error says so) and platforms without
    ``fcntl`` are not locked.
    """
    path = _sqlite_path(tracking_uri)
    try:
        import fcntl
    except ImportError:  # Windows: no flock; the retry in open_experiment remains
        fcntl = None
    if path is None or fcntl is None or not path.parent.is_dir():
        yield
        return
    with open(path.with_name(path.name + STORE_LOCK_SUFFIX), "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _sqlite_path(tracking_uri: str) -> Optional[Path]:
    if not tracking_uri.startswith("sqlite:///"):
        return None
    return Path(tracking_uri[len("sqlite:///"):]).resolve()


def open_experiment(tracking_uri: str, experiment: str):
    """A client of ``tracking_uri`` and the id of ``experiment`` (created if missing).

    Safe when several processes use a new store at once (:func:`store_lock`; and if
    another client created the experiment in between, its id is used). A SQLite
    store's artifacts go to ``mlartifacts/<experiment>`` beside it.

    Returns:
        ``(mlflow.MlflowClient, experiment_id)``.
    """
    import mlflow
    from mlflow.exceptions import MlflowException

    with store_lock(tracking_uri):
        client = mlflow.MlflowClient(tracking_uri)
        exp = client.get_experiment_by_name(experiment)  # the first use: schema made here
        if exp is not None:
            return client, exp.experiment_id
        path = _sqlite_path(tracking_uri)
        location = (path.parent / "mlartifacts" / experiment).as_uri() if path else None
        try:
            return client, client.create_experiment(experiment, artifact_location=location)
        except MlflowException:
            exp = client.get_experiment_by_name(experiment)  # created by another client
            if exp is None:
                raise
            return client, exp.experiment_id
