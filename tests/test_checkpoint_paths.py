"""What ``segtie evaluate``/``export``/``predict`` say about a checkpoint path that is
not a ``.keras`` file written by training: a folder, a file that is not a zip, a
``.keras`` file with no ``config.yaml`` beside it."""

import logging
import zipfile

import pytest

from segtie.training import checkpoints


def test_a_run_folder_is_refused_and_its_best_keras_named(tmp_path):
    (tmp_path / "best.keras").write_bytes(b"")
    with pytest.raises(IsADirectoryError, match=rf"{tmp_path} is a folder; expected a "
                       rf"\.keras file.*did you mean {tmp_path / 'best.keras'}\?"):
        checkpoints.load_checkpoint(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(IsADirectoryError) as caught:
        checkpoints.load_checkpoint(str(empty))
    assert "did you mean" not in str(caught.value)



def test_an_export_folder_is_refused_and_its_models_named(tmp_path):
    (tmp_path / "model_int8.tflite").write_bytes(b"")
    (tmp_path / "saved_model").mkdir()
    (tmp_path / "saved_model" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(IsADirectoryError, match=rf"an export: did you mean "
                       rf"{tmp_path / 'model_int8.tflite'} or {tmp_path / 'saved_model'}\?"):
        checkpoints.load_checkpoint(str(tmp_path))


def test_a_file_that_is_not_a_zip_is_named_as_such(tmp_path):
    fake = tmp_path / "fake.keras"
    fake.write_bytes(b"not a zip at all")
    with pytest.raises(ValueError, match=r"fake\.keras is not a \.keras archive .*16 "
                                         r"bytes, not a zip"):
        checkpoints.load_checkpoint(str(fake))
    broken = tmp_path / "broken.keras"  # a zip, but no Keras model in it
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("hello.txt", "hi")
    with pytest.raises(ValueError, match=r"broken\.keras is not a loadable segtie Keras"):
        checkpoints.load_checkpoint(str(broken))


def test_a_lone_checkpoint_warns_which_config_scores_it(tmp_path, caplog):
    lone = tmp_path / "best.keras"
    lone.write_bytes(b"")
    with caplog.at_level(logging.WARNING, logger=checkpoints.__name__):
        config = checkpoints.resolve_config(str(lone), None, ["data.image_size=[64,64]"])
    assert config.data.image_size == [64, 64]
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"No training config found for {lone}" in record.getMessage()
    assert "dataset kvasir_seg, image size 64x64" in record.getMessage()
    (tmp_path / "config.yaml").write_text("data:\n  image_size: [32, 32]\n")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=checkpoints.__name__):
        assert checkpoints.resolve_config(str(lone), None, []).data.image_size == [32, 32]
    assert not caplog.records


def test_a_config_for_other_data_than_the_models_own_is_named_in_a_warning(tmp_path, caplog):
    from segtie import config as cfg
    from segtie.export.loading import _config_beside

    (tmp_path / "best.keras").write_bytes(b"")
    (tmp_path / "model_int8.tflite").write_bytes(b"")
    (tmp_path / "config.yaml").write_text(cfg.dump_yaml(cfg.load_config("kvasir_seg")))
    with caplog.at_level(logging.WARNING):
        checkpoints.resolve_config(str(tmp_path / "best.keras"), "drive", [])
        _config_beside(tmp_path / "model_int8.tflite", "drive", [])
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and all("data.name 'kvasir_seg' (its own) vs 'drive'" in w
                                      for w in warnings), warnings
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # the same data: nothing to say
        checkpoints.resolve_config(str(tmp_path / "best.keras"), "kvasir_seg_long", [])
    assert not caplog.records


def test_a_path_through_a_link_is_recorded_as_the_file_it_meant(tmp_path):
    run = tmp_path / "runs" / "kvasir_seg-20261207-184051"
    run.mkdir(parents=True)
    (tmp_path / "runs" / "latest").symlink_to(run.name)
    assert checkpoints.recorded_spec(str(tmp_path / "runs/latest/best.keras")) == str(
        run.resolve() / "best.keras")
    assert checkpoints.recorded_spec("runs:/abc/model") == "runs:/abc/model"
