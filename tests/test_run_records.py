"""What a run tells MLflow about itself: data provenance, scheme and tags, timing, system metrics."""

import dataclasses
import json
import subprocess
import threading
import uuid

import mlflow
import pytest

from segtie import cli
from segtie import config as cfg
from segtie.data.provenance import describe_split
from segtie.nn import unet_arguments
from segtie.nn.describe import describe_scheme, param_bucket, scheme_name
from segtie.tracking.system import JournalSystemMetrics, next_system_step
from segtie.training import callbacks
from segtie.training.description import run_description, run_tags
from segtie.training.journal import Journal
from segtie.training.runs import update_run_info

KVASIR_SIZES = {"train": 800, "validation": 100, "test": 100}  # README: 80/10/10 of 1000


def test_a_split_record_names_the_archive_its_sha256_and_the_split(kvasir_data_config,
                                                                  kvasir_archive):
    sha256 = subprocess.run(["sha256sum", str(kvasir_archive)], capture_output=True,
                            text=True, check=True).stdout.split()[0]  # coreutils, not hashlib
    test = describe_split(kvasir_data_config, "test")
    assert test["sha256"] == sha256
    assert test["source"] == str(kvasir_archive.resolve())
    assert (test["name"], test["split_sizes"], test["num_cases"]) == (
        "kvasir_seg-test", KVASIR_SIZES, 100)
    assert len(test["digest"]) == 32 and int(test["digest"], 16) >= 0
    assert describe_split(kvasir_data_config, "test")["digest"] == test["digest"]
    limited = describe_split(dataclasses.replace(kvasir_data_config, max_eval_cases=8),
                             "test")
    assert (limited["num_cases"], limited["case_limit"]) == (8, 8)
    digests = {test["digest"], limited["digest"],
               describe_split(kvasir_data_config, "validation")["digest"]}
    assert len(digests) == 3  # another limit or split is another test set


def test_the_split_record_outlives_the_archive(drive_archive, tmp_path, monkeypatch):
    from segtie.data.sources import drive

    monkeypatch.delenv("SEGTIE_MANUAL_DIR", raising=False)
    sha256 = subprocess.run(["sha256sum", str(drive_archive)], capture_output=True,
                            text=True, check=True).stdout.split()[0]
    drive.prepare_drive(tmp_path / "tfds", drive_archive.parent)  # built now: recorded
    config = cfg.DataConfig(name="drive", data_dir=str(tmp_path / "tfds"),
                            manual_dir=str(drive_archive.parent))
    with_archive = describe_split(config, "test")
    empty = tmp_path / "moved"  # the archive moved away: only the prepared data is read
    empty.mkdir()
    without = describe_split(dataclasses.replace(config, manual_dir=str(empty)), "test")
    assert with_archive["sha256"] == without["sha256"] == sha256
    assert without["source"] == with_archive["source"] == str(drive_archive.resolve())
    assert without["digest"] == with_archive["digest"]
    (next((tmp_path / "tfds").rglob("segtie_source.json"))).unlink()  # data built before
    assert describe_split(dataclasses.replace(config, manual_dir=str(empty)),
                          "test")["sha256"] is None


@pytest.mark.parametrize("model, name", [
    ({"num_iterations": 1}, "plain"),
    ({"num_iterations": 2}, "iter2"),
    ({"num_iterations": 3, "width_multiplier": 1, "tie_levels": True,
      "level_projection": True, "tie_decoder": True}, "iter3+levels+decoder"),
    ({"num_iterations": 1, "num_recurrences": 2}, "rec2"),
    ({"num_iterations": 2, "width_multiplier": 1, "tie_levels": True, "level_projection": True,
      "tie_decoder": True, "num_templates": 3}, "iter2+levels+decoder+bank3"),
])
def test_the_scheme_name_and_sentence_use_the_tying_vocabulary(model, name):
    args = unet_arguments(cfg.from_dict({"model": model}).model)
    assert scheme_name(args) == name
    sentence = describe_scheme(args)
    assert f"num_iterations: {model['num_iterations']}" in sentence
    assert ("tie_levels" in sentence) == bool(model.get("tie_levels"))
    assert ("a plain U-Net" in sentence) == (name == "plain")
    assert ("num_templates" in sentence) == bool(model.get("num_templates"))


