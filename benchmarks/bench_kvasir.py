"""Tied vs. untied vs. peer U-Nets trained on real Kvasir-SEG at equal epochs.

    pip install -e '.[bench]'                  # keras-unet-collection, for the peer_* models
    SEGTIE_MANUAL_DIR=../shared/data nice -n 19 python benchmarks/bench_kvasir.py \
        --models tied untied peer_r2_unet --results runs/bench_kvasir.jsonl \
        [--config configs/kvasir_seg.yaml] [--set train.epochs=24 ...] \
        [--const-width 32] [--const-depth 5] [--in-process] [--seeds 42 7 123]
    python benchmarks/bench_kvasir.py --table-only --results runs/bench_kvasir.jsonl

Every model is trained by ``segtie.training.train`` (the same data pipeline, Dice +
cross-entropy loss, optimizer, schedule, seed, best-validation-Dice checkpoint and
MLflow run as ``segtie train``) and its best checkpoint scored on the 100 test frames by
``segtie.evaluation.run_evaluation`` (what ``segtie evaluate`` does: original resolution, the
config's ``eval`` group, an MLflow evaluation run). The comparison is at equal
epochs: ``train.max_minutes`` is switched off (``--set train.max_minutes=28`` turns
the cap back on). Models (binary, RGB in, logits out):

- ``tied``: the config's model (default: widths 16-128, ``num_iterations: 2``);
- ``tied_no_bias``: the same with ``model.conv_bias: false`` (the block
  convolutions' biases, which their norms cancel, dropped);
- ``untied``: the same graph with ``model.tied: false``, one kernel per use;
- ``plain``: ``num_iterations: 1``, the U-Net double convolution;
- ``tied_levels``: width ``--const-width`` at all ``--const-depth`` levels, one
  encoder and one decoder block for every level (``tie_levels``, ``tie_decoder``,
  ``level_projection``), the config's ``num_iterations``; ``plain_const``: the plain
  U-Net of that constant width and depth. This pair answers "tied with at most 25%
  of the parameters of the equal-width plain U-Net, test Dice within 0.01";
- ``peer_r2_unet`` / ``peer_unet``: keras-unet-collection's ``r2_unet_2d``
  (``recur_num = num_iterations - 1``, one recurrent layer per block) and ``unet_2d``
  (two convolutions per block) at the config's widths, built by
  ``bench_tying.peer_builders``; they use batch norm, their only normalization.

``tied``, ``tied_no_bias``, ``untied``, ``plain``, ``tied_levels`` and ``plain_const`` are config
overrides, so ``train(config)`` builds them as ``segtie train`` would and the run's
``config.yaml`` describes them; the peers are built here (after seeding with
``train.seed``) and trained by ``train(config, model=...)``. Before training, each
model's ``.keras`` file must load back with ``keras.saving.load_model(safe_mode=True)``
(training reloads its best checkpoint that way); if not, its row says so.

Time to accuracy (issue 15): every row also gives the epochs and the training
minutes (the sum of the per-epoch ``epoch_seconds`` of the run's journal, validation
included, as a user waits for it) until the validation Dice first reached
``--target-dice`` (default 0.75), and the ratio of the peer R2U-Net's minutes to
each model's. ``--set train.target_val_dice=0.75`` ends each run there, saving
the remaining epochs (the test Dice is then that of the early checkpoint). The epoch
of the crossing moves with the seed by two or more epochs, so ``--seeds 42 7 123``
trains every model once per seed (``train.seed``: weights, data order and
augmentation), and the table gives each seed's ratio (peer and model of the same
seed) and the median over seeds.

Each model runs in its own child process (``--in-process``: all in this one), so
its peak RSS (``ru_maxrss``) is its own. One JSON line per model is appended to
``--results``; the Markdown table of every line in that file is printed at the end,
so models run in separate invocations share one table. Run folders go to
``<train.output_dir>/bench_kvasir/<model>/`` and evaluation reports to
``<eval.output_dir>/bench_kvasir/<model>/`` (``runs/`` by default, not in git).
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow loads: no C++ info

import keras  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_tying  # noqa: E402
from _common import ROOT, conv_profile  # noqa: E402
from _kvasir_report import append_row, print_table, read_rows, time_to_target  # noqa: E402
from segtie.evaluation import run_evaluation  # noqa: E402
from segtie.training import checkpoints  # noqa: E402
from segtie import config as cfg  # noqa: E402
from segtie.nn import build_model  # noqa: E402
from segtie.nn.profile import MEGABYTE  # noqa: E402
from segtie.nn.unet import level_widths  # noqa: E402
from segtie.data.pipeline import build_eval_dataset  # noqa: E402
from segtie.training import train  # noqa: E402

KEYS = ("tied", "tied_no_bias", "untied", "plain", "tied_levels", "plain_const", "peer_r2_unet",
        "peer_unet")
PEERS = {"peer_r2_unet": "peer r2_unet_2d", "peer_unet": "peer unet_2d"}
EQUAL_EPOCHS = ["train.max_minutes=null"]  # before the user's --set, which may undo it


def key_overrides(key: str, args) -> list:
    """Config overrides that make the config's model the model ``key``."""
    const = [f"model.base_filters={args.const_width}", f"model.depth={args.const_depth}",
             "model.width_multiplier=1"]
    return {"plain": ["model.num_iterations=1"], "untied": ["model.tied=false"],
            "tied_no_bias": ["model.conv_bias=false"],
            "tied_levels": const + ["model.tie_levels=true", "model.tie_decoder=true",
                                    "model.level_projection=true"],
            "plain_const": const + ["model.num_iterations=1", "model.tie_levels=false",
                                    "model.tie_decoder=false"]}.get(key, [])


