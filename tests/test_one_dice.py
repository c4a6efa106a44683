"""One Dice: validation (``DiceMetric``, what picks ``best.keras``) equals evaluation.

Unit level: the Keras hard Dice equals :func:`segtie.metrics.dice` and the
evaluation's per-class mean on random masks with empty references; a NaN epoch
goes through the progress bar, ``CSVLogger``, MLflow and ``BestCheckpoint``.
End to end: a folder dataset of real Kvasir-SEG crops at exactly the training size
(some background-only), trained briefly and evaluated on its validation split:
MLflow's ``val_dice`` of the best epoch equals the evaluation's mean Dice.
"""

import csv
import io
import json
import math
import zipfile

import keras
import mlflow
import numpy as np
import pytest
from PIL import Image

from segtie import cli, metrics
from segtie import config as cfg
from segtie.data.splits import split_ids
from segtie.evaluation import scoring
from segtie.losses import DiceCELoss
from segtie.metrics.validation import DiceMetric, hard_dice, hard_dice_multiclass
from segtie.tracking import MlflowCallback, Tracker
from segtie.training import train
from segtie.training.callbacks import BestCheckpoint


def _random_binary(rng, n, side=6):
    """Masks and predictions, each empty in about a third of the images."""
    def masks():
        density = rng.choice([0.0, 0.2, 0.5], size=(n, 1, 1))
        return rng.random((n, side, side)) < density
    return masks(), masks()


def test_hard_dice_and_dice_metric_equal_segtie_metrics_dice():
    rng = np.random.default_rng(0)
    y_true, y_pred = _random_binary(rng, 60)
    logits = np.where(y_pred, 2.0, -2.0) + rng.uniform(-1.5, 1.5, y_pred.shape)
    want = np.array([metrics.dice(t, p) for t, p in zip(y_true, logits > 0)])
    empty_ref = ~y_true.any((1, 2))
    # every convention occurs: NaN, both empty (1.0), and ordinary values
    assert np.isnan(want).sum() >= 5 and (empty_ref & ~np.isnan(want)).sum() >= 3
    assert np.isnan(want).tolist() == (empty_ref & (logits > 0).any((1, 2))).tolist()
    y4, z4 = y_true[..., None].astype("float32"), logits[..., None].astype("float32")
    got = keras.ops.convert_to_numpy(hard_dice(y4, z4))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)

    metric = DiceMetric()
    for start in range(0, 60, 16):  # batches of 16, 16, 16, 12
        metric.update_state(y4[start:start + 16], z4[start:start + 16])
    np.testing.assert_allclose(float(metric.result()), np.nanmean(want), rtol=1e-6)
    assert float(metric.count) == (~np.isnan(want)).sum()
    # the old rule (NaN counted as 0) gives another number: this test can fail
    assert abs(np.nan_to_num(want).mean() - np.nanmean(want)) > 0.05


def test_hard_dice_multiclass_equals_the_evaluations_class_mean():
    rng = np.random.default_rng(1)
    k, n = 4, 40
    present = rng.random((n, 1, 1, k)) < 0.6  # classes absent from some references
    labels = np.argmax(rng.random((n, 6, 6, k)) * present, axis=-1)
    logits = 3.0 * np.eye(k)[labels] + rng.normal(0, 1.2, (n, 6, 6, k))
    argmax = logits.argmax(-1)
    want = np.array([scoring.score_prediction(t, p, k)["dice"]
                     for t, p in zip(labels, argmax)])
    per_class = np.array([[metrics.dice(t == c, p == c) for c in range(1, k)]
                          for t, p in zip(labels, argmax)])
    assert np.isnan(per_class).any() and (~np.isnan(per_class)).any()
    got = keras.ops.convert_to_numpy(hard_dice_multiclass(
        labels[..., None].astype("float32"), logits.astype("float32")))
    np.testing.assert_allclose(got, want, rtol=1e-6, equal_nan=True)
    metric = DiceMetric()
    metric.update_state(labels[..., None].astype("float32"), logits.astype("float32"))
    np.testing.assert_allclose(float(metric.result()), np.nanmean(want), rtol=1e-6)


