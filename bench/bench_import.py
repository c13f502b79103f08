"""Benchmark of `flask barometer import-responses` on a large file (figures, not pass/fail).

Usage: python bench/bench_import.py [--rows 100000] [--format csv|xlsx] [--database URL]

On a new database (a temporary SQLite file, or the empty PostgreSQL database of
--database) with the project's surveys loaded, writes a file of --rows responses to the
demo commune's services (seeded; dates over the 24 months before the current one, sites,
profiles, attributes, multiple choices and some comments), then runs the command as a
user would, each in its own process, and prints its time and peak memory (the
process's ru_maxrss):
  0. `--help`: the process's start (the app and its libraries loaded), for reference;
  1. `--verifier`: the first pass alone (the whole file checked, nothing written);
  2. the import: both passes, the responses stored with their read model;
  3. the same file again: both passes, nothing stored.
Then checks that the database holds one response per row, and the read model as many.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select  # noqa: E402

from barometer import create_app, results  # noqa: E402
from barometer.config import TestConfig  # noqa: E402
from barometer.extensions import db  # noqa: E402
from barometer.history import _targets  # noqa: E402
from barometer.loader import load_surveys  # noqa: E402
from barometer.models import Response, ResultCell  # noqa: E402
from surveys.schema import DEFAULT_ROOT, PROFILE_KEYS, choices_for  # noqa: E402

MONTHS = 24


def make_app(url: str):
    config = {key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}
    config.update(SQLALCHEMY_DATABASE_URI=url)
    return create_app(config)


def rows_of(app, count: int, seed: int = 1):
    """The header, then `count` rows of plausible answers, one at a time."""
    with app.app_context():
        targets = sorted(_targets().values(), key=lambda t: t.slug)
    rng = random.Random(seed)
    keys = sorted({q.key for t in targets for q in t.questionnaire.questions} - set(PROFILE_KEYS))
    header = ["service", "submitted_at", "site", *keys, *PROFILE_KEYS]
    yield header
    first = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    start = (first - timedelta(days=MONTHS * 30.5)).replace(day=1)
    span = (first - start).total_seconds()
    for _ in range(count):
        target = rng.choice(targets)
        moment = start + timedelta(seconds=rng.random() * span)
        site = rng.choice(["", *target.sites]) if target.sites else ""
        values = {}
        for q in target.questionnaire.questions:
            if q.key != "overall" and rng.random() < 0.3:
                continue
            if q.type == "scale":
                values[q.key] = "na" if q.not_applicable and rng.random() < 0.05 else rng.randint(1, 5)
            elif q.type == "nps":
                values[q.key] = rng.randint(0, 10)
            elif q.type == "yesno":
                values[q.key] = rng.choice(["oui", "non"])
            elif q.type == "single" and not q.show_if:
                values[q.key] = rng.choice(choices_for(q, target.areas)).code
            elif q.type == "multiple":
                codes = [c.code for c in choices_for(q, target.areas)]
                values[q.key] = "|".join(rng.sample(codes, min(len(codes), q.max_choices or 2)))
            elif q.type == "text" and rng.random() < 0.1:
                values[q.key] = "Accueil agréable, attente un peu longue le samedi ; merci."
        yield [target.slug, moment.strftime("%Y-%m-%d %H:%M"), site, *(values.get(k, "") for k in header[3:])]


def write_file(app, path: Path, count: int) -> None:
    if path.suffix == ".xlsx":
        from openpyxl import Workbook

        book = Workbook(write_only=True)  # streamed to disk, as the reader streams it back
        sheet = book.create_sheet()
        for row in rows_of(app, count):
            sheet.append(row)
        book.save(path)
    else:
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows(rows_of(app, count))


def run(url: str, *args: str) -> tuple[float, float, str]:
    """Run `flask barometer import-responses ...` in its own process: seconds, peak
    memory (MiB) and standard output; its progress lines go to this stderr."""
    env = {**os.environ, "FLASK_APP": "wsgi.py", "DATABASE_URL": url, "SECRET_KEY": "bench-" + "x" * 40}
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(Path(sys.executable).with_name("flask")), "barometer", "import-responses", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"la commande a échoué :\n{out}")
    return seconds, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--format", choices=("csv", "xlsx"), default="csv")
    parser.add_argument("--database", help="an empty database (default: a temporary SQLite file)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"
        app = make_app(url)
        with app.app_context():
            from flask_migrate import upgrade

            upgrade()
            load_surveys(DEFAULT_ROOT)
            if db.session.execute(select(func.count()).select_from(Response)).scalar_one():
                raise SystemExit("la base doit être vide de réponses")
        path = Path(tmp) / f"historique.{args.format}"
        start = time.perf_counter()
        write_file(app, path, args.rows)
        print(
            f"fichier : {args.rows} lignes, {path.stat().st_size / 2**20:.1f} Mio, écrit en {time.perf_counter() - start:.1f} s"
        )
        print(f"base : {url.split(':', 1)[0]}")

        seconds, peak, _ = run(url, "--help")
        print(f"{'démarrage (--help)':24} {seconds:8.1f} s  {'':18}  pointe {peak:6.0f} Mio")
        for label, options in (("vérification seule", ["--verifier"]), ("import", []), ("même fichier à nouveau", [])):
            seconds, peak, out = run(url, *options, str(path))
            print(f"{label:24} {seconds:8.1f} s  {args.rows / seconds:9.0f} lignes/s  pointe {peak:6.0f} Mio  | {out}")

        with app.app_context():
            stored = db.session.execute(select(func.count()).select_from(Response)).scalar_one()
            counted = db.session.execute(
                select(func.coalesce(func.sum(ResultCell.n), 0)).where(ResultCell.question_key == results.RESPONSES_KEY)
            ).scalar_one()
            db.engine.dispose()
        print(f"réponses en base : {stored} ; dans les résultats agrégés : {counted}")
        if not stored == counted == args.rows:
            raise SystemExit("compte inattendu")


if __name__ == "__main__":
    main()
