"""HTTP benchmark: a resident's survey (GET the page, POST the answers) through the
app's view, as a ratio of a bare Flask app under the same gunicorn in the same run.

Runs two gunicorns (same settings) on a fresh SQLite database and drives them with wrk.
Prints requests/s, p50 and p99 latency, the ratios, and whether the rows stored equal
the submissions acknowledged. Figures, not pass/fail.

    python bench/bench_http.py [--seconds 9] [--rounds 3] [--connections 32] [--workers 2]
"""

from __future__ import annotations

import argparse
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

SECRET = "bench-secret-key"
SERVICE = "etat-civil"
WRK_THREADS = 2
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

# A resident: the survey page (GET), then the answers (POST) with a form token of its
# own, as a phone's browser sends them (Origin, Sec-Fetch-Site). With args[4] "get" or
# "post", only that half. Each wrk thread walks its own share of the tokens.
LUA_RESIDENT = r"""
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
  origin = args[3]
  only = args[4]
  body_prefix = args[5]
  n = 0
end
function request()
  n = n + 1
  if only == "get" or (only == "both" and n % 2 == 1) then
    return wrk.format("GET", nil, {})
  end
  local token = tokens[index]
  index = index + step
  local headers = {["Content-Type"] = "application/x-www-form-urlencoded", ["Origin"] = origin,
                   ["Sec-Fetch-Site"] = "same-origin"}
  return wrk.format("POST", nil, headers, body_prefix .. "&token=" .. token)
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


def gunicorn(app: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    """Gunicorn as `make run` starts it: sync workers, no access log; plus the counting hooks."""
    cmd = [sys.executable, "-m", "gunicorn", "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    cmd += ["--config", str(ROOT / "bench" / "gunicorn_counts.py"), app]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(port)
    return proc


def run_wrk(url: str, seconds: int, connections: int, script: Path | None = None, args: list[str] | None = None):
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", str(script)]
    cmd.append(url)
    if args:
        cmd += ["--", *args]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def latency(pct: str) -> float:
        value, unit = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": total,
        "ok": total - (int(non2xx.group(1)) if non2xx else 0),
    }


def prepare_database(db_path: Path, n_tokens: int) -> list[str]:
    """Schema by migrations, definitions loaded, and form tokens signed with the
    servers' key, as each display of the form gets one."""
    from flask_migrate import upgrade

    from barometer import create_app
    from barometer.extensions import db
    from barometer.loader import load_surveys
    from barometer.respond.services import form_token, get_survey
    from surveys.schema import DEFAULT_ROOT

    app = create_app({"SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}"})
    with app.app_context():
        upgrade()
        load_surveys(DEFAULT_ROOT)
        context = get_survey(SERVICE)
        tokens = [form_token(context) for _ in range(n_tokens)]
        db.engine.dispose()
    return tokens