def test_a_nan_epoch_is_logged_everywhere_and_never_the_best(tmp_path, capsys):
    # Every validation reference empty and every prediction foreground (bias +5,
    # learning rate 0): val_dice is NaN in both epochs.
    net = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(
        1, 1, bias_initializer=keras.initializers.Constant(5.0))])
    net.compile(optimizer=keras.optimizers.SGD(0.0), loss=DiceCELoss(),
                metrics=[DiceMetric()])
    x = np.random.default_rng(0).random((4, 8, 8, 3)).astype("float32")
    y_train = np.zeros((4, 8, 8, 1), "float32")
    y_train[:, :4] = 1.0
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(True, uri, "nan-epoch")
    run_id = tracker.start("nan-epoch")
    best = BestCheckpoint(tmp_path / "best.keras")
    history = net.fit(x, y_train, validation_data=(x, np.zeros_like(y_train)), epochs=2,
                      callbacks=[best, keras.callbacks.CSVLogger(str(tmp_path / "h.csv")),
                                 MlflowCallback(tracker)], verbose=1)
    tracker.end()
    assert "val_dice: nan" in capsys.readouterr().out  # the progress bar
    assert all(math.isnan(v) for v in history.history["val_dice"])
    rows = list(csv.DictReader(io.StringIO((tmp_path / "h.csv").read_text())))
    assert [r["val_dice"] for r in rows] == ["nan", "nan"]
    assert float(rows[0]["dice"]) == pytest.approx(2 * 32 / (32 + 64))  # training: 2/3
    assert tracker.active  # MLflow took the NaN
    logged = mlflow.MlflowClient(uri).get_metric_history(run_id, "val_dice")
    assert [m.step for m in logged] == [0, 1] and all(math.isnan(m.value) for m in logged)
    # never an improvement; the last model is saved at the end so train() can reload it
    assert math.isnan(best.best) and best.best_epoch == 1
    assert (tmp_path / "best.keras").is_file()


# ----------------------------------------------------------- real Kvasir-SEG crops

SIDE = 64  # the training size: neither validation nor evaluation resizes anything
NUM_CASES = 60  # the folder split: 48 train, 6 validation, 6 test


def _kvasir_frames(archive):
    """``(image uint8 (H, W, 3), mask bool (H, W))`` of the archive's frames, in order."""
    with zipfile.ZipFile(archive) as zf:
        names = sorted(n for n in zf.namelist()
                       if n.startswith("Kvasir-SEG/images/") and n.endswith(".jpg"))
        for name in names:
            image = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
            mask = Image.open(io.BytesIO(zf.read(name.replace("/images/", "/masks/"))))
            yield image, np.asarray(mask.convert("L")) > 127


def _whole(image, mask):
    """The frame resized to SIDE x SIDE; its mask binarized after a bilinear resize."""
    small = image.resize((SIDE, SIDE), Image.BILINEAR)
    fg = Image.fromarray(mask.astype(np.uint8) * 255).resize((SIDE, SIDE), Image.BILINEAR)
    return np.asarray(small), np.asarray(fg) > 127


