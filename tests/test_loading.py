"""Every tying scheme's checkpoint loads, and predicts the same, in a fresh process.

One pytest process has imported every module of segtie, so a class that nothing
registers would still load here. So each scheme's model is built as training builds
it (:func:`segtie.nn.build_model` under :func:`segtie.training.dtype_policy`, the
training wrapper, compiled with training's loss and metric, saved by the wrapper's
``save`` as :class:`segtie.training.BestCheckpoint` saves it) into a run folder with
its ``config.yaml`` beside ``best.keras``, as :func:`segtie.training.train` leaves
it. Then one fresh Python process, which imports only what a user's code imports,
loads every checkpoint twice:

1. after ``import segtie`` alone, with ``keras.saving.load_model`` (the package's
   promise: importing it registers every class; ``segtie.training`` and
   ``segtie.cli``, whose imports would register them as a side effect, are checked to
   be absent);
2. then through what ``segtie evaluate`` calls: ``segtie.training.checkpoints``'s
   ``resolve_config``, ``load_checkpoint`` and ``check_compatible``.

Both predictions must equal this process's prediction bit for bit: the same graph
with the same weights runs the same kernels on the same machine and thread count, so
any difference means a weight, a moving statistic, a dtype policy or a config value
was lost. The weights are perturbed before saving so that none is at its initial
value (a variable that loading re-initialised would otherwise go unnoticed).
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import segtie
from segtie import config as cfg
from segtie.losses import DiceCELoss
from segtie.metrics.validation import DiceMetric
from segtie.nn import build_model, build_training_model, check_model
from segtie.training import dtype_policy, make_optimizer

SIZE = 16
MODEL = {"base_filters": 4, "depth": 3}
LABEL_MAP = {0: 0, 100: 1, 200: 2}
SCHEMES = {  # name: (model keys, data keys, train keys)
    "plain": ({"num_iterations": 1, "norm": "batch"}, {}, {}),
    "num_iterations": ({"num_iterations": 3}, {}, {}),
    "tie_levels+tie_decoder": ({"tie_levels": True, "tie_decoder": True, "width_multiplier": 1,
                                "level_projection": True}, {}, {}),
    "num_recurrences": ({"num_recurrences": 2}, {}, {}),
    "recompute": ({"recompute": True}, {}, {}),
    "norm: batch": ({"norm": "batch", "norm_per_iteration": True}, {}, {}),
    "multi-class": ({"num_classes": 3}, {"name": "folder", "folder": "my-images",
                                         "label_map": LABEL_MAP}, {}),
    "mixed_bfloat16": ({"num_recurrences": 2}, {}, {"precision": "mixed_bfloat16"}),
    "num_templates": ({"num_templates": 3, "tie_levels": True, "tie_decoder": True,
                       "width_multiplier": 1, "level_projection": True}, {}, {}),
    "num_templates, mixed_bfloat16": ({"num_templates": 2}, {},
                                      {"precision": "mixed_bfloat16"}),
    "basis_size": ({"basis_size": 2, "basis_unique": 1, "tie_levels": True, "tie_decoder": True,
                    "width_multiplier": 1, "level_projection": True,
                    "basis_orthogonality": 10.0}, {}, {}),
    "basis_ratio, mixed_bfloat16": ({"basis_ratio": 0.5}, {}, {"precision": "mixed_bfloat16"}),
    "3-D": ({"spatial_dims": 3, "in_channels": 1, "num_classes": 3, "num_recurrences": 2,
             "tie_levels": True, "width_multiplier": 1, "level_projection": True},
            {"name": "hippocampus", "skip_invalid": True, "image_size": [SIZE] * 3}, {}),
}


def scheme_input(config) -> np.ndarray:
    """The input of a scheme's model: 2 images, or 2 single-channel volumes for 3-D."""
    spatial = (SIZE,) * config.model.spatial_dims
    return np.random.default_rng(0).random((2, *spatial, config.model.in_channels),
                                           dtype=np.float32)

