"""Distribution: the one place a ``tf.distribute`` strategy is chosen and built.

``train.distribute`` picks it:

- ``none``: TensorFlow's default strategy (one process, one device);
- ``mirrored``: :class:`tf.distribute.MirroredStrategy`, every GPU of this machine
  (one CPU replica where there is none);
- ``multi_worker``: :class:`tf.distribute.MultiWorkerMirroredStrategy`, one process
  per machine (or per local worker, :mod:`segtie.cli.launcher`), configured the
  standard way by the ``TF_CONFIG`` environment variable (:func:`segtie.training.tf_config.parse_tf_config`).

Under a strategy every variable is mirrored: a tied kernel stays one variable (one
``MirroredVariable``, one copy per local replica), and Keras all-reduces (sums) the
gradients once per step (``keras.src.backend.tensorflow.optimizer``), each replica's
mean loss scaled by ``1 / num_replicas``.

Batches: ``data.batch_size`` is the *global* batch; each of the ``R`` replicas gets
``batch_size / R`` (:func:`per_replica_batch`; not divisible is an error). The
learning rate is not changed: with the global batch kept, a step of ``R`` replicas
is the step one process takes on the same batch, so the recipe's rate holds. Users
who grow ``data.batch_size`` with the replicas scale ``train.learning_rate`` with it
themselves (the linear rule of Goyal et al., "Accurate, Large Minibatch SGD", 2017,
with ``train.warmup_epochs``).

Sharding: the pipeline is in-memory examples (TFDS records, taken, resized, cached,
then ``Dataset.range(epochs).flat_map(one epoch)``), with no file reader at its root
that FILE sharding could split, and a split lives in a single TFRecord file for
Kvasir-SEG's and DRIVE's sizes. So the policy is ``DATA``, set explicitly
(:func:`shard_by_data`): every worker computes the same seeded stream and keeps its
replicas' part of each global batch. Global batch ``k`` is then batch ``k`` of the
single-process stream, which is what makes a distributed run reproduce a single
one; the price is that each worker decodes and augments the whole stream.

Files: only the chief (worker 0, or the ``chief`` task) writes the run folder,
checkpoints and MLflow. Other workers write everything into a temporary folder of
their own (:func:`worker_folder`, Keras' multi-worker convention) deleted when
training ends.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import tensorflow as tf

from segtie.training.tf_config import TF_CONFIG, Cluster, parse_tf_config

logger = logging.getLogger(__name__)

__all__ = ["STRATEGIES", "Cluster", "Distribution", "build_distribution",
           "parse_tf_config", "per_replica_batch", "distribute_dataset", "shard_by_data", "worker_folder"]

STRATEGIES = ("none", "mirrored", "multi_worker")


def per_replica_batch(global_batch: int, num_replicas: int) -> int:
    """``data.batch_size`` split across the replicas.

    Raises:
        ValueError: ``global_batch`` is not a multiple of ``num_replicas`` (naming both).
    """
    if global_batch % num_replicas:
        raise ValueError(f"`data.batch_size` = {global_batch} (the global batch) must be "
                         f"divisible by the number of replicas, {num_replicas}; choose a "
                         f"multiple of {num_replicas}")
    return global_batch // num_replicas


def shard_by_data(dataset: tf.data.Dataset) -> tf.data.Dataset:
    """``dataset`` with auto-shard policy ``DATA`` (see the module docstring for why)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def distribute_dataset(strategy: tf.distribute.Strategy, dataset: tf.data.Dataset):
    """``dataset`` sharded by ``DATA`` and distributed, for ``model.fit``.

    On CPU-only workers batches are not prefetched "to the device"
    (``experimental_fetch_to_device=False``): the batches are on the CPU already.
    """
    on_gpu = any("GPU" in device.upper() for device in strategy.extended.worker_devices)
    options = tf.distribute.InputOptions(experimental_fetch_to_device=on_gpu)
    return strategy.experimental_distribute_dataset(shard_by_data(dataset), options)


