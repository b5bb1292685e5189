"""A real S3-compatible server for the store tests: moto's standalone server on 127.0.0.1.

``MotoServer`` starts ``python -m moto.server`` as a subprocess on a free local port, waits
until it answers, creates a bucket, and sets the standard AWS environment variables
(``AWS_ENDPOINT_URL``, dummy credentials, region) so that s3fs - and any subprocess the tests
start - reaches it through plain ``s3://bucket/...`` URLs. Nothing goes beyond 127.0.0.1.
The ``s3_bucket`` fixture in conftest.py runs one server per test session.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

HOST = "127.0.0.1"
BUCKET = "hindsight-tests"
ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}
#: Variables that could send requests elsewhere (profiles, other endpoints, proxies).
CLEARED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE",
           "AWS_SHARED_CREDENTIALS_FILE", "HTTP_PROXY", "HTTPS_PROXY", "http_proxy",
           "https_proxy", "ALL_PROXY", "all_proxy")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class MotoServer:
    """``with MotoServer() as server:`` -> ``server.endpoint``, ``server.bucket``."""

    def __init__(self, bucket: str = BUCKET, timeout: float = 60.0):
        self.bucket = bucket
        self.timeout = timeout
        self.port = free_port()
        self.endpoint = f"http://{HOST}:{self.port}"
        self.proc: subprocess.Popen | None = None
        self._saved: dict[str, str | None] = {}

    def start(self) -> "MotoServer":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + self.timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"moto server exited with {self.proc.returncode}")
            try:
                with urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"moto server did not answer on {self.endpoint}") from None
                time.sleep(0.1)
        self._set_env()
        self._create_bucket()
        return self

    def _set_env(self) -> None:
        updates = dict(ENV, AWS_ENDPOINT_URL=self.endpoint)
        no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY"), HOST, "localhost"]))
        updates.update(NO_PROXY=no_proxy, no_proxy=no_proxy)
        for name in (*updates, *CLEARED):
            self._saved.setdefault(name, os.environ.get(name))
        for name in CLEARED:
            os.environ.pop(name, None)
        os.environ.update(updates)

    def _restore_env(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()

    def _create_bucket(self) -> None:
        import boto3

        boto3.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=self.bucket)

    def url(self, name: str = "store") -> str:
        """A fresh, unique store URL in the bucket."""
        return f"s3://{self.bucket}/{name}-{uuid.uuid4().hex[:12]}.zarr"

    def stop(self) -> None:
        self._restore_env()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
