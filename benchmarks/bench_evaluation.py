"""Evaluation speed: metric time per case on real masks, inference images/s.

    nice -n 19 python benchmarks/bench_evaluation.py [--cases 100] [--images 4]

Metrics: the first ``--cases`` Kvasir-SEG masks from ../shared/data, resized to
512x512 (nearest neighbour); the prediction is the mask shifted by (7, -4) pixels
and eroded twice, the probabilities a blurred copy of it. Inference: the default
config's model (untrained: speed only) on ``--images`` real frames resized to
512x512, by resize, sliding window (128x128 tiles, overlap 0.5, Gaussian) and each
with mirroring TTA. Prints one table.
"""

import argparse
import io
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from segtie import config as cfg  # noqa: E402
from segtie import inference, metrics  # noqa: E402
from segtie.nn import build_model  # noqa: E402

ARCHIVE = ROOT.parent / "shared" / "data" / "kvasir-seg.zip"
SIDE = 512


def load(kind: str, count: int) -> list:
    with zipfile.ZipFile(ARCHIVE) as zf:
        names = sorted(n for n in zf.namelist()
                       if n.startswith(f"Kvasir-SEG/{kind}/") and n.endswith(".jpg"))
        out = []
        for name in names[:count]:
            image = Image.open(io.BytesIO(zf.read(name))).convert("RGB")
            resample = Image.NEAREST if kind == "masks" else Image.BILINEAR
            out.append(np.asarray(image.resize((SIDE, SIDE), resample)))
    return out


def time_per_case(fn, pairs) -> float:
    start = time.perf_counter()
    for args in pairs:
        fn(*args)
    return 1000 * (time.perf_counter() - start) / len(pairs)


def metric_rows(count: int) -> list:
    masks = [m[..., 0] >= 128 for m in load("masks", count)]
    preds = [ndimage.binary_erosion(np.roll(m, (7, -4), axis=(0, 1)), iterations=2)
             for m in masks]
    probs = [ndimage.gaussian_filter(p.astype(np.float64), 3) for p in preds]
    pairs = list(zip(masks, preds))
    return [
        ("metrics: overlap (5 metrics)", time_per_case(
            lambda t, p: [f(t, p) for f in (metrics.dice, metrics.iou, metrics.precision,
                                            metrics.recall, metrics.specificity)], pairs)),
        ("metrics: hd95 + assd + nsd", time_per_case(metrics.surface_metrics, pairs)),
        ("metrics: auc + ap", time_per_case(metrics.ranking_metrics,
                                            list(zip(masks, probs)))),
        ("metrics: score_case, all 10", time_per_case(
            lambda t, p, q: metrics.score_case(t, p, probabilities=q),
            list(zip(masks, preds, probs)))),
    ]


def inference_rows(count: int) -> list:
    config = cfg.load_config()
    model = build_model(config.model)
    images = load("images", count)
    rows = []
    for sliding in (False, True):
        for tta in (False, True):
            options = inference.InferenceOptions(
                image_size=config.data.image_size, sliding_window=sliding, overlap=0.5,
                batch_size=config.eval.sw_batch_size, tta_mirror=tta)
            inference.predict_logits(model, images[0], options)  # warm-up / tracing
            start = time.perf_counter()
            for image in images:
                inference.predict_logits(model, image, options)
            seconds = (time.perf_counter() - start) / len(images)
            name = ("sliding window" if sliding else "resize") + (" + TTA" if tta else "")
            rows.append((f"inference: {name}", 1000 * seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    rows = metric_rows(args.cases) + inference_rows(args.images)
    print(f"\n{SIDE}x{SIDE}; {args.cases} real masks, {args.images} real images\n")
    print(f"{'step':<34}{'ms / case':>11}{'cases / s':>11}")
    for name, ms in rows:
        print(f"{name:<34}{ms:>11.1f}{1000 / ms:>11.2f}")


if __name__ == "__main__":
    main()
