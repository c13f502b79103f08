"""Benchmark of the director's pages for a large organisation (figures, not pass/fail).

Usage: python bench/bench_steering.py [--services 200] [--responses 50000] [--months 24]
           [--database URL [--reuse]] [--profile]

On a new database (a temporary SQLite file, or the database of --database, emptied),
loads one organisation of --services services spread over the catalogue's policies
(several services a policy, some with two sites, the project's questionnaires), with
its population margins, three years of allocations (budget, staff, volume) and a
priority for each policy (level, floor, target, deadline); then fills it with about
--responses responses over the --months full months before the current one, by the
demo's generator (`demo.generate`: every response checked by its questionnaire and
written by `storage.store_responses`, the read model kept as in production). The
policies' targets differ, so that the recommendations do too. --reuse keeps what the
--database already holds (filling a million responses takes a while).

Then times, in one process, each case twice (the best shown, wall and CPU):
  1. the recommendations, as `flask barometer recommend` and the overview compute them
     (`steering_inputs` then `recommend_by_organisation`), cold (every cache emptied,
     no connection open: a worker that starts) and warm (the same call again);
  2. one scenario (saving 8 %, a quarter reinvested: `run_scenario`), cold and warm;
  3. the overview page (GET /pilotage/) and the indicators board (GET
     /pilotage/tableau) as the organisation's director, cold and warm.
Then the recommendations once more after a response to this month of one service, and
after one to each service (as during collection: the services answered are computed
again, the others' data stay cached). --profile adds one cold computation of the
recommendations under cProfile (the 25 entries of most cumulative time).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import re
import resource
import secrets
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import yaml  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from barometer import demo  # noqa: E402
from barometer.extensions import db  # noqa: E402
from barometer.loader import load_surveys  # noqa: E402
from barometer.models import (  # noqa: E402
    Organisation,
    Priority,
    Response,
    ResultCell,
    ResultMoments,
    Role,
    Service,
    User,
)
from barometer.steering import services as steering  # noqa: E402
from barometer.storage import Submission, store_responses  # noqa: E402
from bench.bench_reports import cold, timed  # noqa: E402
from bench.bench_results import make_app, migrate  # noqa: E402
from surveys.schema import DEFAULT_ROOT  # noqa: E402

ORGANISATION = "agglomeration-de-mesure"
DIRECTOR = "direction@mesure.invalid"
#: The policies whose services answer a questionnaire of their own; the others answer core.
QUESTIONNAIRES = {
    "piscines": "piscine",
    "petite-enfance": "creche",
    "lecture-publique": "mediatheque",
    "collecte-dechets": "dechets",
}
#: Every this many services, one is given two sites.
SITES_EVERY = 5
#: Policy targets by priority level, drawn per policy. Services satisfy about 51 % of
#: their users (the generator's baseline): a target of 0.60 or 0.70 on an essential or
#: important policy calls for reinforcing, 0.40 on a secondary one finds over-quality.
TARGETS = {1: (0.51, 0.51, 0.60, 0.70), 2: (0.51, 0.51, 0.60), 3: (0.51, 0.40, 0.45)}
YEARS = 3
SAVING, REINVEST = 0.08, 0.25
PASSWORD = secrets.token_urlsafe(12)


def surveys_root(folder: Path, services: int) -> Path:
    """A surveys folder: the project's catalogue and questionnaires, and one organisation
    of `services` services over every policy in turn."""
    root = folder / "surveys"
    (root / "services").mkdir(parents=True)
    (root / "catalogue.yaml").symlink_to(DEFAULT_ROOT / "catalogue.yaml")
    (root / "questionnaires").symlink_to(DEFAULT_ROOT / "questionnaires")
    catalogue = yaml.safe_load((DEFAULT_ROOT / "catalogue.yaml").read_text(encoding="utf-8"))
    policies = [(p["slug"], p["name"]) for d in catalogue["domains"] for p in d["policies"]]
    declared = []
    for i in range(services):
        slug, name = policies[i % len(policies)]
        number = i // len(policies) + 1
        service = {
            "slug": f"{slug}-{number}",
            "name": f"{name} n° {number}",
            "policy": slug,
            "questionnaire": QUESTIONNAIRES.get(slug, "core"),
        }
        if i % SITES_EVERY == 0:
            service["sites"] = [{"code": "nord", "name": "Site nord"}, {"code": "sud", "name": "Site sud"}]
        declared.append(service)
    # Five areas: the generator's answer shares cover five.
    areas = ["centre", "nord", "est", "sud", "ouest"]
    organisation = {
        "organisation": {"slug": ORGANISATION, "name": "Agglomération de mesure", "kind": "epci"},
        "areas": [{"code": a, "label": {"fr": a.capitalize(), "en": a.capitalize()}} for a in areas],
        "margins": {
            "age_band": {"a15_29": 0.22, "a30_44": 0.24, "a45_59": 0.24, "a60_74": 0.19, "a75_plus": 0.11},
            "sex": {"f": 0.52, "m": 0.48},
            "area": dict(zip(areas, (0.26, 0.24, 0.20, 0.18, 0.12), strict=True)),
        },
        "services": declared,
    }
    (root / "services" / "organisation.yaml").write_text(yaml.safe_dump(organisation, allow_unicode=True))
    return root


def add_budgets(organisation_id: int, *, seed: int = 1, last_year: int) -> None:
    """Allocations for `YEARS` years of each service, and a priority for each policy."""
    rng = np.random.default_rng(seed)
    services = (
        db.session.execute(select(Service).where(Service.organisation_id == organisation_id).order_by(Service.slug))
        .scalars()
        .all()
    )
    last_budget: dict[int, float] = {}
    for s in services:
        base = float(rng.uniform(150_000, 2_500_000))
        fte, volume = base / 55_000, int(rng.uniform(2_000, 60_000))
        last = demo.add_allocations(rng, s.id, base, fte, volume, years=YEARS, last_year=last_year)
        last_budget[s.policy_id] = last_budget.get(s.policy_id, 0.0) + last
    for policy_id in sorted(last_budget):
        level = int(rng.integers(1, 4))
        db.session.add(
            Priority(
                policy_id=policy_id,
                level=level,
                floor_eur=Decimal(f"{demo.FLOOR_SHARE[level] * last_budget[policy_id]:.2f}"),
                satisfaction_target=float(rng.choice(TARGETS[level])),
                deadline=date(last_year + 1, 12, 31),
            )
        )
    db.session.commit()


def fill(months: int, responses: int, services: int) -> None:
    """The organisation, its framework and its responses, on an empty schema."""
    folder = tempfile.TemporaryDirectory()
    load_surveys(surveys_root(Path(folder.name), services))
    folder.cleanup()
    organisation = db.session.execute(select(Organisation).where(Organisation.slug == ORGANISATION)).scalar_one()
    now = datetime.now(UTC)
    add_budgets(organisation.id, last_year=now.year)
    start = time.perf_counter()

    def progress(month: int, total: int) -> None:
        elapsed = time.perf_counter() - start
        line = f"  month {month}/{total}, {elapsed:.0f} s, about {elapsed / month * (total - month):.0f} s to go"
        # One line kept up to date on a terminal, a line a month in a log.
        print(line, end="\r" if sys.stdout.isatty() and month < total else "\n", flush=True)

    print(f"filling: {services} services, about {responses} responses over {months} months")
    stored = demo.generate(
        seed=1, months=months, per_month=round(responses / months), progress=progress, organisation=ORGANISATION
    )
    elapsed = time.perf_counter() - start
    print(f"filled: {stored} responses in {elapsed:.1f} s ({elapsed / stored * 1e6:.0f} µs/response)")


def respond(slugs: list[str]) -> None:
    """One resident's response, now, to each of the services ``slugs``."""
    submissions = []
    for slug in slugs:
        context = demo.get_survey(slug)
        answers, _ = context.questionnaire.clean({"overall": "4"})
        submissions.append(
            Submission(
                service_id=context.service_id,
                version_id=context.version_id,
                token=secrets.token_urlsafe(16),
                questionnaire=context.questionnaire,
                answers=answers,
                submitted_at=datetime.now(UTC),
            )
        )
    store_responses(submissions)