def _background(image, mask, scale=4):
    """A SIDE x SIDE crop without foreground of the frame at scale*SIDE, or None."""
    big = scale * SIDE
    frame = np.asarray(image.resize((big, big), Image.BILINEAR))
    fg = np.asarray(Image.fromarray(mask.astype(np.uint8) * 255).resize(
        (big, big), Image.NEAREST)) > 0
    for top in range(0, big - SIDE + 1, SIDE // 2):
        for left in range(0, big - SIDE + 1, SIDE // 2):
            window = (slice(top, top + SIDE), slice(left, left + SIDE))
            if not fg[window].any():
                return frame[window], np.zeros((SIDE, SIDE), bool)
    return None


def _write_folder(archive, root):
    """Kvasir crops as a folder dataset; returns the validation ids with empty masks.

    Half of the validation cases and a quarter of the others are background-only
    crops; the rest are whole frames resized to SIDE x SIDE.
    """
    ids = [f"case{i:02d}" for i in range(NUM_CASES)]
    split = split_ids(ids)
    empty = set(split["validation"][::2]) | set(split["train"][::4])
    frames = _kvasir_frames(archive)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for case_id in ids:
        pair = None
        while pair is None:
            image, mask = next(frames)
            pair = _background(image, mask) if case_id in empty else _whole(image, mask)
        Image.fromarray(pair[0]).save(root / "images" / f"{case_id}.png")
        mask = Image.fromarray(pair[1].astype(np.uint8) * 255)
        mask.save(root / "masks" / f"{case_id}.png")
    return sorted(empty & set(split["validation"]))


@pytest.fixture(scope="module")
def crops_run(kvasir_archive, tmp_path_factory):
    """Two epochs of a tiny tied U-Net on the crops, tracked in a SQLite store."""
    root = tmp_path_factory.mktemp("one_dice")
    empty_val = _write_folder(kvasir_archive, root / "crops")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    config = cfg.from_dict({
        "data": {"name": "folder", "folder": str(root / "crops"),
                 "image_size": [SIDE, SIDE], "batch_size": 8},
        "model": {"base_filters": 4, "depth": 3, "num_iterations": 2},
        "train": {"epochs": 2, "learning_rate": 0.003, "warmup_epochs": 0,
                  "output_dir": str(root / "runs"), "seed": 3},
        "eval": {"output_dir": str(root / "eval"), "num_overlays": 0,
                 "bootstrap_samples": 0},
        "tracking": {"tracking_uri": uri, "experiment": "one-dice"},
    })
    return train(config), uri, root, empty_val


@pytest.mark.slow
def test_validation_dice_in_mlflow_equals_evaluation_dice(crops_run):
    result, uri, root, empty_val = crops_run
    assert len(empty_val) == 3
    code = cli.main(["evaluate", "--checkpoint", str(result.checkpoint),
                     "--split", "validation"])
    assert code == 0
    (eval_dir,) = [p for p in (root / "eval").iterdir() if p.is_dir()]
    summary = json.loads((eval_dir / "summary.json").read_text())
    per_case = csv.DictReader(io.StringIO((eval_dir / "per_case.csv").read_text()))
    rows = {r["id"]: float(r["dice"]) for r in per_case}
    assert len(rows) == 6
    nan_ids = sorted(i for i, d in rows.items() if math.isnan(d))
    # empty references with false positives are NaN and skipped by the summary
    assert nan_ids and set(nan_ids) <= set(empty_val)
    assert summary["dice"]["num_nan"] == len(nan_ids)
    assert summary["dice"]["count"] == 6 - len(nan_ids)

    client = mlflow.MlflowClient(uri)
    run = client.get_run(result.mlflow_run_id)
    best_epoch = int(run.data.metrics["best_epoch"])  # 1-based
    history = {m.step: m.value for m in client.get_metric_history(result.mlflow_run_id,
                                                                   "val_dice")}
    val_dice = history[best_epoch - 1]
    assert val_dice == pytest.approx(max(history.values()), abs=0)
    assert val_dice == pytest.approx(run.data.metrics["best_val_dice"], abs=1e-7)
    print(f"MLflow val_dice (epoch {best_epoch}) {val_dice:.6f}, "
          f"evaluation dice mean {summary['dice']['mean']:.6f}, NaN cases {nan_ids}")
    assert val_dice == pytest.approx(summary["dice"]["mean"], abs=1e-5)
    # The old validation rule (an empty reference with false positives scores 0)
    # would have logged another number: the agreement is not a coincidence.
    old_rule = sum(0.0 if math.isnan(d) else d for d in rows.values()) / len(rows)
    assert val_dice - old_rule > 0.02
