"""3-D end to end on the real Hippocampus archive: a tiny training, then segtie evaluate.

4 training volumes (16x16x16 patches, batch 2: 2 steps an epoch, 2 epochs) and 2
validation volumes train a 2-level tied 3-D U-Net of base width 4; MLflow (SQLite in
a temporary folder) is read back with its own client; the evaluation of 2 test
volumes is checked against the label files read by nibabel, not the scores' values.
"""

import csv
import gzip
import json
import zipfile

import mlflow
import nibabel as nib
import numpy as np
import pytest

from segtie import cli
from segtie import config as cfg
from segtie.training import train

pytestmark = pytest.mark.slow  # about 20 s on 2 idle CPU cores, 70 s on busy ones


@pytest.fixture(scope="module")
def trained(hippocampus_data_config, tmp_path_factory):
    root = tmp_path_factory.mktemp("hippocampus_e2e")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = cfg.from_dict({
        "data": {"name": "hippocampus", "data_dir": hippocampus_data_config.data_dir,
                 "manual_dir": hippocampus_data_config.manual_dir, "skip_invalid": True,
                 "image_size": [48, 64, 48], "patch_size": [16, 16, 16], "batch_size": 2,
                 "max_train_cases": 4, "max_eval_cases": 2, "patch_foreground_prob": 1.0,
                 "augment": {"noise_prob": 0.5, "brightness_prob": 0.5}},
        "model": {"spatial_dims": 3, "in_channels": 1, "num_classes": 3, "base_filters": 4,
                  "depth": 2, "num_iterations": 2},
        "train": {"epochs": 2, "output_dir": str(root / "runs")},
        "eval": {"output_dir": str(root / "eval"), "num_overlays": 1, "bootstrap_samples": 0,
                 "sliding_window": True, "window_size": [16, 16, 16], "nsd_tolerance": 1.0},
        "tracking": {"tracking_uri": uri, "experiment": "e2e-hippocampus"},
    })
    return config, train(config), root, uri


def test_training_runs_in_3d_and_records_the_skipped_files(trained):
    config, result, _, uri = trained
    assert result.checkpoint.is_file() and (result.run_dir / "val_overlays.png").is_file()
    assert result.epochs_run == 2
    # by hand, widths 4 and 8, 27 weights per 3x3x3 channel pair, instance norm 2F:
    # encoder 564 + 2,640, decoder 260 + 1,320, head 15
    assert result.num_params == 4_799
    run = mlflow.MlflowClient(uri).get_run(result.mlflow_run_id)
    assert run.data.metrics["data.num_skipped"] == 3
    assert run.data.metrics["data.num_pairs"] == 260
    assert run.data.params["model.spatial_dims"] == "3"


def test_evaluate_scores_volumes_per_class_in_mm_and_ml(trained, hippocampus_archive):
    config, result, root, uri = trained
    assert cli.main(["evaluate", "--checkpoint", str(result.checkpoint),
                     "--set", f"tracking.tracking_uri={uri}"]) == 0
    (eval_dir,) = [p for p in (root / "eval").iterdir() if p.is_dir()]
    rows = list(csv.DictReader((eval_dir / "per_case.csv").open()))
    assert len(rows) == 2
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["distance_units"] == "mm" and summary["volume_units"] == "mL"
    assert summary["inference"]["window_size"] == [16, 16, 16]
    with zipfile.ZipFile(hippocampus_archive) as archive:
        for row in rows:
            label = nib.Nifti1Image.from_bytes(gzip.decompress(archive.read(
                f"TrainingSet/labels/{row['id']}.nii.gz")))
            data = np.asarray(label.dataobj)
            assert (int(row["depth"]), int(row["height"]), int(row["width"])) == data.shape
            for c in (1, 2):  # 1 mm^3 voxels: mL = voxels / 1000
                reference = float(row[f"volume_ref_ml_class{c}"])
                assert reference == pytest.approx(np.count_nonzero(data == c) / 1000, abs=1e-9)
                error = float(row[f"volume_error_ml_class{c}"])
                assert error == pytest.approx(float(row[f"volume_ml_class{c}"]) - reference)
                assert 0 <= float(row[f"dice_class{c}"]) <= 1
                assert float(row[f"hd95_class{c}"]) >= 0
    assert len(list((eval_dir / "overlays").iterdir())) == 1
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name("e2e-hippocampus")
    (eval_run,) = client.search_runs([exp.experiment_id], "tags.`segtie.kind` = 'evaluate'")
    assert eval_run.data.metrics["data.num_skipped"] == 3
    assert "test_volume_error_ml_class1_mean" in eval_run.data.metrics
    assert eval_run.data.tags["segtie.distance_units"] == "mm"
