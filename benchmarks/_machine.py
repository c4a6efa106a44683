"""What machine a benchmark ran on: the header line every benchmark table starts with.

A speed figure holds for the machine it was measured on. oneDNN's kernels, and so
TensorFlow's CPU speed, depend on the instruction sets the CPU offers (AVX2, AVX-512,
AVX-512 BF16, AMX), on whether oneDNN is on, on the thread counts and on what else
the machine was doing; :func:`machine_header` states all of them, so a reader can tell
whether a table applies to their machine.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# The CPU flags that change which oneDNN kernels TensorFlow runs (Linux /proc/cpuinfo names).
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8")


def cpu_model_and_flags() -> tuple[str, list]:
    """``(model name, [ISA flags of ISA_FLAGS present])`` from ``/proc/cpuinfo``.

    Elsewhere (no ``/proc/cpuinfo``): ``(platform.processor() or machine(), [])``.
    """
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        return platform.processor() or platform.machine(), []
    model, flags = platform.machine(), set()
    for line in path.read_text(errors="replace").splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == platform.machine():
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, [flag for flag in ISA_FLAGS if flag in flags]


def onednn_state() -> str:
    """Whether TensorFlow's oneDNN CPU kernels are on, and why (the environment or the default).

    TensorFlow >= 2.9 turns them on by default on x86 Linux; ``TF_ENABLE_ONEDNN_OPTS=0``
    turns them off (TensorFlow's own message at start-up says the same).
    ``ONEDNN_MAX_CPU_ISA`` (e.g. ``AVX2``), when set, is named too.
    """
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is None:
        default_on = platform.system() == "Linux" and platform.machine() in ("x86_64", "AMD64")
        state = "on (default)" if default_on else "off (default off this platform)"
    else:
        state = ("off" if value.strip() in ("0", "false", "False") else "on") + \
            f" (TF_ENABLE_ONEDNN_OPTS={value})"
    # oneDNN's own cap on the instruction sets its kernels dispatch to: AVX2 on an
    # AVX-512 CPU stands in for an AVX2-only one (oneDNN's documented runtime control).
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA")
    return state + (f", kernels capped at {cap} (ONEDNN_MAX_CPU_ISA)" if cap else "")


def machine_header() -> str:
    """One line: CPU model, cores usable, ISA flags, oneDNN, TF threads, load, GPU.

    The load average is read when called: a figure above the cores' count means other
    work shared the machine while the benchmark started.
    """
    import tensorflow as tf  # late: the benchmarks set TensorFlow's environment first

    model, flags = cpu_model_and_flags()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    intra = tf.config.threading.get_intra_op_parallelism_threads() or "all"
    inter = tf.config.threading.get_inter_op_parallelism_threads() or "all"
    load = ", ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "?"
    gpus = tf.config.list_physical_devices("GPU")
    gpu = "none"
    if gpus:
        gpu = tf.config.experimental.get_device_details(gpus[0]).get("device_name",
                                                                    gpus[0].name)
    return (f"Machine: CPU {model}, {cores} cores usable, ISA {' '.join(flags) or 'unknown'}; "
            f"oneDNN {onednn_state()}; TF threads intra {intra} / inter {inter}; "
            f"load average (1/5/15 min) {load}; GPU {gpu}; TF {tf.__version__}, "
            f"Python {platform.python_version()}")
