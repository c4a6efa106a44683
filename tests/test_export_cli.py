"""``segtie export`` and ``segtie predict``: help, and bad input as one line and exit 2."""

import pytest

from segtie import cli


@pytest.mark.parametrize("name, words", [
    ("export", ["--checkpoint", "--variants", "--int8-io", "--calibration-images",
                "--overwrite", "runs:/<run_id>/model", "models:/<name>/<version>"]),
    ("predict", ["--model", "--output", "--probabilities", "--keep-going", "--overwrite",
                 ".tflite", "SavedModel", "PNG, JPEG, TIFF, BMP and GIF"]),
])
def test_help_names_every_option(name, words, capsys):
    with pytest.raises(SystemExit) as done:
        cli.main([name, "--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert f"segtie {name}" in text and "--config" in text and "--set" in text
    for word in words:
        assert word in text


def test_top_level_help_lists_export_and_predict(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "export" in out and "predict" in out


@pytest.mark.parametrize("argv, message", [
    (["predict", "--model", "missing.tflite", "frames"], "error: Input not found: frames"),
    (["predict", "--model", "missing.tflite", "."], "error: No images"),
    (["export", "--checkpoint", "missing.keras"], "error: Checkpoint not found:"),
    (["export", "--checkpoint", "x.keras", "--variants", "int4"], None),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if message is None:  # argparse's own choice check
        with pytest.raises(SystemExit) as done:
            cli.main(argv)
        assert done.value.code == 2
        assert "invalid choice: 'int4'" in capsys.readouterr().err
        return
    assert cli.main(argv) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(message)


def test_predict_names_a_missing_model(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from PIL import Image
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    assert cli.main(["predict", "--model", "nope.tflite", "a.png"]) == 2
    assert "LiteRT model not found" in capsys.readouterr().err


def test_predict_refuses_two_inputs_with_one_stem(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from PIL import Image
    for name in ("a.png", "a.jpg"):
        Image.new("RGB", (8, 8)).save(tmp_path / name)
    from segtie.inference.files import find_images, plan_outputs
    with pytest.raises(ValueError, match="would both write a_mask.png"):
        plan_outputs(find_images([tmp_path]), tmp_path / "out", None, 1, False)


def test_litert_input_is_the_training_size_or_the_sliding_window():
    from segtie.cli import common
    from segtie.export import litert_input_size

    assert litert_input_size(common.load_config("kvasir_seg", [])) == [128, 128]
    assert litert_input_size(common.load_config("drive", [])) == [96, 96]


def test_an_export_is_replaced_only_with_overwrite_and_other_files_stay(tmp_path):
    from segtie.export.run import _prepare_dir

    (tmp_path / "notes.txt").write_text("mine")
    _prepare_dir(tmp_path, overwrite=False)  # no export there: nothing to overwrite
    (tmp_path / "model_int8.tflite").write_bytes(b"old")
    (tmp_path / "saved_model").mkdir()
    with pytest.raises(FileExistsError, match="already holds saved_model"):
        _prepare_dir(tmp_path, overwrite=False)
    assert (tmp_path / "model_int8.tflite").read_bytes() == b"old"
    _prepare_dir(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
