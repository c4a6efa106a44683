"""Run folders: the journal, history.csv after a resume, finding the run to resume."""

import json

import pytest

from segtie import config as cfg
from segtie.training.journal import Journal
from segtie.training.runs import (check_resumable, find_resumable, truncate_history,
                                  update_run_info)


def test_journal_keeps_records_in_order_and_survives_a_torn_last_line(tmp_path):
    journal = Journal(tmp_path / "tracking.jsonl")
    journal.append({"params": {"a": 1}})
    journal.append({"metrics": {"loss": 0.5, "val_dice": float("nan")}, "step": 0, "epoch": 0})
    with open(journal.path, "a") as handle:  # a kill in the middle of a write
        handle.write('{"metrics": {"loss": 0.4}, "st')
    records = journal.records()
    assert [sorted(r) for r in records] == [["params", "time"],
                                            ["epoch", "metrics", "step", "time"]]
    assert records[1]["metrics"] == {"loss": 0.5, "val_dice": "nan"}
    journal.append({"status": "FINISHED"})  # cuts the torn line first
    assert [r.get("status") for r in journal.records()] == [None, None, "FINISHED"]
    assert journal.path.read_text().count("\n") == 3


def test_journal_drops_the_epochs_a_resumed_run_redoes(tmp_path):
    journal = Journal(tmp_path / "tracking.jsonl")
    journal.append({"params": {"a": 1}})
    for epoch in range(4):
        journal.append({"metrics": {"loss": 1.0 / (epoch + 1)}, "step": epoch, "epoch": epoch})
    journal.append({"metrics": {"num_params": 10}, "step": 0})
    assert journal.drop_epochs_from(2) == 2
    assert [r.get("epoch") for r in journal.records()] == [None, 0, 1, None]
    assert journal.drop_epochs_from(2) == 0


def test_history_keeps_each_epoch_once_after_a_resume(tmp_path):
    path = tmp_path / "history.csv"
    path.write_bytes(b"epoch,loss,val_dice\r\n0,0.9,0.1\r\n1,0.8,0.2\r\n2,0.7,0.3\r\n3,0.6,0.")
    assert truncate_history(path, 2) == 2  # epoch 2, and the torn row of epoch 3
    assert path.read_bytes() == b"epoch,loss,val_dice\r\n0,0.9,0.1\r\n1,0.8,0.2\r\n"
    assert truncate_history(path, 2) == 0
    assert truncate_history(tmp_path / "missing.csv", 0) == 0


def _run_folder(root, name, config, status):
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(cfg.dump_yaml(config))
    update_run_info(folder, status=status, started=name[-15:])
    return folder


def test_resume_takes_the_newest_unfinished_run_with_the_same_config(tmp_path):
    config = cfg.from_dict({"train": {"output_dir": str(tmp_path), "epochs": 3}})
    other = cfg.from_dict({"train": {"output_dir": str(tmp_path), "epochs": 4}})
    assert find_resumable(config) is None  # nothing yet: a new run starts
    _run_folder(tmp_path, "kvasir_seg-20260101-000000", config, "KILLED")
    newest = _run_folder(tmp_path, "kvasir_seg-20260102-000000", config, "RUNNING")
    _run_folder(tmp_path, "kvasir_seg-20260103-000000", other, "RUNNING")
    assert find_resumable(config) == newest
    assert find_resumable(other).name.endswith("20260103-000000")


def test_a_finished_run_is_never_resumed(tmp_path):
    config = cfg.from_dict({"train": {"output_dir": str(tmp_path)}})
    _run_folder(tmp_path, "kvasir_seg-20260101-000000", config, "KILLED")
    done = _run_folder(tmp_path, "kvasir_seg-20260102-000000", config, "FINISHED")
    with pytest.raises(ValueError, match=r"FINISHED.*never resumed.*Leave out --resume"):
        find_resumable(config)
    with pytest.raises(ValueError, match="is FINISHED"):
        check_resumable(done, config)


def test_resuming_with_another_config_names_the_keys_that_differ(tmp_path):
    config = cfg.from_dict({"train": {"output_dir": str(tmp_path), "epochs": 3}})
    folder = _run_folder(tmp_path, "kvasir_seg-20260101-000000", config, "KILLED")
    other = cfg.from_dict({"train": {"output_dir": str(tmp_path), "epochs": 5}})
    with pytest.raises(ValueError, match=r"train\.epochs: run 3, now 5"):
        check_resumable(folder, other)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        check_resumable(tmp_path / "nope", config)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no config.yaml"):
        check_resumable(tmp_path / "empty", config)
    check_resumable(folder, config)  # same config: fine
    assert json.loads((folder / "run_info.json").read_text())["status"] == "KILLED"
