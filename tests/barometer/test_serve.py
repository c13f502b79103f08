"""`make serve`'s shape: nginx buffers requests, so slow clients hold no gunicorn worker,
and passes the client's address on, so the rate limit counts each address apart;
Ctrl-C stops both."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ..load.serving import BASE_ENV, ROOT, Served, free_port, require_nginx

#: Each slow client sends a byte this often, for this long: the request stays unfinished
#: well past FAST, the bound the others' pages must meet meanwhile.
BYTE_EVERY, SLOW_SECONDS, FAST = 0.05, 5.0, 2.0


@pytest.fixture
def serve(surveys, _schema, tmp_path):
    """`make serve`'s shape with one gunicorn worker, on the test database."""
    require_nginx()
    made = []

    def start(**settings):
        made.append(Served(tmp_path, _schema, WORKERS="1", **settings))
        return made[-1]

    yield start
    for served in made:
        assert served.stop() == 0, served.output()


@pytest.fixture
def bare_gunicorn(surveys, _schema):
    """gunicorn with the same settings file and one worker, but no nginx in front."""
    port = free_port()
    env = {**os.environ, **BASE_ENV, "DATABASE_URL": _schema, "WORKERS": "1"}
    cmd = [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "--bind", f"127.0.0.1:{port}"]
    cmd += ["--no-control-socket"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/sante")
            if conn.getresponse().status == 200:
                break
        except OSError:
            time.sleep(0.2)
    yield port
    proc.terminate()
    proc.wait(timeout=60)


def trickle(port: int, at_once: bytes, byte_by_byte: bytes) -> None:
    """Send the start of a request at once, the rest a byte at a time, then let it go."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(at_once)
        for i in range(len(byte_by_byte)):
            s.sendall(byte_by_byte[i : i + 1])
            time.sleep(BYTE_EVERY)


def slow_clients(port: int) -> list[threading.Thread]:
    """Two clients: one sends its headers a byte at a time, the other its body."""
    n = int(SLOW_SECONDS / BYTE_EVERY)
    host = f"Host: 127.0.0.1:{port}\r\n".encode()
    slow_headers = b"GET /sante HTTP/1.1\r\n" + host + b"X-Filler: " + b"x" * n + b"\r\n\r\n"
    body = b"comment=" + b"x" * n
    head = b"POST /s/piscine HTTP/1.1\r\n" + host + b"Content-Type: application/x-www-form-urlencoded\r\n"
    head += f"Content-Length: {len(body)}\r\n\r\n".encode()
    threads = [
        threading.Thread(target=trickle, args=(port, b"", slow_headers), daemon=True),
        threading.Thread(target=trickle, args=(port, head, body), daemon=True),
    ]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both connected, and (without nginx) one already held by the worker
    return threads


def timed_pages(port: int) -> list[tuple[str, float]]:
    """Each page others ask for meanwhile, with the seconds it took (inf: no answer in 3 s)."""
    timings = []
    for path in ("/sante", "/s/piscine", "/sante", "/s/piscine"):
        started = time.monotonic()
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=FAST + 1)
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            conn.close()
            assert response.status == 200, (path, response.status)
            timings.append((path, time.monotonic() - started))
        except TimeoutError:
            timings.append((path, float("inf")))
    return timings


def test_slow_clients_do_not_hold_the_worker_behind_nginx(serve):
    served = serve()
    slow = slow_clients(served.port)
    timings = timed_pages(served.port)
    assert max(seconds for _, seconds in timings) < FAST, timings
    assert all(thread.is_alive() for thread in slow), "the slow clients finished too soon to prove anything"


def test_without_nginx_the_same_slow_clients_hold_the_worker(bare_gunicorn):
    """The same clients against gunicorn alone: what the test above guards against."""
    slow_clients(bare_gunicorn)
    timings = timed_pages(bare_gunicorn)
    assert max(seconds for _, seconds in timings) > FAST, timings


def post_from(port: int, address: str, **headers: str) -> int:
    """The status of a survey submission (without a form: refused, yet counted) sent
    from `address`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(address, 0))
    body = "overall=4"
    conn.request("POST", "/s/piscine", body, {"Content-Type": "application/x-www-form-urlencoded", **headers})
    status = conn.getresponse().status
    conn.close()
    return status


def test_the_rate_limit_counts_the_client_address_nginx_sees(serve):
    served = serve(SURVEY_RATE_LIMIT="2 per minute")
    port = served.port
    assert [post_from(port, "127.0.0.1") == 429 for _ in range(3)] == [False, False, True]
    # A client cannot pass for another by naming an address itself.
    assert post_from(port, "127.0.0.1", **{"X-Forwarded-For": "198.51.100.7"}) == 429
    # Another address has its own count (without PROXY_COUNT=1 the app would see the
    # proxy only, and refuse it too).
    assert post_from(port, "127.0.0.2") != 429


def test_ctrl_c_stops_nginx_and_gunicorn(serve):
    served = serve()
    pids = served.server_pids()
    assert len(pids) >= 4  # two masters, a worker each at least
    assert served.stop() == 0
    assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