def load_key_config(key: str, args) -> cfg.Config:
    """The config of ``key``: file, equal epochs, ``--set``, the model, output folders."""
    overrides = EQUAL_EPOCHS + args.overrides
    base = cfg.load_config(args.config, overrides)
    where = [f"train.output_dir={Path(base.train.output_dir) / 'bench_kvasir' / key}",
             f"eval.output_dir={Path(base.eval.output_dir) / 'bench_kvasir' / key}"]
    return cfg.load_config(args.config, overrides + key_overrides(key, args) + where)


def _peer(key: str, config: cfg.Config):
    """``(name, builder)`` of a keras-unet-collection model at the config's widths."""
    m = config.model
    if (m.width_multiplier, m.in_channels, m.num_classes) != (2, 3, 1):
        raise ValueError(f"The peers are binary RGB models whose widths double per level: "
                         f"model.width_multiplier, in_channels, num_classes must be 2, 3, "
                         f"1, received {m.width_multiplier}, {m.in_channels}, {m.num_classes}")
    spec = argparse.Namespace(base_filters=m.base_filters, depth=m.depth, image_size=None,
                              num_iterations=m.num_iterations, peer_recur_num=None,
                              peer_stack_num=1)
    return next((name, build) for name, build in bench_tying.peer_builders(spec).items()
                if name.startswith(PEERS[key]))


def describe(key: str, config: cfg.Config) -> str:
    """One line saying what the model ``key`` of ``config`` is."""
    m = config.model
    widths = level_widths(m.base_filters, m.width_multiplier, m.depth)
    if key in PEERS:
        return f"{_peer(key, config)[0]}, widths {widths}, batch norm"
    what = {"tied": f"segtie as configured, {m.num_iterations} uses per tied kernel",
            "tied_no_bias": f"segtie as configured, conv_bias: false, {m.num_iterations} uses "
                            f"per tied kernel",
            "untied": "segtie tied: false, the tied graph with a separate kernel per use",
            "plain": "segtie plain U-Net (num_iterations=1)",
            "tied_levels": f"segtie tie_levels+tie_decoder, {m.num_iterations} uses per "
                           f"tied kernel",
            "plain_const": "segtie plain U-Net (num_iterations=1)"}[key]
    return f"{what}, widths {widths}, {m.norm} norm"


def build(key: str, config: cfg.Config):
    """``(model, supplied)``: the model to train; ``supplied`` = pass it to ``train``."""
    if key in PEERS:
        return _peer(key, config)[1](), True
    return build_model(config.model, config.data.image_size, config.data.batch_size), False


