"""MLflow's system metrics (CPU, memory, disk, network, GPU), sampled into a journal.

MLflow's own :class:`mlflow.system_metrics.system_metrics_monitor.SystemMetricsMonitor`
(what ``mlflow.start_run(log_system_metrics=True)`` starts) samples with the
collectors below and writes to the store from its thread, and it stops at the first
store error. Training's records go to the run folder's journal first
(:mod:`segtie.training.journal`), so :class:`JournalSystemMetrics` keeps MLflow's
collectors and aggregation and hands every aggregated sample to a ``sink`` (the
recorder's ``log_metrics``) instead: the metrics survive an unreachable store and
reach MLflow with the next push. Names are MLflow's: ``system/cpu_utilization_percentage``,
``system/system_memory_usage_megabytes``, ``system/disk_usage_percentage``,
``system/network_receive_megabytes``, ... and ``system/gpu_*`` where a GPU monitor
starts (NVIDIA needs ``nvidia-ml-py``, not installed by segtie: CPU-only builds).
Steps count samples (0, 1, ...); each record's time is its wall clock.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

__all__ = ["PREFIX", "JournalSystemMetrics", "next_system_step"]

PREFIX = "system/"
logger = logging.getLogger(__name__)


def next_system_step(records: list) -> int:
    """The step after the last ``system/`` metric of journal ``records`` (0 if none)."""
    steps = [int(r.get("step", 0)) for r in records
             if any(k.startswith(PREFIX) for k in (r.get("metrics") or {}))]
    return max(steps) + 1 if steps else 0


class JournalSystemMetrics:
    """Sample system metrics every ``interval`` seconds on a daemon thread; see module doc.

    Args:
        sink: ``sink(metrics: dict, step: int)``, called from the sampling thread.
        interval: float > 0, seconds between two samples (MLflow's
            ``sampling_interval``; one sample per logged step).
        first_step: int >= 0, the step of the first sample (a resumed run continues).

    :meth:`stop` also logs the last, partial interval, so a run shorter than
    ``interval`` still gets one sample.
    """

    def __init__(self, sink: Callable[[dict, int], None], interval: float, first_step: int = 0):
        from mlflow.system_metrics.metrics.cpu_monitor import CPUMonitor
        from mlflow.system_metrics.metrics.disk_monitor import DiskMonitor
        from mlflow.system_metrics.metrics.network_monitor import NetworkMonitor
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        self.sink = sink
        self.interval = float(interval)
        self.step = int(first_step)
        self.monitors = [CPUMonitor(), DiskMonitor(), NetworkMonitor()]
        gpu = SystemMetricsMonitor._initialize_gpu_monitor(self)  # MLflow's GPU probe
        if gpu is not None:
            self.monitors.append(gpu)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="segtie-system-metrics")

    def start(self) -> "JournalSystemMetrics":
        self._thread.start()
        return self

    def _publish(self) -> None:
        metrics = {}
        for monitor in self.monitors:
            metrics.update({PREFIX + k: v for k, v in monitor.aggregate_metrics().items()})
            monitor.clear_metrics()
        if metrics:
            self.sink(metrics, self.step)
            self.step += 1

    def _loop(self) -> None:
        try:
            while True:
                for monitor in self.monitors:
                    monitor.collect_metrics()
                stopping = self._stop.wait(self.interval)
                self._publish()
                if stopping:
                    return
        except Exception as err:  # noqa: BLE001 - sampling must never stop training
            logger.warning("System metrics stopped: %s: %s", type(err).__name__, err)

    def stop(self) -> None:
        """Stop sampling and log the last interval (waits for the thread)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