def combine(rounds: list[dict]) -> dict:
    """One case over its rounds: throughput over the whole time, median p50 and p99, worst p99."""
    seconds = sum(r["requests"] / r["rps"] for r in rounds if r["rps"])
    middle = len(rounds) // 2
    return {
        "rps": sum(r["requests"] for r in rounds) / seconds,
        "p50": sorted(r["p50"] for r in rounds)[middle],
        "p99": sorted(r["p99"] for r in rounds)[middle],
        "p99_worst": max(r["p99"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "ok": sum(r["ok"] for r in rounds),
        "rounds": rounds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=9, help="measured seconds per case, split into rounds")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; each runs every case in turn")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=120_000, help="form tokens prepared for the submissions")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk est introuvable : sudo apt-get install wrk")
    per_round = max(1, round(opts.seconds / opts.rounds))

    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    db_path = work / "bench.sqlite3"
    t0 = time.perf_counter()
    tokens = prepare_database(db_path, opts.tokens)
    print(f"préparation : base migrée et {len(tokens)} jetons en {time.perf_counter() - t0:.1f} s")
    counts_dir = work / "counts"
    counts_dir.mkdir()
    env = {
        **os.environ,
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"sqlite:///{db_path}",
        # The limiter stays on (its count is part of a submission) but cannot trip here.
        "SURVEY_RATE_LIMIT": "100000000 per minute",
    }
    script = work / "resident.lua"
    script.write_text(LUA_RESIDENT)
    hello_port, app_port = free_port(), free_port()
    hello_base, base = f"http://127.0.0.1:{hello_port}", f"http://127.0.0.1:{app_port}"
    servers = [gunicorn("bench.hello:app", hello_port, opts.workers, env)]
    try:
        servers.append(gunicorn("wsgi:app", app_port, opts.workers, {**env, "BENCH_COUNTS_DIR": str(counts_dir)}))
        html = urllib.request.urlopen(f"{base}/s/{SERVICE}").read()
        css_path = re.search(rb'<link rel="stylesheet" href="([^"]+)"', html).group(1).decode()
        page_bytes = len(html) + len(urllib.request.urlopen(base + css_path).read())
        body = urllib.parse.urlencode(ANSWERS)
        # Each POST case of each round (and the warm-up) has its own tokens: every
        # submission is a new response.
        slices = iter(range(3 * (opts.rounds + 1)))
        share = len(tokens) // (3 * (opts.rounds + 1))

        def resident(only: str, seconds: int) -> dict:
            i = next(slices)
            path = work / f"tokens-{i}.txt"
            path.write_text("\n".join(tokens[i * share : (i + 1) * share]) + "\n")
            args = [str(path), str(WRK_THREADS), base, only, body]
            return run_wrk(f"{base}/s/{SERVICE}", seconds, opts.connections, script, args)

        cases = {
            "bare Flask hello": lambda s: run_wrk(f"{hello_base}/", s, opts.connections),
            "resident GET+POST": lambda s: resident("both", s),
            "survey page (GET)": lambda s: resident("get", s),
            "submission (POST)": lambda s: resident("post", s),
        }
        # A warm-up second per case, not counted: first connections, the database's
        # write-ahead log growing from nothing.
        for case in cases.values():
            case(1)
        # The cases take turns in each round, so that a slower spell of the machine
        # weighs on all of them alike.
        rounds: dict[str, list[dict]] = {name: [] for name in cases}
        for _ in range(opts.rounds):
            for name, case in cases.items():
                rounds[name].append(case(per_round))
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=30)
    results = {name: combine(r) for name, r in rounds.items()}
    posts = ok = 0
    for path in counts_dir.iterdir():
        p, o = path.read_text().split()
        posts, ok = posts + int(p), ok + int(o)
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM response").fetchone()[0]
    posted = ("resident GET+POST", "submission (POST)")
    if max(r["requests"] for name in posted for r in results[name]["rounds"]) > share:
        print("ATTENTION : un tour a pu manquer de jetons ; relancez avec --tokens plus grand")

    bare = results["bare Flask hello"]
    print()
    print(
        f"machine : {os.cpu_count()} cœurs ; gunicorn {opts.workers} workers (sync, sans journal d'accès) ; "
        f"SQLite WAL ; wrk {WRK_THREADS} threads, {opts.connections} connexions ; "
        f"{opts.rounds} tours de {per_round} s par cas, les cas à tour de rôle"
    )
    print(f"{'cas':<20}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'p99 pire':>10}{'ratio':>8}{'2xx':>9}{'autres':>8}")
    for name, r in results.items():
        print(
            f"{name:<20}{r['rps']:>9.0f}{r['p50']:>9.2f}{r['p99']:>9.2f}{r['p99_worst']:>10.2f}"
            f"{r['rps'] / bare['rps']:>8.2f}{r['ok']:>9}{r['requests'] - r['ok']:>8}"
        )
    print("(req/s sur l'ensemble des tours ; p50 et p99 : médiane des tours ; p99 pire : le pire des tours)")
    target = results["resident GET+POST"]
    print(
        f"objectifs : GET+POST / hello {target['rps'] / bare['rps']:.2f} (≥ 0,25) ; "
        f"p99 {target['p99']:.1f} ms (< 100 ms)"
    )
    # wrk drops the replies in flight at the end of each round: counted by the server.
    verdict = "OK" if rows == ok == posts else "ÉCART"
    print(f"intégrité : POST traités {posts}, 2xx envoyés {ok}, lignes en base {rows} -> {verdict}")
    print(f"poids de la page : HTML + CSS {page_bytes} o ({page_bytes / 1024:.1f} Kio, non compressé)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
