"""HTTP benchmark: the survey page and the submission, against a bare Flask app.

Runs gunicorn (same settings for every case) on a fresh SQLite database and drives it
with wrk. Prints requests/s, p50 and p99 latency, and each case's throughput as a
ratio of the bare app's measured in the same run. Figures, not pass/fail.

    python bench/bench_http.py [--seconds 10] [--rounds 5] [--connections 32] [--workers 2] [--tokens 240000]
"""

from __future__ import annotations

import argparse
import json
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
#: wrk threads; each walks its own share of the token list, one step per thread.
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
  -- What a phone's browser sends with the form: where the request comes from (an
  -- older browser sends no Sec-Fetch-Site, and the view checks its Origin).
  wrk.headers["Origin"] = args[3]
  if args[5] == "fetch" then wrk.headers["Sec-Fetch-Site"] = "same-origin" end
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


def gunicorn(app: str, port: int, workers: int, env: dict) -> subprocess.Popen:
    """Gunicorn as in production: sync workers, no access log; the counting hooks only."""
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--bind",
        f"127.0.0.1:{port}",
        "--config",
        str(ROOT / "bench" / "gunicorn_counts.py"),
        app,
    ]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(port)
    return proc


def worker_cpu(proc: subprocess.Popen) -> float:
    """CPU seconds (user + system) used so far by a gunicorn arbiter's workers (Linux)."""
    pids = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # a worker that has just exited
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def server_counts(folder: Path) -> tuple[int, int]:
    """(POST requests answered, of which 2xx) over the workers that wrote their counts."""
    posts = ok = 0
    for path in folder.iterdir():
        p, o = path.read_text().split()
        posts, ok = posts + int(p), ok + int(o)
    return posts, ok


def run_wrk(
    url: str, seconds: int, connections: int, script: Path | None = None, args: list[str] | None = None
) -> dict:
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{seconds}s", "--latency"]
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


