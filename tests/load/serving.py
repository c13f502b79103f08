"""`make serve`'s shape started for a test: deploy/serve.py (nginx in front of gunicorn
with deploy/gunicorn.conf.py) on a free port, on the test database."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from barometer.config import TestConfig
from deploy.serve import find_nginx

ROOT = Path(__file__).resolve().parent.parent.parent


def require(program_found: bool, reason: str, variable: str) -> None:
    """Skip without a program the test needs, or fail when `variable`=required."""
    if not program_found:
        if os.environ.get(variable) == "required":
            pytest.fail(f"{reason} ({variable}=required)", pytrace=False)
        pytest.skip(reason)


def require_nginx() -> None:
    require(find_nginx() is not None, "nginx is not installed (apt-get install nginx-light)", "NGINX")


def redis_up() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=0.5):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


#: The settings every served app gets besides the test's own: the test suite's key, so
#: that the test can read the form tokens the servers sign.
BASE_ENV = {"SECRET_KEY": TestConfig.SECRET_KEY, "HOST": "127.0.0.1"}


def children(pid: int | str) -> list[int]:
    pid = str(pid).strip()
    return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


class Served:
    """deploy/serve.py running on `database_url`, its output in `folder`/serve.log."""

    def __init__(self, folder: Path, database_url: str, **settings: str):
        self.port = free_port()
        self.run_dir = folder / "run"
        self.log = folder / "serve.log"
        env = {**os.environ, **BASE_ENV, "DATABASE_URL": database_url, "SERVE_DIR": str(self.run_dir)}
        env.update(PORT=str(self.port), **settings)
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(ROOT / "deploy" / "serve.py")], cwd=ROOT, env=env, stdout=log, stderr=log
            )
        self.wait_ready()

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve.py stopped (code {self.proc.returncode}):\n{self.output()}")
            try:
                if self.get("/sante").status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve.py not answering after {timeout} s:\n{self.output()}")

    def get(self, path: str, timeout: float = 10) -> http.client.HTTPResponse:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        conn.request("GET", path)
        response = conn.getresponse()
        response.read()
        conn.close()
        return response

    def gunicorn_workers(self) -> list[int]:
        """The pids of gunicorn's workers (the children of its master)."""
        return children((self.run_dir / "gunicorn.pid").read_text())

    def server_pids(self) -> list[int]:
        """The pids of nginx's and gunicorn's masters and of their workers."""
        masters = [int((self.run_dir / f"{name}.pid").read_text()) for name in ("nginx", "gunicorn")]
        return masters + [pid for master in masters for pid in children(master)]

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        """Stop as Ctrl-C would; the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(timeout=90)
        return self.proc.returncode
