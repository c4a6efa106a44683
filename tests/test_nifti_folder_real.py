"""The NIfTI folder source on real volumes: the published Hippocampus archive's files in
the MSD / nnU-Net layout read bit for bit, then trained on and evaluated."""

import csv
import zipfile

import nibabel as nib
import numpy as np
import pytest

from segtie.data.sources import dataset_facts, load_split

from nifti_cases import LABEL_MAP, VOLUME_MODEL, all_cases, config


# Real volumes: a handful of pairs of the published Hippocampus archive, in the MSD /
# nnU-Net layout (half the images named <id>_0000), and its image without a label.
REAL_IDS = ["hippocampus_001", "hippocampus_003", "hippocampus_004", "hippocampus_006",
            "hippocampus_007", "hippocampus_008", "hippocampus_011", "hippocampus_033",
            "hippocampus_034", "hippocampus_040", "hippocampus_044", "hippocampus_243"]
UNPAIRED = "hippocampus_118"  # image only, in the archive as published


@pytest.fixture(scope="module")
def real_folder(hippocampus_archive, tmp_path_factory):
    root = tmp_path_factory.mktemp("msd_hippocampus")
    (root / "imagesTr").mkdir()
    (root / "labelsTr").mkdir()
    with zipfile.ZipFile(hippocampus_archive) as archive:
        for i, case_id in enumerate(REAL_IDS + [UNPAIRED]):
            nnunet = i % 2 or case_id == UNPAIRED
            image_name = f"{case_id}_0000.nii.gz" if nnunet else f"{case_id}.nii.gz"
            (root / "imagesTr" / image_name).write_bytes(
                archive.read(f"TrainingSet/images/{case_id}.nii.gz"))
            if case_id != UNPAIRED:
                (root / "labelsTr" / f"{case_id}.nii.gz").write_bytes(
                    archive.read(f"TrainingSet/labels/{case_id}.nii.gz"))
    return root


def test_real_volumes_equal_the_hippocampus_source_bit_for_bit(real_folder,
                                                               hippocampus_data_config):
    with pytest.raises(ValueError, match=rf"'imagesTr/{UNPAIRED}_0000.nii.gz': an image "
                                         rf"without a label \(no labelsTr/{UNPAIRED}.nii.gz\)"):
        load_split(config(real_folder), "train")
    data = config(real_folder, skip_invalid=True)
    ours = all_cases(data)
    assert sorted(ours) == REAL_IDS
    assert dataset_facts(data) == {"data.num_skipped": 1, "data.num_pairs": 12}
    reference = {case_id: case for case_id, case in all_cases(hippocampus_data_config).items()
                 if case_id in ours}
    assert sorted(reference) == REAL_IDS
    for case_id in REAL_IDS:
        for key in ("image", "mask", "spacing", "affine", "orientation"):
            a, b = ours[case_id][key], reference[case_id][key]
            assert np.asarray(a).dtype == np.asarray(b).dtype, (case_id, key)
            np.testing.assert_array_equal(a, b, err_msg=f"{case_id} {key}")


# 12-15 s on 2 CPU cores shared with a training run: not `slow` (pytest.ini: > 30 s)
def test_train_then_evaluate_on_a_real_volume_folder(real_folder, tmp_path):
    """`segtie train` (1 epoch, 4 volumes, 16^3 patches) and `segtie evaluate` over the
    extracted folder: per-class Dice and mm/mL figures land in the MLflow runs."""
    import mlflow

    from segtie import cli
    from tiny_config import write_yaml

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    raw = {
        "data": {"name": "nifti_folder", "folder": str(real_folder), "label_map": LABEL_MAP,
                 "skip_invalid": True, "image_size": [48, 64, 48],
                 "patch_size": [16, 16, 16], "batch_size": 2, "max_train_cases": 4,
                 "max_eval_cases": 1, "patch_foreground_prob": 1.0},
        "model": {**VOLUME_MODEL, "base_filters": 4, "depth": 2, "num_iterations": 2},
        "train": {"epochs": 1, "output_dir": str(tmp_path / "runs")},
        "eval": {"output_dir": str(tmp_path / "eval"), "num_overlays": 1,
                 "bootstrap_samples": 0, "sliding_window": True,
                 "window_size": [16, 16, 16], "nsd_tolerance": 1.0},
        "tracking": {"tracking_uri": uri, "experiment": "e2e-nifti-folder",
                     "system_metrics": False},
    }
    assert cli.main(["train", "--config", write_yaml(raw, tmp_path / "t.yaml")]) == 0
    checkpoint = tmp_path / "runs" / "latest" / "best.keras"
    assert checkpoint.is_file()
    assert cli.main(["evaluate", "--checkpoint", str(checkpoint),
                     "--set", f"tracking.tracking_uri={uri}"]) == 0
    client = mlflow.MlflowClient(uri)
    experiment = client.get_experiment_by_name("e2e-nifti-folder")
    (train_run,) = client.search_runs([experiment.experiment_id],
                                      "tags.`segtie.kind` != 'evaluate'")
    (eval_run,) = client.search_runs([experiment.experiment_id],
                                     "tags.`segtie.kind` = 'evaluate'")
    for run in (train_run, eval_run):
        assert run.data.metrics["data.num_skipped"] == 1  # the unpaired hippocampus_118
        assert run.data.metrics["data.num_pairs"] == 12
    metrics = eval_run.data.metrics
    for c in (1, 2):
        assert 0 <= metrics[f"test_dice_class{c}_mean"] <= 1
        assert metrics[f"test_hd95_class{c}_mean"] >= 0
    assert eval_run.data.tags["segtie.distance_units"] == "mm"
    (eval_dir,) = [p for p in (tmp_path / "eval").iterdir() if p.is_dir()]
    (row,) = list(csv.DictReader((eval_dir / "per_case.csv").open()))
    label = nib.load(str(real_folder / "labelsTr" / f"{row['id']}.nii.gz"))
    data = np.asarray(label.dataobj)
    assert (int(row["depth"]), int(row["height"]), int(row["width"])) == data.shape
    for c in (1, 2):  # 1 mm^3 voxels: mL = voxels / 1000
        assert float(row[f"volume_ref_ml_class{c}"]) == pytest.approx(
            np.count_nonzero(data == c) / 1000, abs=1e-9)
