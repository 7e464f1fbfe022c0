"""An S3 server on 127.0.0.1 for the object-storage benchmark and tests: moto's standalone server
(``python -m moto.server``), a process of its own on a free port, stopped by its PID.

It accepts any credentials; ``storage_options`` gives s3fs dummy ones, so nothing is read from
the environment or ``~/.aws`` and no real key is sent to it."""

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
START_S = 30  # moto imports boto and werkzeug: a few seconds on a busy 2-core machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(port: int) -> subprocess.Popen:
    """The server on ``port``, once it answers."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-p", str(port), "-H", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + START_S
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"moto server did not start on port {port}") from None
            time.sleep(0.1)


def stop(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    proc.wait(timeout=10)


def storage_options(endpoint: str) -> dict:
    """``data.storage_options`` for the server: its endpoint and dummy credentials."""
    return {
        "key": CREDENTIALS["AWS_ACCESS_KEY_ID"],
        "secret": CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        "client_kwargs": {"endpoint_url": endpoint},
    }


@contextmanager
def serving():
    """A started server's endpoint (``http://127.0.0.1:PORT``); stopped on leaving."""
    port = free_port()
    proc = start(port)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)
