"""Benchmark of the results read model on the demo grown large (figures, not pass/fail).

Usage: python bench/bench_results.py [--months 24] [--per-month 4000] [--database URL [--reuse]]

On a new database (a temporary SQLite file, or the empty PostgreSQL database of
--database), fills the demo commune with `demo.generate` (responses written by
`storage.store_responses`, which keeps the read model), then times:
  1. the cost the read model adds to a bulk insert, per response (the same responses
     stored with and without it) and to one response in its own transaction;
  2. a rebuild of every service's read model from the responses;
  3. one service's report statistics from the read model (raking, % satisfied and mean
     by month and by quarter, per site, segment gaps, LMG), cold (first read) and
     warm (read again; and a cache hit keyed by the data version);
  4. every service's headline (% satisfied and mean, raked, over the last 12 months);
beside the unit-level reads the read model replaces: one service's
`frames.responses_frame()` and that frame's statistics.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
from sqlalchemy import func, select, text  # noqa: E402

from analysis import cells as ce  # noqa: E402
from analysis.drivers import relative_importance  # noqa: E402
from analysis.estimates import mean, proportion  # noqa: E402
from analysis.scales import SATISFIED  # noqa: E402
from analysis.segments import segment_gaps  # noqa: E402
from analysis.weighting import rake  # noqa: E402
from barometer import create_app, demo, results, storage  # noqa: E402
from barometer.config import TestConfig  # noqa: E402
from barometer.extensions import db  # noqa: E402
from barometer.frames import responses_frame  # noqa: E402
from barometer.loader import load_surveys  # noqa: E402
from barometer.models import Response, Service  # noqa: E402
from surveys.schema import DEFAULT_ROOT, PROFILE_KEYS  # noqa: E402

SERVICE = "piscine"


@contextmanager
def timer(label: str, out: dict):
    start = time.perf_counter()
    yield
    out[label] = time.perf_counter() - start


def make_app(url: str):
    config = {key: getattr(TestConfig, key) for key in dir(TestConfig) if key.isupper()}
    config.update(SQLALCHEMY_DATABASE_URI=url)
    return create_app(config)


def add_database_arguments(parser) -> None:
    """The options of a benchmark's database: --database URL and --reuse."""
    parser.add_argument("--database", help="an empty database's URL (default: a temporary SQLite file)")
    parser.add_argument(
        "--reuse", action="store_true", help="keep the responses the --database already holds (no new demo)"
    )


def open_database(args):
    """The folder of a temporary database (removed with it), the database's URL (--database,
    or a SQLite file in that folder) and an app on it."""
    os.environ.setdefault("SECRET_KEY", "bench")
    folder = tempfile.TemporaryDirectory()
    url = args.database or f"sqlite:///{Path(folder.name) / 'bench.sqlite3'}"
    return folder, url, make_app(url)


def migrate(*, reuse: bool) -> None:
    """Bring the app's database to the last migration: as it is (``reuse``: its
    responses kept), or emptied first (every table dropped)."""
    from flask_migrate import upgrade

    if not reuse:
        with db.engine.begin() as connection:
            db.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    upgrade()


def report(cells, moments, margins) -> dict:
    """What a service's report computes: raking, headline, trend by month and quarter,
    attributes, sites, publics and drivers."""
    raking = ce.rake_cells(cells, margins)
    out = {"raking": raking}
    quarters = ce.with_period(cells, "quarter")
    keys = sorted(set(cells["question_key"]) - {results.RESPONSES_KEY})
    for statistic in ("satisfied", "mean"):
        out[("headline", statistic)] = ce.estimate(cells, "overall", statistic=statistic, raking=raking)
        out[("month", statistic)] = ce.estimates(cells, "overall", by="period", statistic=statistic, raking=raking)
        out[("quarter", statistic)] = ce.estimates(quarters, "overall", by="period", statistic=statistic, raking=raking)
        out[("site", statistic)] = ce.estimates(cells, "overall", by="site_id", statistic=statistic, raking=raking)
    for key in keys:
        out[("attribute", key)] = ce.estimate(cells, key, statistic="satisfied", raking=raking)
    out["publics"] = ce.segment_gaps(cells, "overall", list(PROFILE_KEYS), raking=raking)
    variables = moments["variables"].value_counts().index[0]
    out["drivers"] = ce.relative_importance(moments, "overall", list(variables[1:]), raking=raking)
    return out


