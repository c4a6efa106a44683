"""``TF_CONFIG``: TensorFlow's cluster description, validated into a :class:`Cluster`.

The one reader of the environment variable's format for
:class:`tf.distribute.MultiWorkerMirroredStrategy` (``train.distribute: multi_worker``,
:mod:`segtie.training.distribute`); every error names the key, what was expected and
what was received. No TensorFlow import.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Optional

__all__ = ["TF_CONFIG", "JOBS", "Cluster", "parse_tf_config"]

TF_CONFIG = "TF_CONFIG"
JOBS = ("chief", "worker")  # the jobs MultiWorkerMirroredStrategy trains with


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A validated ``TF_CONFIG``: the addresses of every task, and this process's task.

    ``addresses`` lists ``chief`` (if any) then ``worker`` tasks, ``"host:port"``;
    ``own`` is this task's position in it; the chief is ``chief:0``, else
    ``worker:0`` (TensorFlow's rule, ``multi_worker_util.is_chief``).
    """

    addresses: tuple
    task_type: str
    task_index: int
    own: int

    @property
    def is_chief(self) -> bool:
        """Whether this task writes the run (``chief:0``, or ``worker:0`` without a chief)."""
        return self.own == 0

    @property
    def peers(self) -> list:
        """Every address but this task's."""
        return [a for i, a in enumerate(self.addresses) if i != self.own]


def _check_address(job: str, index: int, address) -> None:
    host, _, port = address.rpartition(":") if isinstance(address, str) else ("", "", "")
    if not (host and port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"TF_CONFIG: cluster.{job}[{index}] must be 'host:port' with a port "
                         f"in 1..65535, received {address!r}")


def parse_tf_config(text: Optional[str]) -> Cluster:
    """Validate a ``TF_CONFIG`` value and return its :class:`Cluster`.

    The format is TensorFlow's: ``{"cluster": {"chief": ["host:port"], "worker":
    ["host:port", ...]}, "task": {"type": "worker", "index": 0}}`` (``chief``
    optional; ``ps`` and ``evaluator`` are not used by this strategy).

    Args:
        text: the environment variable's value (``None``: unset).

    Returns:
        Cluster.

    Raises:
        ValueError: unset or empty, not JSON, not an object, ``cluster`` or ``task``
            missing or of the wrong form, a job other than chief/worker, an
            address not ``host:port``, the same address twice, a task type not in
            the cluster, or a task index out of range (each message names the key,
            what was expected and what was received).
    """
    if not text or not text.strip():
        raise ValueError("train.distribute is 'multi_worker' but TF_CONFIG is not set; set it "
                         "to this task's cluster (see README, 'Training on several machines') "
                         "or start local workers with `segtie train --workers N`")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"TF_CONFIG is not valid JSON ({err.msg} at line {err.lineno} "
                         f"column {err.colno}), received {text[:200]!r}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"TF_CONFIG must be a JSON object with `cluster` and `task`, "
                         f"received {type(raw).__name__} {text[:200]!r}")
    missing = [key for key in ("cluster", "task") if key not in raw]
    if missing:
        raise ValueError(f"TF_CONFIG lacks the key(s) {missing}; expected `cluster` and "
                         f"`task`, received keys {sorted(raw)}")
    cluster, task = raw["cluster"], raw["task"]
    if not isinstance(cluster, dict) or not cluster:
        raise ValueError(f"TF_CONFIG: `cluster` must be a non-empty object of job -> list of "
                         f"'host:port', received {cluster!r}")
    unknown = sorted(set(cluster) - set(JOBS))
    if unknown:
        raise ValueError(f"TF_CONFIG: cluster jobs must be among {list(JOBS)} for "
                         f"MultiWorkerMirroredStrategy, received {sorted(cluster)}")
    addresses, start = [], {}
    for job in JOBS:
        tasks = cluster.get(job, [])
        if not isinstance(tasks, list) or (job in cluster and not tasks):
            raise ValueError(f"TF_CONFIG: cluster.{job} must be a non-empty list of "
                             f"'host:port', received {tasks!r}")
        if job == "chief" and len(tasks) > 1:
            raise ValueError(f"TF_CONFIG: cluster.chief must hold one address, received "
                             f"{len(tasks)}: {tasks!r}")
        start[job] = len(addresses)
        for index, address in enumerate(tasks):
            _check_address(job, index, address)
            addresses.append(address)
    twice = sorted({a for a in addresses if addresses.count(a) > 1})
    if twice:
        raise ValueError(f"TF_CONFIG: every task needs its own address, received {twice} "
                         f"more than once")
    if not isinstance(task, dict) or not {"type", "index"} <= set(task):
        raise ValueError(f"TF_CONFIG: `task` must be an object with `type` and `index`, "
                         f"received {task!r}")
    task_type, index = task["type"], task["index"]
    if task_type not in cluster:
        raise ValueError(f"TF_CONFIG: task.type must be one of the cluster's jobs "
                         f"{sorted(cluster)}, received {task_type!r}")
    count = len(cluster[task_type])
    if not (isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count):
        raise ValueError(f"TF_CONFIG: task.index must be an integer in 0..{count - 1} (cluster."
                         f"{task_type} has {count} address(es)), received {index!r}")
    return Cluster(tuple(addresses), task_type, index, start[task_type] + index)
