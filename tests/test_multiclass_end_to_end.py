"""Multi-class end to end: a synthetic 3-class folder, a short training, segtie evaluate.

The folder holds 20 PNG cases of 32x32 pixels: a noisy grey background (class 0), a
red rectangle (class 1, mask value 100) and a blue disc (class 2, mask value 200) at
random places. Colour alone separates the classes, so a tiny model learns them in a
few seconds; the test checks that training, checkpointing and evaluation take the
multi-class path (softmax logits, per-class rows), not the exact scores.
"""

import csv
import json

import numpy as np
import pytest
from PIL import Image

from segtie import cli
from segtie import config as cfg
from segtie.training import train

pytestmark = pytest.mark.slow  # about 40 s on 2 busy CPU cores

SIDE = 32
LABEL_MAP = {0: 0, 100: 1, 200: 2}


def write_folder(root, num_cases=20, seed=0):
    """Write ``images/`` and ``masks/`` PNGs with PIL; returns the folder."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    rows, cols = np.mgrid[:SIDE, :SIDE]
    for i in range(num_cases):
        image = rng.normal(128, 12, (SIDE, SIDE, 3))
        mask = np.zeros((SIDE, SIDE), np.uint8)
        top, left = rng.integers(0, SIDE - 12, 2)
        height, width = rng.integers(6, 12, 2)
        rect = ((rows >= top) & (rows < top + height)
                & (cols >= left) & (cols < left + width))
        centre, radius = rng.integers(6, SIDE - 6, 2), rng.integers(3, 6)
        disc = (rows - centre[0]) ** 2 + (cols - centre[1]) ** 2 <= radius ** 2
        image[rect], mask[rect] = (220, 40, 40), 100
        image[disc], mask[disc] = (40, 40, 220), 200  # the disc may cover the rectangle
        image = np.clip(image + rng.normal(0, 8, image.shape), 0, 255).astype(np.uint8)
        Image.fromarray(image).save(root / "images" / f"case{i:02d}.png")
        Image.fromarray(mask).save(root / "masks" / f"case{i:02d}.png")
    return root


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("multiclass")
    config = cfg.from_dict({
        "data": {"name": "folder", "folder": str(write_folder(root / "data")),
                 "label_map": LABEL_MAP, "image_size": [SIDE, SIDE], "batch_size": 2},
        "model": {"num_classes": 3, "base_filters": 8, "depth": 2, "num_iterations": 2},
        # 8 steps an epoch at a constant rate: one class is learned after a few
        # epochs, the other later (a cosine decay over fewer steps can stall on it).
        "train": {"epochs": 15, "learning_rate": 0.01, "schedule": "constant",
                  "output_dir": str(root / "runs"), "seed": 3},
        "eval": {"output_dir": str(root / "eval"), "num_overlays": 2,
                 "bootstrap_samples": 0},
        "tracking": {"enabled": False},
    })
    return config, train(config), root


def test_training_takes_the_multiclass_path(trained):
    config, result, _ = trained
    assert result.checkpoint.is_file() and (result.run_dir / "val_overlays.png").is_file()
    history = list(csv.DictReader((result.run_dir / "history.csv").open()))
    assert len(history) == result.epochs_run == 15
    assert float(history[-1]["loss"]) < float(history[0]["loss"])
    assert result.best_val_dice > 0.7  # mean over the two classes, argmax (0.999 seen)


def test_evaluate_reports_every_class(trained, capsys):
    config, result, root = trained
    assert cli.main(["evaluate", "--checkpoint", str(result.checkpoint),
                              "--set", "tracking.enabled=false"]) == 0
    (eval_dir,) = [p for p in (root / "eval").iterdir() if p.is_dir()]
    rows = list(csv.DictReader((eval_dir / "per_case.csv").open()))
    assert len(rows) == 2  # round(20 / 10) test cases
    assert list(rows[0])[:3] == ["id", "dice", "dice_class1"] and "hd95_class2" in rows[0]
    summary = json.loads((eval_dir / "summary.json").read_text())
    assert summary["num_classes"] == 3
    for c in (1, 2):
        assert summary[f"dice_class{c}"]["count"] == 2
        assert summary[f"dice_class{c}"]["mean"] > 0.5, c
    case_means = [np.mean([float(r["dice_class1"]), float(r["dice_class2"])]) for r in rows]
    np.testing.assert_allclose([float(r["dice"]) for r in rows], case_means, atol=1e-9)
    table = capsys.readouterr().out
    assert "dice_class1" in table and "nsd_class2" in table
    assert len(list((eval_dir / "overlays").iterdir())) == 2