def unit_report(frame, margins, drivers) -> None:
    """The same statistics from the respondents' frame (headline, months, publics, LMG)."""
    recoded, completed = ce.complete_margins(frame, margins)
    raking = rake(recoded, completed)
    proportion(frame, "overall", success=list(SATISFIED), weights=raking)
    mean(frame, "overall", weights=raking)
    for period in frame["period"].unique():
        inside = frame["period"] == period
        proportion(frame[inside], "overall", success=list(SATISFIED), weights=raking)
    segment_gaps(frame, "overall", list(PROFILE_KEYS), weights=raking)
    relative_importance(frame, "overall", drivers, weights=raking.weights)


def bulk_cost(app, n: int) -> tuple[float, float]:
    """Seconds per response of `store_responses`, with and without the read model."""
    subs: list = []
    real = demo.store_responses
    demo.store_responses = lambda chunk: subs.extend(chunk) or len(chunk)
    try:
        with app.app_context():
            demo.generate(seed=99, months=2, per_month=n, end=pd.Timestamp("2001-06-15", tz="UTC").to_pydatetime())
    finally:
        demo.store_responses = real
    half = len(subs) // 2
    out = []
    for chunk, record in ((subs[:half], True), (subs[half:], False)):
        saved = storage.record_responses
        if not record:
            storage.record_responses = lambda *args, **kwargs: None
        try:
            with app.app_context():
                start = time.perf_counter()
                storage.store_responses(chunk)
                out.append((time.perf_counter() - start) / len(chunk))
        finally:
            storage.record_responses = saved
    return out[0], out[1]