def test_parameter_buckets_have_exclusive_upper_bounds():
    assert [param_bucket(n) for n in (1, 9_999, 10_000, 483_441, 1_000_000, 10**7)] == [
        "<10k", "<10k", "10k-100k", "100k-1M", "1M-10M", ">=10M"]


def test_the_recipe_run_says_its_scheme_and_parameters():
    config = cfg.load_config("kvasir_seg")
    tags = run_tags(config, "config", 483_441, config_model=True)
    assert tags == {"segtie.scheme": "iter2", "segtie.dataset": "kvasir_seg",
                    "segtie.num_iterations": 2, "segtie.param_bucket": "100k-1M",
                    "segtie.params": 483_441}
    note = run_description(config, "config", 483_441, 966_882, config_model=True)
    assert "kvasir_seg, 128x128, batch 8" in note
    assert "one 3x3 kernel 2 times" in note
    assert "483,441 unique (stored), 966,882 effective" in note and "2.00x" in note


def test_epoch_timing_counts_training_images_until_validation_starts(monkeypatch):
    clock = iter([100.0, 102.0, 103.0])  # epoch begins, validation begins, epoch ends
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: next(clock))
    timing = callbacks.EpochTiming(images_per_epoch=16)
    logs = {"loss": 1.0}
    timing.on_epoch_begin(0)
    timing.on_test_begin()
    timing.on_epoch_end(0, logs)
    assert timing.figures() == {"epoch_seconds": 3.0, "images_per_second": 8.0}
    assert logs == {"loss": 1.0}  # history.csv stays reproducible


def test_system_metrics_are_mlflows_names_at_consecutive_steps():
    samples, lock = [], threading.Lock()

    def sink(metrics, step):
        with lock:
            samples.append((step, metrics))

    sampler = JournalSystemMetrics(sink, interval=0.5, first_step=4).start()
    sampler.stop()  # at once: the last (partial) interval is still logged
    assert [step for step, _ in samples] == list(range(4, 4 + len(samples)))
    assert len(samples) >= 1
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes",
            "system/disk_usage_percentage"} <= set(samples[0][1])
    records = [{"metrics": {"loss": 1.0}, "step": 9}, *[
        {"metrics": m, "step": s} for s, m in samples]]
    assert next_system_step(records) == samples[-1][0] + 1  # a resumed run continues
    assert next_system_step(records[:1]) == 0


def test_sync_logs_each_dataset_input_once(tmp_path, kvasir_data_config, kvasir_archive):
    folder = tmp_path / "kvasir_seg-20260101-000000"
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    folder.mkdir()
    update_run_info(folder, status="FINISHED", run_uid=uuid.uuid4().hex, mlflow_run_id=None,
                    tracking_uri=uri, experiment="inputs", start_time_ms=1_700_000_000_000)
    journal = Journal(folder / "tracking.jsonl")
    records = [describe_split(kvasir_data_config, s) for s in ("train", "validation")]
    for record in records:
        journal.append({"input": record})
    journal.append({"status": "FINISHED"})
    for _ in range(2):
        assert cli.main(["sync", str(folder)]) == 0
    client = mlflow.MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("inputs").experiment_id])
    held = {(i.dataset.name, i.dataset.digest, i.tags[0].value): i.dataset
            for i in run.inputs.dataset_inputs}
    assert sorted(held) == sorted((r["name"], r["digest"], r["split"]) for r in records)
    train = held[("kvasir_seg-train", records[0]["digest"], "train")]
    assert json.loads(train.source) == {"uri": kvasir_archive.resolve().as_uri()}
    assert '"split_sizes": {"test": 100, "train": 800, "validation": 100}' in train.profile