def director(organisation_id: int) -> User:
    """The organisation's director, with `PASSWORD` (created if needed)."""
    user = db.session.execute(select(User).where(User.email == DIRECTOR)).scalar_one_or_none()
    if user is None:
        user = User(email=DIRECTOR, role=Role.director, organisation_id=organisation_id)
        db.session.add(user)
    user.set_password(PASSWORD)
    db.session.commit()
    return user


def spaced(x: float) -> str:
    """A whole number with its thousands apart: 1 234 567."""
    return f"{x:,.0f}".replace(",", " ")


def shown(times: list[tuple[float, float]]) -> str:
    wall, cpu = min(times)
    return f"{spaced(wall * 1e3)} ms (CPU {spaced(cpu * 1e3)} ms)"


def count(model) -> int:
    return db.session.execute(select(func.count()).select_from(model)).scalar_one()


def signed_in(app):
    """A test client signed in as the director, through the sign-in form."""
    client = app.test_client()
    page = client.get("/connexion").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    answer = client.post("/connexion", data={"email": DIRECTOR, "password": PASSWORD, "csrf_token": token})
    if answer.status_code != 302:
        raise SystemExit(f"sign-in refused ({answer.status_code})")
    return client


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--services", type=int, default=200)
    parser.add_argument("--responses", type=int, default=50_000)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--database", help="a database's URL, emptied first (default: a temporary SQLite file)")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="keep the organisation and responses the --database holds (the sizes are ignored)",
    )
    parser.add_argument(
        "--profile", action="store_true", help="also profile one cold computation of the recommendations"
    )
    args = parser.parse_args()
    if args.reuse and not args.database:
        parser.error("--reuse needs --database")
    os.environ.setdefault("SECRET_KEY", "bench")
    folder = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{Path(folder.name) / 'bench.sqlite3'}"
    app = make_app(url)
    with app.app_context():
        migrate(reuse=bool(args.reuse and args.database))
        if not (args.reuse and args.database):
            fill(args.months, args.responses, args.services)
        organisation = db.session.execute(
            select(Organisation).where(Organisation.slug == ORGANISATION)
        ).scalar_one_or_none()
        if organisation is None:
            raise SystemExit(f"{url}: no organisation {ORGANISATION!r} (filled without --reuse first?)")
        director_id = director(organisation.id).id
        sizes = {
            "services": count(Service),
            "responses": count(Response),
            "cell rows": count(ResultCell),
            "moment rows": count(ResultMoments),
        }
        db.session.remove()
    print(f"database: {url.split(':')[0]}; " + ", ".join(f"{spaced(n)} {label}" for label, n in sizes.items()))

    figures: dict[str, list[tuple[float, float]]] = {}
    found: dict = {}

    with app.test_request_context("/?lang=fr"):

        def user():
            return db.session.get(User, director_id)

        def recommendations():
            inputs = steering.steering_inputs(user())
            found["recommendations"] = steering.recommend_by_organisation(inputs)
            found["year"] = inputs.year

        def scenario():
            try:
                found["scenario"] = steering.run_scenario(user(), saving=SAVING, reinvest=REINVEST)
            except steering.ScenarioRefused as exc:
                found["scenario"] = exc.reason

        for _ in range(2):
            for name, make in (("recommendations", recommendations), ("scenario", scenario)):
                cold()
                figures.setdefault(f"{name} cold", []).append(timed(make))
                figures.setdefault(f"{name} warm", []).append(timed(make))
        # During collection: responses to this month change this year's data of the
        # services they answer, which are computed again; the others stay cached.
        recommendations()
        slugs = [s.slug for s in db.session.execute(select(Service).order_by(Service.slug)).scalars()]
        respond(slugs[:1])
        figures["after one response"] = [timed(recommendations)]
        respond(slugs)
        figures["after a response to each service"] = [timed(recommendations)]
        if args.profile:
            cold()
            profile = cProfile.Profile()
            profile.runcall(recommendations)
        cold()

    client = signed_in(app)

    def page(name: str, path: str) -> None:
        answer = client.get(path)
        if answer.status_code != 200:
            raise SystemExit(f"GET {path}: {answer.status_code}")
        found[name] = len(answer.get_data())

    for _ in range(2):
        for name, path in (("overview", "/pilotage/"), ("board", "/pilotage/tableau")):
            with app.app_context():
                cold()
            for state in ("cold", "warm"):
                figures.setdefault(f"{name} {state}", []).append(timed(lambda name=name, path=path: page(name, path)))

    table = [row for r in found["recommendations"] for row in r.table["recommendation"]]
    counts = {rec: table.count(rec) for rec in sorted(set(table))}
    print(f"year {found['year']}; recommendations: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    doc = found["scenario"]
    if isinstance(doc, dict):
        print(
            f"scenario: saving {spaced(doc['saving'])} € of {spaced(doc['total_before'])} €, "
            f"{spaced(doc['reinvested'])} € reinvested"
        )
    else:
        print(f"scenario refused: {doc}")
    for key, label in (
        ("recommendations", "recommendations (steering_inputs + recommend_by_organisation)"),
        ("scenario", "one scenario (saving 8 %, 25 % reinvested)"),
        ("overview", f"overview page (GET /pilotage/, {found['overview'] / 1024:.0f} KiB)"),
        ("board", f"indicators board (GET /pilotage/tableau, {found['board'] / 1024:.0f} KiB)"),
    ):
        print(f"{label}: cold {shown(figures[f'{key} cold'])}, warm {shown(figures[f'{key} warm'])}")
    for key in ("after one response", "after a response to each service"):
        print(f"recommendations {key} this month (other data cached): {shown(figures[key])}")
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    if args.profile:
        print("\ncold recommendations, by cumulative time:")
        pstats.Stats(profile, stream=sys.stdout).sort_stats("cumulative").print_stats(25)
    folder.cleanup()


if __name__ == "__main__":
    main()
