"""The watchdog of a worker joining its cluster, run as its own small process.

    python cluster_watchdog.py PID TIMEOUT_SECONDS TASK OWN_ADDRESS PEER_ADDRESS...

TensorFlow's cluster registration (inside ``MultiWorkerMirroredStrategy()``) waits
for every task without a limit, holding Python's global lock, so no thread of the
worker can run and SIGTERM is not acted on. This process, started just before, waits
``TIMEOUT_SECONDS``; if the worker has not stopped it by then (it does once the cluster
formed), it writes to the worker's stderr which peer addresses accept no connection
and kills the worker (SIGKILL: exit status 137 in a shell). It imports nothing of
segtie or TensorFlow, so it starts in milliseconds; it exits quietly when the worker
is gone.
"""

import os
import signal
import socket
import sys
import time


def accepts(address: str, seconds: float = 2.0) -> bool:
    """Whether ``host:port`` accepts a TCP connection within ``seconds``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=seconds):
            return True
    except OSError:
        return False


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def main(argv) -> int:
    pid, timeout, task, own, peers = int(argv[0]), float(argv[1]), argv[2], argv[3], argv[4:]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid) or os.getppid() != pid:
            return 0
        time.sleep(0.2)
    silent = [a for a in peers if not accepts(a)]
    why = (f"no worker answers at {', '.join(silent)}" if silent else
           f"every address accepts connections ({', '.join(peers)}) but not every task "
           f"joined (another program on a port, or a worker with another TF_CONFIG)")
    sys.stderr.write(f"error: {task} ({own}) waited `train.cluster_timeout_seconds` = "
                     f"{timeout:g} s for the cluster: {why}; stopping it\n")
    sys.stderr.flush()
    os.kill(pid, signal.SIGKILL)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
