"""Test Dice against parameters: the frontier of tied and untied U-Nets on real data.

    SEGTIE_MANUAL_DIR=../shared/data nice -n 19 python benchmarks/bench_frontier.py \
        [--config kvasir_seg] [--budgets 15000 50000 120000 250000 500000] \
        [--families plain tied tied3 tied_levels untied tied_norms bank3 levels_bank basis
                    basis_ortho peer_unet peer_r2_unet] \
        [--set train.epochs=24 ...] \
        [--out runs/frontier] [--table-only]

Every point is one family at one parameter budget: the recipe (``--config``) with
``model.param_budget`` set, so :func:`segtie.nn.build_model` picks the widest base
width whose weights fit (:mod:`segtie.nn.budget`), and the family's overrides:

- ``plain``: ``num_iterations: 1``, the U-Net double convolution (untied);
- ``tied``: the recipe's tied block, ``num_iterations: 2`` (one 3x3 kernel used twice);
- ``tied3``: ``num_iterations: 3`` (three uses, the same parameters as ``tied``);
- ``tied_levels``: ``tie_levels`` + ``tie_decoder`` + ``level_projection`` with one
  width at every level (``width_multiplier: 1``): one encoder and one decoder block
  for all levels, so the same budget buys a much wider kernel;
- ``untied``: ``tied``'s graph with one kernel per use (``model.tied: false``): the
  same depth and FLOPs, so at a budget it is narrower than ``tied``;
- ``tied_norms``: ``tied`` with ``norm_per_iteration``: each use of the tied kernel
  has its own normalisation scale and offset (a per-use affine, FiLM-like, on the
  normalisation; 2F weights per extra use);
- ``bank3``: ``num_iterations: 3`` with ``num_templates: 2``: each block's three
  uses mix their kernels from a bank of two templates (Savarese & Maire 2019), the
  point between ``tied3`` (one kernel) and three untied kernels. (A bank of two
  for two uses would be the untied block reparametrised, and a bank of one is the
  tied block: a scale per use is undone by the instance norm that follows it.)
- ``levels_bank``: ``tied_levels`` with ``num_templates: 3``: one bank of three
  templates for the encoder's ``depth x 2`` uses and one for the decoder's,
  Savarese's setting (a bank shared by the layers of a stage); at a budget it is
  narrower than ``tied_levels`` (three kernels' weights instead of one) but every
  level and iteration gets its own kernel.
- ``basis``: ``tied_levels`` with a shared filter basis (Kang et al. 2020):
  ``basis_ratio: 0.25``, ``basis_unique: 1``: every use (level and iteration) mixes
  the encoder's (decoder's) one basis of a quarter of the width plus one filter of
  its own with its own 1x1 coefficients. A ratio, not a fixed ``basis_size``,
  because the budget picks the width: the basis stays a quarter of it at every
  budget (kvasir_seg, depth 4: widths 17, 33, 53, 77, 110 and bases of 4, 8, 13,
  19, 28 at the five budgets, against tied_levels' 17, 31, 49, 71, 100). Like
  ``levels_bank`` every use gets its own kernel, but the basis's weights are linear
  in the width, so it is wider than ``tied_levels``, and it keeps its tying in
  LiteRT files.
- ``basis_ortho``: ``basis`` trained with Kang et al.'s orthogonality regulariser
  (``model.basis_orthogonality: 10``, the weight of their published runs): the same
  model and parameters, only the loss differs.
- ``peer_unet``, ``peer_r2_unet``: keras-unet-collection's U-Net and R2U-Net (a new
  kernel per recurrent step, 2 steps), at the widest base width whose parameters fit
  the budget (``_frontier_peers.peer_width``), trained by the same ``train``.

Every point is trained the same way (the recipe's pipeline, loss, optimizer,
schedule, seed, image size and epochs; ``train.max_minutes`` off) by
``segtie.training.train`` and its best checkpoint is scored on the test split at the
original resolution by ``segtie.evaluation.run_evaluation`` (``bench_kvasir.run_model``):
test Dice mean and its bootstrap 95% interval (the recipe's ``eval`` group; on DRIVE
the Dice is the F1 in the field of view, with AUC), parameters, ``.keras`` bytes,
forward FLOPs per image and training minutes.

Nothing is trained twice: each point's training run in MLflow (experiment
``frontier-<dataset>``) is tagged ``segtie.frontier_point`` with a key of the
dataset, family, budget and a digest of the whole config, and holds the point's row
(``frontier_row.json``); a point whose key has a FINISHED run is read back, not
retrained. The table is printed, the plot (Dice against parameters, log axis, one
line per family) saved to ``<out>/<dataset>_frontier.png``, and both logged to a run
``frontier table`` in the same experiment.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_kvasir  # noqa: E402
from _frontier_peers import PEER_FAMILIES, peer_width  # noqa: E402
from _frontier_report import plot, table  # noqa: E402
from _common import conv_profile  # noqa: E402
from _machine import machine_header  # noqa: E402
from segtie import config as cfg  # noqa: E402
from segtie.nn import base_width  # noqa: E402
from segtie.tracking import resolve_tracking_uri  # noqa: E402
from segtie.training.resources import model_file_bytes  # noqa: E402

FAMILIES = {
    "plain": ["model.num_iterations=1"],
    "tied": ["model.num_iterations=2"],
    "tied3": ["model.num_iterations=3"],
    "tied_levels": ["model.num_iterations=2", "model.tie_levels=true",
                    "model.tie_decoder=true", "model.level_projection=true",
                    "model.width_multiplier=1"],
    "untied": ["model.num_iterations=2", "model.tied=false"],
    "tied_norms": ["model.num_iterations=2", "model.norm_per_iteration=true"],
    "bank3": ["model.num_iterations=3", "model.num_templates=2"],
    "levels_bank": ["model.num_iterations=2", "model.tie_levels=true",
                    "model.tie_decoder=true", "model.level_projection=true",
                    "model.width_multiplier=1", "model.num_templates=3"],
    "basis": ["model.num_iterations=2", "model.tie_levels=true", "model.tie_decoder=true",
              "model.level_projection=true", "model.width_multiplier=1",
              "model.basis_ratio=0.25", "model.basis_unique=1"],
}
# Kang et al.'s full recipe: the basis above with their orthogonality regulariser
# (lambda 10 on the mean similarity, the weight of their code's CIFAR/ImageNet runs).
FAMILIES["basis_ortho"] = FAMILIES["basis"] + ["model.basis_orthogonality=10"]
# The peers (keras-unet-collection, `pip install -e '.[bench]'`), sized in point_config.
FAMILIES.update({family: [f"model.num_iterations={n}"]
                 for family, (_, n) in PEER_FAMILIES.items()})
BUDGETS = (15_000, 50_000, 120_000, 250_000, 500_000)
POINT_TAG = "segtie.frontier_point"
ROW_FILE = "frontier_row.json"
PLACES = ("train.output_dir", "eval.output_dir", "tracking.experiment")


def point_config(args, family: str, budget: int) -> cfg.Config:
    """The recipe with the family's overrides, the budget, equal epochs and output folders."""
    base = cfg.load_config(args.config, bench_kvasir.EQUAL_EPOCHS + args.overrides)
    folder = Path(args.out) / base.data.name / f"{family}-{budget}"
    size = [f"model.param_budget={budget}"]
    if family in PEER_FAMILIES:  # segtie's budget sizes segtie models: count the peer's
        peer = cfg.load_config(args.config, bench_kvasir.EQUAL_EPOCHS + args.overrides
                               + FAMILIES[family])
        size = [f"model.base_filters={peer_width(PEER_FAMILIES[family][0], peer, budget)}"]
    return cfg.load_config(args.config, bench_kvasir.EQUAL_EPOCHS + args.overrides
                           + FAMILIES[family] + size + [f"train.output_dir={folder / 'train'}",
                                                 f"eval.output_dir={folder / 'eval'}",
                                                 f"tracking.experiment=frontier-{base.data.name}"])


