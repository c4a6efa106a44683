"""The real ``mlflow server`` for tests: bound to 127.0.0.1 on a free port, stopped after."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

HOST = "127.0.0.1"  # never 0.0.0.0: README says how to share a server safely
START_TIMEOUT = 180  # seconds until /health answers (about 20 s on 2 busy cores)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def start(store_uri: str, log: Path):
    """Start ``mlflow server`` on ``store_uri``; returns ``(process, url)`` at once.

    Job execution (MLflow's background job workers, unused here) is off, so the
    server starts faster and leaves no worker processes behind.
    """
    bin_dir = str(Path(sys.executable).parent)  # mlflow starts uvicorn from PATH
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
           "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    port = free_port()
    with log.open("w") as out:
        process = subprocess.Popen(
            [os.path.join(bin_dir, "mlflow"), "server", "--backend-store-uri", store_uri,
             "--host", HOST, "--port", str(port), "--workers", "1"],
            env=env, stdout=out, stderr=subprocess.STDOUT, cwd=log.parent,
            start_new_session=True)
    return process, f"http://{HOST}:{port}"


def wait_until_healthy(process, url: str, log: Path, endpoint: str = "/health",
                       timeout: float = START_TIMEOUT) -> None:
    """Wait until ``url + endpoint`` answers 200 (``/health`` of ``mlflow server``,
    ``/ping`` of ``mlflow models serve``); raises ``RuntimeError`` with the log if the
    process exits or nothing answers within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited {process.returncode}:\n"
                               f"{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + endpoint, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"no answer on {url}{endpoint} after {timeout} s:\n"
                       f"{log.read_text()[-3000:]}")


def stop(process) -> None:
    """Stop the server and its uvicorn worker (one process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
