"""The tables of ``bench_export.py``: variants, targets and which device each fits.

Rows are ``bench_export.bench_model``'s (one per model and variant: ``bytes``,
``params``, ``dice``, ``ms_<threads>``, ``median_ms_<threads>``, ``mb_<threads>``,
``xnnpack``; LiteRT rows also ``path``, ``image_size``, ``activation_peak_bytes``).
"""

from __future__ import annotations

import math
from pathlib import Path

from _common import markdown_table


def table(rows, threads) -> str:
    """Bytes, test Dice, latency and interpreter memory of every model and variant."""
    header = (["model", "variant", "file bytes", "unique params", "test Dice", "dDice"]
              + [f"ms/image x{t} (median)" for t in threads]
              + [f"interp. peak MB x{t}" for t in threads] + ["XNNPACK"])
    body = []
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["variant"] ==
                    "Keras float32")
        body.append([r["model"], r["variant"], f"{r['bytes']:,}", f"{r['params']:,}",
                     f"{r['dice']:.4f}", f"{r['dice'] - base['dice']:+.4f}"]
                    + [f"{r[f'ms_{t}']:.1f} ({r[f'median_ms_{t}']:.1f})" for t in threads]
                    + [f"{r[f'mb_{t}']:.1f}" if f"mb_{t}" in r else "-" for t in threads]
                    + [("yes" if r["xnnpack"] else "no") if "xnnpack" in r else "-"])
    return markdown_table(header, body)


def targets(rows, threads) -> list:
    """One line per target (int8 bytes, int8 latency, int8 Dice) and model: met or not."""
    lines = []
    for key in dict.fromkeys(r["model"] for r in rows):
        get = {r["variant"]: r for r in rows if r["model"] == key}
        keras_row, f32, i8 = get["Keras float32"], get["LiteRT float32"], get["LiteRT int8"]
        ratio = i8["bytes"] / f32["bytes"]
        lines.append(f"{key}: int8 file / float32 file = {ratio:.3f} (target <= 0.25: "
                     f"{'met' if ratio <= 0.25 else 'NOT met'})")
        for t in threads:
            speed = keras_row[f"ms_{t}"] / i8[f"ms_{t}"]
            lines.append(f"{key}: int8 vs Keras float32 latency x{t} threads = {speed:.2f}x "
                         f"(target >= 2x: {'met' if speed >= 2 else 'NOT met'})")
        gap = i8["dice"] - keras_row["dice"]
        lines.append(f"{key}: int8 test Dice - Keras float32 = {gap:+.4f} (target within "
                     f"0.005: {'met' if abs(gap) <= 0.005 else 'NOT met'})")
    return lines


# Target classes: (name, most model-file bytes, most working-memory bytes, how the
# working memory is measured). The microcontroller leaves 150 KB of its flash to the
# runtime's code and 64 KB of its RAM to the runtime's state and stack (assumptions,
# not measurements); LiteRT for Microcontrollers' op set is not checked here.
DEVICES = (
    ("phone (>= 2 GB RAM)", 100 * 2 ** 20, 500 * 2 ** 20, "interpreter"),
    ("Raspberry Pi class (512 MB RAM, Pi Zero 2 W)", 100 * 2 ** 20, 200 * 2 ** 20,
     "interpreter"),
    ("microcontroller (1 MB flash, 512 KB RAM)", 2 ** 20 - 150 * 2 ** 10,
     512 * 2 ** 10 - 64 * 2 ** 10, "arena"),
)


def with_peak(row: dict, out: Path) -> dict:
    """A LiteRT row of an earlier run, given its file path, input size and activation peak."""
    if not row["variant"].startswith("LiteRT") or "activation_peak_bytes" in row:
        return row
    from segtie import config as cfg
    from segtie.export.arena import activation_peak
    from segtie.export.run import litert_file_name

    folder = out / "export" / row["model"]
    path = Path(row.get("path") or folder / litert_file_name(row["variant"].split()[-1]))
    size = row.get("image_size") or cfg.load_config(str(folder / "config.yaml"), []).data.image_size
    return {**row, "path": str(path), "image_size": list(size),
            "activation_peak_bytes": activation_peak(path.read_bytes()).peak_bytes}


def device_fit(rows, threads) -> str:
    """Which LiteRT variant fits which device class, from measured bytes and memory."""
    header = ["model", "variant", "file KB", "activation peak KB (arena lower bound)",
              f"interpreter peak MB x{max(threads)}"] + [d[0] for d in DEVICES]
    body = []
    for r in rows:
        if not r["variant"].startswith("LiteRT"):
            continue
        interpreter = r.get(f"mb_{max(threads)}")
        cells = [r["model"], r["variant"], f"{r['bytes'] / 1024:,.0f}",
                 f"{r['activation_peak_bytes'] / 1024:,.0f}",
                 "-" if interpreter is None else f"{interpreter:.1f}"]
        for _, flash, ram, how in DEVICES:
            memory = (r["activation_peak_bytes"] if how == "arena"
                      else (interpreter or math.inf) * 2 ** 20)
            if r["bytes"] <= flash and memory <= ram:
                cells.append("fits")
            elif r["bytes"] > flash:
                cells.append(f"no: file {r['bytes'] / flash:.1f}x the flash")
            else:  # activations scale with the pixel count: the side that would fit
                side = int(r["image_size"][0] * math.sqrt(ram / memory)) // 8 * 8
                cells.append(f"no: memory {memory / ram:.1f}x; fits at {side}x{side} input"
                             if how == "arena" and side >= 8 else f"no: memory {memory / ram:.1f}x")
        body.append(cells)
    return markdown_table(header, body)