def point_key(config: cfg.Config, family: str, budget: int) -> str:
    """``<dataset>/<family>/<budget>/<digest of the config values that are not defaults>``.

    Only values that differ from segtie's defaults count (and never the output
    places), so a config key added later with a default does not make every recorded
    point look new: it trains the same model. (The first frontier run of 2026-12-02
    retrained its points after such keys were added; this rule came from that.)
    """
    defaults = cfg.flatten(cfg.from_dict({}))
    values = {k: v for k, v in cfg.flatten(config).items()
              if k not in PLACES and (k not in defaults or defaults[k] != v)}
    digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode())
    return f"{config.data.name}/{family}/{budget}/{digest.hexdigest()[:12]}"


def _client(config: cfg.Config):
    import mlflow

    uri = resolve_tracking_uri(config.tracking.tracking_uri)
    return mlflow.MlflowClient(uri), uri


def recorded_row(config: cfg.Config, key: str):
    """The row of a FINISHED training run tagged ``key``, or ``None``."""
    import mlflow

    client, uri = _client(config)
    experiment = client.get_experiment_by_name(config.tracking.experiment)
    if experiment is None:
        return None
    runs = client.search_runs([experiment.experiment_id],
                              f"tags.`{POINT_TAG}` = '{key}' and attributes.status = 'FINISHED'",
                              max_results=1, order_by=["attributes.start_time DESC"])
    if not runs:
        return None
    mlflow.set_tracking_uri(uri)
    return json.loads(mlflow.artifacts.load_text(f"runs:/{runs[0].info.run_id}/{ROW_FILE}"))


