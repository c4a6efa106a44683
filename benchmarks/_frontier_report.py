"""The table and the plot of ``bench_frontier.py``'s rows (one row per point)."""

from __future__ import annotations

from pathlib import Path

from _common import markdown_table


def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def table(rows: list) -> str:
    head = ["family", "budget", "params", "base width", ".keras bytes", "GFLOP/img",
            "epochs", "train min", "test Dice (95% CI)", "AUC", "note"]
    cells = []
    for r in sorted(rows, key=lambda r: (r["budget"], r["family"])):
        ci = r.get("test_dice_ci") or [None, None]
        dice = (f"{r['test_dice_mean']:.4f} [{_fmt(ci[0], '.3f')}, {_fmt(ci[1], '.3f')}]"
                if r.get("test_dice_mean") is not None else "")
        cells.append([r["family"], f"{r['budget']:,}", _fmt(r.get("params"), ","),
                      r.get("base_filters", ""), _fmt(r.get("keras_bytes"), ","),
                      _fmt(r.get("flops_per_image") and r["flops_per_image"] / 1e9, ".3f"),
                      f"{r.get('epochs_run', '-')}/{r.get('epochs', '-')}",
                      _fmt(r.get("train_seconds") and r["train_seconds"] / 60, ".1f"), dice,
                      _fmt(r.get("test_auc_mean"), ".4f"),
                      r.get("error", "") + (" (read from MLflow)" if r.get("reused") else "")])
    return markdown_table(head, cells)


def plot(rows: list, dataset: str, path: Path, families: list) -> Path:
    """Test Dice (with its interval) against unique parameters, one line per family
    (in the order of ``families``), saved as PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for family in families:
        points = sorted((r for r in rows if r["family"] == family and
                         r.get("test_dice_mean") is not None), key=lambda r: r["params"])
        if not points:
            continue
        x = [r["params"] for r in points]
        y = [r["test_dice_mean"] for r in points]
        ci = [r.get("test_dice_ci") or [None, None] for r in points]
        low = [v - (c[0] if c[0] is not None else v) for v, c in zip(y, ci)]
        high = [(c[1] if c[1] is not None else v) - v for v, c in zip(y, ci)]
        axis.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=family)
    axis.set_xscale("log")
    axis.set_xlabel("unique parameters (log)")
    axis.set_ylabel("test Dice" + (" (F1 in FOV)" if dataset == "drive" else ""))
    axis.set_title(f"{dataset}: Dice against parameters, equal epochs")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
