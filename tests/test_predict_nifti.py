"""segtie predict on real NIfTI volumes: masks in the input's voxel order and affine."""

import zipfile

import keras
import nibabel as nib
import numpy as np
import pytest

from segtie import cli
from segtie import config as cfg
from segtie.data.nifti import read_nifti_bytes, zscore
from segtie.evaluation.run import inference_options
from segtie.inference.volumes import predict_volume
from segtie.nn import build_model

from realdata import SHARED_DATA, require_archive

ARCHIVE = SHARED_DATA / "hippocampus-msd-udacity.zip"
MEMBERS = ("TrainingSet/images/hippocampus_001.nii.gz", "TrainingSet/images/hippocampus_003.nii.gz")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An untrained tiny 3-D model of the hippocampus recipe, saved as segtie train does."""
    folder = tmp_path_factory.mktemp("model")
    config = cfg.load_config("hippocampus", ["model.base_filters=2", "model.depth=2"])
    keras.utils.set_random_seed(3)
    model = build_model(config.model, config.data.patch_size or config.data.image_size, 1)
    model.save(folder / "best.keras")
    (folder / "config.yaml").write_text(cfg.dump_yaml(config))
    return folder / "best.keras", config, model


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("volumes")
    with zipfile.ZipFile(require_archive(ARCHIVE)) as archive:
        for member in MEMBERS:
            (folder / member.rsplit("/", 1)[1]).write_bytes(archive.read(member))
    return folder


def test_predict_writes_nifti_masks_with_the_inputs_affine(checkpoint, volumes, tmp_path):
    path, config, model = checkpoint
    out = tmp_path / "masks"
    assert cli.main(["predict", "--model", str(path), str(volumes), "--output", str(out),
                     "--probabilities", "npy"]) == 0
    options = inference_options(config)
    for member in MEMBERS:
        name = member.rsplit("/", 1)[1]
        source = nib.load(volumes / name)
        mask = nib.load(out / name.replace(".nii.gz", "_mask.nii.gz"))
        assert mask.shape == source.shape
        np.testing.assert_allclose(mask.affine, source.affine)
        assert mask.header.get_zooms()[:3] == source.header.get_zooms()[:3]
        labels = np.asanyarray(mask.dataobj)
        assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1, 2}
        # the very labels of the model's probabilities on the z-scored volume
        volume = read_nifti_bytes((volumes / name).read_bytes(), name)
        expected = predict_volume(model, zscore(volume.data)[..., None], options)
        probabilities = np.load(out / name.replace(".nii.gz", "_prob.npy"))
        np.testing.assert_allclose(probabilities, expected, atol=1e-5)
        np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
        np.testing.assert_array_equal(labels, np.argmax(expected, axis=-1))


def test_a_volume_for_a_2d_model_and_png16_are_refused(checkpoint, volumes, tmp_path, capsys):
    path, _, _ = checkpoint
    assert cli.main(["predict", "--model", str(path), str(volumes), "--output",
                     str(tmp_path / "a"), "--probabilities", "png16"]) == 2
    assert "use npy for volumes" in capsys.readouterr().err
    flat = tmp_path / "flat"
    flat.mkdir()
    config = cfg.load_config("kvasir_seg", ["model.base_filters=2", "model.depth=2"])
    build_model(config.model, config.data.image_size, 1).save(flat / "best.keras")
    (flat / "config.yaml").write_text(cfg.dump_yaml(config))
    assert cli.main(["predict", "--model", str(flat / "best.keras"),
                     str(volumes / "hippocampus_001.nii.gz"), "--output", str(tmp_path / "b")]) == 2
    assert "is a 3-D volume, but the model is a 2-D model" in capsys.readouterr().err


@pytest.mark.parametrize("key", ["tta_mirror", "tta_transpose", "largest_component"])
def test_2d_only_options_are_refused_for_volumes(checkpoint, volumes, tmp_path, capsys, key):
    """Never ignored: a volume with a 2-D-only option is an error naming the option."""
    path, _, _ = checkpoint
    assert cli.main(["predict", "--model", str(path), str(volumes / "hippocampus_001.nii.gz"),
                     "--output", str(tmp_path / "m"), "--set", f"eval.{key}=true"]) == 2
    assert f"`eval.{key}` must be false for volumes" in capsys.readouterr().err
    assert not (tmp_path / "m" / "hippocampus_001_mask.nii.gz").exists()
