"""The tables of ``bench_kvasir.py``: its rows (JSON lines), the pairs, time to accuracy.

One row per trained model, as ``bench_kvasir.run_model`` writes it; the table shows the
latest rows, ``pair_lines`` compares the latest good row of each pair of models, and
``time_to_target`` reads a run's journal and ``print_time_to_target`` gives the
minutes until the validation Dice first reached the target, per seed, as a ratio to
the peer R2U-Net's of the same seed, and the median ratio over seeds.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

from _common import markdown_table
from segtie.training.journal import Journal

PAIRS = (("tied_levels", "plain_const"), ("tied", "plain"), ("tied", "untied"),
         ("tied", "peer_r2_unet"))


def time_to_target(run_dir: Path, target: float) -> dict:
    """Epochs and training minutes until ``val_dice >= target``, from the run's journal.

    Returns:
        ``{"target_dice", "epochs_to_target", "minutes_to_target"}``; the last two are
        ``None`` when no epoch reached it. Minutes sum ``epoch_seconds`` (validation
        included) of the epochs up to and including the first that reached it.
    """
    seconds, found = 0.0, None
    epochs = sorted((r["step"], r["metrics"]) for r in Journal(Path(run_dir) / "tracking.jsonl")
                    .records() if "val_dice" in (r.get("metrics") or {}))
    for step, metrics in epochs:
        seconds += metrics.get("epoch_seconds", math.nan)
        if metrics["val_dice"] >= target:
            found = step + 1
            break
    return {"target_dice": target, "epochs_to_target": found,
            "minutes_to_target": None if found is None else seconds / 60}


def append_row(path: Path, row: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(row) + "\n")


def read_rows(path: Path) -> list:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _number(value, fmt: str) -> str:
    return "" if value is None else format(value, fmt)


HEADER = ("model", "description", "params", "conv kernels / uses", "epochs", "image",
          "train min", "peak RSS MB", "best val Dice", "test Dice mean", "test Dice median",
          "test IoU", "test HD95", "note")


def table_cells(r: dict) -> list:
    notes = [r["error"]] if "error" in r else []
    if "error" not in r and r["epochs_run"] < r["epochs"]:
        notes.append("stopped early")
    if "error" not in r and r.get("models_before_in_process"):
        notes.append("peak RSS: running max of the process")
    convs = f"{r['conv_kernels']} / {r['conv_uses']}" if "conv_kernels" in r else ""
    return [r["key"], r["description"], _number(r.get("params"), ","), convs,
            f"{r.get('epochs_run', '-')}/{r['epochs']}", "x".join(map(str, r["image_size"])),
            _number(r.get("train_seconds") and r["train_seconds"] / 60, ".1f"),
            _number(r.get("peak_rss_mb"), ".0f"), _number(r.get("best_val_dice"), ".4f"),
            _number(r.get("test_dice_mean"), ".4f"), _number(r.get("test_dice_median"), ".4f"),
            _number(r.get("test_iou_mean"), ".4f"), _number(r.get("test_hd95_mean"), ".1f"),
            "; ".join(notes)]


def pair_lines(rows: list) -> list:
    """``a vs b`` parameter ratio and test Dice difference of the latest good rows."""
    latest = {r["key"]: r for r in rows if "error" not in r}
    lines = []
    for a, b in PAIRS:
        if a in latest and b in latest:
            ra, rb = latest[a], latest[b]
            same = all(ra[k] == rb[k] for k in ("epochs_run", "image_size"))
            da, db = ra["test_dice_mean"], rb["test_dice_mean"]
            lines.append(f"{a} vs {b}: params {ra['params']:,} / {rb['params']:,} = "
                         f"{ra['params'] / rb['params']:.1%}; test Dice {da:.4f} vs {db:.4f} "
                         f"({da - db:+.4f})" + ("" if same else "; NOT the same epochs or "
                                                 "image size"))
    return lines


def print_table(path: Path) -> None:
    rows = read_rows(path)
    if not rows:
        print(f"No results in {path} yet.")
        return
    print(f"\nKvasir-SEG, test split at original resolution, {len(rows)} rows of {path} "
          f"(HD95 in {rows[-1].get('hd95_units', 'pixels')}; epochs = run/configured):\n")
    print(markdown_table(HEADER, [table_cells(r) for r in rows]))
    for line in pair_lines(rows):
        print(line)
    print_time_to_target(rows)


def print_time_to_target(rows: list) -> None:
    """The time-to-accuracy table: the latest good row of each model and seed, its
    ratio to the peer R2U-Net of the same seed, and the median over seeds."""
    latest = {(r["key"], r.get("seed")): r for r in rows
              if "error" not in r and "target_dice" in r}
    if not latest:
        return
    cells, ratios = [], {}
    for (key, seed), r in latest.items():
        minutes = r["minutes_to_target"]
        peer = latest.get(("peer_r2_unet", seed), {}).get("minutes_to_target")
        ratio = peer / minutes if peer and minutes else None
        if ratio is not None:
            ratios.setdefault(key, []).append(ratio)
        cells.append([key, "-" if seed is None else str(seed), f"{r['target_dice']:g}",
                      _number(r["epochs_to_target"], "d") or f"not in {r['epochs_run']}",
                      _number(minutes, ".1f"),
                      _number(minutes and r["epochs_to_target"] and
                              60 * minutes / r["epochs_to_target"], ".0f"),
                      _number(ratio, ".2f")])
    print("\nTime to accuracy (training minutes, validation included, until the "
          "validation Dice first reached the target):\n")
    print(markdown_table(("model", "seed", "target val Dice", "epochs", "minutes",
                          "s / epoch", "peer R2U-Net minutes / these (same seed)"), cells))
    for key, values in ratios.items():
        if len(values) > 1 and key != "peer_r2_unet":
            print(f"{key}: peer R2U-Net minutes / these over {len(values)} seeds: median "
                  f"{statistics.median(values):.2f}x (min {min(values):.2f}x, max "
                  f"{max(values):.2f}x)")