def train_point(config: cfg.Config, family: str, budget: int, key: str) -> dict:
    """Train and score one point; its row, recorded on its MLflow training run."""
    import keras

    model_key = PEER_FAMILIES.get(family, ("tied",))[0]
    keras.utils.set_random_seed(config.train.seed)
    model, _ = bench_kvasir.build(model_key, config)
    inference = getattr(model, "inference_model", model)
    extra = {"family": family, "budget": budget, "point": key,
             "flops_per_image": conv_profile(inference, config.data.image_size)["flops_per_image"],
             "keras_bytes": model_file_bytes(inference),
             "base_filters": (config.model.base_filters if family in PEER_FAMILIES
                              else base_width(inference))}
    del model, inference
    row = {**bench_kvasir.run_model(model_key, config, 0), **extra}
    row["key"] = family
    if "error" not in row and row.get("mlflow_train_run_id"):
        client, _ = _client(config)
        client.log_text(row["mlflow_train_run_id"], json.dumps(row, indent=2), ROW_FILE)
        client.set_tag(row["mlflow_train_run_id"], POINT_TAG, key)
    return row


def log_table(config: cfg.Config, text: str, png: Path) -> None:
    """A run ``frontier table`` holding the table and the plot."""
    import mlflow

    _, uri = _client(config)
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(config.tracking.experiment)
    with mlflow.start_run(run_name="frontier table", tags={"segtie.kind": "frontier"}):
        mlflow.log_text(text, "frontier.md")
        if png.is_file():
            mlflow.log_artifact(str(png))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="kvasir_seg", help="recipe name or YAML")
    parser.add_argument("--budgets", type=int, nargs="+", default=list(BUDGETS))
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=list(FAMILIES))
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="GROUP.KEY=VALUE")
    parser.add_argument("--out", default="runs/frontier")
    parser.add_argument("--table-only", action="store_true",
                        help="print what MLflow holds for these points; train nothing")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    print(machine_header(), flush=True)
    try:  # every config first: a bad --set or budget fails before hours of training
        points = [(f, b, point_config(args, f, b)) for b in args.budgets for f in args.families]
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    rows = []
    for family, budget, config in points:
        key = point_key(config, family, budget)
        row = recorded_row(config, key)
        if row is not None:
            row["reused"] = True
        elif not args.table_only:
            start = time.monotonic()
            print(f"\n== {key}: training ({time.strftime('%H:%M:%S')})", flush=True)
            row = train_point(config, family, budget, key)
            print(f"== {key}: {row.get('test_dice_mean')} test Dice, "
                  f"{(time.monotonic() - start) / 60:.1f} min, {row.get('error', 'ok')}",
                  flush=True)
        if row is not None:
            rows.append(row)
    if not rows:
        print("No point trained or recorded yet.")
        return 0
    config = points[0][2]
    text = (f"{machine_header()}\n\n{config.data.name}, test split at original resolution, "
            f"equal epochs ({config.train.epochs}), image {config.data.image_size}\n\n"
            f"{table(rows)}\n")
    print("\n" + text)
    png = plot(rows, config.data.name, Path(args.out) / f"{config.data.name}_frontier.png",
               list(FAMILIES))
    print(f"plot: {png}")
    log_table(config, text, png)
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())
