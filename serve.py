"""Start Hindsight: ``python serve.py [streamlit options]`` is ``streamlit run app.py`` in a
warmed process (``make run`` starts it this way).

Before Streamlit's server answers, ``views/_warm.py`` loads what a first page and a first
backtest need (imports, the default strategy's kernels, the Details page's charts); its
background thread then loads the other strategies' kernels. Options after ``serve.py`` go to
``streamlit run``. ``serving()`` runs it in a subprocess for the browser tests and bench.
"""
import os
import runpy
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent


def main() -> None:
    """Warm this process, start the warm-up thread, then run ``streamlit run app.py`` here."""
    sys.path.insert(0, str(ROOT))
    from views import _warm

    _warm.prepare()
    _warm.start()
    sys.argv = ["streamlit", "run", str(ROOT / "app.py"), *sys.argv[1:]]
    runpy.run_module("streamlit", run_name="__main__", alter_sys=True)


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(env: dict[str, str], port: int | None = None, timeout: float = 60.0):
    """``python serve.py`` in a subprocess on 127.0.0.1 (``port``, or a free one) with ``env``
    added to this environment: yields (URL, pid) once Streamlit answers its health check and
    stops the server after. A server that exits or never answers raises RuntimeError with the
    end of its output."""
    port = port or free_port()
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "serve.py"), "--server.port", str(port),
             "--server.headless", "true", "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false"],
            cwd=ROOT, env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_healthy(url, server, log, timeout)
            yield url, server.pid
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()


def _wait_healthy(url: str, server: subprocess.Popen, log, timeout: float) -> None:
    """Poll Streamlit's health endpoint until it answers ok; raise if the server died or
    never answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"The app exited with code {server.returncode}:\n{_tail(log)}")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as answer:
                if answer.read().strip() == b"ok":
                    return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"The app did not answer at {url} within {timeout:.0f} s:\n{_tail(log)}")


def _tail(log, chars: int = 4000) -> str:
    log.seek(0)
    return log.read()[-chars:]


if __name__ == "__main__":  # not in a worker process that imports the main module again
    main()