def prepare_database(db_path: Path, n_tokens: int) -> tuple[list[str], dict]:
    """Schema by migrations, definitions loaded, form tokens for the POST case (signed
    with the servers' key, as each display of the form gets one), and the rows the app
    writes for the POST's answers (their parameters), for the bare write."""
    from flask_migrate import upgrade
    from werkzeug.datastructures import MultiDict

    from barometer import create_app
    from barometer.extensions import db
    from barometer.loader import load_surveys
    from barometer.respond.services import answers_sent, form_token, get_survey
    from barometer.storage import Submission, _answer_values, _driver_inserts, _response_row
    from surveys.schema import DEFAULT_ROOT

    app = create_app({"SECRET_KEY": SECRET, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_path}"})
    with app.app_context():
        upgrade()
        load_surveys(DEFAULT_ROOT)
        context = get_survey(SERVICE)
        sent = answers_sent(context.questionnaire, MultiDict(ANSWERS))
        answers, errors = context.questionnaire.clean(sent, areas=context.areas)
        assert not errors, errors
        submission = Submission(
            service_id=context.service_id,
            version_id=context.version_id,
            token="",
            questionnaire=context.questionnaire,
            answers=answers,
        )
        insert_response, insert_answers = _driver_inserts(db.engine.dialect)
        rows = {
            "response": insert_response.parameters(_response_row(submission)),
            "answers": insert_answers.rows([(0, *values) for values in _answer_values(submission)]),
        }
        db.engine.dispose()
        return [form_token(context) for _ in range(n_tokens)], rows


def copy_database(source: Path, target: Path) -> None:
    """A copy of a SQLite database (WAL mode included), taken with SQLite's backup."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")


def page_weight(base: str) -> tuple[int, int]:
    html = urllib.request.urlopen(f"{base}/s/{SERVICE}").read()
    css_path = re.search(rb'<link rel="stylesheet" href="([^"]+)"', html).group(1).decode()
    css = urllib.request.urlopen(base + css_path).read()
    return len(html), len(css)


def combine(rounds: list[dict]) -> dict:
    """One case over its rounds: throughput over the whole time, median p50 and p99, worst p99."""
    seconds = sum(r["requests"] / r["rps"] for r in rounds if r["rps"])
    p50s = sorted(r["p50"] for r in rounds)
    return {
        "rps": sum(r["requests"] for r in rounds) / seconds,
        "p50": p50s[len(p50s) // 2],
        "p99": sorted(r["p99"] for r in rounds)[len(rounds) // 2],
        "p99_worst": max(r["p99"] for r in rounds),
        "requests": sum(r["requests"] for r in rounds),
        "ok": sum(r["ok"] for r in rounds),
        "rounds": rounds,
        "cpu_ms": 1000 * sum(r["cpu"] for r in rounds) / sum(r["requests"] for r in rounds),
    }


def spread(case: dict, reference: dict) -> str:
    """The lowest and highest of a case's per-round throughput ratios to a reference."""
    ratios = [x["rps"] / r["rps"] for x, r in zip(case["rounds"], reference["rounds"], strict=True)]
    return f"{min(ratios):.2f}–{max(ratios):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--seconds", type=int, default=10, help="measured seconds per case, split into rounds of whole seconds"
    )
    parser.add_argument("--rounds", type=int, default=5, help="rounds; each runs every case in turn")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=240_000, help="one-time tokens prepared for the POST cases")
    opts = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk est introuvable : apt-get install wrk")
    per_round = max(1, round(opts.seconds / opts.rounds))

    work = Path(tempfile.mkdtemp(prefix="bench-http-"))
    db_path = work / "bench.sqlite3"
    t0 = time.perf_counter()
    tokens, response_rows = prepare_database(db_path, opts.tokens)
    print(f"préparation : base migrée et {len(tokens)} jetons en {time.perf_counter() - t0:.1f} s")
    create_floor_database(work / "floor.sqlite3")
    copy_database(db_path, work / "rows.sqlite3")
    counts_dir = work / "counts"
    counts_dir.mkdir()
    env = {
        **os.environ,
        "BENCH_FLOOR_DB": str(work / "floor.sqlite3"),
        "BENCH_ROWS_DB": str(work / "rows.sqlite3"),
        "BENCH_ROWS": json.dumps(response_rows),
        "SECRET_KEY": SECRET,
        "DATABASE_URL": f"sqlite:///{db_path}",
        # The limiter stays on (its cost is part of a submission) but cannot trip here.
        "SURVEY_RATE_LIMIT": "100000000 per minute",
    }
    floor_script = work / "floor.lua"
    floor_script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"\n'
        f"wrk.body = {urllib.parse.urlencode(ANSWERS)!r}\n"
    )
    post_script = work / "post.lua"
    post_script.write_text(LUA_POST)
    # Both servers run throughout, idle when not measured; the cases take turns in
    # each round, so that a slower spell of the machine weighs on all of them alike.
    hello_port, app_port = free_port(), free_port()
    hello_base, base = f"http://127.0.0.1:{hello_port}", f"http://127.0.0.1:{app_port}"
    # Same settings for all; only the application's counts are read.
    servers = [gunicorn("bench.hello:app", hello_port, opts.workers, env)]
    try:
        servers.append(gunicorn("wsgi:app", app_port, opts.workers, {**env, "BENCH_COUNTS_DIR": str(counts_dir)}))
        html_bytes, css_bytes = page_weight(base)
        body = urllib.parse.urlencode(ANSWERS)
        # One share of tokens per POST case and round, and one each for the warm-up.
        share = len(tokens) // (2 * (opts.rounds + 1))
        token_files = []
        for i in range(2 * (opts.rounds + 1)):
            token_files.append(work / f"tokens-{i}.txt")
            token_files[i].write_text("\n".join(tokens[i * share : (i + 1) * share]) + "\n")

        def submissions(i: int, seconds: int, fetch: str, offset: int) -> dict:
            args = [str(token_files[offset + i]), str(WRK_THREADS), base, body, fetch]
            return run_wrk(f"{base}/s/{SERVICE}", seconds, opts.connections, post_script, args)

        cases = {
            "bare Flask hello": lambda i, s: run_wrk(f"{hello_base}/", s, opts.connections),
            "bare form (POST)": lambda i, s: run_wrk(f"{hello_base}/form", s, opts.connections, floor_script),
            "bare insert (POST)": lambda i, s: run_wrk(f"{hello_base}/insert", s, opts.connections, floor_script),
            "bare response rows": lambda i, s: run_wrk(
                f"{hello_base}/insert-response", s, opts.connections, floor_script
            ),
            "survey page (GET)": lambda i, s: run_wrk(f"{base}/s/{SERVICE}", s, opts.connections),
            # The same submission from a browser without Sec-Fetch-Site: the view takes it.
            "submission, by view": lambda i, s: submissions(i, s, "origin", opts.rounds + 1),
            "submission (POST)": lambda i, s: submissions(i, s, "fetch", 0),
        }
        # A warm-up second per case, not counted: first connections, caches, the
        # database's write-ahead log growing from nothing.
        warm_up = {name: case(opts.rounds, 1) for name, case in cases.items()}
        server_of = {name: servers[0] if name.startswith("bare") else servers[1] for name in cases}
        rounds: dict[str, list[dict]] = {name: [] for name in cases}
        for i in range(opts.rounds):
            for name, case in cases.items():
                before_cpu = worker_cpu(server_of[name])
                result = case(i, per_round)
                result["cpu"] = worker_cpu(server_of[name]) - before_cpu
                rounds[name].append(result)
    finally:
        for proc in servers:
            stop(proc)
    results = {name: combine(r) for name, r in rounds.items()}
    server_posts, server_ok = server_counts(counts_dir)
    with sqlite3.connect(db_path) as conn:
        rows = conn.execute("SELECT COUNT(*) FROM response").fetchone()[0]
    # The workers journal each response and write it within RESPONSE_FLUSH_SECONDS;
    # stopped, they have written all: nothing may be left waiting, nor refused.
    pending = Path(f"{db_path}-pending")
    left = sorted(p.name for p in pending.rglob("*") if p.is_file()) if pending.exists() else []
    post, by_view = results["submission (POST)"], results["submission, by view"]
    if max(r["requests"] for case in (post, by_view) for r in case["rounds"]) > share // 2:
        # Each wrk thread has only its share of a round's tokens: past half, one may run out.
        print("ATTENTION : plus de la moitié des jetons d'un tour utilisés ; relancez avec --tokens plus grand")

    posted = ("submission (POST)", "submission, by view")
    received = sum(results[name]["ok"] + warm_up[name]["ok"] for name in posted)
    from barometer.config import Config  # the servers' settings: the same environment

    flush_seconds = Config.RESPONSE_FLUSH_SECONDS
    bare = results["bare Flask hello"]
    print()
    print(
        f"machine : {os.cpu_count()} cœurs ; gunicorn {opts.workers} workers (sync, sans journal d'accès) ; SQLite WAL, "
        f"réponses versées en base toutes les {flush_seconds} s ; "
        f"wrk {WRK_THREADS} threads, {opts.connections} connexions ; {opts.rounds} tours de {per_round} s par cas, "
        "les cas à tour de rôle"
    )
    print(
        f"{'cas':<22}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'p99 pire':>10}{'ratio':>8}{'ratio/tour min–max':>22}"
        f"{'CPU ms/req':>12}{'2xx':>9}{'autres':>8}"
    )
    for name, r in results.items():
        print(
            f"{name:<22}{r['rps']:>10.0f}{r['p50']:>10.2f}{r['p99']:>10.2f}{r['p99_worst']:>10.2f}"
            f"{r['rps'] / bare['rps']:>8.2f}"
            f"{spread(r, bare):>22}{r['cpu_ms']:>12.3f}{r['ok']:>9}{r['requests'] - r['ok']:>8}"
        )
    print(
        "(req/s sur l'ensemble des tours ; p50 et p99 : médiane des tours ; p99 pire : le pire des tours ; "
        "CPU ms/req : temps processeur des processus gunicorn par requête, hors wrk)"
    )
    floor = results["bare insert (POST)"]
    print(
        f"envoi / plancher (le même POST écrit en une ligne, sans rien vérifier) : {post['rps'] / floor['rps']:.2f} "
        f"(tours {spread(post, floor)})"
    )
    bare_rows = results["bare response rows"]
    print(
        f"envoi / écriture nue de ses {1 + len(response_rows['answers'])} lignes (réponse et réponses aux questions, "
        f"schéma de l'application, sans rien vérifier) : {post['rps'] / bare_rows['rps']:.2f} "
        f"(tours {spread(post, bare_rows)})"
    )
    print(
        "envoi / le même envoi pris par la vue Flask (navigateur sans Sec-Fetch-Site, hors du chemin court "
        f"respond/fastpath.py) : {post['rps'] / by_view['rps']:.2f} (tours {spread(post, by_view)})"
    )
    print()
    print(
        f"soumissions des deux cas (mise en route comprise) : 2xx reçus par wrk {received}, 2xx envoyés par le serveur {server_ok}, "
        f"POST traités {server_posts}, lignes en base {rows}"
    )
    # A token stored twice would be a 2xx without a row; the token is unique in the schema.
    verdict = "OK" if rows == server_ok and not left else "ÉCART"
    print(
        f"intégrité : lignes en base = 2xx du serveur, journaux des processus vides -> {verdict} "
        f"(wrk coupe à la fin de chaque tour les réponses en vol : {server_ok - received} au total ; "
        f"fichiers restés dans le journal : {', '.join(left) or 'aucun'})"
    )
    print(
        f"poids de la page : HTML {html_bytes} o + CSS {css_bytes} o = {html_bytes + css_bytes} o "
        f"({(html_bytes + css_bytes) / 1024:.1f} Kio, non compressé)"
    )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
