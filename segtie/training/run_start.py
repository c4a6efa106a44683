"""A training run's start: its folder (new, resumed, or a worker's copy) and first records.

:func:`open_run` makes the run folder, or continues a resumed one, or gives a
multi-worker run's non-chief worker a scratch copy (:mod:`segtie.training.distribute`).

A new run journals its status, filter tags and description
(:mod:`segtie.training.description`), the flat config as parameters, ``config.yaml``,
the parameter count, the resource estimates and the dataset inputs (the train and
validation splits, :mod:`segtie.data.provenance`); a resumed run drops what it will
redo and says it was resumed.
"""

from __future__ import annotations

import logging
import shutil
import time
import uuid
from pathlib import Path

from segtie import config as cfg
from segtie.data.provenance import describe_split
from segtie.data.sources import dataset_facts
from segtie.nn import saved_model_of
from segtie.tracking import NOTE_TAG, resolve_tracking_uri
from segtie.training.description import run_description, run_tags
from segtie.training.distribute import Distribution
from segtie.training.recorder import RunRecorder
from segtie.training.resources import resource_figures
from segtie.training.runs import new_run_dir, read_run_info, truncate_history, update_run_info

logger = logging.getLogger(__name__)

__all__ = ["first_records", "images_per_epoch", "new_run", "open_run", "reopen",
           "training_inputs"]


def training_inputs(data_config) -> list:
    """The split records of the train and validation splits (dataset inputs)."""
    return [describe_split(data_config, split) for split in ("train", "validation")]


def images_per_epoch(data_config, train_record: dict) -> int:
    """Training images (or patches: ``patches_per_image`` per image) of one epoch."""
    per_image = data_config.patches_per_image if data_config.patch_size else 1
    return max(1, train_record["num_cases"] * per_image)


def new_run(config: cfg.Config, source: str, output_dir: Path) -> Path:
    """Make the run folder in ``output_dir``, its ``config.yaml`` and ``run_info.json``."""
    run_dir = new_run_dir(Path(output_dir), config.data.name)
    (run_dir / "config.yaml").write_text(cfg.dump_yaml(config))
    update_run_info(
        run_dir, status="RUNNING", stop_reason=None, epochs=config.train.epochs,
        epochs_done=0, run_uid=uuid.uuid4().hex, mlflow_run_id=None,
        tracking_uri=resolve_tracking_uri(config.tracking.tracking_uri),
        experiment=config.tracking.experiment or config.data.name, model_source=source,
        started=time.strftime("%Y-%m-%dT%H:%M:%S"), start_time_ms=int(time.time() * 1000),
        resumes=[])
    return run_dir


def first_records(recorder: RunRecorder, config, model, source: str, steps: int,
                  inputs: list, config_model: bool) -> None:
    """Journal what a new run starts with (module docstring).

    Args:
        recorder: the run's recorder.
        config: the whole config.
        model: the compiled model.
        source: ``segtie.model_source``.
        steps: training batches per epoch.
        inputs: :func:`training_inputs`.
        config_model: whether ``model`` was built from ``config.model``.
    """
    unique = saved_model_of(model).count_params()  # a wrapper's heads are not saved
    figures = resource_figures(model, config, measure=False)  # the CLI's report measures
    note = run_description(config, source, unique, figures["effective_params"], config_model)
    recorder.set_status("RUNNING")
    recorder.set_tags({"segtie.kind": "train", "segtie.model_source": source,
                       **run_tags(config, source, unique, config_model), NOTE_TAG: note})
    recorder.log_params(cfg.flatten(config))
    for record in inputs:
        recorder.log_input(record)
    recorder.log_artifact(recorder.run_dir / "config.yaml")
    recorder.log_metrics({"num_params": unique, "steps_per_epoch": steps,
                          **dataset_facts(config.data)})  # e.g. data.num_skipped
    recorder.log_metrics({f"resources.{k}": v for k, v in figures.items()})


def reopen(recorder: RunRecorder, start: int) -> None:
    """A resumed run: forget the records and history rows of epochs it will redo."""
    dropped = recorder.journal.drop_epochs_from(start)
    recorder.records = recorder.journal.records()
    rows = truncate_history(recorder.run_dir / "history.csv", start)
    recorder.set_status("RUNNING")
    recorder.set_tags({"segtie.resumed_from_epoch": start})
    info = read_run_info(recorder.run_dir)
    update_run_info(recorder.run_dir, status="RUNNING", stop_reason=None,
                    resumes=info.get("resumes", []) + [
                        {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "from_epoch": start}])
    epochs = int(info.get("epochs", 0))
    if epochs and start >= epochs:  # stopped in the last steps: nothing to train again
        logger.info("Resuming %s after its last epoch (%d of %d done): finishing the run",
                    recorder.run_dir, start, epochs)
        return
    logger.info("Resuming %s at epoch %d of %d (dropped %d journal records and %d "
                "history rows of unfinished epochs)", recorder.run_dir, start + 1, epochs,
                dropped, rows)


def open_run(config, model, source, distribution: Distribution, scratch,
              resume_from) -> Path:
    """The run folder (the chief's, or a worker's scratch copy of it) and its first records."""
    if scratch is not None and resume_from:
        run_dir = scratch / Path(resume_from).name
        shutil.copytree(resume_from, run_dir, symlinks=True)
    elif resume_from:
        run_dir = Path(resume_from)
    else:
        run_dir = new_run(config, source, scratch or Path(config.train.output_dir))
    if distribution.name != "none":
        update_run_info(run_dir, distribute=distribution.summary(
            config.data.batch_size, model.trainable_variables))
    return run_dir
