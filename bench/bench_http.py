"""HTTP benchmark: the survey page and the submission, against a bare Flask app.

Runs gunicorn (same settings for every case) on a fresh SQLite database and drives it
with wrk. Prints requests/s, p50 and p99 latency, and each case's throughput as a
ratio of the bare app's measured in the same run. Figures, not pass/fail.

    python bench/bench_http.py [--seconds 10] [--connections 32] [--workers 2]
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.hello import create_floor_database  # noqa: E402

SECRET = "bench-secret-key"
SERVICE = "etat-civil"
ANSWERS = {
    "overall": "4",
    "courtesy": "5",
    "waiting_time": "3",
    "clarity": "4",
    "ease": "na",
    "opening_hours": "4",
    "competence": "5",
    "outcome": "4",
    "fairness": "5",
    "recommend": "8",
    "important_attributes": "waiting_time",
    "comment": "Accueil rapide, merci.",
    "age_band": "a30_44",
    "sex": "f",
    "area": "centre",
    "frequency": "occasional",
}

# Each wrk thread walks its own share of the token list, so every request is new.
LUA_POST = r"""
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
local tokens = {}
function init(args)
  for line in io.lines(args[1]) do tokens[#tokens + 1] = line end
  index = 1 + id
  step = tonumber(args[2])
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
  wrk.headers["Cookie"] = args[3]
  body_prefix = args[4]
end
function request()
  local token = tokens[index]
  index = index + step
  return wrk.format(nil, nil, nil, body_prefix .. "&token=" .. token)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"le serveur n'a pas démarré sur le port {port}")


def gunicorn(app: str, port: int, workers: int, env: dict, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--access-logfile",
        str(log),
        "--access-logformat",
        "%(m)s %(U)s %(s)s",
        app,
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(port)
    return proc


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def run_wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, args: list[str] | None = None
) -> dict:
    cmd = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: (.*)", out)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": total,
        "ok": total - (int(non2xx.group(1)) if non2xx else 0),
        "socket_errors": errors.group(1) if errors else "none",
    }


def prepare_database(db_path: Path, n_tokens: int) -> list[str]:
    """Schema by migrations, definitions loaded, and one-time tokens for the POST case."""
    from flask_migrate import upgrade

    from barometer import create_app
    from barometer.loader import load_surveys
    from barometer.respond.services import new_token
    from surveys.schema import DEFAULT_ROOT

    app = create_app({"SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}"})
    with app.app_context():
        upgrade()
        load_surveys(DEFAULT_ROOT)
    with app.test_request_context():
        return [new_token(SERVICE) for _ in range(n_tokens)]


def session_and_csrf(base: str) -> tuple[str, str]:
    """A session cookie and its CSRF token, as a phone gets them on its first visit."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    html = opener.open(f"{base}/s/{SERVICE}").read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    cookie = "; ".join(f"{c.name}={c.value}" for c in jar)
    return cookie, csrf


def page_weight(base: str) -> tuple[int, int]:
    html = urllib.request.urlopen(f"{base}/s/{SERVICE}").read()
    css_path = re.search(rb'<link rel="stylesheet" href="([^"]+)"', html).group(1).decode()
    css = urllib.request.urlopen(base + css_path).read()
    return len(html), len(css)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=120_000, help="one-time tokens prepared for the POST case")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk est introuvable : apt-get install wrk")

    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    db_path = work / "bench.sqlite3"
    t0 = time.perf_counter()
    tokens = prepare_database(db_path, opts.tokens)
    print(f"préparation : base migrée et {len(tokens)} jetons en {time.perf_counter() - t0:.1f} s")
    create_floor_database(work / "floor.sqlite3")
    env = {
        **os.environ,
        "BENCH_FLOOR_DB": str(work / "floor.sqlite3"),
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"sqlite:///{db_path}",
        # The limiter stays on (its cost is part of a submission) but cannot trip here.
        "SURVEY_RATE_LIMIT": "100000000 per minute",
    }
    results = {}

    port = free_port()
    proc = gunicorn("bench.hello:app", port, opts.workers, env, work / "hello.log")
    try:
        results["bare Flask hello"] = run_wrk(f"http://127.0.0.1:{port}/", opts.seconds, opts.connections)
        floor_script = work / "floor.lua"
        floor_script.write_text(
            'wrk.method = "POST"\n'
            'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
            f"wrk.body = {urllib.parse.urlencode(ANSWERS)!r}\n"
        )
        results["bare insert (POST)"] = run_wrk(
            f"http://127.0.0.1:{port}/insert", opts.seconds, opts.connections, floor_script
        )
    finally:
        stop(proc)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = work / "app.log"
    proc = gunicorn("wsgi:app", port, opts.workers, env, log)
    try:
        html_bytes, css_bytes = page_weight(base)
        results["survey page (GET)"] = run_wrk(f"{base}/s/{SERVICE}", opts.seconds, opts.connections)
        cookie, csrf = session_and_csrf(base)
        token_file = work / "tokens.txt"
        token_file.write_text("\n".join(tokens) + "\n")
        body = urllib.parse.urlencode({**ANSWERS, "csrf_token": csrf})
        post_script = work / "post.lua"
        post_script.write_text(LUA_POST)
        before = sum(1 for line in log.read_text().splitlines() if line.startswith("POST"))
        results["submission (POST)"] = run_wrk(
            f"{base}/s/{SERVICE}",
            opts.seconds,
            opts.connections,
            post_script,
            [str(token_file), "2", cookie, body],
        )
    finally:
        stop(proc)
    lines = log.read_text().splitlines()
    server_ok = sum(1 for line in lines if line.startswith("POST") and line.endswith(" 200"))
    server_posts = sum(1 for line in lines if line.startswith("POST")) - before
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM response").fetchone()[0]
        distinct = conn.execute("SELECT COUNT(DISTINCT token) FROM response").fetchone()[0]
    post = results["submission (POST)"]
    if post["requests"] > len(tokens) // 2:
        print("ATTENTION : plus de requêtes que de jetons préparés ; relancez avec --tokens plus grand")

    bare = results["bare Flask hello"]["rps"]
    print()
    print(
        f"machine : {os.cpu_count()} cœurs ; gunicorn {opts.workers} workers (sync) ; SQLite WAL ; "
        f"wrk 2 threads, {opts.connections} connexions, {opts.seconds} s par cas"
    )
    print(f"{'cas':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'ratio':>8}{'2xx':>9}{'autres':>8}")
    for name, r in results.items():
        print(
            f"{name:<22}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['rps'] / bare:>8.2f}"
            f"{r['ok']:>9}{r['requests'] - r['ok']:>8}"
        )
    print()
    print(
        f"soumissions : 2xx reçus par wrk {post['ok']}, 2xx envoyés par le serveur {server_ok}, "
        f"POST traités {server_posts}, lignes en base {rows} (jetons distincts {distinct})"
    )
    verdict = "OK" if rows == server_ok == distinct else "ÉCART"
    print(
        f"intégrité : lignes = 2xx du serveur = jetons distincts -> {verdict} "
        f"(wrk coupe à la fin {server_ok - post['ok']} réponses déjà envoyées)"
    )
    print(
        f"poids de la page : HTML {html_bytes} o + CSS {css_bytes} o = {html_bytes + css_bytes} o "
        f"({(html_bytes + css_bytes) / 1024:.1f} Kio, non compressé)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