# Runs in the fresh process: argv[1] is a JSON list of cases, argv[2] the report file.
FRESH = r"""
import json, sys
cases, report_path = json.loads(sys.argv[1]), sys.argv[2]
imported_first = sorted(m for m in sys.modules if m.split(".")[0] in ("segtie", "keras"))
import segtie
import keras
import numpy as np

def segtie_modules():
    return sorted(m for m in sys.modules if m == "segtie" or m.startswith("segtie."))

def explain(err):  # the error and its causes: Keras wraps "Could not locate class ..."
    parts = []
    while err is not None and len(parts) < 4:
        text = str(err)
        parts.append(f"{type(err).__name__}: {text[:300]}"
                     + (" ... " + text[text.rfind("Exception encountered"):][:300]
                        if "Exception encountered" in text else ""))
        err = err.__cause__ or err.__context__
    return " <- ".join(parts)

def describe(model):
    return {"unique_variables": len({id(v) for v in model.weights}),
            "params": model.count_params(),
            "policies": {l.name: l.dtype_policy.name for l in model.layers
                         if not isinstance(l, keras.layers.InputLayer)},
            "output_dtype": model.outputs[0].dtype}

report = {"imported_first": imported_first, "after_import_segtie": segtie_modules(),
          "test_modules": sorted({"tying", "harness", "conftest"} & set(sys.modules)),
          "cases": {}}
for case in cases:
    entry = report["cases"][case["name"]] = {}
    x = np.load(case["input"])
    try:
        model = keras.saving.load_model(case["checkpoint"], safe_mode=True)
        np.save(case["out_package"], keras.ops.convert_to_numpy(model(x, training=False)))
        entry["package"] = describe(model)
    except Exception as err:
        entry["package_error"] = explain(err)
report["after_package_loads"] = segtie_modules()

from segtie import config as cfg
from segtie.training import checkpoints
for case in cases:
    entry = report["cases"][case["name"]]
    x = np.load(case["input"])
    try:
        config = checkpoints.resolve_config(case["checkpoint"], None, [])
        model = checkpoints.load_checkpoint(case["checkpoint"])
        checkpoints.check_compatible(model, config.model, case["checkpoint"])
        np.save(case["out_command"], model.predict_on_batch(x))  # as segtie.inference
        entry["command"] = describe(model)
        entry["config"] = json.loads(json.dumps(cfg.to_dict(config)))
    except Exception as err:
        entry["command_error"] = explain(err)
with open(report_path, "w") as f:
    json.dump(report, f)
"""


def scheme_config(name: str, root: Path) -> cfg.Config:
    model, data, train = SCHEMES[name]
    return cfg.from_dict({
        "data": {"image_size": [SIZE, SIZE], "batch_size": 2, **data},
        "model": {**MODEL, **model},
        "train": {"epochs": 1, "output_dir": str(root), **train},
        "tracking": {"enabled": False},
    })


