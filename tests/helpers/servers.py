"""Real servers for the tests: S3 buckets on moto's server, ``stacflow serve`` in a subprocess."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid

from .paths import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, timeout: float = 30.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    import urllib.request
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if proc is not None and proc.poll() is not None:
                raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
            if time.time() > deadline:
                raise
            time.sleep(0.05)


def new_bucket(endpoint: str) -> str:
    import boto3
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=name)
    return name


class LiveServer:
    """``stacflow serve`` in a subprocess: the real command, over real HTTP."""

    def __init__(self, store_uri: str, env: dict[str, str] | None = None, module: str = "chalicelib.cli") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store_uri = store_uri
        full_env = dict(os.environ, **(env or {}))
        # The access log goes to a file: an unread pipe would fill up and stall the server.
        self.log = tempfile.NamedTemporaryFile(prefix="stacflow-serve-", suffix=".log", delete=False)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, "serve", "--port", str(self.port), "--store", store_uri],
            cwd=REPO, env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        wait_http(self.url + "/health", proc=self.proc)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        os.unlink(self.log.name)
