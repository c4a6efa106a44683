"""A local cluster for ``segtie train --workers N``: N worker processes on 127.0.0.1.

Each worker is ``python -m segtie train`` with the same config and ``--set
train.distribute=multi_worker``, and its own ``TF_CONFIG`` (:func:`tf_configs`): the
same ``cluster.worker`` list of ``127.0.0.1:<free port>``, its own ``task.index``.
Worker 0 is the chief, the one that writes the run folder and MLflow. Their output is
streamed line by line, each line prefixed ``[worker i]``. If a worker fails, the
others are stopped (SIGTERM, then SIGKILL after :data:`GRACE_SECONDS`: a worker
blocked in a collective waits for its dead peer and does not return by itself) and
the command exits with the failed worker's status. This is for trying a cluster
configuration on one machine; on real machines each host runs ``segtie train`` with
its own ``TF_CONFIG`` (README, "Training on several machines"). No TensorFlow is
imported here.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Optional, Sequence

__all__ = ["GRACE_SECONDS", "free_ports", "launch", "tf_configs"]

HOST = "127.0.0.1"
GRACE_SECONDS = 30.0
"""How long stopped workers get to finish their step before they are killed."""
_POLL_SECONDS = 0.2


def free_ports(count: int) -> list:
    """``count`` distinct TCP ports free on 127.0.0.1 now (the OS picks them).

    The sockets are held open together, so the ports are distinct, and closed before
    returning; another program could take one before a worker binds it, in which
    case that worker fails to start and the launch stops with its message.
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind((HOST, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_configs(ports: Sequence[int], host: str = HOST) -> list:
    """One ``TF_CONFIG`` JSON string per worker of the cluster ``host:port`` for ``ports``."""
    cluster = {"worker": [f"{host}:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
            for index in range(len(ports))]


def _stream(index: int, pipe, lock: threading.Lock) -> None:
    prefix = f"[worker {index}] "
    for line in iter(pipe.readline, ""):
        with lock:
            sys.stdout.write(prefix + line)
            sys.stdout.flush()
    pipe.close()


def _exit_status(code: int) -> int:
    return 128 - code if code < 0 else code  # killed by signal N: the shell's 128 + N


def _stop(procs: list, grace: float) -> None:
    """SIGTERM every running worker, then SIGKILL those still running after ``grace`` s."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace
    for proc in procs:
        try:
            proc.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def launch(train_args: Sequence[str], workers: int, grace: float = GRACE_SECONDS,
           env: Optional[dict] = None) -> int:
    """Run ``segtie train <train_args>`` as ``workers`` local workers; returns the status.

    Args:
        train_args: the ``segtie train`` arguments each worker gets (``--config``,
            ``--set``, ``--run-dir``), without ``--workers``.
        workers: int >= 1.
        grace: seconds a stopped worker gets before it is killed.
        env: the workers' environment (default: this process's), ``TF_CONFIG`` added.

    Returns:
        0 when every worker finished; else the exit status of the first worker that
        failed (``128 + N`` when a signal ``N`` killed it), after the others were
        stopped; 130 after Ctrl-C.

    Raises:
        ValueError: ``workers`` < 1.
    """
    if not (isinstance(workers, int) and workers >= 1):
        raise ValueError(f"--workers must be an integer >= 1, received {workers!r}")
    configs = tf_configs(free_ports(workers))
    command = [sys.executable, "-m", "segtie", "train", *train_args,
               "--set", "train.distribute=multi_worker"]
    print(f"launching {workers} workers on {HOST}: "
          f"{json.loads(configs[0])['cluster']['worker']}; worker 0 is the chief", flush=True)
    lock, procs, threads = threading.Lock(), [], []
    previous = signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: [p.send_signal(signal.SIGTERM) for p in procs
                                              if p.poll() is None])
    try:
        for index, tf_config in enumerate(configs):
            proc = subprocess.Popen(command, env={**(env or os.environ), "TF_CONFIG": tf_config},
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    bufsize=1)
            procs.append(proc)
            threads.append(threading.Thread(target=_stream, args=(index, proc.stdout, lock),
                                            daemon=True))
            threads[-1].start()
        status = _wait(procs, grace)
    except KeyboardInterrupt:  # the workers got the Ctrl-C too (same process group)
        _stop(procs, grace)
        status = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    for thread in threads:
        thread.join(timeout=5.0)
    return status


def _wait(procs: list, grace: float) -> int:
    """Wait for every worker; on the first failure stop the rest and return its status."""
    while True:
        codes = [proc.poll() for proc in procs]
        failed = [(i, c) for i, c in enumerate(codes) if c not in (None, 0)]
        if failed:
            index, code = failed[0]
            _stop(procs, grace)
            print(f"error: worker {index} exited with status {_exit_status(code)}; the other "
                  f"workers were stopped (its last lines above, prefixed [worker {index}])",
                  file=sys.stderr, flush=True)
            return _exit_status(code)
        if all(code == 0 for code in codes):
            print(f"all {len(procs)} workers finished", flush=True)
            return 0
        time.sleep(_POLL_SECONDS)