@dataclasses.dataclass
class Distribution:
    """The strategy of a training run and this process's place in it.

    ``num_workers`` counts processes (1 unless ``multi_worker``), ``num_replicas``
    the replicas in sync (all devices of all workers); ``task`` names this process
    (``"worker:1"``; ``""`` for one process).
    """

    name: str
    strategy: tf.distribute.Strategy
    num_workers: int = 1
    task: str = ""
    is_chief: bool = True

    @property
    def num_replicas(self) -> int:
        """Replicas in sync: the global batch is split across these."""
        return int(self.strategy.num_replicas_in_sync)

    def summary(self, global_batch: int, variables: list) -> dict:
        """What ``run_info.json`` records under ``distribute``.

        ``trainable_variables`` counts the model's trainable variables (a tied kernel
        once), ``mirrored_variables`` those of them that are one ``MirroredVariable``
        with a copy per local replica.
        """
        mirrored = [v for v in variables
                    if isinstance(getattr(v, "value", v), tf.distribute.DistributedValues)]
        return {"strategy": self.name, "num_workers": self.num_workers,
                "num_replicas": self.num_replicas, "global_batch": global_batch,
                "per_replica_batch": per_replica_batch(global_batch, self.num_replicas),
                "auto_shard_policy": "DATA", "trainable_variables": len(variables),
                "mirrored_variables": len(mirrored)}


class _MultiWorkerStrategy(tf.distribute.MultiWorkerMirroredStrategy):
    """``MultiWorkerMirroredStrategy`` whose ``reduce`` takes what Keras gives it.

    Keras 3.15's ``fit`` calls ``strategy.reduce`` in two ways this strategy's own
    ``reduce`` refuses (``keras.src.backend.tensorflow.trainer``): on the first
    ``(images, masks)`` batch, a tuple, to build the model symbolically (TensorFlow's
    TODO: "support `value` being a nest"); and on every step's logs, scalars per
    replica, with ``axis=0``, which a scalar does not have. Here ``reduce`` maps over
    the nest, and reduces a scalar across replicas only (``axis=None``: the mean of
    the replicas' values, which is what Keras asks of a scalar).
    """

    def reduce(self, reduce_op, value, axis):  # noqa: D102 - TensorFlow's docstring
        parent = super()

        def one(v):
            local = v.values[0] if isinstance(v, tf.distribute.DistributedValues) else v
            scalar = getattr(local, "shape", None) is not None and local.shape.rank == 0
            return parent.reduce(reduce_op, v, None if scalar else axis)

        return tf.nest.map_structure(one, value)


def _start_watchdog(cluster: Cluster, timeout: float) -> subprocess.Popen:
    """Start :mod:`segtie.training.cluster_watchdog` for this process (see there why)."""
    script = Path(__file__).with_name("cluster_watchdog.py")
    return subprocess.Popen([sys.executable, str(script), str(os.getpid()), str(timeout),
                             f"{cluster.task_type}:{cluster.task_index}",
                             cluster.addresses[cluster.own], *cluster.peers])


def _multi_worker(timeout: float) -> Distribution:
    cluster = parse_tf_config(os.environ.get(TF_CONFIG))
    logger.info("Joining the cluster %s as %s:%d (waiting up to %g s)", list(cluster.addresses),
                cluster.task_type, cluster.task_index, timeout)
    watchdog = _start_watchdog(cluster, timeout)
    try:
        strategy = _MultiWorkerStrategy()
    finally:
        watchdog.terminate()
        watchdog.wait()
    return Distribution("multi_worker", strategy, len(cluster.addresses),
                        f"{cluster.task_type}:{cluster.task_index}", cluster.is_chief)


def build_distribution(name: str, timeout: float = 120.0) -> Distribution:
    """Build the strategy ``train.distribute`` names; call it before any other TF op.

    ``multi_worker`` reads ``TF_CONFIG`` (:func:`parse_tf_config`) and joins the
    cluster. TensorFlow waits for every task without a limit and the wait cannot be
    interrupted, so a watchdog process (:mod:`segtie.training.cluster_watchdog`)
    kills this one after ``timeout`` seconds, with a message on stderr naming the
    addresses where no worker answers.

    Args:
        name: one of :data:`STRATEGIES`.
        timeout: float > 0, seconds (``train.cluster_timeout_seconds``).

    Returns:
        Distribution.

    Raises:
        ValueError: an unknown ``name``; a bad ``TF_CONFIG``.
        RuntimeError: ``multi_worker`` after TensorFlow was already initialised
            (TensorFlow's own error: collective ops are configured at startup).
    """
    if name == "none":
        return Distribution("none", tf.distribute.get_strategy())
    if name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
        logger.info("MirroredStrategy over %s", strategy.extended.worker_devices)
        return Distribution("mirrored", strategy)
    if name == "multi_worker":
        return _multi_worker(timeout)
    raise ValueError(f"`train.distribute` must be one of {list(STRATEGIES)}, received {name!r}")


def worker_folder(distribution: Distribution) -> Path:
    """A fresh temporary folder for a non-chief worker's files (its caller deletes it)."""
    label = distribution.task.replace(":", "") or "worker"
    return Path(tempfile.mkdtemp(prefix=f"segtie-{label}-"))