def safe_mode_error(model) -> str | None:
    """Why ``model``'s ``.keras`` file does not load back in safe mode, or ``None``."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "check.keras"
        try:
            model.save(path)
            keras.saving.load_model(path, safe_mode=True)
        except Exception as error:  # noqa: BLE001 - reported in the row
            return (f"its .keras checkpoint does not load back with keras.saving."
                    f"load_model(safe_mode=True), as training's reload needs: "
                    f"{type(error).__name__}: {error}".splitlines()[0])
    return None


def _finite(value):
    return None if value is None or math.isnan(value) else float(value)


def run_model(key: str, config: cfg.Config, models_before: int,
              args_target: float = 0.75) -> dict:
    """Train and test one model; the result row (with ``error`` if it failed)."""
    row = {"key": key, "seed": config.train.seed, "description": describe(key, config),
           "started":
           time.strftime("%Y-%m-%d %H:%M:%S"), "device": bench_tying.device_description(),
           "image_size": list(config.data.image_size), "epochs": config.train.epochs,
           "models_before_in_process": models_before}
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(config.train.seed)  # as train() does before building
    try:
        model, supplied = build(key, config)
        inference = getattr(model, "inference_model", model)
        profile = conv_profile(inference, config.data.image_size)
        row.update(model_name=inference.name, params=inference.count_params(),
                   conv_kernels=profile["conv_kernels"], conv_uses=profile["conv_uses"],
                   effective_params=profile["effective_params"])
        error = safe_mode_error(inference)
        if error:
            return {**row, "error": error}
        result = train(config, model=model if supplied else None)
        row.update(epochs_run=result.epochs_run, train_seconds=result.seconds,
                   best_val_dice=_finite(result.best_val_dice),
                   mlflow_train_run_id=result.mlflow_run_id,
                   checkpoint=str(result.checkpoint), run_dir=str(result.run_dir))
        row.update(time_to_target(result.run_dir, args_target))
        row.update(score_test_split(config, str(result.checkpoint)))
    except Exception as error:  # noqa: BLE001 - one failed model is a row, not a crash
        traceback.print_exc()
        return {**row, "error": f"{type(error).__name__}: {error}".splitlines()[0]}
    row["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / MEGABYTE
    return row


def score_test_split(config: cfg.Config, checkpoint: str) -> dict:
    """Load the best checkpoint and score the test split as ``segtie evaluate`` does."""
    model = checkpoints.load_checkpoint(checkpoint, config.tracking.tracking_uri)
    checkpoints.check_compatible(model, config.model, checkpoint)
    start = time.monotonic()
    dataset = build_eval_dataset(config.data, "test")
    result = run_evaluation(model, config, dataset, "test", checkpoint)
    s = result.summary
    return {"eval_seconds": time.monotonic() - start, "test_num_cases": s["num_cases"],
            "test_dice_mean": _finite(s["dice"]["mean"]),
            "test_dice_median": _finite(s["dice"]["median"]),
            "test_iou_mean": _finite(s["iou"]["mean"]),
            "test_hd95_mean": _finite(s["hd95"]["mean"]), "hd95_units": s["hd95_units"],
            "test_dice_ci": [_finite(s["dice"].get("ci_low")), _finite(s["dice"].get("ci_high"))],
            "test_auc_mean": _finite(s["auc"]["mean"]) if "auc" in s else None,
            "mlflow_eval_run_id": result.mlflow_run_id, "eval_dir": str(result.out_dir)}


def child_command(key: str, args) -> list:
    command = [sys.executable, str(Path(__file__).resolve()), "--in-process", "--no-table",
               "--models", key, "--results", str(args.results),
               "--const-width", str(args.const_width), "--const-depth", str(args.const_depth),
               "--target-dice", str(args.target_dice)]
    if args.config:
        command += ["--config", args.config]
    for item in args.overrides:
        command += ["--set", item]
    return command


def seeded(args, seed):
    """``args`` with ``train.seed=<seed>`` after the user's ``--set`` (``None``: as is)."""
    if seed is None:
        return args
    return argparse.Namespace(**{**vars(args), "overrides": args.overrides +
                                 [f"train.seed={seed}"]})


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=KEYS, default=[])
    parser.add_argument("--results", type=Path, default=Path("runs/bench_kvasir.jsonl"),
                        help="JSON lines file the rows are appended to")
    parser.add_argument("--config", default=None, help="YAML (default configs/kvasir_seg.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="GROUP.KEY=VALUE", help="override one config value")
    parser.add_argument("--const-width", type=int, default=32,
                        help="tied_levels / plain_const: the width of every level")
    parser.add_argument("--const-depth", type=int, default=5,
                        help="tied_levels / plain_const: resolution levels")
    parser.add_argument("--target-dice", type=float, default=0.75,
                        help="time to accuracy: the validation Dice to reach")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="train every model once per seed (train.seed); default: "
                             "the config's seed")
    parser.add_argument("--in-process", action="store_true",
                        help="run every model in this process (peak RSS is then cumulative)")
    parser.add_argument("--table-only", action="store_true", help="print the table and exit")
    parser.add_argument("--no-table", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if not args.table_only and not args.models:
        parser.error("--models is required unless --table-only")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.table_only:
        print_table(args.results)
        return 0
    if any(k in PEERS for k in args.models) and not importlib.util.find_spec(
            "keras_unet_collection"):
        print("error: the peer models need keras-unet-collection: "
              f"pip install -e '{ROOT}[bench]'", file=sys.stderr)
        return 2
    runs = [(seed, key) for seed in (args.seeds or [None]) for key in args.models]
    try:  # every config up front: a bad --set fails before hours of training
        configs = {run: load_key_config(run[1], seeded(args, run[0])) for run in runs}
    except (ValueError, TypeError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    failed = False
    for index, (seed, key) in enumerate(runs):
        config = configs[seed, key]
        if args.in_process:
            row = run_model(key, config, index, args.target_dice)
            append_row(args.results, row)
        else:
            before = len(read_rows(args.results))
            code = subprocess.run(child_command(key, seeded(args, seed)),
                                  check=False).returncode
            if len(read_rows(args.results)) == before:  # it died before writing its row
                append_row(args.results, {
                    "key": key, "seed": config.train.seed,
                    "description": describe(key, config),
                    "image_size": list(config.data.image_size),
                    "epochs": config.train.epochs,
                    "error": f"child process exited with code {code} and wrote no row"})
            row = read_rows(args.results)[-1]
        failed |= "error" in row
    if not args.no_table:
        print_table(args.results)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