def perturb(model, seed: int) -> None:
    """Move every variable (moving statistics too) away from its initial value."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        value = np.asarray(v.numpy(), "float32")
        v.assign((value * rng.uniform(0.5, 1.5, value.shape)
                  + rng.normal(0.0, 0.05, value.shape)).astype("float32"))


def save_run(name: str, root: Path, seed: int) -> tuple:
    """Build, compile and save ``name`` as training does; returns (checkpoint, model)."""
    config = scheme_config(name, root)
    check_model(config.model)  # as train() does first: a scheme training would refuse
    with dtype_policy(config.train.precision):
        model = build_model(config.model, config.data.image_size, config.data.batch_size)
        trainer = build_training_model(model, config.model)
    trainer.compile(optimizer=make_optimizer(config.train, 1),
                    loss=DiceCELoss(config.train.dice_weight, config.train.bce_weight),
                    metrics=[DiceMetric(threshold=config.eval.threshold)])
    perturb(model, seed)
    run_dir = root / f"{config.data.name}-{seed:02d}"
    run_dir.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(cfg.dump_yaml(config))
    checkpoint = run_dir / "best.keras"
    trainer.save(checkpoint)  # what BestCheckpoint does: the inference model
    return config, checkpoint, model


def describe(model) -> dict:
    return {"unique_variables": len({id(v) for v in model.weights}),
            "params": model.count_params(),
            "policies": {layer.name: layer.dtype_policy.name for layer in model.layers
                         if not isinstance(layer, keras.layers.InputLayer)},
            "output_dtype": model.outputs[0].dtype}


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """Save every scheme, then load them all in one fresh process; returns the results."""
    root = tmp_path_factory.mktemp("loading")
    cases, local = [], {}
    for seed, name in enumerate(SCHEMES):
        config, checkpoint, model = save_run(name, root / "runs", seed)
        x = scheme_input(config)
        np.save(root / f"input-{seed}.npy", x)
        out = root / f"out-{seed}"
        cases.append({"name": name, "checkpoint": str(checkpoint),
                      "input": str(root / f"input-{seed}.npy"),
                      "out_package": f"{out}-package.npy", "out_command": f"{out}-command.npy"})
        want = {"package": keras.ops.convert_to_numpy(model(x, training=False)),
                "command": model.predict_on_batch(x)}
        local[name] = (config, want, describe(model))
    report_path = root / "report.json"
    env = {**os.environ, "PYTHONPATH": str(Path(segtie.__file__).parents[1])}
    done = subprocess.run([sys.executable, "-c", FRESH, json.dumps(cases), str(report_path)],
                          cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    return report, {c["name"]: c for c in cases}, local


def test_the_fresh_process_imported_only_the_package_before_loading(fresh):
    report, _, _ = fresh
    assert report["imported_first"] == []  # really fresh: nothing of segtie or keras yet
    assert report["test_modules"] == []
    registering = [m for m in report["after_import_segtie"]
                   if m.startswith(("segtie.training", "segtie.cli", "segtie.tracking"))]
    assert registering == [], "`import segtie` must register the classes by itself"
    # Loading needed no further import: Keras found every class already registered.
    assert report["after_package_loads"] == report["after_import_segtie"]


@pytest.mark.parametrize("name", list(SCHEMES))
def test_checkpoint_loads_in_a_fresh_process_with_identical_outputs(fresh, name):
    report, cases, local = fresh
    entry, case = report["cases"][name], cases[name]
    config, want, layout = local[name]
    assert "package_error" not in entry, entry["package_error"]
    assert "command_error" not in entry, entry["command_error"]
    for how in ("package", "command"):
        got = np.load(case[f"out_{how}"])
        assert got.dtype == np.float32 and got.shape == want[how].shape
        np.testing.assert_array_equal(got, want[how], err_msg=f"{name}, loaded via {how}")
        assert entry[how] == layout  # same tied variables, parameters and dtype policies
    # The command read the run folder's own config (not the default recipe).
    assert entry["config"] == json.loads(json.dumps(cfg.to_dict(config)))
    assert want["command"].shape == ((2,) + (SIZE,) * config.model.spatial_dims
                                     + (config.model.num_classes,))
    assert np.std(want["command"]) > 1e-3  # a constant output would prove little


def test_the_schemes_differ_where_they_should(fresh):
    """The cases are the schemes they are named after (tying shows in the layout)."""
    _, _, local = fresh
    layout = {name: described for name, (_, _, described) in local.items()}
    assert layout["mixed_bfloat16"]["policies"]["encoder_0"] == "mixed_bfloat16"
    assert layout["mixed_bfloat16"]["output_dtype"] == "float32"  # logits stay float32
    assert layout["num_recurrences"]["policies"]["bottleneck_gru"] == "float32"
    assert "encoder" in layout["tie_levels+tie_decoder"]["policies"]  # one shared block
    assert "encoder_0" not in layout["tie_levels+tie_decoder"]["policies"]
    assert local["multi-class"][1]["command"].shape[-1] == 3
    assert local["3-D"][1]["command"].ndim == 5  # (batch, D, H, W, classes)
    # num_iterations ties one kernel: the same parameters as two iterations.
    assert layout["num_iterations"]["params"] == layout["recompute"]["params"]
    # One bank for every level: one templates variable, shared.
    assert "encoder" in layout["num_templates"]["policies"]
    assert layout["num_templates, mixed_bfloat16"]["policies"]["encoder_0"] == "mixed_bfloat16"
    # One filter basis for every level (Kang's setting); a ratio gives each block its own.
    assert "encoder" in layout["basis_size"]["policies"]
    assert layout["basis_ratio, mixed_bfloat16"]["policies"]["encoder_1"] == "mixed_bfloat16"
