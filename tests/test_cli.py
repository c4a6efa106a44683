"""The `segtie` command line: subcommands, complete --help, one-line errors, exit codes."""

import subprocess
import sys
from pathlib import Path

import pytest

from segtie import cli
from segtie.cli import common


def test_every_subcommand_is_listed_and_runs_its_help(capsys):
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0
    top = capsys.readouterr().out
    for name in ("train", "evaluate", "report"):
        assert name in top
        with pytest.raises(SystemExit) as done:
            cli.main([name, "--help"])
        assert done.value.code == 0
        text = capsys.readouterr().out
        assert "--config" in text and "--set" in text and f"segtie {name}" in text


def test_evaluate_help_names_every_checkpoint_form(capsys):
    with pytest.raises(SystemExit):
        cli.main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for form in (".keras", "runs:/<run_id>/model", "models:/m-<model_id>",
                 "models:/<name>/<version>", "models:/<name>@<alias>", "--split"):
        assert form in text


def test_no_command_prints_help_and_exits_2(capsys):
    assert cli.main([]) == 2
    assert "train" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", "no_such_recipe"],
     "error: Config file not found: no_such_recipe (expected a YAML file or the name of a "
     "shipped recipe: drive, drive_basis, drive_basis_250k, drive_basis_all, drive_basis_long, hippocampus, kvasir_seg, kvasir_seg_1m, kvasir_seg_ensemble, kvasir_seg_long)"),
    (["report", "--set", "model.num_iterations=0", "--no-measure"],
     "error: --set model.num_iterations=0: `model.num_iterations` must be >= 1, received 0"),
    (["report", "--set", "model.tie_levels=true", "--no-measure"],
     "error: `model.tie_levels: true` needs every level to have the same width so that one "
     "kernel fits all of them: `model.width_multiplier` must be 1, received 2"),
    (["evaluate", "--checkpoint", "missing.keras"], "error: Checkpoint not found:"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(message)


def test_recipes_resolve_by_name_and_by_path():
    assert common.load_config("drive", []).data.name == "drive"
    assert common.load_config("drive.yaml", []).data.name == "drive"
    assert common.load_config(None, []).data.name == "kvasir_seg"


def test_python_m_segtie_and_the_shims_are_the_same_command():
    root = Path(__file__).resolve().parents[1]

    def run(*argv):
        done = subprocess.run([sys.executable, *argv], capture_output=True, text=True,
                              timeout=120, cwd=root)
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("-m", "segtie", "--version").startswith("segtie ")
    for shim, command in (("train.py", "train"), ("evaluate.py", "evaluate")):
        assert run(shim, "--help") == run("-m", "segtie", command, "--help")
