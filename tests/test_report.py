"""The resource report: figures checked by hand, by the untied copy and by the CLI."""

import mmap
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import tensorflow as tf

from segtie import cli
from segtie import config as cfg
from segtie.training import resources as report
from segtie.nn import base_width, build_model, build_unet, profile

ROOT = Path(__file__).resolve().parents[1]
TINY = {"data": {"image_size": [16, 16], "batch_size": 2},
        "model": {"base_filters": 4, "depth": 2}}


def _config(**model):
    return cfg.from_dict({**TINY, "model": {**TINY["model"], **model}})


def test_flops_and_effective_parameters_by_hand():
    # depth 1: entry 3x3 (3 -> 4), the tied 3x3 (4 -> 4) used twice, head 1x1 (4 -> 1).
    model = build_unet(base_filters=4, depth=1, num_iterations=2)
    uses = profile.trace_uses(model, [8, 8])
    pixels = 8 * 8
    assert profile.conv_macs(uses) == pixels * (9 * 3 * 4 + 2 * 9 * 4 * 4 + 4 * 1)
    # The second use counts the tied kernel (9*4*4 + 4) and its shared norm (4*4) again.
    assert profile.effective_parameters(uses) == model.count_params() + (9 * 4 * 4 + 4) + 4 * 4


def test_effective_parameters_equal_the_untied_network():
    args = dict(base_filters=4, depth=3, width_multiplier=1, tie_levels=True,
                level_projection=True, tie_decoder=True, num_recurrences=2,
                norm_per_level=False)
    untied = dict(args, tied=False, tie_levels=False, tie_decoder=False,
                  tie_recurrences=False, norm_per_iteration=True, norm_per_level=True)
    untied_model = build_unet(**untied)
    tied_uses = profile.trace_uses(build_unet(**args), [16, 16])
    untied_uses = profile.trace_uses(untied_model, [16, 16])
    assert profile.effective_parameters(tied_uses) == untied_model.count_params()
    assert profile.conv_macs(tied_uses) == profile.conv_macs(untied_uses)


def test_resource_figures_and_the_effect_of_recompute():
    config = _config(tie_levels=True, width_multiplier=1, level_projection=True,
                     num_recurrences=2)
    model = build_model(config.model)
    figures = report.resource_figures(model, config, measure=False)
    assert figures["unique_params"] == model.count_params()
    assert figures["effective_params"] > figures["unique_params"]
    assert figures["model_file_bytes"] > 4 * figures["unique_params"]
    assert figures["training_step_mb_estimate"] > figures["activation_mb_estimate"] > 0
    assert all(isinstance(v, (int, float)) for v in figures.values())
    compared = report.recompute_comparison(config, base_width(model))
    assert compared[True] < compared[False]
    assert compared[False] == pytest.approx(figures["activation_mb_estimate"])


def _measured_line(out: str) -> str:
    (line,) = [ln for ln in out.splitlines() if "measured step peak" in ln]
    return line


def test_measured_step_peak_holds_the_weights_and_shrinks_with_recompute(tmp_path):
    # In a fresh process, as a user runs it: the command line asks for TensorFlow's BFC
    # CPU allocator before importing TensorFlow, so it measures on every CPU.
    config = cfg.from_dict({"data": {"image_size": [64, 64], "batch_size": 4},
                            "model": {"base_filters": 8, "depth": 3}})
    path = tmp_path / "tiny.yaml"
    path.write_text(cfg.dump_yaml(config))
    env = {k: v for k, v in os.environ.items() if k != report.BFC_ENV}
    done = subprocess.run([sys.executable, "-m", "segtie", "report", "--config", str(path)],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    line = _measured_line(done.stdout)
    off, on = (float(v) for v in re.search(
        r"recompute off ([0-9.]+) MB, on ([0-9.]+) MB", line).groups())
    model = build_model(config.model)
    weights_and_adam_slots = 3 * 4 * model.count_params() / 2 ** 20  # float32 w, m and v
    estimate = report.recompute_comparison(config, base_width(model))
    assert off > weights_and_adam_slots + estimate[False]
    assert on > weights_and_adam_slots
    # What recompute saves is activations; the rest of the peak (kernel scratch space)
    # differs from CPU to CPU, so compare the saving, not the ratio: measured 9.8 MB
    # against an estimated 5.2 MB on AMD EPYC (AVX2).
    assert off - on > 0.5 * (estimate[False] - estimate[True])
    assert "TensorFlow allocator peak on CPU:0" in line


def test_a_cpu_allocator_without_statistics_falls_back_and_says_so(monkeypatch):
    def no_statistics(device):
        raise ValueError(f"Cannot reset memory stats for device '{device}'")

    monkeypatch.setattr(tf.config.experimental, "reset_memory_stats", no_statistics)
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [])
    size = 8 * 2 ** 20
    with report.tracking_allocator_peak({}) as peak:
        # A fresh anonymous mapping, every page written: these pages cannot already be
        # resident, whereas a numpy array may reuse memory that malloc freed but kept
        # (CI measured a 44 KiB rise for np.ones of 8 MiB that way).
        grown = mmap.mmap(-1, size)
        grown.write(b"\x01" * size)
    assert sum(grown[:: 4096]) == size // 4096
    grown.close()
    assert peak["method"] in ("rss", "none")
    assert "TF_CPU_ALLOCATOR_USE_BFC=true" in peak["how"]
    if peak["method"] == "rss":  # Linux: the rise covers the 8 MiB just touched
        assert peak["bytes"] >= size


def test_the_report_command_does_not_crash_without_statistics(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(report, "measure_step_peak",
                        lambda config: (None, "not measured: no statistics"))
    path = tmp_path / "tiny.yaml"
    path.write_text(cfg.dump_yaml(_config()))
    assert cli.main(["report", "--config", str(path)]) == 0
    assert "not measured: no statistics" in _measured_line(capsys.readouterr().out)


def test_cli_prints_every_figure(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(cfg.dump_yaml(_config()))
    assert cli.main(["report", "--config", str(path), "--set", "model.num_recurrences=2",
                        "--no-measure"]) == 0
    out = capsys.readouterr().out
    for label in ("unique parameters", "effective parameters", "model file", "FLOPs per image",
                  "activation memory est.", "recompute off", "num_recurrences=2"):
        assert label in out


def test_training_memory_estimate_formula():
    # weights, gradients and two slots per weight, plus activations of 3 images
    assert profile.training_memory_bytes(10, 100, 3, optimizer_slots=2) == 4 * (40 + 300)