def single_cost(app, n: int = 300) -> tuple[float, float]:
    """Seconds for one response in its own transaction, with and without recording it."""
    with app.app_context():
        context = demo.get_survey(SERVICE)
        answers, _ = context.questionnaire.clean({"overall": "4", "courtesy": "5", "age_band": "a30_44"})
        drivers = {context.version_id: context.questionnaire.drivers}
        out = []
        for record in (True, False, True, False):
            start = time.perf_counter()
            for i in range(n):
                sub = storage.Submission(
                    service_id=context.service_id,
                    version_id=context.version_id,
                    token=f"single-{record}-{time.perf_counter_ns()}-{i}",
                    questionnaire=context.questionnaire,
                    answers=answers,
                    submitted_at=pd.Timestamp("2001-03-01", tz="UTC").to_pydatetime(),
                )
                row, values = storage._response_row(sub), storage._answer_values(sub)
                with db.engine.begin() as connection:
                    rid = connection.execute(storage._INSERT_RESPONSES, [row]).scalar_one()
                    connection.execute(
                        storage._INSERT_ANSWERS,
                        [dict(zip(storage._ANSWER_KEYS, (rid, *v), strict=True)) for v in values],
                    )
                    if record:
                        results.record_responses(connection, [(row, values)], drivers=drivers)
            out.append((time.perf_counter() - start) / n)
    return min(out[0], out[2]), min(out[1], out[3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--months", type=int, default=24)
    parser.add_argument("--per-month", type=int, default=4000)
    add_database_arguments(parser)
    args = parser.parse_args()
    folder, url, app = open_database(args)
    t: dict = {}
    with app.app_context():
        migrate(reuse=bool(args.reuse and args.database))
        if args.reuse and args.database:
            stored = db.session.execute(select(func.count()).select_from(Response)).scalar_one()
        else:
            load_surveys(DEFAULT_ROOT)
            with timer("demo", t):
                stored = demo.generate(seed=1, months=args.months, per_month=args.per_month)
        services = db.session.execute(select(Service.id, Service.slug, Service.organisation_id)).all()
        db.session.remove()
    print(
        f"database: {app.config['SQLALCHEMY_DATABASE_URI'].split(':')[0]}; {stored} responses, {len(services)} services"
    )
    if "demo" in t:
        print(f"demo (store_responses, read model kept): {t['demo']:.1f} s, {t['demo'] / stored * 1e6:.0f} µs/response")

    with_model, without = bulk_cost(app, 5000)
    print(
        f"bulk insert: {with_model * 1e6:.0f} µs/response with the read model, {without * 1e6:.0f} without "
        f"(+{(with_model - without) * 1e6:.0f} µs)"
    )
    with_model, without = single_cost(app)
    print(
        f"one response, own transaction: {with_model * 1e3:.2f} ms with the read model, {without * 1e3:.2f} ms "
        f"without (+{(with_model - without) * 1e3:.2f} ms)"
    )

    with app.app_context():
        start = time.perf_counter()
        for service_id, _, _ in services:
            with db.engine.begin() as connection:
                results.rebuild_service(connection, service_id)
        print(f"rebuild-results, every service: {time.perf_counter() - start:.1f} s")

        service_id, _, organisation = next(s for s in services if s.slug == SERVICE)
        margins = results.population_margins(organisation)
        db.engine.dispose()  # no connection, no statement cached: a cold start of the app
        for label in ("cold", "warm"):
            with timer(f"read {label}", t):
                cells = results.cells_frame([service_id])
                moments = results.moments_frame([service_id])
            with timer(f"stats {label}", t):
                report(cells, moments, margins)
            print(
                f"service report ({SERVICE}, {len(cells)} cells, {len(moments)} moments rows), {label}: "
                f"read {t[f'read {label}']:.3f} s + statistics {t[f'stats {label}']:.3f} s"
            )
        cache = {(service_id, results.data_versions([service_id])[service_id]): report(cells, moments, margins)}
        start = time.perf_counter()
        hit = cache.get((service_id, results.data_versions([service_id])[service_id]))
        assert hit is not None
        print(f"service report, cached by data version: {(time.perf_counter() - start) * 1e3:.2f} ms")

        ids = [s.id for s in services]
        last = pd.Timestamp.now(tz="UTC").tz_localize(None).to_period("M") - 12
        start = time.perf_counter()
        every = results.cells_frame(ids, start=last.start_time.date(), keys=["overall"])
        read = time.perf_counter() - start
        margins_of = {o: results.population_margins(o) for o in {s.organisation_id for s in services}}
        headlines = 0
        organisation_of = {s.id: s.organisation_id for s in services}
        for service_id, scope in every.groupby("service_id"):
            organisation = organisation_of[service_id]
            raking = ce.rake_cells(scope, margins_of[organisation]) if margins_of[organisation] else None
            ce.estimate(scope, "overall", statistic="satisfied", raking=raking)
            ce.estimate(scope, "overall", raking=raking)
            headlines += 1
        print(
            f"every service's headline (last 12 months, raked): {headlines} services, "
            f"read {read:.3f} s, total {time.perf_counter() - start:.3f} s"
        )

        start = time.perf_counter()
        frame = responses_frame(services=[SERVICE])
        unit_read = time.perf_counter() - start
        drivers = list(moments["variables"].value_counts().index[0][1:])
        start = time.perf_counter()
        unit_report(frame, margins, drivers)
        print(
            f"unit level, for comparison: responses_frame({SERVICE}) {unit_read:.3f} s ({len(frame)} responses), "
            f"its statistics {time.perf_counter() - start:.3f} s"
        )
    print(f"peak memory: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    folder.cleanup()


if __name__ == "__main__":
    main()
